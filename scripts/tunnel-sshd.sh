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

if [ "$(id -u)" -eq 0 ]; then user=${TUNNEL_USER:-sbx-tunnel}; else user=$(id -un); fi
listen=${TUNNEL_LISTEN:-0.0.0.0}

write_config() {
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
}

stop() {
    if [ -f "$dir/sshd.pid" ]; then
        local pid children
        pid=$(cat "$dir/sshd.pid")
        # The tunnels' own sshd processes outlive the listener: stop them too.
        children=$(pgrep -P "$pid" 2>/dev/null || true)
        kill "$pid" $children 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/sshd.pid"
    fi
}

listening() {
    local pid
    [ -s "$dir/sshd.pid" ] || return 1
    pid=$(cat "$dir/sshd.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    ss -Htlnp "( sport = :$1 )" 2>/dev/null | grep -q "pid=$pid,"
}

case "$cmd" in
start)
    if [ "$user" = root ]; then echo "tunnel-sshd.sh: the tunnel account must not be root" >&2; exit 2; fi
    if [ "$(id -u)" -eq 0 ] && ! getent passwd "$user" >/dev/null; then
        # '*': no password, yet not "locked" (sshd refuses locked accounts without PAM).
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --password '*' "$user"
    fi
    mkdir -p "$dir" /run/sshd
    chmod 755 /run/sshd
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir" # the account reads authorized_keys through it
    [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sbx-tunnel-host -f "$dir/host_ed25519"
    [ -f "$dir/authorized_keys" ] || : >"$dir/authorized_keys"
    port=${3:-}
    if [ -z "$port" ] && [ -f "$dir/port" ]; then port=$(cat "$dir/port"); fi
    fixed=$port
    stop
    for attempt in 1 2 3 4 5; do
        if [ -z "$port" ]; then port=$("$(dirname "$0")/services.sh" free-port); fi
        echo "$port" >"$dir/port"
        write_config "$port"
        /usr/sbin/sshd -t -f "$dir/sshd_config"
        rm -f "$dir/sshd.pid"
        : >"$dir/sshd.log"
        /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
        ok=""
        for _ in $(seq 1 200); do
            if listening "$port"; then ok=1; break; fi
            if grep -q "Bind to port" "$dir/sshd.log" 2>/dev/null; then break; fi
            sleep 0.05
        done
        [ -n "$ok" ] && break
        stop
        if [ -n "$fixed" ] || [ "$attempt" -eq 5 ]; then
            echo "tunnel-sshd.sh: sshd did not start on port $port:" >&2
            cat "$dir/sshd.log" >&2
            exit 1
        fi
        port=""
    done
    echo "TUNNEL_PORT=$port"
    echo "TUNNEL_USER=$user"
    echo "TUNNEL_FP=$(ssh-keygen -l -f "$dir/host_ed25519.pub" | awk '{print $2}')"
    echo "TUNNEL_KNOWN_HOST=$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")"
    echo "TUNNEL_AUTHORIZED_KEYS=$dir/authorized_keys"
    ;;
stop)
    stop
    ;;
*)
    echo "usage: tunnel-sshd.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
