# c_tests/lib.sh: what the C test runners share (run_c_tests.sh and
# embedded/run_embedded_tests.sh source it; bash).
#
# Every test program ends with the line "N passed, N failed". `run` runs one and
# adds its counts to total_passed / total_failed; a crash, a timeout, a missing
# summary or a failed build counts as one failure (`fail`). `summary` prints the
# runner's own closing line and sets its status: 0 iff nothing failed.
#
# The runner sets LOGS (a directory) and TIMEOUT (seconds per run); RUN_INFO, an
# extended regex, picks lines of a passing run's output to show on its ok line.

total_passed=0
total_failed=0
RUN_INFO=${RUN_INFO:-}

fail() { # fail MESSAGE: one failure not reported by a test's own summary
  echo "FAIL $1"
  total_failed=$((total_failed + 1))
}

# compile OUT CMD...: run the compiler command CMD (which writes OUT); a failure is
# counted and its output shown, warnings are shown.
compile() {
  local out=$1
  shift
  if ! "$@" >"$out.buildlog" 2>&1; then
    fail "build of $(basename "$out"):"
    sed 's/^/    /' "$out.buildlog" | head -30
    return 1
  fi
  [[ -s $out.buildlog ]] && sed 's/^/    warning: /' "$out.buildlog" | head -10
  return 0
}

# run NAME CMD...: run a test (env assignments via `env` in CMD), parse its summary.
# Leaves its stdout in $LOGS/NAME.out, its stderr in $LOGS/NAME.err and both in
# $LOGS/NAME.log (NAME with other characters than [A-Za-z0-9_.-] as _).
run() {
  local name=$1
  shift
  local base=$LOGS/${name//[^A-Za-z0-9_.-]/_}
  local start=$SECONDS
  timeout --kill-after=10 "$TIMEOUT" "$@" >"$base.out" 2>"$base.err"
  local rc=$?
  cat "$base.out" "$base.err" >"$base.log"
  local summary p=0 f=0 why=""
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$base.out" | tail -1)
  if [[ -n $summary ]]; then
    p=${summary%% passed*}
    f=${summary#*, }
    f=${f%% failed}
  fi
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  if ((rc == 124)); then
    why="timed out after ${TIMEOUT}s"
  elif ((rc > 128)); then
    why="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
  elif [[ -z $summary ]]; then
    why="no summary line (exit $rc)"
  elif ((rc != 0 && f == 0)); then
    why="exit $rc with 0 failed checks"
  fi
  if [[ -n $why ]]; then
    fail "$name: $why"
  elif ((f > 0)); then
    echo "FAIL $name: $p passed, $f failed"
  else
    local info=""
    [[ -n $RUN_INFO ]] && info=$(grep -E "$RUN_INFO" "$base.out" | tr '\n' ';' | sed 's/;$//')
    printf 'ok   %-44s %5d passed (%ds)%s\n' "$name" "$p" $((SECONDS - start)) "${info:+ $info}"
    return 0
  fi
  # Show what went wrong: the test's FAIL lines, else the tail of its output.
  if grep -qE '^(FAIL|    detail:)' "$base.log"; then
    grep -E '^(FAIL|    detail:)' "$base.log" | head -40 | sed 's/^/    /'
  else
    tail -15 "$base.log" | sed 's/^/    /'
  fi
  echo "    (full output: $base.log)"
  return 1
}

summary() { # the runner's closing line; status 0 iff nothing failed
  echo "$total_passed passed, $total_failed failed"
  ((total_failed == 0))
}
