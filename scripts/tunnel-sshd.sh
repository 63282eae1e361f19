#!/usr/bin/env bash
# The dedicated OpenSSH server nodes behind NAT dial (issue #21; see
# core/src/tunnels/README.md). Not the host's own sshd: its own config, its
# own port, one restricted account, and the authorized_keys file the core
# writes from the node registry (--tunnel-authorized-keys).
#   scripts/tunnel-sshd.sh start DIR [PORT]
#       -> TUNNEL_PORT=… TUNNEL_USER=… TUNNEL_FP=… TUNNEL_KNOWN_HOST=… TUNNEL_AUTHORIZED_KEYS=…
#   scripts/tunnel-sshd.sh stop DIR
# TUNNEL_LISTEN (default 0.0.0.0) is the address it listens on. The account
# is TUNNEL_USER; run as root, the default is `sbx-tunnel` (made, without a
# home, password or usable shell, when missing); run as another user, sshd
# can only log that user in, so the account is the user itself. Starting an
# existing DIR again keeps its port and host key (a restart).
set -euo pipefail
cmd=${1:?usage: tunnel-sshd.sh start|stop DIR [PORT]}
dir=${2:?usage: tunnel-sshd.sh start|stop DIR [PORT]}

. "$(dirname "$0")/sshd-lib.sh"

if [ "$(id -u)" -eq 0 ]; then user=${TUNNEL_USER:-sbx-tunnel}; else user=$(id -un); fi
listen=${TUNNEL_LISTEN:-0.0.0.0}

sshd_write_config() {
    # Everything a node's key may do is one remote forward on 127.0.0.1
    # (the key's line names the port: permitlisten); the rest is off here
    # too, so a line without options would still open no shell.
    cat >"$dir/sshd_config" <<CFG
Port $1
ListenAddress $listen
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AuthorizedPrincipalsFile none
AllowUsers $user
PermitRootLogin no
UsePAM no
StrictModes no
AuthenticationMethods publickey
PubkeyAcceptedAlgorithms ssh-ed25519
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
AllowTcpForwarding remote
PermitOpen none
GatewayPorts no
AllowStreamLocalForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PermitTunnel no
PermitUserRC no
PermitUserEnvironment no
MaxSessions 0
ForceCommand /bin/false
ClientAliveInterval 15
ClientAliveCountMax 3
MaxStartups 100:30:200
LogLevel VERBOSE
CFG
    /usr/sbin/sshd -t -f "$dir/sshd_config"
}

sshd_launch() {
    /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
}

case "$cmd" in
start)
    if [ "$user" = root ]; then echo "tunnel-sshd.sh: the tunnel account must not be root" >&2; exit 2; fi
    if [ "$(id -u)" -eq 0 ] && ! getent passwd "$user" >/dev/null; then
        # '*': no password, yet not "locked" (sshd refuses locked accounts without PAM).
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --password '*' "$user"
    fi
    sshd_dir_init "$dir"
    chmod 755 "$dir" # the account reads authorized_keys through it
    [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sbx-tunnel-host -f "$dir/host_ed25519"
    [ -f "$dir/authorized_keys" ] || : >"$dir/authorized_keys"
    sshd_start tunnel-sshd.sh "${3:-}"
    echo "TUNNEL_PORT=$port"
    echo "TUNNEL_USER=$user"
    echo "TUNNEL_FP=$(ssh-keygen -l -f "$dir/host_ed25519.pub" | awk '{print $2}')"
    echo "TUNNEL_KNOWN_HOST=$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")"
    echo "TUNNEL_AUTHORIZED_KEYS=$dir/authorized_keys"
    ;;
stop)
    sshd_stop
    ;;
*)
    echo "usage: tunnel-sshd.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
