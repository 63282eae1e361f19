#!/usr/bin/env bash
# Dashboard files answered from memory on the MHD threads: GET /js/app.js
# and a client route (/nodes/x, index.html), 64 connections, wrk, 5 s each,
# against the release build. Prints rows `| what | figure | target | ratio |`.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=$(mktemp -d /tmp/serverbox-bench-dash.XXXXXX)
chmod 755 "$DIR"
CORE_PID=
cleanup() {
    if [ -n "$CORE_PID" ]; then kill "$CORE_PID" 2>/dev/null || true; wait "$CORE_PID" 2>/dev/null || true; fi
    scripts/services.sh stop-pg "$DIR/services" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

eval "$(scripts/services.sh start-pg "$DIR/services")"
export SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL
unset SERVERBOX_REDIS_URL
build/serverbox-core migrate >/dev/null 2>&1
PORT=$(scripts/services.sh free-port)
SERVERBOX_LISTEN=127.0.0.1:$PORT SERVERBOX_DATA_DIR=$DIR/data SERVERBOX_LOG_LEVEL=warn \
    SERVERBOX_DASHBOARD_DIR=$PWD/dashboard build/serverbox-core serve >"$DIR/core.log" 2>&1 &
CORE_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/js/app.js" >/dev/null

row() { # what, path
    local out rps p99 p99ms
    out=$(wrk -t2 -c64 -d5s --latency "http://127.0.0.1:$PORT$2")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    p99ms=$(echo "$p99" | awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}')
    awk -v r="$rps" -v w="$1" 'BEGIN { printf "| dashboard: %s, 64 conns (req/s) | %.0f | >= 20000 | %.2f |\n", w, r, r / 20000 }'
    awk -v p="$p99ms" -v w="$1" 'BEGIN { printf "| dashboard: %s p99 latency (ms) | %s | < 10 | %.2f |\n", w, p, (p > 0 ? 10 / p : 0) }'
}
row "GET /js/app.js" /js/app.js
row "GET /nodes/x (index.html)" /nodes/x
