#!/usr/bin/env python3
"""ArceOS unikernels with axlibc over mirs, booted in QEMU (make test-arceos,
make bench-arceos). docs/arceos.md describes every step.

  arceos.py test [APP[:VARIANT] ...]   the test apps (default: all); last line
                                       `test-arceos: N passed, M failed`
  arceos.py bench [--runs N] [--seconds S]
                                       bench_malloc_thread at 1/2/4 threads,
                                       stock axlibc and mirs alternated

Steps, all cached under target/arceos/:
1. prerequisites (tools/prereqs.py): the pinned nightly with
   x86_64-unknown-none through rustup, qemu-system-x86 and libclang-dev
   through apt-get; when they cannot be had: one `SKIP test-arceos: <reason>`
   line, exit 0. A build that still fails stops the suite at the first
   failure: one line with its cause, the log's tail and its path;
2. the published ArceOS crates (0.3.0-preview.3) fetched by cargo as the
   dependencies of a throwaway crate;
3. two source trees laid out as ArceOS's (ulib/axlibc, api/arceos_posix_api):
   `stock`, and `mirs` edited by switch_axlibc.py;
4. axconfig.toml from the platform crate's config (SMP=2) plus
   task-stack-size and ticks-per-sec;
5. libaxlibc.a by cargo, axlibc's C files by gcc with ArceOS's flags, each
   app linked by the toolchain's rust-lld with ArceOS's linker script;
6. qemu-system-x86_64 -m 128M -smp 2 -machine q35 (TCG) with a timeout.
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import prereqs  # noqa: E402  (tools/prereqs.py: the checks `make test` reports)

WORK = REPO / "target" / "arceos"
CARGO_TARGET = WORK / "cargo"
TOOLCHAIN = prereqs.PINNED  # nightly-2026-02-25
ARCEOS_VERSION = "0.3.0-preview.3"
TARGET = "x86_64-unknown-none"
SMP = 2
MEM = "128M"
# Features of ArceOS's C-app build (lib_features of scripts/make/features.mk
# for these apps, plus SMP and the round-robin scheduler so threads overlap).
LIB_FEATURES = ["smp", "alloc", "multitask", "irq", "fp-simd"]
AX_FEATURES = ["axfeat/defplat", "axfeat/sched-rr"]
# mirs sizing for the 128 MiB guest (docs/arceos.md, "Memory sizing").
PROVIDER_MAX_MB = 64
STATIC_REGION_MB = 32

# variant: (tree, extra axlibc features, description)
VARIANTS = {
    "stock": ("stock", [], "stock axlibc (kernel heap, size header)"),
    "mirs": ("mirs", ["mirs-page-provider"], f"mirs, page provider capped at {PROVIDER_MAX_MB} MiB"),
    "mirs-static": ("mirs", ["mirs-static-region"], f"mirs, {STATIC_REGION_MB} MiB static region"),
}
# app: (sources, extra CFLAGS, variants tested, boot timeout s)
APPS = {
    "api": (["c_tests/arceos/api.c"], [], ["mirs", "mirs-static"], 120),
    "stress": (["c_tests/arceos/stress.c"], [], ["stock", "mirs", "mirs-static"], 420),
}
BENCH_SRC = "c_tests/bench/bench_malloc_thread.c"


def log(msg):
    print(msg, flush=True)


def run(cmd, **kw):
    """Run a command (niced: the machine is shared), fail loudly with its output."""
    kw.setdefault("check", True)
    return subprocess.run(["nice", "-n", "10", *map(str, cmd)], **kw)


def capture(cmd, **kw):
    return subprocess.run(list(map(str, cmd)), capture_output=True, text=True, **kw)


class Skip(Exception):
    pass


class BuildError(Exception):
    """A build step failed: a one-line cause and the log that has the rest."""

    def __init__(self, what, log_path=None):
        super().__init__(what)
        self.what, self.log_path = what, log_path

    def cause(self):
        """`what`, plus the log's first error and a build script's panic message."""
        if self.log_path is None or not Path(self.log_path).exists():
            return self.what
        lines = Path(self.log_path).read_text(errors="replace").splitlines()
        first_error = next((ln.strip() for ln in lines if re.match(r"\s*error(\[E\d+\])?:", ln)), None)
        panic = None
        for i, ln in enumerate(lines):
            if "panicked at" in ln and i + 1 < len(lines):
                panic = lines[i + 1].strip()
                break
        parts = [self.what] + [p for p in (first_error, panic) if p]
        text = ": ".join(parts)
        return text if len(text) <= 400 else text[:400] + "..."

    def report(self, suite):
        """The one-line cause, then the log's last lines and its path."""
        log(f"{suite}: FAIL {self.cause()}")
        if self.log_path is not None and Path(self.log_path).exists():
            lines = [ln for ln in Path(self.log_path).read_text(errors="replace").splitlines() if ln.strip()]
            log(f"{suite}: full log: {self.log_path}; its last lines:")
            for ln in lines[-12:]:
                log("    " + ln[:200])


# ---------------------------------------------------------------- 1. prerequisites


def prerequisites(suite):
    """The rust-lld path; raises Skip when something cannot be installed.
    Each check is tools/prereqs.py's: the pinned toolchain's x86_64-unknown-none
    libcore and rust-lld, gcc, qemu-system-x86_64, and a libclang that
    clang-sys (bindgen, in arceos_posix_api's build script) would load."""
    t0 = time.time()
    try:
        prereqs.ensure(suite, "arceos-toolchain", "cc", "qemu", "libclang", log=log)
    except prereqs.Missing as e:
        raise Skip(str(e))
    return prereqs.arceos_lld(), time.time() - t0


# ---------------------------------------------------------------- 2. fetch


def cargo_env():
    env = dict(os.environ)
    for k in [k for k in env if k.startswith("CARGO_") or k == "RUSTFLAGS"]:
        del env[k]  # an outer `make` or cargo must not leak its settings in
    env.update(
        RUSTUP_TOOLCHAIN=TOOLCHAIN,
        RUST_BACKTRACE="0",  # a failing build script's panic: its message, not a backtrace
        AX_LOG="warn",  # axruntime reads it at build time
        AX_CONFIG_PATH=str(WORK / "axconfig.toml"),
        RUSTFLAGS="-A unsafe_op_in_unsafe_fn",
        CARGO_TARGET_DIR=str(CARGO_TARGET),
        MIRS_PROVIDER_MAX_MB=str(PROVIDER_MAX_MB),
        MIRS_STATIC_REGION_MB=str(STATIC_REGION_MB),
    )
    return env


def fetch():
    """Sources of the published crates: {name: directory}."""
    d = WORK / "fetch"
    (d / "src").mkdir(parents=True, exist_ok=True)
    v = f"={ARCEOS_VERSION}"
    manifest = f"""\
# Generated by c_tests/arceos/arceos.py: only its dependencies matter.
[package]
name = "arceos-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
axlibc = {{ version = "{v}", features = {json.dumps(LIB_FEATURES + ['defplat'])} }}
arceos_posix_api = {{ version = "{v}", features = ["alloc", "multitask", "irq", "smp"] }}
axfeat = {{ version = "{v}", features = ["defplat", "sched-rr", "alloc", "multitask"] }}

[workspace]
"""
    write_if_changed(d / "Cargo.toml", manifest)
    write_if_changed(d / "src/lib.rs", "")
    env = cargo_env()
    log_path = WORK / "fetch.log"
    with open(log_path, "w") as f:
        r = run(["cargo", "fetch", "--manifest-path", d / "Cargo.toml"], env=env, check=False,
                stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise BuildError("cargo fetch of the ArceOS crates failed", log_path)
    meta = capture(["cargo", "metadata", "--format-version", "1", "--manifest-path", d / "Cargo.toml"], env=env)
    if meta.returncode != 0:
        log_path.write_text(meta.stderr)
        raise BuildError("cargo metadata of the ArceOS crates failed", log_path)
    found = {}
    for p in json.loads(meta.stdout)["packages"]:
        found.setdefault(p["name"], {})[p["version"]] = Path(p["manifest_path"]).parent
    return found


def write_if_changed(path, text):
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


# ---------------------------------------------------------------- 3. trees

# Files the build writes into the tree (arceos_posix_api's build.rs): never
# overwritten by the layout once there, or cargo would rebuild each time.
GENERATED = {"api/arceos_posix_api/src/ctypes_gen.rs", "ulib/axlibc/include/ax_pthread_mutex.h"}


def sync_tree(staging, dest):
    """Make `dest` hold `staging`'s files, rewriting only those that differ
    (unchanged files keep their times, so cargo and make reuse their builds)."""
    for src in staging.rglob("*"):
        if src.is_dir():
            continue
        rel = src.relative_to(staging)
        out = dest / rel
        if out.exists() and (str(rel) in GENERATED or out.read_bytes() == src.read_bytes()):
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
    for old in sorted(dest.rglob("*"), reverse=True):
        rel = old.relative_to(dest)
        if str(rel) in GENERATED or rel.parts[0] == "build" or "Cargo.lock" in rel.name:
            continue
        if not (staging / rel).exists():
            old.rmdir() if old.is_dir() else old.unlink()


def layout(tree, crates):
    """target/arceos/<tree>/{ulib/axlibc, api/arceos_posix_api}."""
    axlibc_src = crates["axlibc"][ARCEOS_VERSION]
    posix_src = crates["arceos_posix_api"][ARCEOS_VERSION]
    dest = WORK / tree
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        staging = Path(tmp)
        axlibc = staging / "ulib/axlibc"
        shutil.copytree(axlibc_src, axlibc, copy_function=shutil.copy2,
                        ignore=shutil.ignore_patterns("Cargo.toml.orig", ".cargo_vcs_info.json", ".cargo-ok"))
        shutil.copytree(posix_src, staging / "api/arceos_posix_api", copy_function=shutil.copy2,
                        ignore=shutil.ignore_patterns("Cargo.toml.orig", ".cargo_vcs_info.json", ".cargo-ok",
                                                      "Cargo.lock"))
        # axlibc is published as a staticlib only, so it is built as the root
        # package of its own workspace; arceos_posix_api comes from the tree
        # so that its build.rs finds ../../ulib/axlibc/include and regenerates
        # its bindings with `multitask` (pthread_mutex_t of two words).
        manifest = axlibc / "Cargo.toml"
        manifest.write_text(
            manifest.read_text()
            + "\n[workspace]\n\n[patch.crates-io.arceos_posix_api]\npath = \"../../api/arceos_posix_api\"\n"
        )
        # The lock file axlibc was published with, for the same dependency versions.
        if (axlibc / "Cargo.lock").exists() and not (dest / "ulib/axlibc/Cargo.lock").exists():
            (dest / "ulib/axlibc").mkdir(parents=True, exist_ok=True)
            shutil.copy2(axlibc / "Cargo.lock", dest / "ulib/axlibc/Cargo.lock")
        (axlibc / "Cargo.lock").unlink(missing_ok=True)
        if tree == "mirs":
            r = capture([sys.executable, REPO / "c_tests/arceos/switch_axlibc.py", axlibc, REPO / "arceos-glue"])
            if r.returncode != 0:
                (WORK / "switch.log").write_text(r.stdout + r.stderr)
                raise BuildError("switch_axlibc.py could not switch axlibc to mirs", WORK / "switch.log")
        sync_tree(staging, dest)
    return dest


# ---------------------------------------------------------------- 4. config


def axconfig(crates):
    """axconfig.toml: the x86-pc platform crate's config that axhal uses,
    with SMP CPUs and ArceOS's defconfig keys (task stack, timer ticks)."""
    lock = tomllib.loads((WORK / "stock/ulib/axlibc/Cargo.lock").read_text())
    versions = [p["version"] for p in lock["package"] if p["name"] == "axplat-x86-pc"]
    if len(versions) != 1:
        sys.exit(f"test-arceos: expected one axplat-x86-pc in axlibc's Cargo.lock, found {versions}")
    plat_dir = crates.get("axplat-x86-pc", {}).get(versions[0])
    if plat_dir is None:
        sys.exit(f"test-arceos: axplat-x86-pc {versions[0]} was not fetched")
    text = (plat_dir / "axconfig.toml").read_text()
    text, n = re.subn(r"(?m)^max-cpu-num = \d+", f"max-cpu-num = {SMP}", text)
    if n != 1:
        sys.exit("test-arceos: the platform config has no plat.max-cpu-num")
    head = (
        f"# Generated by c_tests/arceos/arceos.py from axplat-x86-pc {versions[0]}'s axconfig.toml.\n"
        "# Stack size of each task.\ntask-stack-size = 0x40000   # uint\n"
        "# Number of timer ticks per second (Hz).\nticks-per-sec = 100         # uint\n"
    )
    write_if_changed(WORK / "axconfig.toml", head + text)


# ---------------------------------------------------------------- 5. build

CFLAGS_BASE = ["-nostdinc", "-fno-builtin", "-ffreestanding", "-Wall", "-O3", "-mcmodel=large",
               "-static", "-no-pie", "-fno-pie", "-DAX_LOG_WARN"]


def cflags(tree):
    feats = [f"-DAX_CONFIG_{f.upper().replace('-', '_')}" for f in LIB_FEATURES]
    return CFLAGS_BASE + feats + [f"-I{WORK / tree / 'ulib/axlibc/include'}"]


def build_lib(variant):
    """libaxlibc.a + libc.a (axlibc's C files) of `variant`, in target/arceos/out/<variant>/."""
    tree, extra, _ = VARIANTS[variant]
    out = WORK / "out" / variant
    out.mkdir(parents=True, exist_ok=True)
    axlibc = WORK / tree / "ulib/axlibc"
    features = " ".join(AX_FEATURES + LIB_FEATURES + extra)
    log_path = out / "build.log"
    with open(log_path, "w") as f:
        r = run(["cargo", "build", "--release", "--target", TARGET, "--features", features],
                cwd=axlibc, env=cargo_env(), check=False, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise BuildError(f"cargo build of axlibc ({variant})", log_path)
    shutil.copy2(CARGO_TARGET / TARGET / "release/libaxlibc.a", out / "libaxlibc.a")
    shutil.copy2(CARGO_TARGET / TARGET / "release/linker_x86-pc.lds", out / "linker.lds")
    # axlibc's C part (ArceOS's build_c.mk: every c/*.c into libc.a).
    objs = []
    flags = cflags(tree)
    stamp = out / "cflags"
    flags_changed = not stamp.exists() or stamp.read_text() != " ".join(flags)
    for c in sorted((axlibc / "c").glob("*.c")):
        o = out / "libc" / (c.stem + ".o")
        o.parent.mkdir(exist_ok=True)
        if flags_changed or not o.exists() or o.stat().st_mtime < newest(c, axlibc / "include"):
            r = capture(["gcc", *flags, "-c", "-o", o, c])  # axlibc's own warnings stay quiet
            if r.returncode != 0:
                (out / "gcc.log").write_text(r.stderr)
                raise BuildError(f"gcc {c.name} ({variant})", out / "gcc.log")
        objs.append(o)
    stamp.write_text(" ".join(flags))
    (out / "libc.a").unlink(missing_ok=True)
    r = capture(["ar", "rcs", out / "libc.a", *objs])
    if r.returncode != 0:
        (out / "ar.log").write_text(r.stderr)
        raise BuildError(f"ar of axlibc's libc.a ({variant})", out / "ar.log")
    return out


def newest(src, inc):
    return max([src.stat().st_mtime] + [h.stat().st_mtime for h in inc.rglob("*.h")])


def build_app(name, sources, extra_cflags, variant, lld):
    """target/arceos/out/<variant>/<name>.elf."""
    tree = VARIANTS[variant][0]
    out = WORK / "out" / variant
    gcc_inc = capture(["gcc", "-print-file-name=include"]).stdout.strip()
    objs = []
    log_path = out / f"{name}-build.log"
    for s in sources:
        o = out / f"{name}-{Path(s).stem}.o"
        r = capture(["gcc", *cflags(tree), "-isystem", gcc_inc, *extra_cflags, "-c", "-o", o, REPO / s])
        if r.returncode != 0:
            log_path.write_text(r.stdout + r.stderr)
            raise BuildError(f"gcc {Path(s).name} ({variant})", log_path)
        objs.append(o)
    elf = out / f"{name}.elf"
    r = capture([lld, "-flavor", "gnu", "-nostdlib", "-static", "-no-pie", "--gc-sections", "-znostart-stop-gc",
                 f"-T{out / 'linker.lds'}", *objs, out / "libc.a", out / "libaxlibc.a", "-o", elf])
    if r.returncode != 0:
        log_path.write_text(r.stdout + r.stderr)
        raise BuildError(f"rust-lld {name}.elf ({variant})", log_path)
    return elf


# ---------------------------------------------------------------- 6. boot


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def boot(elf, timeout):
    """(serial output, seconds, timed out); BOOT_CPU holds the CPU seconds
    QEMU used (its vCPU threads: about 2 per second when both vCPUs run)."""
    cmd = ["qemu-system-x86_64", "-m", MEM, "-smp", str(SMP), "-machine", "q35", "-kernel", str(elf),
           "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio"]
    t0, c0 = time.time(), children_cpu()
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        text, timed_out = r.stdout.decode(errors="replace"), False
    except subprocess.TimeoutExpired as e:
        text, timed_out = (e.stdout or b"").decode(errors="replace"), True
    BOOT_CPU[0] = children_cpu() - c0
    return text.replace("\r", ""), time.time() - t0, timed_out


BOOT_CPU = [0.0]


def panic_line(text):
    m = re.search(r"(?m)^.*panicked at.*$(\n.*$)?", text)
    return m.group(0).strip() if m else None


def judge(app, text, timed_out):
    """(passed, one-line summary) of one boot."""
    panic = panic_line(text)
    if app == "api":
        m = re.search(r"api: (\d+) of (\d+) checks passed", text)
        fails = re.findall(r"(?m)^api: FAIL .*$", text)
        if m:
            ok = m.group(1) == m.group(2) and not fails and not panic
            return ok, f"{m.group(1)}/{m.group(2)} checks" + ("; " + "; ".join(fails) if fails else "")
    elif app == "stress":
        m = re.search(r"stress: ops=(\d+) nulls=(\d+) corrupt=(\d+) leaked=(-?\d+) create_failed=(\d+)", text)
        detail = re.search(r"stress: \d+ threads x .*", text)
        if m:
            ok = m.groups()[1:] == ("0", "0", "0", "0") and not panic
            return ok, f"nulls={m.group(2)} corrupt={m.group(3)} leaked={m.group(4)} " \
                       f"create_failed={m.group(5)} ({detail.group(0)[8:] if detail else ''})"
        rounds = re.findall(r"stress: round (\d+) done", text)
        if rounds:
            return False, f"rounds done {rounds[-1]}; " + (panic or ("timed out" if timed_out else "no result"))
    return False, panic or ("timed out" if timed_out else "no result line; output ends: "
                            + " | ".join(text.strip().splitlines()[-3:]))


# ---------------------------------------------------------------- commands


def prepare(suite):
    """Prerequisites, fetch, layout, config; returns (lld, timings). Raises
    Skip (a prerequisite cannot be had) or BuildError."""
    WORK.mkdir(parents=True, exist_ok=True)
    lld, t_install = prerequisites(suite)
    t0 = time.time()
    crates = fetch()
    for tree in ("stock", "mirs"):
        layout(tree, crates)
    axconfig(crates)
    t_fetch = time.time() - t0
    return lld, {"install": t_install, "fetch+layout": t_fetch}


def cmd_test(args):
    wanted = []
    for spec in args.apps or list(APPS):
        app, _, variant = spec.partition(":")
        if app not in APPS:
            sys.exit(f"test-arceos: no app {app!r} ({', '.join(APPS)})")
        for v in [variant] if variant else APPS[app][2]:
            if v not in VARIANTS:
                sys.exit(f"test-arceos: no variant {v!r} ({', '.join(VARIANTS)})")
            wanted.append((app, v))
    try:
        lld, times = prepare("test-arceos")
    except Skip as e:
        log(f"SKIP test-arceos: {e}")
        return 0
    except BuildError as e:
        e.report("test-arceos")
        log(f"test-arceos: 0 passed, {len(wanted)} failed")
        return 1
    passed = failed = 0
    t_build = 0.0
    built = set()
    for i, (app, variant) in enumerate(wanted):
        t0 = time.time()
        sources, extra, _, timeout = APPS[app]
        try:
            if variant not in built:
                log(f"test-arceos: building axlibc ({variant})")
                build_lib(variant)
                built.add(variant)
            elf = build_app(app, sources, extra, variant, lld)
        except BuildError as e:
            # The variants share all but a few crates: the first failure
            # stops the suite (one cause, not one backtrace per variant).
            e.report("test-arceos")
            failed += len(wanted) - i
            log(f"test-arceos: stopped at the first build failure ({len(wanted) - i} of {len(wanted)} not run)")
            break
        finally:
            t_build += time.time() - t0
        text, secs, timed_out = boot(elf, timeout)
        (WORK / "out" / variant / f"{app}.log").write_text(text)
        ok, summary = judge(app, text, timed_out)
        passed += ok
        failed += not ok
        line = f"test-arceos: {'ok  ' if ok else 'FAIL'} {app:<7} {variant:<12} {secs:6.1f} s  {summary}"
        log(line)
    log(f"test-arceos: install {times['install']:.0f} s, fetch+layout {times['fetch+layout']:.0f} s, "
        f"build {t_build:.0f} s (logs: target/arceos/out/<variant>/<app>.log)")
    log(f"test-arceos: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def cmd_bench(args):
    variants = ["stock", "mirs"]
    threads = [1, 2, 4]
    elves = {}
    try:
        lld, _ = prepare("bench-arceos")
        for v in variants:
            build_lib(v)
            for n in threads:
                elves[(v, n)] = build_app(
                    f"bench{n}", [BENCH_SRC],
                    ["-DMIRS_ARCEOS", f"-DNUM_THREADS={n}", f"-DDURATION={args.seconds}",
                     f"-I{REPO / 'c_tests/bench'}"],
                    v, lld)
    except Skip as e:
        log(f"SKIP bench-arceos: {e}")
        return 0
    except BuildError as e:
        e.report("bench-arceos")
        return 1
    counts = {k: [] for k in elves}
    cpu = {k: [] for k in elves}
    one_cpu = {k: 0 for k in elves}
    for run_i in range(args.runs):
        for n in threads:
            order = variants if run_i % 2 == 0 else variants[::-1]  # alternate who goes first
            for v in order:
                text, secs, _ = boot(elves[(v, n)], 120 + 10 * args.seconds)
                m = re.search(r"total iterations: (\d+)", text)
                val = int(m.group(1)) if m else None
                counts[(v, n)].append(val)
                cpu[(v, n)].append(BOOT_CPU[0] / secs)
                # Which vCPUs each thread was seen on (CPUID APIC ids, sampled every 256 iterations).
                masks = [int(m, 16) for m in re.findall(r"thread \d+: \d+ iterations, cpus (0x[0-9a-f]+)", text)]
                union = 0
                for m in masks:
                    union |= m
                if n > 1 and masks and bin(union).count("1") == 1:
                    one_cpu[(v, n)] += 1
                log(f"bench-arceos: run {run_i + 1} {v:<6} {n} threads: "
                    + (f"{val:,}" if val is not None else "FAILED: " + (panic_line(text) or "no result"))
                    + f"  (QEMU {BOOT_CPU[0]:.1f} CPU s in {secs:.1f} s"
                    + (f"; threads on vCPUs {' '.join(hex(m) for m in masks)}" if n > 1 and masks else "") + ")")
    table = []
    table.append(f"bench_malloc_thread in ArceOS (QEMU TCG, SMP={SMP}, {MEM}), total iterations in "
                 f"{args.seconds:g} s, median of {args.runs} (alternated; host load average "
                 f"{os.getloadavg()[0]:.1f} at the end):\n")
    table.append("| axlibc malloc | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}" for n in threads) + " |")
    table.append("|---|" + "---|" * len(threads))
    med = {}
    for v in variants:
        cells = []
        for n in threads:
            ok = [c for c in counts[(v, n)] if c is not None]
            med[(v, n)] = statistics.median(ok) if len(ok) == len(counts[(v, n)]) else None
            cells.append(f"{med[(v, n)] / 1e6:.1f}M" if med[(v, n)] else "failed")
        table.append(f"| {VARIANTS[v][2]} | " + " | ".join(cells) + " |")
    ratio = [f"{med[('mirs', n)] / med[('stock', n)]:.2f}x" if med[("mirs", n)] and med[("stock", n)] else "-"
             for n in threads]
    table.append("| mirs / stock | " + " | ".join(ratio) + " |")
    if med[("mirs", 1)] and med[("mirs", 2)]:
        table.append(f"\nmirs 2 threads / mirs 1 thread: {med[('mirs', 2)] / med[('mirs', 1)]:.2f}x")
    table.append("\nQEMU CPU seconds per wall second (median; 2.0 = both vCPUs busy all the time): "
                 + ", ".join(f"{v} {n}T {statistics.median(cpu[(v, n)]):.2f}" for v in variants for n in threads))
    # The host is shared: a multi-threaded run only shows scaling when QEMU
    # got both host cores (about 1.9 CPU seconds per second including boot).
    both = []
    for v in variants:
        for n in threads[1:]:
            vals = [c for c, r in zip(counts[(v, n)], cpu[(v, n)]) if c is not None and r >= 1.7]
            if vals:
                both.append(f"{v} {n}T {statistics.median(vals) / 1e6:.1f}M ({len(vals)}/{args.runs} runs)")
            else:
                both.append(f"{v} {n}T none of {args.runs} runs")
    table.append("Runs in which QEMU had both host cores (>= 1.7 CPU s per s), median: " + ", ".join(both))
    table.append("Runs whose threads all stayed on one vCPU (ArceOS placed them on one run queue): "
                 + ", ".join(f"{v} {n}T {one_cpu[(v, n)]}/{args.runs}" for v in variants for n in threads if n > 1))
    text = "\n".join(table) + "\n"
    (WORK / "bench.md").write_text(text)
    log("\n" + text + "(also in target/arceos/bench.md)")
    return 0 if all(med.values()) else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("test")
    t.add_argument("apps", nargs="*", help="APP or APP:VARIANT (apps: api, stress; variants: stock, mirs, mirs-static)")
    b = sub.add_parser("bench")
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    sys.exit(cmd_test(args) if args.cmd == "test" else cmd_bench(args))


if __name__ == "__main__":
    main()
