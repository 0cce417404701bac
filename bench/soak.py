#!/usr/bin/env python3
"""Soak: the stress workload (c_tests/bench/stress.c) under LD_PRELOAD of
libmirs.so for a given time, its resident set size sampled every second, so
a slow leak shows as a rising line.

    python3 bench/soak.py --minutes 10 [--threads 4] [--lib target/release/libmirs.so]

stress.c does a fixed amount of work in 10 rounds (threads created and
joined each round, blocks passed between threads and outliving them); a
short calibration run picks its SCALE so that one process lasts the whole
soak. Should it finish early, another process starts for the remaining time
(the CSV's `run` column; each run's RSS starts afresh).

Writes target/soak/rss.csv (seconds, run, rss_kib) and target/soak/rss.png
(when matplotlib is available) and prints a summary: start, peak and end
RSS, and the slope of RSS over the second half of the longest run (a
least-squares fit, MiB per minute, the final teardown left out; a leak
shows as a positive slope that does not flatten) and the median RSS of
its second and last quarters.
"""

import argparse
import csv
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "c_tests", "bench", "stress.c")
CC = os.environ.get("CC", "gcc")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rss_kib(pid):
    """VmRSS of `pid` in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def build(out_dir):
    exe = os.path.join(out_dir, "stress")
    cmd = [CC, "-O2", "-Wall", "-o", exe, SRC, "-lpthread", "-ldl", "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("soak: build failed:\n" + " ".join(cmd) + "\n" + r.stderr)
    return exe


def calibrate(exe, env, threads):
    """Seconds of one stress run per unit of SCALE."""
    scale = 0.1
    t0 = time.monotonic()
    r = subprocess.run([exe, str(threads), str(scale)], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"soak: calibration run failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return max(elapsed, 0.01) / scale


def slope_mib_per_min(points):
    """Least-squares slope of (seconds, KiB) points, in MiB per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mx) * (v - my) for t, v in points)
    return cov / var * 60 / 1024


def plot(samples, path, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("soak: matplotlib missing; no plot (pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    runs = sorted({r for _, r, _ in samples})
    for run in runs:
        pts = [(t / 60, v / 1024) for t, r, v in samples if r == run]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2,
                label=f"run {run}" if len(runs) > 1 else "VmRSS")
    ax.set_xlabel("time (minutes)")
    ax.set_ylabel("resident set size (MiB)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--lib", default=os.path.join(ROOT, "target", "release", "libmirs.so"))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "soak"))
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    args = ap.parse_args()

    lib = os.path.abspath(args.lib)
    if not os.path.exists(lib):
        sys.exit(f"soak: {lib} missing (make libs)")
    os.makedirs(args.out, exist_ok=True)
    exe = build(args.out)
    env = dict(os.environ, LD_PRELOAD=lib)
    duration = args.minutes * 60

    per_scale = calibrate(exe, env, args.threads)
    log(f"soak: stress {args.threads} threads, ~{per_scale:.1f} s per unit of SCALE; "
        f"running for {args.minutes:g} min under LD_PRELOAD={lib}")

    samples = []  # (seconds since start, run, rss KiB)
    outputs = []
    start = time.monotonic()
    run = 0
    while True:
        remaining = duration - (time.monotonic() - start)
        # A short tail is not worth a process of its own.
        if remaining < max(5.0, duration * 0.05):
            break
        scale = max(remaining / per_scale, 0.001)
        run += 1
        proc = subprocess.Popen([exe, str(args.threads), f"{scale:.6f}"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Past the soak's end (calibration is approximate) the run is stopped.
        deadline = time.monotonic() + remaining * 1.5 + 30
        next_sample = time.monotonic()
        while proc.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                v = rss_kib(proc.pid)
                if v is not None and proc.poll() is None:
                    samples.append((now - start, run, v))
                next_sample += args.interval
            if now > deadline:
                proc.kill()
                log(f"soak: run {run} stopped at the deadline")
                break
            time.sleep(min(0.05, max(0.0, next_sample - time.monotonic())))
        out, err = proc.communicate()
        outputs.append(out.strip())
        if proc.returncode not in (0, -9):
            sys.exit(f"soak: stress exited with {proc.returncode}:\n{out}{err}")
    elapsed = time.monotonic() - start

    csv_path = os.path.join(args.out, "rss.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "run", "rss_kib"])
        for t, r, v in samples:
            w.writerow([f"{t:.2f}", r, v])
    if not samples:
        sys.exit("soak: no RSS samples")

    # The longest run carries the verdict; its second half shows a slow leak.
    longest = max({r for _, r, _ in samples}, key=lambda r: sum(1 for s in samples if s[1] == r))
    pts = [(t, v) for t, r, v in samples if r == longest]
    # The last samples catch the final frees and exit; leave them out of the trend.
    t0, t1 = pts[0][0], pts[-1][0]
    body = [p for p in pts if p[0] <= t1 - max(2.0, (t1 - t0) * 0.03)] or pts
    mid = (body[0][0] + body[-1][0]) / 2
    half = [p for p in body if p[0] >= mid]
    slope = slope_mib_per_min(half)
    median = lambda vals: sorted(vals)[len(vals) // 2] if vals else 0  # noqa: E731
    q2 = median([v for t, v in body if t < mid and t >= (body[0][0] + mid) / 2])
    q4 = median([v for t, v in body if t >= (mid + body[-1][0]) / 2])
    first, last = pts[0][1], pts[-1][1]
    warm = next(v for t, v in pts if t >= pts[0][0] + (pts[-1][0] - pts[0][0]) * 0.1)
    peak = max(v for _, _, v in samples)
    mib = lambda k: k / 1024  # noqa: E731
    title = (f"mirs soak: stress {args.threads} threads, {elapsed / 60:.1f} min, "
             f"second-half slope {slope:+.2f} MiB/min")
    png = os.path.join(args.out, "rss.png")
    plotted = plot(samples, png, title)

    print(f"soak: {elapsed / 60:.1f} min, {run} run(s) of stress {args.threads} threads, "
          f"{len(samples)} samples")
    for o in outputs:
        if o:
            print(f"  stress: {o.splitlines()[-1]}")
    print(f"  RSS start {mib(first):.1f} MiB (first sample), {mib(warm):.1f} MiB after 10% "
          f"of the run, peak {mib(peak):.1f} MiB, end {mib(last):.1f} MiB")
    print(f"  slope over the second half of run {longest} (final teardown excluded): "
          f"{slope:+.3f} MiB/min ({len(half)} samples); median RSS in the second quarter "
          f"{mib(q2):.1f} MiB, last quarter {mib(q4):.1f} MiB")
    print(f"  {csv_path}" + (f", {png}" if plotted else ""))


if __name__ == "__main__":
    main()
