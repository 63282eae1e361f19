#!/usr/bin/env bash
# A private OpenSSH server for tests and benchmarks.
#   scripts/sshd.sh start DIR [PORT]  -> prints SSHD_PORT=… SSHD_KEY=… SSHD_PUB=… SSHD_FP=…
#   scripts/sshd.sh stop DIR
# DIR gets its own ed25519 host key, a client key (root may log in with it),
# the config, the pid file and the log. Listens on 127.0.0.1 only. Starting
# an existing DIR again keeps its port and keys (a restart).
set -euo pipefail
cmd=${1:?usage: sshd.sh start|stop DIR [PORT]}
dir=${2:?usage: sshd.sh start|stop DIR [PORT]}

free_port() {
    "$(dirname "$0")/services.sh" free-port
}

write_config() {
    cat >"$dir/sshd_config" <<CFG
Port $1
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
AllowStreamLocalForwarding yes
LogLevel ERROR
Subsystem sftp internal-sftp
CFG
}

# The login shell's rc files run for every command over SSH. On machines
# whose ~/.bashrc is slow (pyenv init costs ~150 ms here) that would be all
# we measure, so sshd runs in a private mount namespace where the login
# user's ~/.bashrc reads as empty. SSHD_KEEP_RC=1 keeps it.
launch() {
    local home_rc="$HOME/.bashrc"
    if [ -z "${SSHD_KEEP_RC:-}" ] && [ -s "$home_rc" ] && command -v unshare >/dev/null &&
        unshare -m true 2>/dev/null; then
        unshare -m sh -c 'mount --bind /dev/null "$1" && exec /usr/sbin/sshd -D -f "$2" -E "$3"' sshd \
            "$home_rc" "$dir/sshd_config" "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
    else
        /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
    fi
}

stop() {
    if [ -f "$dir/sshd.pid" ]; then
        local pid children
        pid=$(cat "$dir/sshd.pid")
        # The connections' own sshd processes outlive the listener: stop
        # them too, as a reboot or a crash of the host would.
        children=$(pgrep -P "$pid" 2>/dev/null || true)
        kill "$pid" $children 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/sshd.pid"
    fi
}

# Our sshd (the pid in the pid file) listens on the port and accepts.
listening() {
    local pid
    [ -s "$dir/sshd.pid" ] || return 1
    pid=$(cat "$dir/sshd.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    ss -Htlnp "( sport = :$1 )" 2>/dev/null | grep -q "pid=$pid," || return 1
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null
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
    fixed=$port
    stop # a start on a running DIR is a restart
    # A port picked as free can be taken before sshd binds it: check that
    # our sshd is the one listening, else try another port.
    for attempt in 1 2 3 4 5; do
        if [ -z "$port" ]; then port=$(free_port); fi
        echo "$port" >"$dir/port"
        write_config "$port"
        rm -f "$dir/sshd.pid"
        : >"$dir/sshd.log"
        launch
        ok=""
        for _ in $(seq 1 200); do
            if listening "$port"; then ok=1; break; fi
            if grep -q "Bind to port" "$dir/sshd.log" 2>/dev/null; then break; fi
            sleep 0.05
        done
        [ -n "$ok" ] && break
        stop
        if [ -n "$fixed" ] || [ "$attempt" -eq 5 ]; then
            echo "sshd.sh: sshd did not start on port $port:" >&2
            cat "$dir/sshd.log" >&2
            exit 1
        fi
        port=""
    done
    fp=$(ssh-keygen -l -f "$dir/host_ed25519.pub" | awk '{print $2}')
    echo "SSHD_PORT=$port"
    echo "SSHD_KEY=$dir/client_ed25519"
    echo "SSHD_PUB=$dir/client_ed25519.pub"
    echo "SSHD_FP=$fp"
    ;;
stop)
    stop
    ;;
*)
    echo "usage: sshd.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
