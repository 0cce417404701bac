#!/usr/bin/env python3
"""Run the Rust #[global_allocator] benchmark (bench/rust) and print a table.

The three binaries (rust-mirs, rust-mimalloc, rust-system) run the same
workload; runs are alternated (allocator order rotates every repetition) and
each cell is the median wall time. Raw runs go to <bin-dir>/../bench-rust.csv.
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys

ALLOCATORS = ["mirs", "mimalloc", "system"]


def run(bin_dir, allocator, threads, rounds):
    exe = os.path.join(bin_dir, f"rust-{allocator}")
    out = subprocess.run([exe, str(threads), str(rounds)], check=True,
                         capture_output=True, text=True).stdout.split()
    # allocator threads rounds seconds peak_rss_kib checksum
    return float(out[3]), int(out[4]), int(out[5])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin-dir", default="target/bench-rust/release")
    ap.add_argument("--quick", action="store_true", help="one short run of each")
    ap.add_argument("--threads", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    rounds, reps = (4000, 1) if args.quick else (args.rounds, args.reps)
    missing = [a for a in ALLOCATORS
               if not os.access(os.path.join(args.bin_dir, f"rust-{a}"), os.X_OK)]
    if missing:
        print(f"bench-rust: missing binaries for {missing} in {args.bin_dir}", file=sys.stderr)
        return 1

    rows = []
    times = {}
    rss = {}
    for rep in range(reps):
        order = ALLOCATORS[rep % 3:] + ALLOCATORS[:rep % 3]
        for t in threads:
            checks = set()
            for a in order:
                secs, kib, check = run(args.bin_dir, a, t, rounds)
                checks.add(check)
                times.setdefault((a, t), []).append(secs)
                rss.setdefault((a, t), []).append(kib)
                rows.append((rep, a, t, rounds, secs, kib))
            # The same work: every allocator's run computes the same checksum.
            if len(checks) != 1:
                print(f"bench-rust: checksums differ at {t} threads: {checks}", file=sys.stderr)
                return 1

    csv_path = os.path.join(os.path.dirname(os.path.abspath(args.bin_dir)), "bench-rust.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rep", "allocator", "threads", "rounds", "seconds", "peak_rss_kib"])
        w.writerows(rows)

    print()
    print(f"Rust #[global_allocator], threaded collections workload (bench/rust): "
          f"{rounds} rounds per thread, median of {reps}, alternated")
    print(f"{'threads':>7} | " + " | ".join(f"{a + ' s':>10}" for a in ALLOCATORS)
          + " | mirs vs mimalloc | mirs vs system | peak RSS MiB (" + "/".join(ALLOCATORS) + ")")
    for t in threads:
        med = {a: statistics.median(times[(a, t)]) for a in ALLOCATORS}
        peak = "/".join(f"{statistics.median(rss[(a, t)]) / 1024:.1f}" for a in ALLOCATORS)
        print(f"{t:>7} | " + " | ".join(f"{med[a]:>10.3f}" for a in ALLOCATORS)
              + f" | {med['mimalloc'] / med['mirs']:>15.2f}x | {med['system'] / med['mirs']:>13.2f}x"
              + f" | {peak}")
    print("(seconds for the same work; 'mirs vs X' above 1 means mirs is faster)")
    print(f"raw runs: {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
