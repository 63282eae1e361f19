#!/usr/bin/env bash
# Read routes side by side with their peers, alternating A B A B in one run
# (issue #23): GET /api/v1/nodes (50 nodes) and GET /api/v1/audit (a page of
# 50) against the seed's stack (bench/peer: Hono + postgres.js on its own copy
# of the database, a token lookup and one query per request); /health/live
# against bare libmicrohttpd with the core's flags (build/tools/bare-mhd).
# wrk -t2 -c64, 5 s per leg. Figures, never pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=$(mktemp -d /tmp/serverbox-bench-reads.XXXXXX)
chmod 755 "$DIR"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    scripts/services.sh stop-redis "$DIR/services" >/dev/null 2>&1 || true
    scripts/services.sh stop-pg "$DIR/services" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
LEG=${READS_BENCH_SECONDS:-5}

eval "$(scripts/services.sh start-pg "$DIR/services")"
eval "$(scripts/services.sh start-redis "$DIR/services")"
export SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL SERVERBOX_REDIS_URL
build/serverbox-core migrate >/dev/null 2>&1
PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
printf '%s\n' "$PASSWORD" | build/serverbox-core create-user --username bench --role admin --password-stdin >/dev/null

# 50 nodes straight into the projection (the list reads only it); no node
# checks run, so none of them is ever contacted.
psql "$SERVERBOX_MIGRATE_DATABASE_URL" -XqAt -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO nodes (id, name, host, port, ssh_user, labels, docker, host_key_fingerprint, key_type,
                   public_key, status, created_at, updated_at)
SELECT gen_random_uuid(), format('node-%s', lpad(i::text, 2, '0')), format('10.0.%s.%s', i / 250, i % 250 + 1),
       22, 'deploy', jsonb_build_object('env', CASE WHEN i % 2 = 0 THEN 'prod' ELSE 'staging' END, 'team', 'ops'),
       'ssh', 'SHA256:' || encode(sha256(i::text::bytea), 'base64'), 'ssh-ed25519',
       'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA' || md5(i::text), 'online', now(), now()
FROM generate_series(1, 50) AS i;
SQL

start_wait() { # PORT, then the command; waits for /health/live
    local port=$1
    shift
    "$@" >"$DIR/log.$port" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return; sleep 0.1; done
    echo "| reads | could not start $1: $(tail -c 300 "$DIR/log.$port" | tr '\n|' '  ') | | |"
    exit 1
}

CORE=$(scripts/services.sh free-port)
start_wait "$CORE" env SERVERBOX_LISTEN=127.0.0.1:$CORE SERVERBOX_DATA_DIR=$DIR/data SERVERBOX_LOG_LEVEL=warn \
    SERVERBOX_TOKEN_RATE_LIMIT=0 SERVERBOX_NODE_CHECK_INTERVAL=0 build/serverbox-core serve
TOKEN=$(curl -fs -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" "http://127.0.0.1:$CORE/api/v1/auth/login" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
for i in $(seq 1 60); do
    curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"message\":\"bench $i\",\"labels\":{\"env\":\"prod\"}}" "http://127.0.0.1:$CORE/api/v1/annotations"
done
NODES=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$CORE/api/v1/nodes" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).items.length))')

# The peer's own database: a copy of the core's, plus its token table.
PEER_DB="postgresql://serverbox@/peer?host=$SERVERBOX_PG_SOCKET&port=$SERVERBOX_PG_PORT"
pg_super() { # psql as PostgreSQL's superuser (runs as the postgres user when we are root)
    local cmd=(/usr/lib/postgresql/15/bin/psql -XqAt -v ON_ERROR_STOP=1 -h "$SERVERBOX_PG_SOCKET" -p "$SERVERBOX_PG_PORT" -U postgres -d postgres "$@")
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "${cmd[@]}"; else "${cmd[@]}"; fi
}
pg_super -c "CREATE DATABASE peer OWNER serverbox TEMPLATE template0"
pg_dump -Fc -f "$DIR/core.dump" "$SERVERBOX_MIGRATE_DATABASE_URL"
pg_restore --no-owner -d "$PEER_DB" "$DIR/core.dump" 2>/dev/null || true
HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
psql "$PEER_DB" -XqAt -v ON_ERROR_STOP=1 -c "CREATE TABLE peer_tokens (hash text PRIMARY KEY, user_id text, labels jsonb, expires_at timestamptz);
    INSERT INTO peer_tokens VALUES ('$HASH', 'bench', '{}', now() + interval '1 day');"
if [ ! -d bench/peer/node_modules ]; then npm ci --prefix bench/peer --no-audit --no-fund --loglevel=error >/dev/null; fi
PEER=$(scripts/services.sh free-port)
start_wait "$PEER" node bench/peer/server.mjs "$PEER" "$SERVERBOX_PG_SOCKET" "$SERVERBOX_PG_PORT" peer
BARE=$(scripts/services.sh free-port)
start_wait "$BARE" build/tools/bare-mhd "$BARE"

# One leg: prints "req/s p99_ms non2xx".
leg() {
    local out
    out=$(wrk -t2 -c64 -d"${LEG}s" --latency -H "Authorization: Bearer $TOKEN" "$1")
    echo "$out" | awk '
        /Requests\/sec/ {r = $2}
        $1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; p = v}
        /Non-2xx/ {n = $NF}
        END {printf "%d %.2f %d\n", r, p, n}'
}
# compare NAME CORE_URL PEER_URL PEER_NAME TARGET_RATIO: A B A B, means of each.
compare() {
    local a1 b1 a2 b2
    a1=$(leg "$2"); b1=$(leg "$3"); a2=$(leg "$2"); b2=$(leg "$3")
    echo "$a1 $a2 $b1 $b2" | awk -v name="$1" -v peer="$4" -v target="$5" '{
        a = ($1 + $4) / 2; b = ($7 + $10) / 2; ap = ($2 > $5 ? $2 : $5); bp = ($8 > $11 ? $8 : $11)
        bad = $3 + $6
        printf "| reads: %s, core req/s (p99 %.1f ms%s) | %d | >= %sx %s | %.2fx %s (%d req/s, p99 %.1f ms) |\n",
            name, ap, (bad ? sprintf(", %d non-2xx", bad) : ""), a, target, peer, (b ? a / b : 0), peer, b, bp }'
}
compare "GET /api/v1/nodes ($NODES nodes, token, 64 conns)" "http://127.0.0.1:$CORE/api/v1/nodes" \
    "http://127.0.0.1:$PEER/api/v1/nodes" "Hono" 10
compare "GET /api/v1/audit?limit=50 (token, 64 conns)" "http://127.0.0.1:$CORE/api/v1/audit?limit=50" \
    "http://127.0.0.1:$PEER/api/v1/audit?limit=50" "Hono" 10
compare "/health/live (64 conns)" "http://127.0.0.1:$CORE/health/live" "http://127.0.0.1:$BARE/health/live" \
    "bare MHD" 0.9
compare "/health/live against Hono" "http://127.0.0.1:$CORE/health/live" "http://127.0.0.1:$PEER/health/live" \
    "Hono" 2
