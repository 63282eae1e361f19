#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets with clang (ASan + UBSan) and runs
# each for FUZZ_SECONDS (default 60). `make fuzz-ci` is the short run of
# `make test` (FUZZ_SECONDS=10).
#
#   fuzz_request    routing, client addresses, the body parser
#   fuzz_bodies     JSON bodies per route family, into their pure validators
#   fuzz_compose    the compose parser, policy, order, hash and plan
#   fuzz_frames     Docker frame decoder, line splitter, engine events
#   fuzz_collector  the collector's /proc readers and its TLS DER/PEM helpers
#
# Seeds are committed in core/fuzz/corpus/<target>/; the working corpus
# grows in build/fuzz/corpus/<target>/ (kept between runs). A crash is kept
# in build/fuzz/crashes/<target>/ and fails the run; minimise it with
#   build/fuzz/<target> -minimize_crash=1 <file>
# and add it as a regression unit test. FUZZ_TARGETS="a b" runs a subset;
# FUZZ_JOBS=N runs N processes per target (libFuzzer -fork).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"fuzz_request fuzz_bodies fuzz_compose fuzz_frames fuzz_collector"}
OUT=build/fuzz
mkdir -p "$OUT/obj"
make --no-print-directory build/gen/migrations.c build/gen/openapi.c >/dev/null
PKGS="libmicrohttpd libpq libcurl libssh2 hiredis jansson libsodium yaml-0.1 gnutls liboath libcrypto libgit2 libarchive"
CFLAGS=(-std=gnu11 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
    -D_GNU_SOURCE -include core/src/util/banned.h -Icore/src -Ibuild/gen $(pkg-config --cflags $PKGS))
LIBS=($(pkg-config --libs $PKGS) -lm -pthread)

# Objects, rebuilt when their source is newer (headers: `make clean` or rm -r build/fuzz/obj),
# compiled in parallel: building the core under clang's sanitizers is most of a short run.
obj_of() { echo "$OUT/obj/${1//\//_}.o"; }
compile_one() {
    local src=$1 obj
    obj=$(obj_of "$src")
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ]; then
        clang "${CFLAGS[@]}" "${@:2}" -c -o "$obj" "$src"
    fi
}
compile_all() { # extra flags..., then -- and the sources
    local flags=()
    while [ "$1" != -- ]; do flags+=("$1"); shift; done
    shift
    export -f compile_one obj_of
    export OUT
    printf '%s\n' "$@" | CFLAGS_Q="$(printf '%q ' "${CFLAGS[@]}" "${flags[@]}")" \
        xargs -P "$(nproc)" -I{} bash -c 'eval "CFLAGS=($CFLAGS_Q)"; compile_one "$1"' _ {}
}
CORE_SRC=($(ls core/src/*/*.c | grep -v '^core/src/cmd/') build/gen/migrations.c build/gen/openapi.c)
COLL_SRC=($(ls collector/src/*.c | grep -v main.c) core/src/util/buf.c core/src/util/error.c
    core/src/util/log.c core/src/util/misc.c)
compile_all -- "${CORE_SRC[@]}"
compile_all -Icollector/src -- "${COLL_SRC[@]}"
CORE_OBJ=()
for f in "${CORE_SRC[@]}"; do CORE_OBJ+=("$(obj_of "$f")"); done
COLL_OBJ=()
for f in "${COLL_SRC[@]}"; do COLL_OBJ+=("$(obj_of "$f")"); done
build_target() {
    local t=$1
    case $t in
    fuzz_collector)
        clang "${CFLAGS[@]/fuzzer-no-link/fuzzer}" -Icollector/src -o "$OUT/$t" "core/fuzz/$t.c" \
            "${COLL_OBJ[@]}" -Wl,-Bstatic -lbearssl -Wl,-Bdynamic -lsodium -ljansson -lm -pthread ;;
    *)
        clang "${CFLAGS[@]/fuzzer-no-link/fuzzer}" -o "$OUT/$t" "core/fuzz/$t.c" "${CORE_OBJ[@]}" "${LIBS[@]}" ;;
    esac
}

status=0
for t in $TARGETS; do
    build_target "$t"
    corpus="$OUT/corpus/$t"
    crashes="$OUT/crashes/$t"
    mkdir -p "$corpus" "$crashes"
    # Seeds join the working corpus (same content, same name: no duplicates).
    if [ -d "core/fuzz/corpus/$t" ]; then cp -n core/fuzz/corpus/$t/* "$corpus/" 2>/dev/null || true; fi
    echo "fuzz: $t for ${SECONDS_PER_TARGET}s (corpus $(ls "$corpus" | wc -l) files)"
    log="$OUT/$t.log"
    extra=()
    if [ -n "${FUZZ_JOBS:-}" ]; then extra=(-fork="$FUZZ_JOBS" -ignore_crashes=1); fi
    set +e
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$OUT/$t" -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/" -print_final_stats=1 "${extra[@]}" "$corpus" >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$log" | tail -1 || true
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" | tr '\n' ' ' || true
    echo
    # A slow unit is reported (a loaded machine makes some), not a failure.
    if ls "$crashes" | grep -q '^slow-unit-'; then
        echo "fuzz: $t: slow units kept in $crashes/ (rerun them: $OUT/$t <file>)"
    fi
    if [ $rc -ne 0 ] || ls "$crashes" | grep -vq '^slow-unit-'; then
        echo "fuzz: $t FAILED (exit $rc); see $log and $crashes/" >&2
        grep -E 'ERROR: |SUMMARY: |runtime error' "$log" | head -5 >&2 || true
        status=1
    fi
done
exit $status
