#!/usr/bin/env bash
# Collector and metrics-ingest benchmark. Starts a private PostgreSQL, runs
# bench/lib/collector-bench.mjs against the optimised build, stops everything.
#   BENCH_SECONDS   length of each measured phase (default 60)
#   BENCH_RATE      simulated batches per second for the ingest phase (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=$(mktemp -d /tmp/serverbox-bench.XXXXXX)
chmod 755 "$RUN_DIR"
cleanup() {
    scripts/services.sh stop-pg "$RUN_DIR/services" >/dev/null 2>&1 || true
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT
eval "$(scripts/services.sh start-pg "$RUN_DIR/services")"
export SBX_PG_DIR="$SERVERBOX_PG_DIR" SBX_TEST_PG_SOCKET="$SERVERBOX_PG_SOCKET" SBX_TEST_PG_PORT="$SERVERBOX_PG_PORT"
export SBX_CORE_BIN="$PWD/build/serverbox-core" SBX_COLLECTOR_BIN="$PWD/build/serverbox-collector"
unset SERVERBOX_PG_DIR SERVERBOX_PG_SOCKET SERVERBOX_PG_PORT
node bench/lib/collector-bench.mjs
