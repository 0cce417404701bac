#!/bin/sh
# Instructions per malloc+free pair (16..512 bytes) for each allocator,
# counted with valgrind's callgrind (stable here; perf cannot count
# instructions on this VM). See c_tests/bench/fastpath.c.
#
# Each allocator runs the loop at two iteration counts; (Ir(N2) - Ir(N1)) /
# (N2 - N1) cancels start-up and exit. The same for the empty loop gives the
# loop's own overhead, which the "pair" column includes and "net" excludes.
#
# Peers: glibc, mirs (LD_PRELOAD and static), and the override libraries of
# bench/build_peers.sh: C mimalloc v3 / v2 compiled from libmimalloc-sys's C
# sources and unprefixed jemalloc, each exporting `malloc` itself, so the
# counts carry no forwarding shim. Each preloaded library is checked first
# (which_malloc) to really provide `malloc`; one that does not is reported.
#
# Usage: bench/fastpath_instr.sh            (from the repo root or anywhere)
# Shared code: bench/lib.sh.
# Env:   N1, N2 iteration counts (default 200000 and 1200000).
set -eu
. "$(dirname "$0")/lib.sh"
mirs_a="$root/target/release/libmirs.a"
N1=${N1:-200000}
N2=${N2:-1200000}

need_valgrind bench-fastpath
gcc -O2 -o "$bin/fastpath" "$root/c_tests/bench/fastpath.c"
gcc -O2 -o "$bin/which_malloc" "$root/c_tests/bench/which_malloc.c" -ldl
if [ -f "$mirs_a" ]; then
    gcc -O2 -o "$bin/fastpath.static-mirs" "$root/c_tests/bench/fastpath.c" "$mirs_a" -lpthread -ldl -lm
fi

loop=$(per_iter "" "$bin/fastpath" empty)
printf '%-22s %10s %10s\n' allocator "pair" "net"
row() { # row NAME PRELOAD PROGRAM
    if [ -n "$2" ]; then
        from=$(LD_PRELOAD="$2" "$bin/which_malloc" | sed -n 's/.*malloc_from=\([^ ]*\).*/\1/p')
        if [ "$(readlink -f "$from")" != "$(readlink -f "$2")" ]; then
            printf '%-22s %10s\n' "$1" "not interposed (malloc from $from)"
            return
        fi
    fi
    if v=$(per_iter "$2" "$3"); then
        printf '%-22s %10s %10s\n' "$1" "$v" "$(minus "$v" "$loop")"
    else
        printf '%-22s %10s\n' "$1" "failed"
    fi
}
row glibc "" "$bin/fastpath"
if_mirs row "mirs*" "$mirs_so" "$bin/fastpath"
if [ -x "$bin/fastpath.static-mirs" ]; then row "mirs-static*" "" "$bin/fastpath.static-mirs"; fi
for p in mimalloc-v3 mimalloc-v2 jemalloc; do
    if [ -f "$peers/lib$p.so" ]; then row "$p" "$peers/lib$p.so" "$bin/fastpath"
    else echo "$p: skipped (run bench/build_peers.sh)"; fi
done
for d in tcmalloc-deb:libtcmalloc_minimal.so.4 jemalloc-deb:libjemalloc.so.2 mimalloc-deb:libmimalloc.so.2; do
    f=/usr/lib/x86_64-linux-gnu/${d#*:}
    if [ -f "$f" ]; then row "${d%%:*}" "$f" "$bin/fastpath"; fi
done
echo "loop overhead (empty loop): $loop instructions/iteration; pair = malloc+free+loop, net = pair - loop"
