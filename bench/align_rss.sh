#!/usr/bin/env bash
# align_rss.sh LIB... : peak RSS (KiB, /usr/bin/time -f %M, median of 3) of real
# programs under LD_PRELOAD=LIB for each LIB, and under glibc. Used to decide
# malloc(n <= 8)'s alignment (README, "Semantics"): run it with a library built
# with 8-byte and one with 16-byte minimum blocks.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=$ROOT/target/align_rss
mkdir -p "$W"
PY=$(python3 -c 'import sys; print(sys.executable)')
# A C++ translation unit heavy on the compiler's small allocations.
cat >"$W/heavy.cc" <<'CC'
#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <vector>
#include <unordered_map>
#include <algorithm>
template <int N> struct T { std::map<std::string, std::vector<T<N - 1>>> m; int f() { return N + T<N - 1>().f(); } };
template <> struct T<0> { int f() { return 0; } };
int main() {
  std::regex r("([a-z]+)=([0-9]+)");
  std::unordered_map<std::string, int> u;
  for (auto &kv : u) std::cout << kv.first;
  return T<60>().f();
}
CC
progs=(
  "python|$PY $ROOT/c_tests/real/alloc_heavy.py"
  "py-malloc|env PYTHONMALLOC=malloc $PY $ROOT/c_tests/real/alloc_heavy.py"
  "g++|g++ -O2 -c -o $W/heavy.o $W/heavy.cc"
  "gcc|gcc -O2 -c -o $W/stress.o $ROOT/c_tests/bench/stress.c"
  "git|git -C $ROOT log -p -n 400 --stat"
)
median3() { sort -n | sed -n 2p; }
printf '%-10s %10s' program glibc
for lib in "$@"; do printf ' %14s' "$(basename "$(dirname "$(dirname "$lib")")")"; done
echo
for p in "${progs[@]}"; do
  name=${p%%|*} cmd=${p#*|}
  printf '%-10s' "$name"
  for lib in "" "$@"; do
    rss=$(for _ in 1 2 3; do
      env ${lib:+LD_PRELOAD=$lib} /usr/bin/time -f %M -o "$W/time.out" $cmd >/dev/null 2>&1
      cat "$W/time.out"
    done | median3)
    if [[ -z $lib ]]; then printf ' %10s' "$rss"; else printf ' %14s' "$rss"; fi
  done
  echo
done
