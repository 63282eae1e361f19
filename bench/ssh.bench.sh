#!/usr/bin/env bash
# SSH pool benchmark: exec of `true` through the warm pool vs a fresh
# connection each time (p50/p99 and the ratio), 100 concurrent execs, and
# GET /api/v1/nodes with 50 nodes at 64 connections (wrk).
# Starts its own PostgreSQL, sshd and the release daemon; stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export SBX_CORE_BIN="${SBX_CORE_BIN:-$PWD/build/serverbox-core}"
exec node bench/ssh-bench.mjs "$@"
