#!/usr/bin/env bash
# real_programs.sh [LIBDIR]: real programs under mirs.
#
# Each program runs twice in a fresh directory: plain (glibc's malloc) and with
# LD_PRELOAD=LIBDIR/libmirs.so MIRS_SHOW_STATS=1 on the program itself (and so on
# the processes it starts). Pass = same stdout, same exit status, and the mirs run's
# stderr holds "mirs: served N blocks" with N > 0 (mirs really served it).
# A program that is not installed is skipped, and said so.
#
# LIBDIR defaults to target/release; a relative path is taken from the repo root.
# Ends with "N passed, N failed"; exit status 0 iff nothing failed.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIBDIR=${1:-target/release}
[[ $LIBDIR == /* ]] || LIBDIR=$ROOT/$LIBDIR
PRELOAD=$LIBDIR/libmirs.so
TIMEOUT=${TEST_TIMEOUT:-600}

if [[ ! -f $PRELOAD ]]; then
  echo "missing $PRELOAD (build mirs first)"
  echo "0 passed, 1 failed"
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mirs-real.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

# Deterministic, user-independent behaviour for every program.
export LC_ALL=C TZ=UTC HOME=$WORK/home PYTHONHASHSEED=0
mkdir -p "$HOME"

# ---- the programs: each is a function run in its own directory. `under_test` prefixes
# the program under test (not the shell around it): plain, or preloaded with mirs. ----

# under_test CMD...: run CMD plain or under mirs (MODE), with EXTRA_PRELOAD in both.
under_test() {
  if [[ $MODE == mirs ]]; then
    env LD_PRELOAD="$PRELOAD${EXTRA_PRELOAD:+ $EXTRA_PRELOAD}" MIRS_SHOW_STATS=1 "$@"
  else
    env ${EXTRA_PRELOAD:+LD_PRELOAD="$EXTRA_PRELOAD"} "$@"
  fi
}

prog_python() {
  # pyenv's python3 is a shell shim: preload the real interpreter.
  under_test "$PYTHON" "$ROOT/c_tests/real/alloc_heavy.py"
}

prog_gcc() {
  cat >hello.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* Something to compile with a deterministic, non-trivial output. */
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
int main(void) {
  enum { N = 1000 };
  char *w[N];
  unsigned x = 12345;
  for (int i = 0; i < N; i++) {
    w[i] = malloc(16);
    x = x * 1103515245u + 12345u;
    snprintf(w[i], 16, "w%08x", x);
  }
  qsort(w, N, sizeof w[0], cmp);
  unsigned long h = 5381;
  for (int i = 0; i < N; i++)
    for (char *c = w[i]; *c; c++) h = h * 33 + (unsigned char)*c;
  printf("first %s last %s hash %lu\n", w[0], w[N - 1], h);
  for (int i = 0; i < N; i++) free(w[i]);
  return 0;
}
EOF
  under_test gcc -O2 -Wall -o hello hello.c || return $?
  ./hello # run plainly: it is the compiler under test, not its output binary
  # The compiler's product should also be the same binary.
  sha256sum hello | cut -d' ' -f1
}

prog_gxx() {
  # cc1plus allocates through operator new; so does the program it builds,
  # which then runs under test too (containers, strings, a caught bad_alloc).
  cat >hello.cc <<'EOF'
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>
int main() {
  std::map<std::string, std::vector<int>> m;
  unsigned x = 12345;
  for (int i = 0; i < 200000; i++) {
    x = x * 1103515245u + 12345u;
    m["k" + std::to_string(x % 50000)].push_back(int(x >> 16));
    if (i % 3 == 0) m.erase("k" + std::to_string((x >> 8) % 50000));
  }
  unsigned long h = 5381, n = 0;
  for (auto &[k, v] : m) {
    auto copy = std::make_unique<std::vector<int>>(v);
    for (char c : k) h = h * 33 + (unsigned char)c;
    for (int e : *copy) h = h * 33 + (unsigned)e;
    n += copy->size();
  }
  int caught = 0;
  try {
    volatile size_t huge = SIZE_MAX / 4;
    std::vector<char> v(huge);
  } catch (const std::bad_alloc &) {
    caught = 1;
  }
  std::printf("%zu keys, %lu values, hash %lu, bad_alloc caught %d\n", m.size(), n, h, caught);
}
EOF
  under_test g++ -O2 -std=c++17 -Wall -o hello hello.cc || return $?
  under_test ./hello || return $?
  sha256sum hello | cut -d' ' -f1
}

prog_git() {
  g() { under_test git "$@"; }
  export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=mirs GIT_AUTHOR_EMAIL=mirs@example.com
  export GIT_COMMITTER_NAME=mirs GIT_COMMITTER_EMAIL=mirs@example.com
  g init -q -b main repo || return $?
  cd repo || return 1
  for i in $(seq 1 20); do
    export GIT_AUTHOR_DATE="2020-01-01T00:00:${i}Z" GIT_COMMITTER_DATE="2020-01-01T00:00:${i}Z"
    seq "$i" $((i * 500)) >"file$((i % 4)).txt"
    g add -A || return $?
    g commit -q -m "commit $i" || return $?
  done
  g log --format='%H %s'
  g diff --stat HEAD~10 HEAD
  g gc -q || return $?
  g fsck --no-progress
  g rev-list --count HEAD
}

prog_sort() {
  # 2 million deterministic lines, made without the program under test.
  awk 'BEGIN { x = 1; for (i = 0; i < 2000000; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%010d line %d\n", x, i } }' >in.txt
  # keep_stderr.so: sort closes stderr at exit, before the stats could be printed.
  EXTRA_PRELOAD=$KEEP_STDERR under_test sort -S 256M --parallel=2 in.txt >out.txt || return $?
  wc -l <out.txt
  sha256sum out.txt | cut -d' ' -f1
}

prog_perl() {
  under_test perl -e '
    my %h;
    for my $i (1 .. 1_000_000) { $h{"key$i"} = [$i, "v" x ($i % 50)]; }
    delete $h{"key$_"} for grep { $_ % 3 == 0 } 1 .. 1_000_000;
    my $sum = 0;
    for my $k (sort keys %h) { $sum = ($sum * 31 + length($k) + $h{$k}[0] + length($h{$k}[1])) % 1_000_000_007; }
    print scalar(keys %h), " keys, checksum $sum\n";'
}

# compare NAME FUNCTION NEEDED-COMMAND
compare() {
  local name=$1 fn=$2 need=$3
  if ! command -v "$need" >/dev/null 2>&1; then
    echo "skip $name ($need not installed)"
    return
  fi
  local dir=$WORK/$name mode rc_plain rc_mirs start=$SECONDS
  for mode in plain mirs; do
    mkdir -p "$dir/$mode/run"
    # A fresh bash under timeout runs the function (its text and variables passed in),
    # so a hang under mirs ends as a failure.
    (cd "$dir/$mode/run" &&
      MODE=$mode timeout "$TIMEOUT" bash -c \
        "$(declare -p PYTHON ROOT PRELOAD KEEP_STDERR 2>/dev/null); $(declare -f under_test "$fn"); $fn") \
      >"$dir/$mode/stdout" 2>"$dir/$mode/stderr"
    echo $? >"$dir/$mode/rc"
  done
  rc_plain=$(cat "$dir/plain/rc")
  rc_mirs=$(cat "$dir/mirs/rc")
  local problems=()
  ((rc_plain == 0)) || problems+=("plain run exited $rc_plain (the test itself is broken?)")
  ((rc_mirs == rc_plain)) || problems+=("exit status $rc_mirs under mirs, $rc_plain plain")
  cmp -s "$dir/plain/stdout" "$dir/mirs/stdout" || problems+=("stdout differs")
  # Largest "served N" among the processes (a program may start several).
  local served
  served=$(sed -n 's/.*mirs: served \([0-9][0-9]*\) blocks.*/\1/p' "$dir/mirs/stderr" | sort -n | tail -1)
  [[ -n $served && $served -gt 0 ]] || problems+=("no \"mirs: served N blocks\" with N > 0 on stderr")
  if ((${#problems[@]} == 0)); then
    printf 'ok   %-8s (served %s blocks, %ds)\n' "$name" "$served" $((SECONDS - start))
    passed=$((passed + 1))
  else
    echo "FAIL $name: $(IFS=';'; echo "${problems[*]}")"
    diff "$dir/plain/stdout" "$dir/mirs/stdout" | head -10 | sed 's/^/    /'
    echo "    stderr under mirs (tail):"
    tail -10 "$dir/mirs/stderr" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

KEEP_STDERR=$WORK/keep_stderr.so
if ! cc -O2 -Wall -fPIC -shared -o "$KEEP_STDERR" "$ROOT/c_tests/real/keep_stderr.c" -ldl; then
  echo "FAIL build of keep_stderr.so"
  failed=$((failed + 1))
fi

PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
echo "real programs under $PRELOAD"
if [[ -n $PYTHON ]]; then compare python prog_python python3; else echo "skip python (python3 not installed)"; fi
compare gcc prog_gcc gcc
compare g++ prog_gxx g++
compare git prog_git git
compare sort prog_sort sort
compare perl prog_perl perl

echo "$passed passed, $failed failed"
((failed == 0))
