#!/bin/sh
# realloc growth: a buffer grown from 4 KiB to 64 MiB a quarter at a time, 20
# times (880 reallocs; c_tests/bench/realloc_grow.c), under glibc, mirs and
# the peers of bench/build_peers.sh when built: the median time of RUNS runs
# and the moves (reallocs that returned another address). Issue 20: before,
# mirs copied the buffer 860 times in 14.6 s where glibc remaps it (200
# moves, no copy); now mirs grows singleton spans in place and remaps huge
# blocks (mremap). Shared code: bench/lib.sh.
#
# Usage: bench/realloc_grow.sh            (make bench-realloc)
# Env:   RUNS (default 5), ROUNDS (default 20), MIRS_OLD=dir/libmirs.so (an
#        older build, shown as "mirs-old").
set -eu
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
ROUNDS=${ROUNDS:-20}
gcc -O2 -o "$bin/realloc_grow" "$root/c_tests/bench/realloc_grow.c"

row() { # row NAME PRELOAD
    runs="$tmp/runs"
    : >"$runs"
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        if ! LD_PRELOAD="$2" "$bin/realloc_grow" "$ROUNDS" >>"$runs"; then
            printf '%-14s failed\n' "$1"
            return
        fi
        i=$((i + 1))
    done
    # Lines "reallocs=N moves=M seconds=S": the median S, the last N and M.
    med=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$runs" | sort -n |
          awk '{ t[NR] = $1 } END { print (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }')
    moves=$(sed -n 's/.*moves=\([0-9]*\).*/\1/p' "$runs" | tail -1)
    reallocs=$(sed -n 's/.*reallocs=\([0-9]*\).*/\1/p' "$runs" | tail -1)
    printf '%-14s %10.3f %8s %8s\n' "$1" "$med" "$moves" "$reallocs"
}

printf 'realloc growth 4 KiB -> 64 MiB, %s rounds, median of %s runs\n' "$ROUNDS" "$RUNS"
printf '%-14s %10s %8s %8s\n' allocator seconds moves reallocs
row glibc ""
if_mirs row mirs "$mirs_so"
if [ -n "${MIRS_OLD:-}" ] && [ -f "$MIRS_OLD" ]; then row mirs-old "$MIRS_OLD"; fi
for p in mimalloc-v3 jemalloc; do
    if [ -f "$peers/lib$p.so" ]; then row "$p" "$peers/lib$p.so"; fi
done
