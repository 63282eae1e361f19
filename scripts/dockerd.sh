#!/usr/bin/env bash
# A private Docker engine for tests and benchmarks, with an offline image.
#   scripts/dockerd.sh start DIR   starts dockerd with everything under DIR,
#                                  imports local/busybox:1, prints
#                                  SBX_DOCKER_SOCKET=… for eval
#   scripts/dockerd.sh stop DIR    stops it and removes DIR
# DIR must be short: the socket path must fit in 107 bytes (use
# `mktemp -d /tmp/sbxd.XXXX`). The engine has no bridge and no iptables, so
# containers get no network beyond loopback; nothing is pulled.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

case "$cmd" in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    sock="$dir/docker.sock"
    if [ ${#sock} -gt 107 ]; then
        echo "dockerd.sh: socket path $sock is longer than 107 bytes" >&2
        exit 2
    fi
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$sock" --pidfile "$dir/docker.pid" \
        --storage-driver vfs --iptables=false --ip-masq=false --bridge=none \
        >"$dir/dockerd.log" 2>&1 &
    echo $! >"$dir/dockerd.launcher.pid"
    for _ in $(seq 1 300); do
        if docker -H "unix://$sock" version >/dev/null 2>&1; then break; fi
        if ! kill -0 "$(cat "$dir/dockerd.launcher.pid")" 2>/dev/null; then
            echo "dockerd.sh: dockerd exited:" >&2
            tail -20 "$dir/dockerd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    docker -H "unix://$sock" version >/dev/null
    # The offline image: busybox and its applets as links.
    root="$dir/image"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/www"
    cp /bin/busybox "$root/bin/busybox"
    for a in sh ash httpd sleep echo cat ls env true false kill seq date printf wc head tail yes id mkdir rm; do
        ln -sf busybox "$root/bin/$a"
    done
    echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
    echo "root:x:0:" >"$root/etc/group"
    tar -C "$root" -cf "$dir/image.tar" .
    docker -H "unix://$sock" import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' "$dir/image.tar" local/busybox:1 >/dev/null
    rm -rf "$root" "$dir/image.tar"
    echo "SBX_DOCKER_SOCKET=$sock"
    ;;
stop)
    [ -d "$dir" ] || exit 0
    sock="$dir/docker.sock"
    if [ -S "$sock" ]; then
        ids=$(docker -H "unix://$sock" ps -aq 2>/dev/null || true)
        if [ -n "$ids" ]; then docker -H "unix://$sock" rm -f $ids >/dev/null 2>&1 || true; fi
        # A project network's bridge outlives the engine and its data dir:
        # left behind, they use up Docker's address pools (about 31 runs).
        docker -H "unix://$sock" network prune -f >/dev/null 2>&1 || true
    fi
    pid=""
    if [ -f "$dir/docker.pid" ]; then pid=$(cat "$dir/docker.pid"); fi
    if [ -z "$pid" ] && [ -f "$dir/dockerd.launcher.pid" ]; then pid=$(cat "$dir/dockerd.launcher.pid"); fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" || true; fi
    fi
    # containerd shims and mounts left by a killed engine
    if [ -d "$dir/exec" ]; then
        { grep -F "$dir" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
