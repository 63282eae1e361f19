#!/usr/bin/env bash
# Runs every bench/*.bench.sh and bench/*.bench.mjs; each prints its table.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
for b in bench/*.bench.sh bench/*.bench.mjs; do
    [ -e "$b" ] || continue
    echo "== $b"
    case "$b" in
    *.mjs) node "$b" || rc=1 ;;
    *) "$b" || rc=1 ;;
    esac
done
exit $rc
