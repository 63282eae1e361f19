#!/usr/bin/env bash
# A private OpenSSH server for tests and benchmarks.
#   scripts/sshd.sh start DIR [PORT]  -> prints SSHD_PORT=… SSHD_KEY=… SSHD_PUB=… SSHD_FP=…
#   scripts/sshd.sh stop DIR
# DIR gets its own ed25519 host key, a client key (root may log in with it),
# the config, the pid file and the log. Listens on 127.0.0.1 only.
set -euo pipefail
cmd=${1:?usage: sshd.sh start|stop DIR [PORT]}
dir=${2:?usage: sshd.sh start|stop DIR [PORT]}

free_port() {
    "$(dirname "$0")/services.sh" free-port
}

case "$cmd" in
start)
    mkdir -p "$dir" /run/sshd
    chmod 755 /run/sshd
    dir=$(cd "$dir" && pwd)
    [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sbx-host -f "$dir/host_ed25519"
    [ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sbx-client -f "$dir/client_ed25519"
    [ -f "$dir/authorized_keys" ] || cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
    port=${3:-}
    if [ -z "$port" ] && [ -f "$dir/port" ]; then port=$(cat "$dir/port"); fi
    if [ -z "$port" ]; then port=$(free_port); fi
    echo "$port" >"$dir/port"
    cat >"$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200:30:400
MaxSessions 64
LogLevel ERROR
Subsystem sftp internal-sftp
CFG
    # The login shell's rc files run for every command over SSH. On machines
    # whose ~/.bashrc is slow (pyenv init costs ~150 ms here) that would be
    # all we measure, so sshd runs in a private mount namespace where the
    # rc file of the login user reads as empty. SSHD_KEEP_RC=1 keeps it.
    home_rc="$HOME/.bashrc"
    if [ -z "${SSHD_KEEP_RC:-}" ] && [ -s "$home_rc" ] && command -v unshare >/dev/null &&
        unshare -m true 2>/dev/null; then
        unshare -m sh -c 'mount --bind /dev/null "$1" && exec /usr/sbin/sshd -D -f "$2" -E "$3"' sshd \
            "$home_rc" "$dir/sshd_config" "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
    else
        /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
    fi
    # wait until it accepts connections
    for _ in $(seq 1 100); do
        if [ -s "$dir/sshd.pid" ] && (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then break; fi
        sleep 0.05
    done
    fp=$(ssh-keygen -l -f "$dir/host_ed25519.pub" | awk '{print $2}')
    echo "SSHD_PORT=$port"
    echo "SSHD_KEY=$dir/client_ed25519"
    echo "SSHD_PUB=$dir/client_ed25519.pub"
    echo "SSHD_FP=$fp"
    ;;
stop)
    if [ -f "$dir/sshd.pid" ]; then
        pid=$(cat "$dir/sshd.pid")
        # The connections' own sshd processes outlive the listener: stop
        # them too, as a reboot or a crash of the host would.
        children=$(pgrep -P "$pid" 2>/dev/null || true)
        kill "$pid" $children 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/sshd.pid"
    fi
    ;;
*)
    echo "usage: sshd.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
