#!/usr/bin/env python3
"""Peak RSS of a threaded Python workload under each allocator.

The workload (issue 18's): 32 threads, each builds a 500-key dict whose
values are [i, str(i) * 5, {"x": i}] and round-trips it through json.dumps /
json.loads 100 times. Every allocator runs it through LD_PRELOAD (glibc: none),
alternated, RUNS times; the table shows the median peak RSS
(/usr/bin/time -f %M) and its range.

Usage: bench/python_threads.py [--runs N]
"""
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "target", "bench-peers", "lib")
WORKLOAD = r'''
import json, threading
def work():
    d = {str(i): [i, str(i) * 5, {"x": i}] for i in range(500)}
    for _ in range(100):
        d = json.loads(json.dumps(d))
ts = [threading.Thread(target=work) for _ in range(32)]
for t in ts: t.start()
for t in ts: t.join()
'''


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    allocators = [("glibc", "")]
    for name, path in [("mirs", os.path.join(ROOT, "target", "release", "libmirs.so")),
                       ("mimalloc-v3", os.path.join(PEERS, "libmimalloc-v3.so")),
                       ("mimalloc-v2", os.path.join(PEERS, "libmimalloc-v2.so")),
                       ("jemalloc", os.path.join(PEERS, "libjemalloc.so"))]:
        if os.path.exists(path):
            allocators.append((name, path))
        else:
            print("python_threads: %s skipped (%s missing)" % (name, path))
    peaks = {name: [] for name, _ in allocators}
    for _ in range(runs):
        for name, lib in allocators:
            env = dict(os.environ, LD_PRELOAD=lib) if lib else dict(os.environ)
            r = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", WORKLOAD],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
            peaks[name].append(int(r.stderr.strip().splitlines()[-1]) / 1024)
    print("%-12s %14s %16s" % ("allocator", "peak RSS MiB", "range"))
    for name, v in peaks.items():
        print("%-12s %14.1f %8.1f-%.1f" % (name, statistics.median(v), min(v), max(v)))


if __name__ == "__main__":
    main()
