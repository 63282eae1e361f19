#!/usr/bin/env bash
# `make run`: local services (unless SERVERBOX_DATABASE_URL is given), the
# master key, migrations, a first admin, then the daemon in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${SERVERBOX_RUN_DIR:-$PWD/run}
mkdir -p "$RUN_DIR"
export SERVERBOX_DATA_DIR=${SERVERBOX_DATA_DIR:-$RUN_DIR/data}
mkdir -p "$SERVERBOX_DATA_DIR"
chmod 700 "$SERVERBOX_DATA_DIR"

if [ -z "${SERVERBOX_DATABASE_URL:-}" ]; then
    # A failed start must stop here with its own error: `eval "$(…)"` would
    # swallow the status and carry on without a database.
    out=$(scripts/services.sh start-pg "$RUN_DIR/services") || { echo "run: PostgreSQL could not be started (see above)" >&2; exit 1; }
    eval "$out"
    export SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL
    echo "run: PostgreSQL 15 running from $RUN_DIR/services (stop: scripts/services.sh stop-pg $RUN_DIR/services)"
fi
if [ -z "${SERVERBOX_REDIS_URL:-}" ]; then
    out=$(scripts/services.sh start-redis "$RUN_DIR/services") || { echo "run: Redis could not be started (see above)" >&2; exit 1; }
    eval "$out"
    export SERVERBOX_REDIS_URL
    echo "run: Redis running from $RUN_DIR/services"
fi
# Docker: the configured socket, else the system engine, else a private
# engine under run/ (kept running after Ctrl-C, like PostgreSQL and Redis).
docker_ok() { docker -H "unix://$1" version >/dev/null 2>&1; }
if [ -z "${SERVERBOX_DOCKER_SOCKET:-}" ] && ! docker_ok /var/run/docker.sock; then
    if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1 && docker_ok /var/run/docker.sock; then
        echo "run: started the system Docker engine"
    elif docker_ok "$RUN_DIR/docker/docker.sock"; then
        export SERVERBOX_DOCKER_SOCKET="$RUN_DIR/docker/docker.sock"
    elif out=$(scripts/dockerd.sh start "$RUN_DIR/docker"); then
        eval "$out"
        export SERVERBOX_DOCKER_SOCKET="$SBX_DOCKER_SOCKET"
        echo "run: Docker engine running from $RUN_DIR/docker (stop: scripts/dockerd.sh stop $RUN_DIR/docker)"
    else
        echo "run: no Docker engine could be started; container pages will answer 503" >&2
    fi
fi
# The tunnel sshd nodes behind NAT dial (core/src/tunnels/README.md), unless
# the core is pointed at another one or SERVERBOX_RUN_TUNNELS=0. Its port is
# kept in run/tunnel/port (fixed with SERVERBOX_RUN_TUNNEL_PORT).
if [ -z "${SERVERBOX_TUNNEL_AUTHORIZED_KEYS:-}" ] && [ "${SERVERBOX_RUN_TUNNELS:-1}" != 0 ]; then
    if out=$(scripts/tunnel-sshd.sh start "$RUN_DIR/tunnel" ${SERVERBOX_RUN_TUNNEL_PORT:-}); then
        # KEY=value lines; values may hold spaces (the host key line).
        while IFS='=' read -r k v; do case $k in TUNNEL_*) printf -v "$k" '%s' "$v" ;; esac; done <<<"$out"
        export SERVERBOX_TUNNEL_AUTHORIZED_KEYS="$TUNNEL_AUTHORIZED_KEYS" SERVERBOX_TUNNEL_USER="$TUNNEL_USER" \
            SERVERBOX_TUNNEL_HOST_KEY="$RUN_DIR/tunnel/host_ed25519.pub"
        addr=$(hostname -I 2>/dev/null | awk '{print $1}')
        export SERVERBOX_TUNNEL_ENDPOINT=${SERVERBOX_TUNNEL_ENDPOINT:-${addr:-127.0.0.1}:$TUNNEL_PORT}
        echo "run: tunnel sshd on port $TUNNEL_PORT, host key $TUNNEL_FP (stop: scripts/tunnel-sshd.sh stop $RUN_DIR/tunnel)"
    else
        echo "run: the tunnel sshd could not be started; nodes behind NAT cannot be registered" >&2
    fi
fi
export SERVERBOX_MASTER_KEY_FILE=${SERVERBOX_MASTER_KEY_FILE:-$SERVERBOX_DATA_DIR/master.key}
export SERVERBOX_DASHBOARD_DIR=${SERVERBOX_DASHBOARD_DIR:-$PWD/dashboard}
export SERVERBOX_LISTEN=${SERVERBOX_LISTEN:-127.0.0.1:8080}

build/serverbox-core migrate

# First start: an admin with a random password, printed once.
if [ -x scripts/first-admin.sh ]; then scripts/first-admin.sh; fi

echo "run: serving on http://$SERVERBOX_LISTEN  (Ctrl-C stops the daemon; services keep running)"
exec build/serverbox-core serve
