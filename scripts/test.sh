#!/usr/bin/env bash
# Black-box tests: starts a private PostgreSQL and Redis for the run, then runs
# every tests/*.test.mjs with Node's test runner against the sanitizer build.
# Each test file makes its own database and daemons; see tests/lib/harness.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=$(mktemp -d /tmp/serverbox-test.XXXXXX)
chmod 755 "$RUN_DIR"
cleanup() {
    scripts/services.sh stop-all "$RUN_DIR/services" || true
    if [ -z "${KEEP_TEST_DIR:-}" ]; then rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT

out=$(scripts/services.sh start-all "$RUN_DIR/services") || { echo "test: PostgreSQL or Redis could not be started (see above)" >&2; exit 1; }
eval "$out"
export SBX_TEST_RUN_DIR="$RUN_DIR"
export SBX_TEST_PG_DIR="$SERVERBOX_PG_DIR" SBX_TEST_PG_SOCKET="$SERVERBOX_PG_SOCKET" SBX_TEST_PG_PORT="$SERVERBOX_PG_PORT"
export SBX_TEST_REDIS_URL="$SERVERBOX_REDIS_URL"
unset SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL SERVERBOX_REDIS_URL SERVERBOX_PG_DIR SERVERBOX_PG_SOCKET SERVERBOX_PG_PORT

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    mapfile -t files < <(ls tests/*.test.mjs)
fi
node --test --test-concurrency=2 --test-reporter=spec "${files[@]}"
