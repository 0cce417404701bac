#!/usr/bin/env bash
# run_embedded_tests.sh: mirs's embedded configuration (no `hosted`), exercised on
# Linux with harness.c standing in for ArceOS (thread ids, output, liveness, the
# pthread_create/join wrappers an embedder's libc would have).
#
# Builds libmirs.a without `hosted` (features static-region, override,
# panic-handler; MIRS_STATIC_REGION_MB=$REGION_MB, MIRS_MAX_THREADS=$MAX_THREADS):
#   table : heaps found through the lock-free table keyed by the thread-id hook
#   tls   : feature thread-local (the heap pointer in a #[thread_local])
#   debug : the table variant with debug assertions (test_embedded at 4 threads)
#   big   : a 1 GiB region for test_threads (8 threads, blocks to 1 MiB)
# and links against each: test_embedded.c (contents, exhaustion + ENOMEM +
# recovery, dead threads' memory and heap slots reused, regions, page provider),
# c_tests/test_threads.c, c_tests/bench/stress.c and bench_malloc_thread.c.
# Threads 1, 2 and 4; threads end with mirs_thread_done() (MIRS_TEST_THREAD_DONE=1)
# and without it (the alive hook reports them after pthread_join).
#
# Each run ends with "N passed, N failed"; the script sums them and ends with the
# same line. Exit status 0 iff nothing failed.
# Environment: CC, TEST_TIMEOUT (default 300 s), BENCH_SECONDS (default 1).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=$ROOT/c_tests
BUILD=$ROOT/target/embedded-host
CC=${CC:-cc}
TIMEOUT=${TEST_TIMEOUT:-300}
BENCH_SECONDS=${BENCH_SECONDS:-1}
REGION_MB=${REGION_MB:-128}
MAX_THREADS=16
CARGO=${CARGO:-cargo}
LOGS=$BUILD/logs
mkdir -p "$LOGS"

# shellcheck source=c_tests/lib.sh
. "$SRC/lib.sh"
# What a passing run shows on its ok line: test_embedded's and xstress's
# figures, bench_malloc_thread's iterations.
RUN_INFO='^(exhaustion|dead threads|table full|regions|xstress .*):|^total iterations'

build_lib() { # build_lib NAME FEATURES [REGION_MB [PROFILE]]: $BUILD/NAME/libmirs.a
  local out=$BUILD/$1 profile=${4:-release}
  mkdir -p "$out"
  if ! (cd "$ROOT" && MIRS_STATIC_REGION_MB=${3:-$REGION_MB} MIRS_MAX_THREADS=$MAX_THREADS \
    $CARGO rustc --quiet --profile "$profile" --lib --no-default-features --features "$2" \
    --crate-type staticlib --target-dir "$BUILD/cargo-$1") >"$out/build.log" 2>&1; then
    fail "cargo build of the embedded library ($1: $2)"
    sed 's/^/    /' "$out/build.log" | tail -30
    return 1
  fi
  local dir=$profile
  [[ $profile == dev ]] && dir=debug
  cp "$BUILD/cargo-$1/$dir/libmirs.a" "$out/libmirs.a"
}

bench_obj() { # bench_obj OUT.o SOURCE: a benchmark whose main is renamed bench_main
  compile "$1" "$CC" -O2 -Wall -pthread -I"$SRC/bench" -Dmain=bench_main -c "$2" -o "$1"
}

link() { # link OUT SOURCES...: against $LIB with the harness
  local out=$1
  shift
  compile "$out" "$CC" -O2 -Wall -pthread -I"$ROOT/include" -I"$SRC" -I"$SRC/embedded" -DMIRS_EMBEDDED \
    -DREGION_MB=$REGION_MB -DHEAP_SLOTS=$MAX_THREADS -DMIRS_TEST_LINKED "$@" \
    "$SRC/embedded/harness.c" "$LIB" -Wl,--wrap=pthread_create,--wrap=pthread_join \
    -lpthread -lm -o "$out"
}

echo "mirs embedded tests (host simulation): ${REGION_MB} MiB static region, $MAX_THREADS heap slots"
for variant in table tls; do
  features=static-region,override,panic-handler
  [[ $variant == tls ]] && features=$features,thread-local
  build_lib "$variant" "$features" || continue
  LIB=$BUILD/$variant/libmirs.a
  B=$BUILD/$variant
  link "$B/test_embedded" "$SRC/embedded/test_embedded.c" &&
    for t in 1 2 4; do
      for done in 1 0; do
        run "test_embedded [$variant, $t threads, thread_done=$done]" \
          env MIRS_TEST_THREAD_DONE=$done "$B/test_embedded" $t
      done
    done
  bench_obj "$B/stress.o" "$SRC/bench/stress.c" &&
    link "$B/stress" "$B/stress.o" "$SRC/embedded/main_wrapper.c" &&
    for t in 1 2 4; do
      run "stress [$variant, $t threads]" "$B/stress" $t 0.2
    done
  bench_obj "$B/bench_malloc_thread.o" "$SRC/bench/bench_malloc_thread.c" &&
    link "$B/bench_malloc_thread" "$B/bench_malloc_thread.o" "$SRC/embedded/main_wrapper.c" &&
    for t in 1 2 4; do
      run "bench_malloc_thread [$variant, $t threads]" "$B/bench_malloc_thread" $t "$BENCH_SECONDS"
    done
done

# The cross-thread stress a 128 MiB ArceOS guest must pass (xstress.c), with
# only a 32 MiB static region, and with no region but a page provider capped
# at 64 MiB: no NULL, no corrupted block.
if build_lib x32 static-region,override,panic-handler 32; then
  LIB=$BUILD/x32/libmirs.a
  link "$BUILD/x32/xstress" "$SRC/embedded/xstress.c" &&
    run "xstress [32 MiB static region]" env MIRS_TEST_THREAD_DONE=1 "$BUILD/x32/xstress" region
fi
if build_lib xprov override,panic-handler; then
  LIB=$BUILD/xprov/libmirs.a
  link "$BUILD/xprov/xstress" "$SRC/embedded/xstress.c" &&
    run "xstress [page provider, 64 MiB cap]" env MIRS_TEST_THREAD_DONE=1 "$BUILD/xprov/xstress" provider
fi

# A debug build (mirs's debug assertions: double frees, region bitmap, heap
# invariants) of the table variant, at 4 threads.
if build_lib debug static-region,override,panic-handler "$REGION_MB" dev; then
  LIB=$BUILD/debug/libmirs.a
  link "$BUILD/debug/test_embedded" "$SRC/embedded/test_embedded.c" &&
    for done in 1 0; do
      run "test_embedded [debug build, 4 threads, thread_done=$done]" \
        env MIRS_TEST_THREAD_DONE=$done "$BUILD/debug/test_embedded" 4
    done
fi

# test_threads (8 threads, blocks to 1 MiB, a large page per size class and
# thread) needs more than the small region: its own build with 1 GiB (.bss,
# untouched pages cost nothing on Linux).
if build_lib big static-region,override,panic-handler 1024; then
  LIB=$BUILD/big/libmirs.a
  link "$BUILD/big/test_threads" "$SRC/test_threads.c" &&
    for done in 1 0; do
      run "test_threads [table, 1 GiB region, thread_done=$done]" \
        env MIRS_TEST_THREAD_DONE=$done "$BUILD/big/test_threads"
    done
fi

summary
