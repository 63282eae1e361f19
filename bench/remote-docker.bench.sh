#!/usr/bin/env bash
# Remote Docker benchmark: one private dockerd, reached both directly (node
# `local`) and as a registered node through a private sshd (the SSH bridge:
# a unix socket pumped to a direct-streamlocal channel of a pooled session).
# bench/lib/remote-docker.mjs measures GET /api/v1/nodes/{id}/containers
# with 20 containers both ways, and the first request to a node whose
# bridge has no session yet (SSH connect + auth + channel).
# Prints rows `| what | figure | target | ratio |`.
exec "$(dirname "$0")/lib/with-pg-and-docker.sh" bench/lib/remote-docker.mjs
