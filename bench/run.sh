#!/usr/bin/env bash
# Runs every bench/*.bench.sh and bench/*.bench.mjs; each prints table rows.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "| what | figure | target | ratio |"
echo "| --- | --- | --- | --- |"
for b in bench/*.bench.sh bench/*.bench.mjs; do
    [ -e "$b" ] || continue
    case "$b" in
    *.sh) "$b" ;;
    *.mjs) node "$b" ;;
    esac
done
