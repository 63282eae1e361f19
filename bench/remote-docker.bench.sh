#!/usr/bin/env bash
# Remote Docker benchmark: one private dockerd, reached both directly (node
# `local`) and as a registered node through a private sshd (the SSH bridge:
# a unix socket pumped to a direct-streamlocal channel of a pooled session).
# bench/lib/remote-docker.mjs measures GET /api/v1/nodes/{id}/containers
# with 20 containers both ways, and the first request to a node whose
# bridge has no session yet (SSH connect + auth + channel).
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
timeout 600 node bench/lib/remote-docker.mjs
