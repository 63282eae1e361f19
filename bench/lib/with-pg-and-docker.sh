#!/usr/bin/env bash
# Runs a bench script (node) against a private PostgreSQL and dockerd and the
# release build of the core, then stops both:
#   bench/lib/with-pg-and-docker.sh bench/lib/docker.mjs
set -euo pipefail
cd "$(dirname "$0")/../.."

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
timeout 600 node "$1"
