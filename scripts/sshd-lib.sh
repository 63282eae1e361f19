# shellcheck shell=bash
# The part of a private OpenSSH server that scripts/sshd.sh (tests) and
# scripts/tunnel-sshd.sh (the tunnel endpoint) share; sourced, not run.
# One server per DIR: its config, host key, pid file, log and port live in
# DIR. The caller defines sshd_write_config PORT (writes $dir/sshd_config)
# and sshd_launch (starts sshd -D in the background on that config).

# sshd_dir_init DIR: makes DIR and sshd's privilege separation directory;
# sets $dir to DIR's absolute path.
sshd_dir_init() {
    mkdir -p "$1" /run/sshd
    chmod 755 /run/sshd
    dir=$(cd "$1" && pwd)
}

# The connections' own sshd processes outlive the listener: stop them too,
# as a reboot or a crash of the host would.
sshd_stop() {
    if [ -f "$dir/sshd.pid" ]; then
        local pid children
        pid=$(cat "$dir/sshd.pid")
        children=$(pgrep -P "$pid" 2>/dev/null || true)
        kill "$pid" $children 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/sshd.pid"
    fi
}

# sshd_listening PORT [connect]: our sshd (the pid in the pid file) listens
# on PORT; with "connect", it also accepts a connection on 127.0.0.1.
sshd_listening() {
    local pid
    [ -s "$dir/sshd.pid" ] || return 1
    pid=$(cat "$dir/sshd.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    ss -Htlnp "( sport = :$1 )" 2>/dev/null | grep -q "pid=$pid," || return 1
    if [ "${2:-}" = connect ]; then (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; fi
}

# sshd_start NAME [PORT] [connect]: (re)starts the server on PORT, else on
# the port DIR used last, else on a free one; sets $port. A start on a
# running DIR is a restart. A port picked as free can be taken before sshd
# binds it: check that our sshd is the one listening, else try another port.
# Exits 1 with the log on stderr (NAME: the script's name) when it fails.
sshd_start() {
    local name=$1 connect=${3:-} fixed attempt ok
    port=${2:-}
    if [ -z "$port" ] && [ -f "$dir/port" ]; then port=$(cat "$dir/port"); fi
    fixed=$port
    sshd_stop
    for attempt in 1 2 3 4 5; do
        if [ -z "$port" ]; then port=$("$(dirname "${BASH_SOURCE[0]}")/services.sh" free-port); fi
        echo "$port" >"$dir/port"
        sshd_write_config "$port"
        rm -f "$dir/sshd.pid"
        : >"$dir/sshd.log"
        sshd_launch
        ok=""
        for _ in $(seq 1 200); do
            if sshd_listening "$port" "$connect"; then ok=1; break; fi
            if grep -q "Bind to port" "$dir/sshd.log" 2>/dev/null; then break; fi
            sleep 0.05
        done
        [ -n "$ok" ] && break
        sshd_stop
        if [ -n "$fixed" ] || [ "$attempt" -eq 5 ]; then
            echo "$name: sshd did not start on port $port:" >&2
            cat "$dir/sshd.log" >&2
            exit 1
        fi
        port=""
    done
}
