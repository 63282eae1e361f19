#!/usr/bin/env bash
# Event appends (one at a time, and 64 concurrent appenders with group
# commit) and /health/live throughput with wrk at 64 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
build/serverbox-core migrate --database-url "$BENCH_MIGRATE_DATABASE_URL" 2>/dev/null

one=$(build/tools/append-load "$BENCH_DATABASE_URL" 1 2000 bench-one | sed 's/.*"per_second":\([0-9]*\).*/\1/')
many=$(build/tools/append-load "$BENCH_DATABASE_URL" 64 500 bench-many | sed 's/.*"per_second":\([0-9]*\).*/\1/')
echo "| events appended/s, one appender | $one | | |"
echo "| events appended/s, 64 appenders (group commit) | $many | ≥ 20,000 | $(awk "BEGIN{printf \"%.2f\", $many/20000}") |"

log="$BENCH_RUN_DIR/core.log"
build/serverbox-core serve --listen 127.0.0.1:0 --database-url "$BENCH_DATABASE_URL" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q 'msg="listening"' "$log" && break; sleep 0.05; done
port=$(grep -o 'msg="listening".* port=[0-9]*' "$log" | grep -o '[0-9]*$')
out=$(wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$port/health/live")
rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
echo "| /health/live req/s, wrk 64 connections (p99 $p99) | $rps | ≥ 80,000 | $(awk "BEGIN{printf \"%.2f\", $rps/80000}") |"

# Anonymous flood: 10 s of wrk without a credential on a protected route.
# Every request is a denial; the chain gets only the windowed summaries
# (counted after SIGTERM, which flushes the open windows).
before=$(psql "$BENCH_DATABASE_URL" -XtAc 'SELECT count(*) FROM events')
out=$(wrk -t2 -c16 -d10s "http://127.0.0.1:$port/api/v1/nodes")
sent=$(echo "$out" | awk '/requests in/ {print $1}')
kill -TERM $pid
wait $pid 2>/dev/null || true
after=$(psql "$BENCH_DATABASE_URL" -XtAc 'SELECT count(*) FROM events')
added=$((after - before))
echo "| anonymous flood: events appended per 10 s of wrk -c16 ($sent denials) | $added | ≤ 10 | $(awk "BEGIN{printf \"%.2f\", 10/($added>0?$added:1)}") |"
