#!/usr/bin/env bash
# Authenticated hot path: GET /api/v1/me with a bearer session token, 64
# connections, wrk, 10 s, against the release build with private PostgreSQL
# and Redis. The per-credential rate limit is switched off here (it exists to
# stop a runaway CI job, and one token at 30k req/s would trip it).
# Prints rows `| what | figure | target | ratio |`.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=$(mktemp -d /tmp/serverbox-bench-auth.XXXXXX)
chmod 755 "$DIR"
CORE_PID=
cleanup() {
    if [ -n "$CORE_PID" ]; then kill "$CORE_PID" 2>/dev/null || true; wait "$CORE_PID" 2>/dev/null || true; fi
    scripts/services.sh stop-redis "$DIR/services" >/dev/null 2>&1 || true
    scripts/services.sh stop-pg "$DIR/services" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

eval "$(scripts/services.sh start-pg "$DIR/services")"
eval "$(scripts/services.sh start-redis "$DIR/services")"
export SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL SERVERBOX_REDIS_URL
build/serverbox-core migrate >/dev/null
PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
printf '%s\n' "$PASSWORD" | build/serverbox-core create-user --username bench --role admin --password-stdin >/dev/null

PORT=$(scripts/services.sh free-port)
SERVERBOX_LISTEN=127.0.0.1:$PORT SERVERBOX_DATA_DIR=$DIR/data SERVERBOX_LOG_LEVEL=warn SERVERBOX_TOKEN_RATE_LIMIT=0 \
    build/serverbox-core serve >"$DIR/core.log" 2>&1 &
CORE_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done

TOKEN=$(curl -fs -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" "http://127.0.0.1:$PORT/api/v1/auth/login" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/me" >/dev/null

# Baseline on the same machine at the same moment: an unauthenticated inline
# route, so the figure above can be read against what the host gives now.
BASE=$(wrk -t2 -c64 -d5s "http://127.0.0.1:$PORT/health/live" | awk '/Requests\/sec/ {print $2}')
OUT=$(wrk -t2 -c64 -d10s --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/me")
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
P99=$(echo "$OUT" | awk '$1 == "99%" {print $2}')
NON2XX=$(echo "$OUT" | awk '/Non-2xx/ {print $NF}')
# wrk prints latencies as 1.23ms / 456.00us / 1.20s
P99_MS=$(echo "$P99" | awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}')
awk -v r="$RPS" 'BEGIN { printf "| auth: GET /api/v1/me, bearer token, 64 conns (req/s) | %.0f | >= 30000 | %.2f |\n", r, r / 30000 }'
awk -v p="$P99_MS" 'BEGIN { printf "| auth: GET /api/v1/me p99 latency (ms) | %s | < 10 | %.2f |\n", p, (p > 0 ? 10 / p : 0) }'
awk -v r="$RPS" -v b="$BASE" 'BEGIN { printf "| auth: context, unauthenticated /health/live on the same host just before (req/s) | %.0f | - | /me at %.0f%% of it |\n", b, 100 * r / b }'
if [ -n "$NON2XX" ]; then echo "| auth: non-2xx answers during the run | $NON2XX | 0 | - |"; fi
