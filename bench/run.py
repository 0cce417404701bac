#!/usr/bin/env python3
"""Benchmark runner for mirs: builds the C benchmarks in c_tests/bench/, runs
each at several thread counts under every available allocator ("peer"),
and reports median throughput, ratios and peak RSS as tables, a CSV and
PNG charts under target/bench/.

Peers: glibc (no preload); mirs via LD_PRELOAD of target/release/libmirs.so
and linked statically from target/release/libmirs.a; C mimalloc v3/v2 and
jemalloc override libraries from bench/build_peers.sh (target/bench-peers/lib,
each exporting its own `malloc`); Debian's
tcmalloc/jemalloc/mimalloc packages when installed. Every peer is checked
to really provide `malloc` (c_tests/bench/which_malloc.c) before use.

After the benchmarks, the retention patterns of c_tests/retention/ run once
per repetition under every peer: a table of peak and final RSS per peer
(target/bench/retention.csv).

Runs are interleaved round-robin (for each repetition, every benchmark,
thread count and peer in turn) so slow drift of the machine affects all
peers alike; the reported figure is the median over repetitions.

Measuring uses the standard library only; charts need matplotlib and are
skipped with a message when it is missing.
"""

import argparse
import csv
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "c_tests", "bench")
RETENTION_SRC = os.path.join(ROOT, "c_tests", "retention")
# MIRS_LIB_DIR overrides where libmirs.so / libmirs.a are taken from.
MIRS_DIR = os.environ.get("MIRS_LIB_DIR", os.path.join(ROOT, "target", "release"))
MIRS_SO = os.path.join(MIRS_DIR, "libmirs.so")
MIRS_A = os.path.join(MIRS_DIR, "libmirs.a")
# The `secure` build (make bench builds it into target/secure/release).
MIRS_SECURE_SO = os.path.join(ROOT, "target", "secure", "release", "libmirs.so")
PEER_LIBS = os.path.join(ROOT, "target", "bench-peers", "lib")
DEB_LIBS = "/usr/lib/x86_64-linux-gnu"

# name -> (source file, kind of size argument). "seconds" benchmarks run for
# a fixed time; "scale" ones do fixed work (times the scale factor);
# "custom" ones take the arguments CUSTOM_ARGS gives them. Sources are in
# c_tests/bench/ unless the path names c_tests/retention/.
BENCHMARKS = {
    "malloc_thread": ("bench_malloc_thread.c", "seconds"),
    "larson": ("larson.c", "seconds"),
    "xmalloc": ("xmalloc.c", "seconds"),
    "cache_scratch": ("cache_scratch.c", "scale"),
    "stress": ("stress.c", "scale"),
    "churn": ("churn.c", "seconds"),
    "simple": ("simple.c", "scale"),
    # Where mirs used to lose (issue 9): mimalloc-bench's malloc-large
    # (20 live 5-25 MiB buffers, new before old), an mstress-like churn of
    # short-lived threads trading blocks, a producer/consumer of 1-8 MiB
    # buffers. They also report RSS after everything was freed.
    "malloc_large": (os.path.join(RETENTION_SRC, "malloc_large.c"), "custom"),
    "mstress": (os.path.join(RETENTION_SRC, "mstress.c"), "custom"),
    "prodcons": (os.path.join(RETENTION_SRC, "prodcons.c"), "custom"),
}
# name -> (thread counts it runs at, or None for every --threads count;
#          function (threads, quick) -> argv).
CUSTOM_ARGS = {
    "malloc_large": ([1], lambda t, quick: [100 if quick else 400, 20]),
    "mstress": (None, lambda t, quick: [t, 50, 3 if quick else 10]),
    "prodcons": ([2], lambda t, quick: [100 if quick else 400, 2]),
}
# Throughput unit per benchmark (default M ops/s): these do few, big operations.
UNITS = {"malloc_large": ("ops/s", 1.0), "prodcons": ("ops/s", 1.0)}

# The retention patterns of c_tests/retention/run_retention.sh, same sizes:
# peak and final RSS per peer, shown as one table.
RETENTION = [
    ("cross_free", [200, 5000000]),
    ("prodcons", [200, 2]),
    ("half_free", [200, 20000]),
    ("thread_churn", [300, 4000]),
    ("malloc_large", [400, 20]),
    ("mstress", [2, 50, 10]),
]
# (seconds, scale) per mode: ~1-3 s per run in full mode, well under 1 s quick.
SIZES = {"full": (1.5, 1.0), "quick": (0.2, 0.1)}

CC = os.environ.get("CC", "gcc")
CFLAGS = ["-O2", "-Wall"]
LIBS = ["-lpthread", "-ldl", "-lm"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def compile_c(src, out, extra=(), timeout=120):
    """Compile one C program; returns an error string or None."""
    cmd = [CC, *CFLAGS, "-o", out, src, *extra, *LIBS]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "compiler timed out: " + " ".join(cmd)
    except OSError as e:
        return f"cannot run {CC}: {e}"
    return None if r.returncode == 0 else (" ".join(cmd) + "\n" + r.stderr.strip())


def build(bindir, with_static):
    """Dynamic build of every program (for glibc and LD_PRELOAD peers), plus
    a build statically linked with libmirs.a when it exists."""
    os.makedirs(bindir, exist_ok=True)
    progs = {name: src for name, (src, _) in BENCHMARKS.items()}
    progs["which_malloc"] = "which_malloc.c"
    for name, _ in RETENTION:
        progs["retention_" + name] = os.path.join(RETENTION_SRC, name + ".c")
    for name, src in progs.items():
        err = compile_c(os.path.join(SRC, src), os.path.join(bindir, name))
        if err:
            sys.exit(f"bench: build failed:\n{err}")
        if with_static:
            # libmirs.a before libc: the linker takes malloc & co. from it, and
            # the executable's definitions then serve libc's own calls too.
            err = compile_c(os.path.join(SRC, src), os.path.join(bindir, name + ".static-mirs"),
                            extra=[MIRS_A])
            if err:
                sys.exit(f"bench: static link with {MIRS_A} failed:\n{err}")


class Peer:
    def __init__(self, name, preload=None, static=False, mirs=False):
        self.name = name
        self.preload = preload  # path for LD_PRELOAD, or None
        self.static = static    # use the .static-mirs binaries
        self.mirs = mirs        # marked with * in tables

    def label(self):
        return ("* " if self.mirs else "  ") + self.name

    def chart_name(self):
        return self.name + (" *" if self.mirs else "")

    def command(self, bindir, prog, args):
        exe = os.path.join(bindir, prog + (".static-mirs" if self.static else ""))
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        if self.preload:
            env["LD_PRELOAD"] = self.preload
        return [exe, *map(str, args)], env


def discover_peers():
    """All peers whose files exist, and (name, reason) for those skipped."""
    peers, skipped = [Peer("glibc")], []
    if os.path.exists(MIRS_SO):
        peers.append(Peer("mirs", preload=MIRS_SO, mirs=True))
    else:
        skipped.append(("mirs", f"{MIRS_SO} not found: build mirs first (cargo build --release)"))
    if os.path.exists(MIRS_A):
        peers.append(Peer("mirs-static", static=True, mirs=True))
    else:
        skipped.append(("mirs-static", f"{MIRS_A} not found: build mirs first"))
    if os.path.exists(MIRS_SECURE_SO):
        peers.append(Peer("mirs-secure", preload=MIRS_SECURE_SO, mirs=True))
    else:
        skipped.append(("mirs-secure", f"{MIRS_SECURE_SO} not found (make bench builds it)"))
    for name in ("mimalloc-v3", "mimalloc-v2", "jemalloc"):
        lib = os.path.join(PEER_LIBS, f"lib{name}.so")
        if os.path.exists(lib):
            peers.append(Peer(name, preload=lib))
        else:
            skipped.append((name, f"{lib} not found (bench/build_peers.sh builds it)"))
    for name, so, pkg in (("tcmalloc-deb", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
                          ("jemalloc-deb", "libjemalloc.so.2", "libjemalloc2"),
                          ("mimalloc-deb", "libmimalloc.so.2", "libmimalloc2.0")):
        lib = os.path.join(DEB_LIBS, so)
        if os.path.exists(lib):
            peers.append(Peer(name, preload=lib))
        else:
            skipped.append((name, f"Debian package {pkg} not installed"))
    return peers, skipped


def run_once(cmd, env, timeout):
    """Run a benchmark; returns (returncode or None on timeout, stdout,
    stderr, ru_maxrss in KiB from wait4, the fallback peak RSS)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        except OSError as e:
            return -1, "", str(e), -1
        deadline = time.monotonic() + timeout
        status, rusage = None, None
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, rusage = st, ru
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, st, ru = os.wait4(proc.pid, 0)
                status = None
                rusage = ru
                break
            time.sleep(0.01)
        proc.returncode = 0  # reaped by wait4; keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        code = None if status is None else os.waitstatus_to_exitcode(status)
        return (code, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                rusage.ru_maxrss if rusage else -1)


def parse_result(stdout):
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    return None


def verify_peers(peers, bindir):
    """Keep only peers whose `malloc` really comes from the expected object."""
    good = []
    for p in peers:
        cmd, env = p.command(bindir, "which_malloc", [])
        code, out, err, _ = run_once(cmd, env, timeout=30)
        line = next((l for l in out.splitlines() if l.startswith("WHICH ")), "")
        fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        src = fields.get("malloc_from", "?")
        if p.static:
            expect_ok = src == "(main program)" or os.path.basename(src).startswith("which_malloc")
        elif p.preload:
            expect_ok = os.path.exists(src) and os.path.samefile(src, p.preload)
        else:
            expect_ok = "libc.so" in src
        if code == 0 and expect_ok:
            good.append(p)
            log(f"bench: peer {p.name}: malloc from {src}")
        else:
            log(f"bench: peer {p.name} skipped: does not interpose or failed "
                f"(exit {code}, malloc from {src}) {err.strip()[-300:]}")
    return good


def fmt_ratio(x, base):
    return f"{x / base:.2f}x" if base else "-"


def print_tables(summary, peers, threads_list, runs):
    for bench in BENCHMARKS:
        rows = [s for s in summary if s["bench"] == bench]
        if not rows:
            continue
        unit, div = UNITS.get(bench, ("Mops/s", 1e6))
        has_final = any(s.get("final_kib", -1) >= 0 for s in rows)
        print(f"\n== {bench}: throughput in {unit} (higher is better), median of {runs} ==")
        print(f"{'threads':>7}  {'peer':<15} {unit:>9} {'vs glibc':>9} "
              f"{'vs best mimalloc':>17} {'peak RSS MiB':>13}"
              + (f" {'final RSS MiB':>14} {'minflt':>9}" if has_final else ""))
        for t in sorted({s["threads"] for s in rows}):
            at = {s["peer"]: s for s in rows if s["threads"] == t}
            if not at:
                continue
            glibc = at.get("glibc", {}).get("ops_per_sec")
            mis = [s["ops_per_sec"] for n, s in at.items()
                   if n.startswith("mimalloc") and s["ops_per_sec"]]
            best_mi = max(mis) if mis else None
            for p in peers:
                s = at.get(p.name)
                if s is None:
                    continue
                if s["ops_per_sec"] is None:
                    print(f"{t:>7}  {p.label():<15} {'failed':>9}")
                    continue
                ops = s["ops_per_sec"]
                rss = s["rss_kib"] / 1024 if s["rss_kib"] >= 0 else float("nan")
                line = (f"{t:>7}  {p.label():<15} {ops / div:>9.2f} {fmt_ratio(ops, glibc):>9} "
                        f"{fmt_ratio(ops, best_mi):>17} {rss:>13.1f}")
                if has_final:
                    line += f" {s['final_kib'] / 1024:>14.1f} {s['minflt']:>9.0f}"
                print(line)
    print("\n* = mirs. 'vs best mimalloc' divides by the fastest C mimalloc peer at that thread count.")


def print_retention(ret, peers, runs):
    """Peak and final RSS per retention pattern and peer (medians)."""
    if not ret:
        return
    print(f"\n== retention: RSS in MiB after each pattern, everything freed (lower is better), "
          f"median of {runs} ==")
    names = [p.name for p in peers]
    print(f"{'pattern':<13} {'':<6}" + "".join(f" {n[:12]:>12}" for n in names))
    for pattern, _ in RETENTION:
        for key, label in (("peak", "peak"), ("final", "final")):
            cells = []
            for n in names:
                vals = ret.get((pattern, n), [])
                cells.append(f"{statistics.median(v[key] for v in vals) / 1024:>12.1f}"
                             if vals else f"{'failed':>12}")
            print(f"{pattern if key == 'peak' else '':<13} {label:<6}" + " ".join([""] + cells))
    ml = {n: ret.get(("malloc_large", n), []) for n in names}
    if any(ml.values()):
        print(f"{'malloc_large':<13} {'s':<6}" + "".join(
            f" {statistics.median(v['seconds'] for v in ml[n]):>12.2f}" if ml[n] else f" {'failed':>12}"
            for n in names))
        print(f"{'':<13} {'minflt':<6}" + "".join(
            f" {statistics.median(v['minflt'] for v in ml[n]):>12.0f}" if ml[n] else f" {'failed':>12}"
            for n in names))
    print("peak = VmHWM; final = resident after everything was freed, a 50 ms pause and one "
          "malloc/free (c_tests/retention/retention.h); s and minflt: malloc_large's time and "
          "minor page faults")


def charts(summary, peers, threads_list, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log("bench: matplotlib not available; charts skipped (pip install matplotlib)")
        return []
    written = []
    # One colour per peer in every chart, whichever peers have data.
    color = {p.name: f"C{i}" for i, p in enumerate(peers)}
    for bench in BENCHMARKS:
        rows = [s for s in summary if s["bench"] == bench and s["ops_per_sec"]]
        if not rows:
            continue
        unit, div = UNITS.get(bench, ("Mops/s", 1e6))
        fig, ax = plt.subplots(figsize=(8, 5))
        counts = sorted({s["threads"] for s in rows})
        if len(counts) == 1:
            # One thread count (malloc_large, prodcons): a bar per peer.
            shown = [p for p in peers if any(s["peer"] == p.name for s in rows)]
            vals = [next(s["ops_per_sec"] for s in rows if s["peer"] == p.name) / div
                    for p in shown]
            ax.bar(range(len(shown)), vals, color=[color[p.name] for p in shown],
                   edgecolor=["black" if p.mirs else "none" for p in shown], linewidth=1.5)
            ax.set_xticks(range(len(shown)))
            ax.set_xticklabels([p.chart_name() for p in shown], rotation=20, ha="right")
            n = counts[0]
            ax.set_title(f"{bench}: throughput at {n} thread{'' if n == 1 else 's'} (median)")
            ax.grid(True, axis="y", alpha=0.3)
        else:
            for p in peers:
                pts = sorted((s["threads"], s["ops_per_sec"] / div) for s in rows
                             if s["peer"] == p.name)
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o",
                            color=color[p.name], linewidth=3 if p.mirs else 1.5,
                            linestyle="-" if p.mirs else "--", label=p.chart_name())
            ax.set_title(f"{bench}: throughput by thread count (median)")
            ax.set_xlabel("threads")
            ax.set_xticks(threads_list)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        ax.set_ylabel(f"{unit} (higher is better)")
        ax.set_ylim(bottom=0)
        fig.tight_layout()
        path = os.path.join(outdir, f"{bench}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    # Peak RSS at the largest thread count, one bar per peer per benchmark;
    # a benchmark that runs at fixed thread counts only (malloc_large,
    # prodcons) at its largest one, named under its bars.
    tmax = max(threads_list)
    benches = [b for b in BENCHMARKS if any(s["bench"] == b for s in summary)]
    at = {b: max(s["threads"] for s in summary if s["bench"] == b) for b in benches}
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / max(1, len(peers))
    for i, p in enumerate(peers):
        vals = []
        for b in benches:
            s = next((s for s in summary if s["bench"] == b and s["peer"] == p.name
                      and s["threads"] == at[b]), None)
            vals.append(s["rss_kib"] / 1024 if s and s["rss_kib"] > 0 else 0)
        xs = [j + (i - (len(peers) - 1) / 2) * width for j in range(len(benches))]
        ax.bar(xs, vals, width, label=p.chart_name(), color=color[p.name],
               edgecolor="black" if p.mirs else None, linewidth=1.5 if p.mirs else 0)
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels([b if at[b] == tmax else
                        f"{b}\n({at[b]} thread{'' if at[b] == 1 else 's'})" for b in benches])
    ax.set_yscale("log")
    # Plain numbers on the log axis (the default 6x10^0 style is hard to read).
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("peak RSS, MiB (log scale; lower is better)")
    ax.set_title(f"Peak RSS per benchmark at {tmax} threads (median)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    path = os.path.join(outdir, "rss.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="one short run of each (whole suite in a few minutes)")
    ap.add_argument("--runs", type=int, default=3, help="repetitions per configuration (median)")
    ap.add_argument("--threads", default="1,2,4", help="comma-separated thread counts")
    ap.add_argument("--bench", default="", help="comma-separated subset of: " + ",".join(BENCHMARKS))
    ap.add_argument("--peers", default="", help="comma-separated subset of peer names")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench"), help="output directory")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run before it is killed")
    ap.add_argument("--no-retention", action="store_true",
                    help="skip the retention table (c_tests/retention patterns)")
    args = ap.parse_args()

    runs = 1 if args.quick else max(1, args.runs)
    seconds, scale = SIZES["quick" if args.quick else "full"]
    timeout = args.timeout or (60 if args.quick else 180)
    threads_list = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    if args.bench:
        wanted = args.bench.split(",")
        unknown = [b for b in wanted if b not in BENCHMARKS]
        if unknown:
            sys.exit(f"bench: unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}")
        for b in list(BENCHMARKS):
            if b not in wanted:
                del BENCHMARKS[b]
    if not shutil.which(CC):
        sys.exit(f"bench: C compiler {CC!r} not found")

    outdir = args.out
    bindir = os.path.join(outdir, "bin")
    os.makedirs(outdir, exist_ok=True)

    peers, skipped = discover_peers()
    if args.peers:
        wanted = set(args.peers.split(","))
        peers = [p for p in peers if p.name in wanted]
    if not any(p.mirs for p in peers) and not args.peers:
        log("bench: NOTE: mirs is not built, so it is not benchmarked. Build it first "
            "(cargo build --release -> target/release/libmirs.so and libmirs.a).")
    log("bench: building benchmarks into " + bindir)
    build(bindir, with_static=any(p.static for p in peers))
    peers = verify_peers(peers, bindir)
    for name, why in skipped:
        log(f"bench: peer {name} skipped: {why}")
    if not peers:
        sys.exit("bench: no usable allocator to benchmark")

    # Round-robin schedule: repetition-major, peers innermost, in a new
    # order each repetition (the first as listed, then shuffled with the
    # repetition as seed), so that no peer always runs right after the same
    # one: what a run leaves behind falls on the next (malloc_large under
    # mirs took 0.47-1.26 s right after glibc's run, where a rotated order
    # kept it, and 0.28 s run again at once; bench/README.md).
    def bench_threads(b):
        if BENCHMARKS[b][1] == "custom" and CUSTOM_ARGS[b][0] is not None:
            return CUSTOM_ARGS[b][0]
        return threads_list

    def reordered(r):
        order = list(peers)
        if r:
            random.Random(r).shuffle(order)
        return order

    plan = [(r, b, t, p) for r in range(runs) for b in BENCHMARKS
            for t in bench_threads(b) for p in reordered(r)]
    samples = {}  # (bench, threads, peer) -> list of (ops, rss_kib)
    csv_path = os.path.join(outdir, "results.csv")
    started = time.monotonic()
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "threads", "peer", "run", "status", "ops_per_sec", "seconds",
                    "max_rss_kib", "argv", "preload"])
        for i, (r, bench, t, p) in enumerate(plan, 1):
            kind = BENCHMARKS[bench][1]
            if kind == "custom":
                argv = CUSTOM_ARGS[bench][1](t, args.quick)
            else:
                argv = [t, seconds if kind == "seconds" else scale]
            cmd, env = p.command(bindir, bench, argv)
            elapsed = time.monotonic() - started
            eta = elapsed / (i - 1) * (len(plan) - i + 1) if i > 1 else 0
            log(f"[{i}/{len(plan)}] run {r + 1}/{runs} {bench} threads={t} peer={p.name} "
                f"({len(plan) - i} left, ~{eta:.0f}s remaining)")
            code, out, err, rss = run_once(cmd, env, timeout)
            res = parse_result(out) if code == 0 else None
            if res is None:
                status = "timeout" if code is None else f"exit {code}" if code else "no RESULT line"
                log(f"bench:   FAILED ({status}) {err.strip()[-500:]}")
                samples.setdefault((bench, t, p.name), [])
                w.writerow([bench, t, p.name, r + 1, status, "", "", rss, " ".join(cmd),
                            p.preload or ""])
                continue
            ops = float(res.get("ops_per_sec", 0))
            # The benchmark's own VmHWM is this program's peak alone; wait4's
            # ru_maxrss also carries this runner's RSS from before the exec.
            own = int(res.get("max_rss_kib", -1))
            if own >= 0:
                rss = own
            samples.setdefault((bench, t, p.name), []).append(
                (ops, rss, int(res.get("final_rss_kib", -1)), int(res.get("minflt", -1))))
            w.writerow([bench, t, p.name, r + 1, "ok", f"{ops:.0f}", res.get("seconds", ""), rss,
                        " ".join(cmd), p.preload or ""])
            f.flush()

    summary = []
    for (bench, t, peer), vals in samples.items():
        summary.append({
            "bench": bench, "threads": t, "peer": peer,
            "ops_per_sec": statistics.median(v[0] for v in vals) if vals else None,
            "rss_kib": statistics.median(v[1] for v in vals) if vals else -1,
            "final_kib": statistics.median(v[2] for v in vals) if vals else -1,
            "minflt": statistics.median(v[3] for v in vals) if vals else -1,
            "runs": len(vals),
        })
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "threads", "peer", "median_ops_per_sec", "median_max_rss_kib", "runs"])
        for s in summary:
            w.writerow([s["bench"], s["threads"], s["peer"],
                        f"{s['ops_per_sec']:.0f}" if s["ops_per_sec"] else "", s["rss_kib"], s["runs"]])

    # Retention patterns: every peer, round-robin per repetition.
    ret = {}  # (pattern, peer) -> list of dicts
    if not args.no_retention:
        for r in range(runs):
            for pattern, argv in RETENTION:
                for p in reordered(r):
                    log(f"retention run {r + 1}/{runs} {pattern} peer={p.name}")
                    cmd, env = p.command(bindir, "retention_" + pattern, argv)
                    code, out, err, _ = run_once(cmd, env, 60)
                    res = parse_result(out) if code == 0 else None
                    if res is None:
                        log(f"bench:   retention {pattern} under {p.name} FAILED "
                            f"({'timeout' if code is None else f'exit {code}'}) {err.strip()[-300:]}")
                        continue
                    ret.setdefault((pattern, p.name), []).append({
                        "peak": int(res.get("max_rss_kib", -1)),
                        "final": int(res.get("final_rss_kib", -1)),
                        "seconds": float(res.get("seconds", 0)),
                        "minflt": int(res.get("minflt", -1)),
                    })
        with open(os.path.join(outdir, "retention.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["pattern", "peer", "run", "peak_rss_kib", "final_rss_kib", "seconds",
                        "minflt"])
            for (pattern, peer), vals in ret.items():
                for i, v in enumerate(vals, 1):
                    w.writerow([pattern, peer, i, v["peak"], v["final"], v["seconds"], v["minflt"]])

    print_tables(summary, peers, threads_list, runs)
    print_retention(ret, peers, runs)
    for path in charts(summary, peers, threads_list, outdir):
        log("bench: wrote " + path)
    log(f"bench: wrote {csv_path} and summary.csv in {time.monotonic() - started:.0f}s")
    if skipped:
        print("skipped peers: " + "; ".join(f"{n} ({why})" for n, why in skipped))
    failed = sum(1 for s in summary if s["runs"] == 0)
    return 1 if failed == len(summary) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("bench: interrupted")
