#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets with clang (ASan + UBSan) and runs
# each for FUZZ_SECONDS (default 60). Crashes are kept in build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
OUT=build/fuzz
mkdir -p "$OUT/corpus-request"
make --no-print-directory build/gen/migrations.c build/gen/openapi.c >/dev/null
PKGS="libmicrohttpd libpq libcurl libssh2 hiredis jansson libsodium"
# Every subsystem the route table reaches is linked; main() is libFuzzer's.
SRC=$(ls core/src/*/*.c | grep -v '^core/src/cmd/')
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Icore/src -Ibuild/gen \
    $(pkg-config --cflags $PKGS) -o "$OUT/fuzz_request" core/fuzz/fuzz_request.c $SRC \
    build/gen/migrations.c build/gen/openapi.c $(pkg-config --libs $PKGS) -lm -pthread
# Seeds: a few real requests.
printf '\x01/api/v1/annotations\n\n{"message":"deploy","labels":{"env":"prod"}}' >"$OUT/corpus-request/seed1"
printf '\x00/api/v1/nodes/abc/containers/x/logs\n203.0.113.1, 10.0.0.2\n' >"$OUT/corpus-request/seed2"
printf '\x04/health/live\n\n{"a":1,"a":2}' >"$OUT/corpus-request/seed3"
echo "fuzz: running fuzz_request for ${SECONDS_PER_TARGET}s"
"$OUT/fuzz_request" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -artifact_prefix="$OUT/" \
    "$OUT/corpus-request" 2>&1 | tail -5
