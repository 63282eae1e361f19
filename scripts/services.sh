#!/usr/bin/env bash
# Starts and stops private PostgreSQL 15 and Redis instances in a runtime
# directory, on free loopback ports. Used by `make run` and by the tests, so
# two runs never collide and no system service is needed.
#
#   scripts/services.sh start-pg DIR     prints SERVERBOX_* variables to eval
#   scripts/services.sh stop-pg DIR
#   scripts/services.sh start-redis DIR  prints SERVERBOX_REDIS_URL=…
#   scripts/services.sh stop-redis DIR
#   scripts/services.sh start-all DIR / stop-all DIR   both of the above
#   scripts/services.sh free-port
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$(( (RANDOM << 1 | RANDOM & 1) % 30000 + 20000 ))
        if ! ss -Htan 2>/dev/null | awk '{print $4}' | grep -q ":$port\$"; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port" >&2
    return 1
}

# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Where PostgreSQL's files live for runtime directory $1. PostgreSQL runs as
# the postgres user when we are root, and that user cannot enter a clone
# under /root or a private home directory: then its files live under
# /var/lib/serverbox-run/<hash of the directory> instead (same answer for
# start and stop, so the cluster is found again).
pg_root() {
    local dir=$1
    if [ "$(id -u)" -ne 0 ]; then echo "$dir"; return; fi
    chown postgres:postgres "$dir"
    if runuser -u postgres -- test -x "$dir" 2>/dev/null; then echo "$dir"; return; fi
    local alt
    alt=/var/lib/serverbox-run/$(printf '%s' "$dir" | sha256sum | cut -c1-16)
    mkdir -p "$alt"
    chmod 755 /var/lib/serverbox-run
    chown postgres:postgres "$alt"
    echo "$alt"
}

start_pg() {
    local dir
    dir=$(mkdir -p "$1" && cd "$1" && pwd)
    dir=$(pg_root "$dir")
    local data="$dir/pgdata" sock="$dir/pgsock"
    mkdir -p "$sock"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir" "$sock"; fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_pg "$PGBIN/initdb" -D "$data" -E UTF8 --locale=C.UTF-8 -U postgres -A trust >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; return 1; }
    fi
    local port
    if [ -f "$dir/pg.port" ]; then port=$(cat "$dir/pg.port"); else port=$(free_port); echo "$port" >"$dir/pg.port"; fi
    if ! as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        # Only the unix socket, in a directory only root and postgres can enter.
        as_pg "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
            -o "-k $sock -p $port -c listen_addresses='' -c fsync=on -c max_connections=300 -c shared_buffers=128MB" \
            start >/dev/null || { echo "services: PostgreSQL did not start:" >&2; tail -20 "$dir/postgres.log" >&2; return 1; }
    fi
    chmod 700 "$sock" 2>/dev/null || true
    local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres)
    if ! as_pg "${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='serverbox'" | grep -q 1; then
        as_pg "${psql[@]}" -d postgres -c "CREATE ROLE serverbox LOGIN CREATEROLE" \
            -c "CREATE ROLE serverbox_app LOGIN" \
            -c "CREATE DATABASE serverbox OWNER serverbox ENCODING 'UTF8' TEMPLATE template0" >/dev/null
    fi
    # The schema owner makes (and drops) the scratch databases of backup
    # restore tests; also for a run directory made before it needed to.
    as_pg "${psql[@]}" -d postgres -c "ALTER ROLE serverbox CREATEDB" >/dev/null
    echo "SERVERBOX_PG_DIR='$dir'"
    echo "SERVERBOX_PG_SOCKET='$sock'"
    echo "SERVERBOX_PG_PORT='$port'"
    echo "SERVERBOX_DATABASE_URL='postgresql://serverbox_app@/serverbox?host=$sock&port=$port'"
    echo "SERVERBOX_MIGRATE_DATABASE_URL='postgresql://serverbox@/serverbox?host=$sock&port=$port'"
}

stop_pg() {
    local dir
    dir=$(cd "$1" 2>/dev/null && pwd) || return 0
    dir=$(pg_root "$dir")
    [ -f "$dir/pgdata/PG_VERSION" ] || return 0
    as_pg "$PGBIN/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null 2>&1 || true
}

start_redis() {
    local dir
    dir=$(mkdir -p "$1" && cd "$1" && pwd)
    local port
    if [ -f "$dir/redis.port" ]; then port=$(cat "$dir/redis.port"); else port=$(free_port); echo "$port" >"$dir/redis.port"; fi
    if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no >/dev/null
        for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
        redis-cli -p "$port" ping >/dev/null 2>&1 ||
            { echo "services: Redis did not start on port $port:" >&2; tail -20 "$dir/redis.log" >&2 2>/dev/null; return 1; }
    fi
    echo "SERVERBOX_REDIS_URL='redis://127.0.0.1:$port'"
}

stop_redis() {
    local dir="$1"
    [ -f "$dir/redis.port" ] || return 0
    redis-cli -p "$(cat "$dir/redis.port")" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-}" in
start-all) start_pg "$2" && start_redis "$2" ;;
stop-all) stop_redis "$2"; stop_pg "$2" ;;
start-pg) start_pg "$2" ;;
stop-pg) stop_pg "$2" ;;
start-redis) start_redis "$2" ;;
stop-redis) stop_redis "$2" ;;
free-port) free_port ;;
*) echo "usage: $0 start-all|stop-all|start-pg|stop-pg|start-redis|stop-redis DIR | free-port" >&2; exit 2 ;;
esac
