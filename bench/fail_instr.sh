#!/bin/sh
# Instructions per failing huge request (malloc(1 << 46), 64 TiB: more than
# memory plus swap, less than the address space), mirs vs glibc (and the
# peers of bench/build_peers.sh when built), counted with valgrind's
# callgrind. See c_tests/bench/huge_fail.c. A benchmark, not a timed test:
# issue 20 asks for a few hundred instructions per failure (glibc ~400).
#
# Each allocator runs the loop at two iteration counts; (Ir(N2) - Ir(N1)) /
# (N2 - N1) cancels start-up and exit; the same for the empty loop gives the
# loop's own overhead (subtracted in "net").
#
# Usage: bench/fail_instr.sh            (make bench-fail)
# Env:   N1, N2 iteration counts (default 200 and 2200); SIZE_LOG2 (46).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/bench/bin"
peers="$root/target/bench-peers/lib"
mirs_so="$root/target/release/libmirs.so"
N1=${N1:-200}
N2=${N2:-2200}
SIZE_LOG2=${SIZE_LOG2:-46}

command -v valgrind >/dev/null || { echo "fail_instr: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
mkdir -p "$bin"
gcc -O2 -o "$bin/huge_fail" "$root/c_tests/bench/huge_fail.c"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ir PRELOAD ARGS...: total instructions of one run under callgrind.
ir() {
    pre=$1; shift
    out="$tmp/cg.out"
    if ! LD_PRELOAD="$pre" timeout 300 valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$bin/huge_fail" "$@" >/dev/null 2>"$tmp/cg.err"; then
        echo "fail_instr: callgrind failed for $*: $(tail -3 "$tmp/cg.err")" >&2
        return 1
    fi
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

per_iter() { # per_iter PRELOAD ARG
    a=$(ir "$1" "$N1" "$2") || return 1
    b=$(ir "$1" "$N2" "$2") || return 1
    awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }'
}

loop=$(per_iter "" empty)
printf 'failing malloc(1 << %s): instructions per call\n' "$SIZE_LOG2"
printf '%-14s %8s %8s\n' allocator call net
row() { # row NAME PRELOAD
    if v=$(per_iter "$2" "$SIZE_LOG2"); then
        printf '%-14s %8s %8s\n' "$1" "$v" "$(awk -v v="$v" -v l="$loop" 'BEGIN { printf "%.0f", v - l }')"
    else
        printf '%-14s %8s\n' "$1" failed
    fi
}
row glibc ""
if [ -f "$mirs_so" ]; then row mirs "$mirs_so"; else echo "mirs: skipped ($mirs_so missing; make libs)"; fi
for p in mimalloc-v3 jemalloc; do
    if [ -f "$peers/lib$p.so" ]; then row "$p" "$peers/lib$p.so"; fi
done
echo "loop overhead: $loop instructions/iteration; net = call - loop"
