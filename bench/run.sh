#!/usr/bin/env bash
# Runs every bench/*.bench.sh and bench/*.bench.mjs in turn.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*.bench.sh bench/*.bench.mjs; do
    [ -e "$b" ] || continue
    echo "== $b"
    case "$b" in
    *.sh) "$b" ;;
    *.mjs) node "$b" ;;
    esac
done
