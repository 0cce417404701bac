#!/usr/bin/env bash
# run_c_tests.sh [LIBDIR]: build and run the mirs C tests.
#
# LIBDIR (default target/release; a relative path is taken from the repo root) holds
# libmirs.a and libmirs.so. Every test runs twice:
#   static : linked with LIBDIR/libmirs.a, whose malloc & co. override glibc's;
#   preload: linked against nothing special, run under LD_PRELOAD=LIBDIR/libmirs.so.
# test_ctor runs in three more shapes per mode (ctor_lib linked, preloaded, dlopen'ed),
# and test_bad_free, whose every bad free must print its one "mirs: free(): invalid
# pointer" line by default, once more per mode under MIRS_VERBOSE=0 (silent) and under
# MIRS_ABORT_ON_ERROR=1 (SIGABRT after the line). test_misuse (issue 13's bugs, cases a-g) runs in
# both modes and against the secure libraries; test_overflow (issue 20: overflows into a free
# neighbour, forged links) in both modes.
#
# Each test prints "N passed, N failed"; this script sums them and ends with the same
# line. A crash, a timeout, a missing summary or a build error counts as one failure.
# Exit status: 0 iff nothing failed.
#
# Environment: MIRS_SECURE_LIBDIR (libraries built with `secure`: test_bad_free runs
# against them too, with its secure-only cases, and test_misuse), CC (default cc), MIRS_STATIC_LIBS
# (extra libraries for the static link, default "-lpthread -ldl": libmirs.a needs only libc, and libpthread and libdl before glibc 2.34), CXX (default c++), TEST_TIMEOUT
# (seconds per run, default 300).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIBDIR=${1:-target/release}
[[ $LIBDIR == /* ]] || LIBDIR=$ROOT/$LIBDIR
BUILD=$ROOT/target/c_tests
CC=${CC:-cc}
CFLAGS=(-O2 -Wall -pthread "-I$ROOT/include" "-I$ROOT/c_tests")
read -r -a STATIC_LIBS <<<"${MIRS_STATIC_LIBS:--lpthread -ldl}"
CXX=${CXX:-c++}
TIMEOUT=${TEST_TIMEOUT:-300}
SRC=$ROOT/c_tests

# shellcheck source=c_tests/lib.sh
. "$SRC/lib.sh"

for lib in libmirs.a libmirs.so; do
  if [[ ! -f $LIBDIR/$lib ]]; then
    echo "missing $LIBDIR/$lib (build mirs first)"
    echo "0 passed, 1 failed"
    exit 1
  fi
done
mkdir -p "$BUILD"
LOGS=$BUILD/logs
mkdir -p "$LOGS"

build() { # build OUT SRC [extra args...]: cc with the tests' flags
  local out=$1
  shift
  compile "$out" "$CC" "${CFLAGS[@]}" "$@" -o "$out"
}

echo "mirs C tests: LIBDIR=$LIBDIR, build dir $BUILD"
PRELOAD=$LIBDIR/libmirs.so

# ---- the plain tests, both modes -------------------------------------------------
for t in test_api test_threads test_fork test_bad_free test_oom test_misuse test_realloc_grow test_overflow; do
  if build "$BUILD/$t.static" -DMIRS_TEST_LINKED "$SRC/$t.c" "$LIBDIR/libmirs.a" "${STATIC_LIBS[@]}"; then
    run "$t [static]" env "$BUILD/$t.static"
  fi
  if build "$BUILD/$t.preload" "$SRC/$t.c" -ldl; then
    run "$t [preload]" env LD_PRELOAD="$PRELOAD" "$BUILD/$t.preload"
  fi
done

# ---- C++ operator new / delete (exported on x86_64) -------------------------------------
# test_cxx_new: every form binds to mirs's definition, failure keeps libstdc++'s
# new-handler loop and std::bad_alloc; against the secure library too.
if [[ $(uname -m) != x86_64 ]]; then
  echo "SKIP test_cxx_new: operator new/delete are exported on x86_64 only"
elif ! command -v "$CXX" >/dev/null; then
  echo "SKIP test_cxx_new: no C++ compiler ($CXX)"
else
  CXXFLAGS=(-O2 -Wall -pthread "-I$ROOT/include" "-I$ROOT/c_tests")
  compile "$BUILD/test_cxx_new.static" "$CXX" "${CXXFLAGS[@]}" -DMIRS_TEST_LINKED \
    "$SRC/test_cxx_new.cc" "$LIBDIR/libmirs.a" "${STATIC_LIBS[@]}" -o "$BUILD/test_cxx_new.static" &&
    run "test_cxx_new [static]" env "$BUILD/test_cxx_new.static"
  if compile "$BUILD/test_cxx_new.preload" "$CXX" "${CXXFLAGS[@]}" "$SRC/test_cxx_new.cc" -ldl \
    -o "$BUILD/test_cxx_new.preload"; then
    run "test_cxx_new [preload]" env LD_PRELOAD="$PRELOAD" "$BUILD/test_cxx_new.preload"
    [[ -n ${MIRS_SECURE_LIBDIR:-} ]] &&
      run "test_cxx_new [secure preload]" \
        env LD_PRELOAD="$(cd "$ROOT" && realpath "$MIRS_SECURE_LIBDIR")/libmirs.so" "$BUILD/test_cxx_new.preload"
  fi
  # Fully static (libstdc++.a, libc.a): no other operator new to hand a
  # failure to, so mirs's own handler loop and its unwind info are tested.
  compile "$BUILD/test_cxx_new.fullstatic" "$CXX" "${CXXFLAGS[@]}" -DMIRS_TEST_LINKED -DMIRS_TEST_STATIC \
    -static "$SRC/test_cxx_new.cc" "$LIBDIR/libmirs.a" -o "$BUILD/test_cxx_new.fullstatic" &&
    run "test_cxx_new [fully static]" env "$BUILD/test_cxx_new.fullstatic"
fi

# ---- bad frees are reported by default; MIRS_VERBOSE=0 silences them -----------------
# test_bad_free checks each case's report itself (one line per bad call, naming its
# pointer; rate-limited); here, in addition, the stderr of the default run must hold the
# report lines, and under MIRS_VERBOSE=0 the test checks that nothing is printed.
for mode in static preload; do
  [[ -x $BUILD/test_bad_free.$mode ]] || continue
  pre=()
  [[ $mode == preload ]] && pre=(LD_PRELOAD="$PRELOAD")
  name="test_bad_free [$mode]"
  errlog=$LOGS/${name//[^A-Za-z0-9_.-]/_}.err
  if grep -q '^mirs: free(): invalid pointer 0x' "$errlog"; then
    total_passed=$((total_passed + 1))
  else
    fail "$name: no line starting \"mirs: free(): invalid pointer 0x\" on stderr"
  fi
  run "test_bad_free [$mode, MIRS_VERBOSE=0]" env "${pre[@]}" MIRS_VERBOSE=0 "$BUILD/test_bad_free.$mode"
done

# ---- MIRS_ABORT_ON_ERROR=1: each detected bad free aborts (SIGABRT) -------------------
for mode in static preload; do
  [[ -x $BUILD/test_bad_free.$mode ]] || continue
  pre=()
  [[ $mode == preload ]] && pre=(LD_PRELOAD="$PRELOAD")
  run "test_bad_free [$mode, MIRS_ABORT_ON_ERROR=1]" env "${pre[@]}" MIRS_ABORT_ON_ERROR=1 \
    "$BUILD/test_bad_free.$mode"
done

# ---- the secure build: double free, realloc of a freed block ------------------------
# MIRS_SECURE_LIBDIR (make test-c: target/secure/release) holds libraries built with
# `secure`; test_bad_free runs against them too, each bad free with its report.
SECURE_LIBDIR=${MIRS_SECURE_LIBDIR:-}
if [[ -n $SECURE_LIBDIR ]]; then
  [[ $SECURE_LIBDIR == /* ]] || SECURE_LIBDIR=$ROOT/$SECURE_LIBDIR
  if [[ -f $SECURE_LIBDIR/libmirs.a && -f $SECURE_LIBDIR/libmirs.so ]]; then
    build "$BUILD/test_bad_free.secure-static" -DMIRS_TEST_LINKED "$SRC/test_bad_free.c" \
      "$SECURE_LIBDIR/libmirs.a" "${STATIC_LIBS[@]}" &&
      run "test_bad_free [secure static]" env "$BUILD/test_bad_free.secure-static"
    [[ -x $BUILD/test_bad_free.preload ]] &&
      run "test_bad_free [secure preload]" \
        env LD_PRELOAD="$SECURE_LIBDIR/libmirs.so" "$BUILD/test_bad_free.preload"
    [[ -x $BUILD/test_bad_free.preload ]] &&
      run "test_bad_free [secure preload, MIRS_ABORT_ON_ERROR=1]" \
        env LD_PRELOAD="$SECURE_LIBDIR/libmirs.so" MIRS_ABORT_ON_ERROR=1 \
        "$BUILD/test_bad_free.preload"
    # test_misuse (issue 13's bugs) in full against the secure library too.
    build "$BUILD/test_misuse.secure-static" -DMIRS_TEST_LINKED "$SRC/test_misuse.c" \
      "$SECURE_LIBDIR/libmirs.a" "${STATIC_LIBS[@]}" &&
      run "test_misuse [secure static]" env MIRS_TEST_SECURE=1 "$BUILD/test_misuse.secure-static"
    [[ -x $BUILD/test_misuse.preload ]] &&
      run "test_misuse [secure preload]" \
        env LD_PRELOAD="$SECURE_LIBDIR/libmirs.so" MIRS_TEST_SECURE=1 "$BUILD/test_misuse.preload"
  else
    fail "MIRS_SECURE_LIBDIR=$SECURE_LIBDIR: libmirs.a or libmirs.so missing"
  fi
fi

# ---- include/mirs.h: hosted users see only what libmirs.so exports ----------------
# The embedder API (mirs_region_add, mirs_thread_done, the hooks) is declared only with
# -DMIRS_EMBEDDED: a hosted call to it must not compile, an embedded one must.
printf '#include "mirs.h"\nint main(void) { mirs_thread_done(); return mirs_region_add(0, 0); }\n' \
  >"$BUILD/header_view.c"
if "$CC" -fsyntax-only -Werror=implicit-function-declaration "-I$ROOT/include" \
  "$BUILD/header_view.c" 2>/dev/null; then
  fail "include/mirs.h declares the embedder API without MIRS_EMBEDDED"
else
  total_passed=$((total_passed + 1))
fi
if "$CC" -fsyntax-only -Werror=implicit-function-declaration -DMIRS_EMBEDDED "-I$ROOT/include" \
  "$BUILD/header_view.c" 2>"$BUILD/header_view.err"; then
  total_passed=$((total_passed + 1))
else
  fail "include/mirs.h with -DMIRS_EMBEDDED: $(head -3 "$BUILD/header_view.err")"
fi

# ---- allocation in constructors --------------------------------------------------
# ctor_lib.so reaches test_ctor linked (-l), through LD_PRELOAD, or by dlopen.
if build "$BUILD/libctor_lib.so" -fPIC -shared "$SRC/ctor_lib.c"; then
  LINKLIB=(-L"$BUILD" -lctor_lib -Wl,-rpath,"$BUILD")
  build "$BUILD/test_ctor.static" -DMIRS_TEST_LINKED -DCTOR_LINKED "$SRC/test_ctor.c" \
    "$LIBDIR/libmirs.a" "${LINKLIB[@]}" "${STATIC_LIBS[@]}" &&
    run "test_ctor [static, -lctor_lib]" env "$BUILD/test_ctor.static"
  build "$BUILD/test_ctor_nolib.static" -DMIRS_TEST_LINKED "$SRC/test_ctor.c" \
    "$LIBDIR/libmirs.a" "${STATIC_LIBS[@]}" && {
    run "test_ctor [static, LD_PRELOAD ctor_lib]" \
      env LD_PRELOAD="$BUILD/libctor_lib.so" "$BUILD/test_ctor_nolib.static"
    run "test_ctor [static, dlopen ctor_lib]" \
      env CTOR_LIB_PATH="$BUILD/libctor_lib.so" "$BUILD/test_ctor_nolib.static"
  }
  build "$BUILD/test_ctor.preload" -DCTOR_LINKED "$SRC/test_ctor.c" "${LINKLIB[@]}" -ldl &&
    run "test_ctor [preload, -lctor_lib]" env LD_PRELOAD="$PRELOAD" "$BUILD/test_ctor.preload"
  build "$BUILD/test_ctor_nolib.preload" "$SRC/test_ctor.c" -ldl && {
    run "test_ctor [preload, LD_PRELOAD ctor_lib]" \
      env LD_PRELOAD="$PRELOAD $BUILD/libctor_lib.so" "$BUILD/test_ctor_nolib.preload"
    run "test_ctor [preload, dlopen ctor_lib]" \
      env LD_PRELOAD="$PRELOAD" CTOR_LIB_PATH="$BUILD/libctor_lib.so" "$BUILD/test_ctor_nolib.preload"
  }
fi

summary
