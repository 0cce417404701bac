#!/usr/bin/env python3
"""Exact per-operation costs of the allocators on fixed-work benchmarks.

For bench_malloc_thread and larson (1 and 2 threads), each allocator is run
under valgrind at two amounts of work (BENCH_ITERS, bench_common.h); the
difference cancels start-up, thread creation and exit, so the figures are
per operation in the steady state:

  malloc, free   instructions per call, inclusive (callgrind --toggle-collect:
                 everything executed inside the exported function); both
                 programs do exactly one free and one malloc per operation
  alloc/op       their sum: allocator instructions per malloc+free pair
  D1 miss/op     L1 data-cache misses (reads + writes) of the whole program per
                 malloc+free pair (cachegrind --cache-sim=yes); the program's
                 own work is the same for every allocator

A second table gives the other entry points (c_tests/bench/api_calls.c,
blocks of 8..263 bytes in 64 slots): allocator instructions per iteration of
free+malloc (for reference), free+calloc, realloc, free+posix_memalign(32),
free+aligned_alloc(64) and malloc_usable_size, the memset/memcpy they call
included: the whole program's count less that of the same loop without the
calls.

Counts, not times: repeatable whatever else the machine runs. Allocators:
mirs (target/release/libmirs.so) and the C mimalloc v3 / v2 override
libraries of bench/build_peers.sh, each through LD_PRELOAD.

Usage: bench/ops_instr.py [--quick] [--lib NAME=PATH ...]   (make bench-ops)
       --lib adds an allocator (e.g. an older libmirs.so to compare with).
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "bench", "bin")
PEERS = os.path.join(ROOT, "target", "bench-peers", "lib")
ALLOCATORS = [
    ("mirs", os.path.join(ROOT, "target", "release", "libmirs.so")),
    ("mimalloc-v3", os.path.join(PEERS, "libmimalloc-v3.so")),
    ("mimalloc-v2", os.path.join(PEERS, "libmimalloc-v2.so")),
]
# (label, program, threads, work at N1, work at N2, malloc+free pairs per unit)
CASES = [
    ("bench_malloc_thread 1T", "bench_malloc_thread", 1, 25600, 128000, 1),
    ("bench_malloc_thread 2T", "bench_malloc_thread", 2, 25600, 128000, 2),
    ("larson 1T", "larson", 1, 2, 8, 20000),
    ("larson 2T", "larson", 2, 2, 8, 40000),
]
# api_calls.c's calls (label, argument); "none" is the loop alone.
API_CASES = [
    ("free+malloc", "malloc"),
    ("free+calloc", "calloc"),
    ("realloc", "realloc"),
    ("free+posix_memalign", "posix_memalign"),
    ("free+aligned_alloc", "aligned_alloc"),
    ("malloc_usable_size", "usable_size"),
]
API_N1, API_N2 = 20000, 100000
MALLOC_NAMES = {"malloc", "mi_malloc"}
FREE_NAMES = {"free", "mi_free", "cfree"}


def build():
    os.makedirs(BIN, exist_ok=True)
    for prog in ("bench_malloc_thread", "larson", "api_calls"):
        src = os.path.join(ROOT, "c_tests", "bench", prog + ".c")
        subprocess.run(["gcc", "-O2", "-pthread", "-o", os.path.join(BIN, prog), src], check=True)


def valgrind(tool_args, lib, prog, threads, work, tmp, args=None):
    """`prog` under valgrind with BENCH_ITERS=work and argv `args` (default:
    the thread count)."""
    out = os.path.join(tmp, "vg.out")
    env = dict(os.environ, LD_PRELOAD=lib, BENCH_ITERS=str(work))
    cmd = ["valgrind", *tool_args, "--%s-out-file=%s" % (tool_args[0].split("=")[1], out),
           os.path.join(BIN, prog), *(args or [str(threads)])]
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("valgrind failed: %s" % r.stderr.strip().splitlines()[-1:])
    return out


def callgrind_ir(lib, prog, threads, work, tmp, names, args=None):
    """Instructions executed inside the functions `names` (inclusive; the
    whole program when `names` is empty)."""
    toggles = ["--toggle-collect=%s" % n for n in names]
    out = valgrind(["--tool=callgrind", "--dump-instr=no", *toggles], lib, prog, threads, work, tmp,
                   args)
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in callgrind output")


def d1_misses(lib, prog, threads, work, tmp):
    out = valgrind(["--tool=cachegrind", "--cache-sim=yes"], lib, prog, threads, work, tmp)
    events = summary = None
    with open(out) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                summary = [int(x) for x in line.split()[1:]]
    counts = dict(zip(events, summary))
    return counts["D1mr"] + counts["D1mw"]


def main():
    quick = "--quick" in sys.argv
    build()
    extra = [a.split("=", 1) for i, a in enumerate(sys.argv) if i > 0 and sys.argv[i - 1] == "--lib"]
    allocs = [(n, l) for n, l in ALLOCATORS if os.path.exists(l)] + [(n, os.path.abspath(l)) for n, l in extra]
    for n, l in ALLOCATORS:
        if not os.path.exists(l):
            print("ops_instr: %s skipped (%s missing: make libs / make bench-peers)" % (n, l))
    cases = CASES[:1] + CASES[2:3] if quick else CASES
    print("%-24s %-12s %8s %8s %10s %11s" % ("workload", "allocator", "malloc", "free", "alloc/op", "D1 miss/op"))
    with tempfile.TemporaryDirectory() as tmp:
        for label, prog, threads, n1, n2, per_unit in cases:
            for name, lib in allocs:
                ops = (n2 - n1) * per_unit
                mal, fre = ((callgrind_ir(lib, prog, threads, n2, tmp, names)
                             - callgrind_ir(lib, prog, threads, n1, tmp, names)) / ops
                            for names in (MALLOC_NAMES, FREE_NAMES))
                m1 = d1_misses(lib, prog, threads, n1, tmp)
                m2 = d1_misses(lib, prog, threads, n2, tmp)
                print("%-24s %-12s %8.1f %8.1f %10.1f %11.2f" % (label, name, mal, fre, mal + fre, (m2 - m1) / ops),
                      flush=True)
    print("per malloc+free pair; malloc/free: inclusive instructions per call (callgrind), "
          "alloc/op: instructions inside the allocator's library, D1 miss/op: whole program (cachegrind)")
    print()
    print("%-24s" % "other calls" + "".join("%16s" % n for n, _ in allocs))
    with tempfile.TemporaryDirectory() as tmp:
        rows = {label: [] for label, _ in API_CASES}
        for _, lib in allocs:
            def per_iteration(call):
                n1, n2 = (callgrind_ir(lib, "api_calls", 1, 0, tmp, (), [call, str(n)])
                          for n in (API_N1, API_N2))
                return (n2 - n1) / (API_N2 - API_N1)
            loop = per_iteration("none")
            for label, call in API_CASES:
                rows[label].append(per_iteration(call) - loop)
        for label, _ in API_CASES:
            print("%-24s" % label + "".join("%16.1f" % v for v in rows[label]), flush=True)
    print("allocator instructions per iteration (callgrind, the loop's own subtracted), "
          "c_tests/bench/api_calls.c")


if __name__ == "__main__":
    main()
