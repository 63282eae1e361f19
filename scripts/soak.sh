#!/usr/bin/env bash
# `make soak` (not part of `make test`): private PostgreSQL and Redis as for
# the tests, then tests/soak/soak.mjs for SOAK_MINUTES (default 30) against
# the release build (RSS is measured; ASan's quarantine would grow by
# design). SOAK_STREAMS (default 1000) event streams. See tests/soak/soak.mjs
# for the load, the faults and the checks; the summary is one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=$(mktemp -d /tmp/serverbox-soak.XXXXXX)
chmod 755 "$RUN_DIR"
cleanup() {
    scripts/services.sh stop-all "$RUN_DIR/services" || true
    if [ -z "${KEEP_TEST_DIR:-}" ]; then rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT
out=$(scripts/services.sh start-all "$RUN_DIR/services")
eval "$out"
export SBX_TEST_RUN_DIR="$RUN_DIR"
export SBX_TEST_PG_DIR="$SERVERBOX_PG_DIR" SBX_TEST_PG_SOCKET="$SERVERBOX_PG_SOCKET" SBX_TEST_PG_PORT="$SERVERBOX_PG_PORT"
export SBX_TEST_REDIS_URL="$SERVERBOX_REDIS_URL"
unset SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL SERVERBOX_REDIS_URL SERVERBOX_PG_DIR SERVERBOX_PG_SOCKET SERVERBOX_PG_PORT
export SBX_CORE_BIN=${SBX_CORE_BIN:-$PWD/build/serverbox-core}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
node tests/soak/soak.mjs
