#!/usr/bin/env bash
# Docker benchmark: a private PostgreSQL and dockerd, the release build of
# the core, then bench/lib/docker.mjs measures
#   - latency of GET /api/v1/containers (aggregated list) with 20 containers
#   - delay from the engine's `die` (a `docker stop` done with the CLI) to the
#     container.died event being stamped for the log: the engine's timeNano
#     of the event → the event's occurred_at (taken when the watcher hands it
#     to store_append; the group commit that follows is not included), over
#     N stops (DOCKER_BENCH_STOPS, default 50)
# Prints rows `| what | figure | target | ratio |`.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=$(mktemp -d /tmp/serverbox-bench.XXXXXX)
chmod 755 "$RUN_DIR"
DOCKER_DIR=$(mktemp -d /tmp/sbxd.XXXX)
cleanup() {
    scripts/dockerd.sh stop "$DOCKER_DIR" || true
    scripts/services.sh stop-pg "$RUN_DIR/services" || true
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT

eval "$(scripts/services.sh start-pg "$RUN_DIR/services")"
eval "$(scripts/dockerd.sh start "$DOCKER_DIR")"
export SBX_TEST_PG_SOCKET="$SERVERBOX_PG_SOCKET" SBX_TEST_PG_PORT="$SERVERBOX_PG_PORT"
export SBX_CORE_BIN="$PWD/build/serverbox-core" SBX_DOCKER_SOCKET
unset SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL SERVERBOX_PG_DIR SERVERBOX_PG_SOCKET SERVERBOX_PG_PORT
timeout 600 node bench/lib/docker.mjs
