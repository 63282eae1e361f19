#!/usr/bin/env bash
# `make bench`: runs every bench/*.bench.sh and bench/*.bench.mjs against
# private services and prints one table. Figures, never pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=$(mktemp -d /tmp/serverbox-bench.XXXXXX)
chmod 755 "$RUN_DIR"
cleanup() {
    scripts/services.sh stop-all "$RUN_DIR/services" || true
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT
eval "$(scripts/services.sh start-all "$RUN_DIR/services")"
export BENCH_RUN_DIR="$RUN_DIR" SERVERBOX_PG_SOCKET SERVERBOX_PG_PORT SERVERBOX_REDIS_URL
export BENCH_DATABASE_URL="$SERVERBOX_DATABASE_URL" BENCH_MIGRATE_DATABASE_URL="$SERVERBOX_MIGRATE_DATABASE_URL"
unset SERVERBOX_DATABASE_URL SERVERBOX_MIGRATE_DATABASE_URL SERVERBOX_REDIS_URL

echo
echo "| benchmark | figure | target | ratio |"
echo "| --- | --- | --- | --- |"
for b in bench/*.bench.sh bench/*.bench.mjs; do
    [ -e "$b" ] || continue
    case "$b" in
    *.sh) bash "$b" || echo "| $b | failed | | |" ;;
    *.mjs) node "$b" || echo "| $b | failed | | |" ;;
    esac
done
