#!/usr/bin/env bash
# Runs every bench/*.bench.sh and bench/*.bench.mjs; each prints its table.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*.bench.sh bench/*.bench.mjs; do
    [ -e "$b" ] || continue
    echo "== $b"
    case "$b" in
    *.mjs) node "$b" ;;
    *) bash "$b" ;;
    esac
done
