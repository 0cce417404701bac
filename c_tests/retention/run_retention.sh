#!/usr/bin/env bash
# run_retention.sh [LIBDIR]: memory retention tests (issue 9's patterns).
#
# Builds the programs in c_tests/retention/ and runs each, in the same run,
# under glibc (no preload), mirs (LD_PRELOAD=LIBDIR/libmirs.so, default
# target/release) and, when bench/build_peers.sh has built them, C mimalloc
# v3/v2 and jemalloc (target/bench-peers/lib; shown, not asserted). Prints
# peak / final RSS, time and minor page faults per pattern and peer, then
# asserts for mirs against glibc's figures of this same run:
#   - every pattern: final RSS <= max(2 x glibc's final, glibc's final + 8 MiB);
#   - prodcons and mstress: peak RSS <= max(2 x glibc's peak, glibc's peak + 16 MiB);
#   - malloc_large: minor page faults <= 3 x glibc's.
# A crash, a timeout or a missing RESULT line of any run is a failure.
# Ends with "test-retention: N passed, M failed"; exit status 0 iff none failed.
#
# Environment: CC (default cc), TEST_TIMEOUT (seconds per run, default 30),
# RETENTION_PEERS_DIR (where the peer libraries are).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIBDIR=${1:-target/release}
[[ $LIBDIR == /* ]] || LIBDIR=$ROOT/$LIBDIR
MIRS_SO=$LIBDIR/libmirs.so
PEERS_DIR=${RETENTION_PEERS_DIR:-$ROOT/target/bench-peers/lib}
SRC=$ROOT/c_tests/retention
BUILD=$ROOT/target/retention
CC=${CC:-cc}
TIMEOUT=${TEST_TIMEOUT:-30}
MIB=1024 # KiB per MiB

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
finish() { echo "test-retention: $passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }

if [[ ! -f $MIRS_SO ]]; then
  fail "missing $MIRS_SO (build mirs first: make libs)"
  finish
fi

# pattern:arguments. Sizes keep the whole suite well under a minute or two.
PATTERNS=(
  "cross_free:200 5000000"
  "prodcons:200 2"
  "half_free:200 20000"
  "thread_churn:300 4000"
  "malloc_large:400 20"
  "mstress:2 50 10"
)

mkdir -p "$BUILD"
for entry in "${PATTERNS[@]}"; do
  p=${entry%%:*}
  if ! "$CC" -O2 -Wall -Wextra -pthread -o "$BUILD/$p" "$SRC/$p.c" >"$BUILD/$p.buildlog" 2>&1; then
    fail "build of $p:"
    sed 's/^/    /' "$BUILD/$p.buildlog" | head -20
  fi
done
[[ $failed -eq 0 ]] || finish

# Peers: name=preload ("" for glibc). Extra peers only when built.
PEERS=("glibc=" "mirs=$MIRS_SO")
for name in mimalloc-v3 mimalloc-v2 jemalloc; do
  [[ -f $PEERS_DIR/lib$name.so ]] && PEERS+=("$name=$PEERS_DIR/lib$name.so")
done
if [[ ${#PEERS[@]} -eq 2 ]]; then
  echo "note: no C mimalloc/jemalloc peers (run bench/build_peers.sh to show them too)"
fi

declare -A R # R[pattern,peer,key] = value from the RESULT line
# field LINE KEY: the value of KEY=... in a RESULT line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

printf '\n%-13s %-12s %10s %10s %10s %8s %9s\n' pattern peer "peak MiB" "final MiB" "idle MiB" seconds minflt
for entry in "${PATTERNS[@]}"; do
  p=${entry%%:*}
  read -r -a args <<<"${entry#*:}"
  for peer in "${PEERS[@]}"; do
    name=${peer%%=*}
    pre=${peer#*=}
    log=$BUILD/$p.$name
    LD_PRELOAD=$pre timeout --kill-after=10 "$TIMEOUT" "$BUILD/$p" "${args[@]}" >"$log.out" 2>"$log.err"
    rc=$?
    line=$(grep '^RESULT ' "$log.out" | head -1)
    if [[ $rc -ne 0 || -z $line ]]; then
      fail "$p under $name: exit $rc$( [[ $rc -eq 124 ]] && echo ' (timeout)'), $(tail -c 300 "$log.err")"
      continue
    fi
    for k in max_rss_kib final_rss_kib idle_rss_kib seconds minflt; do
      R[$p,$name,$k]=$(field "$line" "$k")
    done
    awk -v p="$p" -v n="$name" -v pk="${R[$p,$name,max_rss_kib]}" -v f="${R[$p,$name,final_rss_kib]}" \
        -v i="${R[$p,$name,idle_rss_kib]}" -v s="${R[$p,$name,seconds]}" -v m="${R[$p,$name,minflt]}" \
        'BEGIN { printf "%-13s %-12s %10.1f %10.1f %10.1f %8.2f %9d\n", p, n, pk/1024, f/1024, i/1024, s, m }'
  done
done
echo "(peak = VmHWM; final = statm resident after everything was freed, a 50 ms pause and one"
echo " malloc(64)/free; idle = the same right after the last free; minflt = getrusage ru_minflt)"
echo

# bound_check WHAT PATTERN KEY EXTRA_MIB: mirs's KEY <= max(2 x glibc's, glibc's + EXTRA_MIB).
bound_check() {
  local what=$1 p=$2 key=$3 extra=$4
  local g=${R[$p,glibc,$key]:-} m=${R[$p,mirs,$key]:-}
  if [[ -z $g || -z $m ]]; then
    fail "$p $what: no figure (a run failed above)"
    return
  fi
  local bound=$(( 2 * g > g + extra * MIB ? 2 * g : g + extra * MIB ))
  local msg
  msg=$(awk -v w="$what" -v p="$p" -v m="$m" -v g="$g" -v b="$bound" -v e="$extra" 'BEGIN {
    printf "%s %s RSS: mirs %.1f MiB <= bound %.1f MiB = max(2 x glibc %.1f MiB, glibc + %d MiB)",
      p, w, m/1024, b/1024, g/1024, e }')
  if (( m <= bound )); then pass "$msg"; else fail "${msg/<=/>}"; fi
}

for entry in "${PATTERNS[@]}"; do
  bound_check final "${entry%%:*}" final_rss_kib 8
done
bound_check peak prodcons max_rss_kib 16
bound_check peak mstress max_rss_kib 16

g=${R[malloc_large,glibc,minflt]:-}
m=${R[malloc_large,mirs,minflt]:-}
if [[ -z $g || -z $m ]]; then
  fail "malloc_large page faults: no figure (a run failed above)"
elif (( m <= 3 * g )); then
  pass "malloc_large page faults: mirs $m <= bound $((3 * g)) = 3 x glibc $g (time mirs ${R[malloc_large,mirs,seconds]} s, glibc ${R[malloc_large,glibc,seconds]} s)"
else
  fail "malloc_large page faults: mirs $m > bound $((3 * g)) = 3 x glibc $g"
fi
finish
