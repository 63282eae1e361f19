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
exec "$(dirname "$0")/lib/with-pg-and-docker.sh" bench/lib/docker.mjs
