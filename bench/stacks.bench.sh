#!/usr/bin/env bash
# Stacks benchmark: a private PostgreSQL and dockerd, the release build of
# the core, then bench/lib/stacks.mjs measures
#   - deploy request → every service healthy, for a 5-service stack (each with
#     a healthcheck polled every 500 ms, chained with service_healthy)
#   - rollback request → the rolled-back revision deployed and healthy, for
#     one changed service (start-first: new container healthy, old drained)
# Prints rows `| what | figure | target | ratio |`.
exec "$(dirname "$0")/lib/with-pg-and-docker.sh" bench/lib/stacks.mjs
