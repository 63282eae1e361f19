#!/usr/bin/env bash
# GitOps apps benchmark: a private PostgreSQL and dockerd, a git daemon on
# loopback, the release build of the core, then bench/lib/apps.mjs measures
#   - a push webhook (good GitHub signature) → the busybox app built, healthy
#     (first build, then a second commit on a warm cache)
#   - a rollback request → the first image running again behind the gate
# Prints rows `| what | figure | target | ratio |`.
exec "$(dirname "$0")/lib/with-pg-and-docker.sh" bench/lib/apps.mjs
