#!/usr/bin/env bash
# run_glibc_tests.sh [LIBDIR [SECURE_LIBDIR]]: glibc's own malloc tests against mirs.
#
# Gets the glibc source matching the installed libc6 from Debian's source package
# (tools/prereqs.py glibc-source: apt-get source with a private apt configuration
# under target/glibc/apt, the system's apt sources not touched), builds glibc's `support/` test harness and
# the tests in malloc/ standalone against the installed glibc (glibc itself is not
# built), and runs each test three ways:
#   glibc  : as is;
#   mirs   : LD_PRELOAD=LIBDIR/libmirs.so          (default target/release);
#   secure : LD_PRELOAD=SECURE_LIBDIR/libmirs.so   (default target/secure/release).
# A mirs run counts only when mirs served it: the dynamic linker's binding log
# (LD_DEBUG=bindings) must show `malloc` bound to libmirs.so.
#
# Outcomes are compared with c_tests/glibc/expected.txt (one line per test, every
# exemption with its reason). Ends with `test-glibc: N passed, M failed`, counting the
# runs expected to pass; exits non-zero when M > 0. When the sources cannot be had it
# prints one `SKIP test-glibc: <reason>` line and exits 0.
#
# Everything downloaded or built stays under target/glibc/ (re-runs reuse it).
# Environment: JOBS (parallel runs, default nproc), GLIBC_TEST_TIMEOUT (seconds per run,
# default 300), GLIBC_TESTS (space-separated subset of test names).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/c_tests/glibc
EXPECTED=$HERE/expected.txt
abs() { [[ $1 == /* ]] && echo "$1" || echo "$ROOT/$1"; }
LIBDIR=$(abs "${1:-target/release}")
SECURE_LIBDIR=$(abs "${2:-target/secure/release}")
CACHE=$ROOT/target/glibc
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
TIMEOUT=${GLIBC_TEST_TIMEOUT:-300}
CC=${CC:-cc}

for lib in "$LIBDIR/libmirs.so" "$SECURE_LIBDIR/libmirs.so"; do
  if [[ ! -f $lib ]]; then
    echo "test-glibc: missing $lib (make libs libs-secure)"
    echo "test-glibc: 0 passed, 1 failed"
    exit 1
  fi
done

# ---- the source -----------------------------------------------------------------
# tools/prereqs.py fetches it (glibc-source: Debian's source package of the installed
# libc6 through a private apt configuration, dpkg-dev installed when missing) or prints
# the SKIP line (status 3).
python3 "$ROOT/tools/prereqs.py" ensure --suite test-glibc glibc-source
case $? in 0) ;; 3) exit 0 ;; *) exit 1 ;; esac
VERSION=$(dpkg-query -W -f='${source:Version}' libc6)
SRCDIR=$CACHE/src/glibc-$VERSION

# ---- the support/ harness, standalone ----------------------------------------------
# glibc builds support/ inside its own tree; here it is compiled against the installed
# headers. A few of glibc's internal headers the tests and harness use are copied
# (macros only, nothing that needs glibc internals); `compat.h` supplies the two
# definitions glibc's build would (hidden aliases off, stack grows down).
B=$CACHE/build-$VERSION
SHIM=$B/include
mkdir -p "$SHIM" "$B/support" "$B/bin"
ln -sfn "$SRCDIR/support" "$SHIM/support"
ln -sfn "$SRCDIR/malloc" "$SHIM/malloc"
for h in include/libc-diag.h include/array_length.h include/intprops.h include/libc-pointer-arith.h \
  include/scratch_buffer.h sysdeps/generic/malloc-size.h sysdeps/generic/malloc-alignment.h; do
  cp "$SRCDIR/$h" "$SHIM/"
done
printf '#include <limits.h>\n#define libc_hidden_proto(name)\n#define _STACK_GROWS_DOWN 1\n' >"$SHIM/compat.h"
: >"$SHIM/config.h"
CFLAGS=(-std=gnu11 -O1 -D_GNU_SOURCE -include compat.h "-I$SHIM" "-I$SRCDIR/support" -w)
# support_paths.c wants the build's install paths; these are the installed glibc's.
PATHS=(-DSRCDIR_PATH="\"$SRCDIR\"" -DOBJDIR_PATH="\"$B\"" -DOBJDIR_ELF_LDSO_PATH='"/lib64/ld-linux-x86-64.so.2"'
  -DINSTDIR_PATH='"/usr"' -DLIBDIR_PATH='"/usr/lib/x86_64-linux-gnu"' -DBINDIR_PATH='"/usr/bin"'
  -DSBINDIR_PATH='"/usr/sbin"' -DSLIBDIR_PATH='"/lib/x86_64-linux-gnu"' -DROOTSBINDIR_PATH='"/sbin"'
  -DCOMPLOCALEDIR_PATH='"/usr/lib/locale"' -DSYSCONFDIR_PATH='"/etc"' -DTIMEOUTFACTOR=1)

if [[ ! -f $B/libsupport.a ]]; then
  echo "test-glibc: building glibc's support/ harness"
  routines=$(sed -n '/^libsupport-routines/,/^$/p' "$SRCDIR/support/Makefile" |
    tr -s ' \t\\' '\n' | grep -v -e '^$' -e 'routines' -e '^[+:]*=$')
  objs=()
  pids=()
  for r in $routines; do
    # Files that need more of glibc's build (resolver, ptrace, time64 shims) are left
    # out; the malloc tests use none of them (a missing one fails the link below).
    "$CC" "${CFLAGS[@]}" "${PATHS[@]}" -c "$SRCDIR/support/$r.c" -o "$B/support/$r.o" \
      2>"$B/support/$r.err" &
    pids+=($!)
    objs+=("$B/support/$r.o")
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done
  done
  wait
  built=()
  for o in "${objs[@]}"; do [[ -f $o ]] && built+=("$o"); done
  ar rcs "$B/libsupport.a.tmp" "${built[@]}" && mv "$B/libsupport.a.tmp" "$B/libsupport.a"
  echo "test-glibc: support/: ${#built[@]} of ${#objs[@]} files built"
fi

# ---- the expected list -------------------------------------------------------------
# name glibc mirs secure reason...
declare -A EXP_glibc EXP_mirs EXP_secure REASON
TESTS=()
while read -r name g m s reason; do
  [[ -z $name || $name == \#* ]] && continue
  TESTS+=("$name")
  EXP_glibc[$name]=$g
  EXP_mirs[$name]=$m
  EXP_secure[$name]=$s
  REASON[$name]=$reason
done <"$EXPECTED"
if [[ -n ${GLIBC_TESTS:-} ]]; then read -r -a TESTS <<<"$GLIBC_TESTS"; fi
list_errors=0
for t in "${TESTS[@]}"; do
  for v in "${EXP_glibc[$t]:-}" "${EXP_mirs[$t]:-}" "${EXP_secure[$t]:-}"; do
    case $v in
    pass) ;;
    fail | not-served | notbuilt)
      [[ -n ${REASON[$t]:-} ]] && continue
      echo "FAIL expected.txt: $t is expected to $v without a reason"
      list_errors=$((list_errors + 1))
      ;;
    *)
      echo "FAIL expected.txt: $t: unknown outcome '$v' (pass, fail, not-served, notbuilt)"
      list_errors=$((list_errors + 1))
      ;;
    esac
  done
done

# ---- build the tests ----------------------------------------------------------------
build_test() { # build_test NAME: binary in $B/bin/NAME, log in $B/bin/NAME.buildlog
  local t=$1 src=$SRCDIR/malloc/$1.c extra=()
  case $t in
  tst-interpose-nothread | tst-interpose-static-nothread) extra=("$SRCDIR/malloc/tst-interpose-aux-nothread.c") ;;
  tst-interpose-thread | tst-interpose-static-thread) extra=("$SRCDIR/malloc/tst-interpose-aux-thread.c") ;;
  esac
  local static=()
  [[ $t == tst-interpose-static-* ]] && static=(-static)
  if [[ ! -x $B/bin/$t || $src -nt $B/bin/$t || $B/libsupport.a -nt $B/bin/$t ]]; then
    "$CC" "${CFLAGS[@]}" "${static[@]}" -o "$B/bin/$t" "$src" "${extra[@]}" "$B/libsupport.a" -lpthread \
      >"$B/bin/$t.buildlog" 2>&1 || rm -f "$B/bin/$t"
  fi
}
for t in "${TESTS[@]}"; do
  [[ ${EXP_glibc[$t]:-} == notbuilt ]] && continue
  build_test "$t" &
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done
done
wait

# ---- run ------------------------------------------------------------------------------
LOGS=$CACHE/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
DEBUG_LIB=$(ls /lib/x86_64-linux-gnu/libc_malloc_debug.so.0 /usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 \
  2>/dev/null | head -1)

# test_env NAME CONFIG: the environment glibc's Makefile gives the test (its
# libc_malloc_debug.so preload only under glibc; under mirs the variables stay, as a
# user would have them), plus MIRS_ABORT_ON_ERROR=1 for the double-free tests.
test_env() {
  local t=$1 config=$2
  case $t in
  tst-malloc-check | tst-malloc-usable) echo "MALLOC_CHECK_=3" ;;
  tst-malloc-usable-tunables) echo "GLIBC_TUNABLES=glibc.malloc.check=3" ;;
  tst-mxfast) echo "GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0" ;;
  tst-tcfree*) [[ $config != glibc ]] && echo "MIRS_ABORT_ON_ERROR=1" ;;
  esac
  if [[ $config == glibc && -n $DEBUG_LIB ]]; then
    case $t in tst-malloc-check | tst-malloc-usable | tst-malloc-usable-tunables) echo "LD_PRELOAD=$DEBUG_LIB" ;; esac
  fi
}

# run_one NAME CONFIG: writes the outcome (pass, fail, unsupported, timeout, not-served,
# notbuilt) to $LOGS/CONFIG/NAME.result.
run_one() {
  local t=$1 config=$2 dir=$LOGS/$2
  local log=$dir/$t.log result=fail
  if [[ ! -x $B/bin/$t ]]; then
    echo notbuilt >"$dir/$t.result"
    return
  fi
  local envs=()
  mapfile -t envs < <(test_env "$t" "$config")
  case $config in
  mirs) envs+=("LD_PRELOAD=$LIBDIR/libmirs.so") ;;
  secure) envs+=("LD_PRELOAD=$SECURE_LIBDIR/libmirs.so") ;;
  esac
  [[ $config != glibc ]] && envs+=(LD_DEBUG=bindings "LD_DEBUG_OUTPUT=$dir/$t.ld")
  local work=$dir/$t.cwd start=$SECONDS
  mkdir -p "$work"
  (cd "$work" && exec timeout --kill-after=10 "$TIMEOUT" env "${envs[@]}" "$B/bin/$t") >"$log" 2>&1
  local rc=$?
  case $rc in
  0) result=pass ;;
  77) result=unsupported ;;
  124 | 137) result=timeout ;;
  esac
  if [[ $config != glibc && $result == pass ]] &&
    ! cat "$dir/$t.ld".* 2>/dev/null | grep -q "to .*libmirs\.so.*symbol \`malloc'"; then
    result=not-served
  fi
  rm -f "$dir/$t.ld".*
  rm -rf "$work"
  echo "exit $rc after $((SECONDS - start)) s" >>"$log"
  echo "$result $((SECONDS - start))" >"$dir/$t.result"
}

echo "test-glibc: glibc $VERSION, ${#TESTS[@]} tests x (glibc, mirs, secure), $JOBS at a time"
for config in glibc mirs secure; do
  mkdir -p "$LOGS/$config"
  for t in "${TESTS[@]}"; do
    [[ ${EXP_glibc[$t]:-} == notbuilt ]] && { echo notbuilt >"$LOGS/$config/$t.result"; continue; }
    run_one "$t" "$config" &
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done
  done
done
wait

# ---- compare ------------------------------------------------------------------------
passed=0
failed=$list_errors
notes=()
printf '%-32s %-14s %-14s %-14s\n' test glibc mirs mirs-secure
for t in "${TESTS[@]}"; do
  row=$(printf '%-32s' "$t")
  for config in glibc mirs secure; do
    read -r got secs <"$LOGS/$config/$t.result"
    case $config in glibc) want=${EXP_glibc[$t]:-pass} ;; mirs) want=${EXP_mirs[$t]:-pass} ;; *) want=${EXP_secure[$t]:-pass} ;; esac
    cell=$got
    [[ -n ${secs:-} && ${secs:-0} -ge 10 ]] && cell="$got ${secs}s"
    if [[ $want == pass ]]; then
      if [[ $got == pass ]]; then
        passed=$((passed + 1))
      else
        failed=$((failed + 1))
        cell="$cell!"
        notes+=("FAIL $t [$config]: $got (log: $LOGS/$config/$t.log)")
      fi
    elif [[ $got == pass ]]; then
      cell="$cell?"
      notes+=("note: $t [$config] passed but expected.txt says $want: ${REASON[$t]:-}")
    fi
    row+=$(printf ' %-14s' "$cell")
  done
  echo "$row"
done
echo "(! = expected to pass and did not; ? = passed, expected.txt says otherwise)"
for t in "${TESTS[@]}"; do
  [[ -n ${REASON[$t]:-} ]] && echo "  $t: ${REASON[$t]}"
done
for n in "${notes[@]}"; do
  echo "$n"
  if [[ $n == FAIL* ]]; then
    f=${n##*log: }
    tail -8 "${f%)}" | sed 's/^/    /'
  fi
done
echo "test-glibc: $passed passed, $failed failed"
((failed == 0))
