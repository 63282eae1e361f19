#!/usr/bin/env bash
# Backups benchmark: a private PostgreSQL, the release build of the core, a
# log of 1,000,000 events (BENCH_BACKUP_EVENTS), then bench/lib/backups.mjs
# measures
#   - a control-plane backup run: request → run succeeded (pg_dump -Fc into
#     restic on a local repository, the key files, restic check)
#   - `serverbox-core restore` of it into an empty database
# Prints rows `| what | figure | target | ratio |`.
exec "$(dirname "$0")/lib/with-pg-and-docker.sh" bench/lib/backups.mjs
