#!/usr/bin/env bash
# misuse_table.sh LABEL=LIBDIR...: run c_tests/test_misuse.c under LD_PRELOAD of each
# LIBDIR/libmirs.so and print one table, a row per case (issue 13's bugs), a column per
# library: PASS, FAIL or SKIP. A LABEL containing "secure" runs with MIRS_TEST_SECURE=1
# (case e is asserted only there). Full outputs: target/c_tests/misuse/LABEL.log.
#
# Before/after for issue 13 (the old code built in its own worktree):
#   git worktree add ../wt-old b803f7a && make -C ../wt-old libs libs-secure
#   make libs libs-secure
#   c_tests/misuse_table.sh old=../wt-old/target/release old-secure=../wt-old/target/secure/release \
#     new=target/release new-secure=target/secure/release
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/target/c_tests/misuse
mkdir -p "$OUT"
CC=${CC:-cc}
if ! "$CC" -O2 -Wall -pthread "-I$ROOT/include" "-I$ROOT/c_tests" "$ROOT/c_tests/test_misuse.c" -ldl \
  -o "$OUT/test_misuse"; then
  echo "misuse_table: build failed"
  exit 1
fi
labels=()
for arg in "$@"; do
  label=${arg%%=*} dir=${arg#*=}
  [[ $dir == /* ]] || dir=$PWD/$dir
  if [[ ! -f $dir/libmirs.so ]]; then
    echo "misuse_table: $dir/libmirs.so missing"
    exit 1
  fi
  secure=0
  [[ $label == *secure* ]] && secure=1
  env LD_PRELOAD="$dir/libmirs.so" MIRS_TEST_SECURE=$secure timeout 900 "$OUT/test_misuse" \
    >"$OUT/$label.log" 2>&1
  labels+=("$label")
done
printf '%-6s' case
for l in "${labels[@]}"; do printf ' %-12s' "$l"; done
echo
for c in a b c d e f g; do
  what=$(grep -m1 "^case $c:" "$OUT/${labels[0]}.log" | cut -d: -f2-)
  printf '%-6s' "$c"
  for l in "${labels[@]}"; do
    r=$(grep -m1 "^RESULT $c " "$OUT/$l.log" | awk '{print $3}')
    printf ' %-12s' "${r:-(none)}"
  done
  echo " $what"
done
