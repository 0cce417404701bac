#!/usr/bin/env python3
"""The test and benchmark suites' prerequisites, checked and installed in one place.

Each prerequisite is checked by looking for exactly what its consumer loads or
runs (a command on PATH, a file in a toolchain's sysroot, the shared library
clang-sys would pick), and installed, when missing, the way the suites always
have: rustup for toolchains, targets and components; apt-get for Debian
packages (one `apt-get update` first, once per run); pip for Python modules.

  prereqs.py report [--group test|bench] [--no-install]
      one line per prerequisite: `found`, `installed` or `missing` (and what
      then skips); `make test` runs this first.
  prereqs.py ensure --suite SUITE [--optional] NAME...
      silent when everything is there; a line per install; when something is
      missing and cannot be installed: one `SKIP SUITE: <reason>` line and
      exit status 3 (the suite then exits 0), or with --optional one note
      line and status 0. `--fail` prints `FAIL SUITE: <reason>` and exits 1.
  prereqs.py check NAME... status 0 when all are there; installs and prints nothing.
  prereqs.py list          the names, what checks each, who needs it.

Names: nightly, stable, target:<triple> (on the repository's nightly),
embedded-targets, cc, pkg-config, arceos-toolchain, miri, qemu, libclang, glibc-source,
cargo-fuzz, valgrind, matplotlib, peer-tools. Python suites import this file
(`ensure()`, `Missing`).
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOGDIR = REPO / "target" / "prereqs"
# The pinned nightly ArceOS's published crates build with (the machine's newer
# nightly fails in `axio`), also the one Miri runs on (tests/miri.sh; the
# environment's MIRI_TOOLCHAIN overrides it there).
PINNED = "nightly-2026-02-25"
MIRI_TOOLCHAIN = os.environ.get("MIRI_TOOLCHAIN", PINNED)
HOST = "x86_64-unknown-linux-gnu"
EMBEDDED_TARGETS = ["x86_64-unknown-none", "riscv64gc-unknown-none-elf", "aarch64-unknown-none"]


class Missing(Exception):
    """A prerequisite is missing and could not be installed (the message says why)."""


def sh(cmd, **kw):
    """Run, capture, never raise: (returncode, stdout+stderr)."""
    try:
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=kw.pop("cwd", REPO), **kw)
    except OSError as e:
        return 127, str(e)
    return r.returncode, (r.stdout + r.stderr).strip()


def logged(cmd, log, **kw):
    """Run with output appended to `log`; True when it succeeded."""
    LOGDIR.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, cmd))}\n")
        f.flush()
        try:
            return subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT,
                                  cwd=kw.pop("cwd", REPO), **kw).returncode == 0
        except OSError as e:
            f.write(f"{e}\n")
            return False


def tail(log, n=3):
    try:
        lines = [ln for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


# ---------------------------------------------------------------- installers

APT_LOG = LOGDIR / "apt.log"
_apt_updated = [False]


def apt_install(*packages):
    """apt-get install PACKAGES (after one `apt-get update` in this process)."""
    if shutil.which("apt-get") is None:
        raise Missing(f"no apt-get to install {' '.join(packages)}")
    if os.geteuid() != 0:
        raise Missing(f"not root: apt-get install {' '.join(packages)} needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated[0]:
        if not logged(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], APT_LOG, env=env):
            raise Missing(f"apt-get update failed ({APT_LOG}: {tail(APT_LOG, 2)})")
        _apt_updated[0] = True
    if not logged(["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends", *packages], APT_LOG, env=env):
        raise Missing(f"apt-get install {' '.join(packages)} failed ({APT_LOG}: {tail(APT_LOG, 2)})")
    return f"apt-get install {' '.join(packages)}"


RUSTUP_LOG = LOGDIR / "rustup.log"


def rustup(*args):
    if shutil.which("rustup") is None:
        raise Missing("rustup is not installed")
    if not logged(["rustup", *args], RUSTUP_LOG):
        raise Missing(f"rustup {' '.join(args)} failed ({RUSTUP_LOG}: {tail(RUSTUP_LOG, 2)})")
    return f"rustup {' '.join(args)}"


def toolchain_sysroot(toolchain=None):
    """The sysroot of `toolchain` (None: the repository's, from rust-toolchain.toml)."""
    cmd = ["rustc", "--print", "sysroot"] if toolchain is None else \
        ["rustup", "run", toolchain, "rustc", "--print", "sysroot"]
    rc, out = sh(cmd)
    return Path(out.splitlines()[-1]) if rc == 0 and out else None


def rustup_toolchain(toolchain, targets=(), components=()):
    """Install `toolchain` (minimal profile) or add the targets and components it lacks."""
    if toolchain_sysroot(toolchain) is None:
        args = ["toolchain", "install", toolchain, "--profile", "minimal"]
        for t in targets:
            args += ["--target", t]
        if components:
            args += ["--component", ",".join(components)]
        return rustup(*args)
    done = []
    if targets:
        done.append(rustup("target", "add", "--toolchain", toolchain, *targets))
    if components:
        done.append(rustup("component", "add", "--toolchain", toolchain, *components))
    return "; ".join(done)


# ---------------------------------------------------------------- checks
# Each check returns a short description of what it found, or raises Missing.


def core_rlib(sysroot, target):
    """The target's libcore, which rustc loads for `--target TARGET`."""
    found = glob.glob(str(sysroot / "lib/rustlib" / target / "lib/libcore-*.rlib"))
    if not found:
        raise Missing(f"no {target} standard library in {sysroot} (rustup target add {target})")
    return found[0]


def check_nightly():
    rc, out = sh(["rustc", "--version"])
    if rc != 0:
        raise Missing("the repository's toolchain (rust-toolchain.toml) does not run: " + out[-200:])
    missing = [tool for tool in ("fmt", "clippy") if sh(["cargo", tool, "--version"])[0] != 0]
    if missing:
        raise Missing(f"cargo {' and cargo '.join(missing)} missing (rustup component add rustfmt clippy)")
    return f"{out}, cargo fmt, cargo clippy"


def install_nightly():
    if sh(["rustc", "--version"])[0] != 0:
        # No argument: the toolchain rust-toolchain.toml names, as rustup's
        # own first-use install would (off where RUSTUP_AUTO_INSTALL=0).
        return rustup("toolchain", "install")
    return rustup("component", "add", "rustfmt", "clippy")


def check_stable():
    rc, out = sh(["cargo", "+stable", "--version"])
    if rc != 0:
        raise Missing("`cargo +stable` does not run (no stable toolchain)")
    if sh(["cargo", "+stable", "clippy", "--version"])[0] != 0:
        raise Missing("`cargo +stable clippy` missing (rustup component add --toolchain stable clippy)")
    return f"{out}, cargo +stable clippy"


def install_stable():
    return rustup_toolchain("stable", components=["clippy"])


def check_target(triple):
    sysroot = toolchain_sysroot()
    if sysroot is None:
        raise Missing("the repository's toolchain does not run")
    return core_rlib(sysroot, triple)


def install_target(triple):
    return rustup("target", "add", triple)


def check_embedded_targets():
    for t in EMBEDDED_TARGETS:
        check_target(t)
    return ", ".join(EMBEDDED_TARGETS)


def install_embedded_targets():
    return rustup("target", "add", *EMBEDDED_TARGETS)


def check_commands(*cmds):
    missing = [c for c in cmds if shutil.which(c) is None]
    if missing:
        raise Missing(f"{', '.join(missing)} not on PATH")
    return ", ".join(shutil.which(c) for c in cmds)


def check_arceos_toolchain():
    sysroot = toolchain_sysroot(PINNED)
    if sysroot is None:
        raise Missing(f"no {PINNED} toolchain")
    core_rlib(sysroot, "x86_64-unknown-none")
    lld = sysroot / "lib/rustlib" / HOST / "bin/rust-lld"
    if not lld.is_file():
        raise Missing(f"no {lld}")
    return f"{PINNED} with x86_64-unknown-none, {lld}"


def install_arceos_toolchain():
    return rustup_toolchain(PINNED, targets=["x86_64-unknown-none"])


def arceos_lld():
    """The rust-lld the ArceOS harness links with (after check_arceos_toolchain)."""
    return toolchain_sysroot(PINNED) / "lib/rustlib" / HOST / "bin/rust-lld"


def check_miri():
    sysroot = toolchain_sysroot(MIRI_TOOLCHAIN)
    if sysroot is None:
        raise Missing(f"no {MIRI_TOOLCHAIN} toolchain")
    rc, out = sh(["cargo", f"+{MIRI_TOOLCHAIN}", "miri", "--version"])
    if rc != 0:
        raise Missing(f"`cargo +{MIRI_TOOLCHAIN} miri` does not run")
    src = sysroot / "lib/rustlib/src/rust/library"
    if not src.is_dir():
        raise Missing(f"no rust-src ({src})")
    return f"{out} on {MIRI_TOOLCHAIN}, {src}"


def install_miri():
    return rustup_toolchain(MIRI_TOOLCHAIN, components=["miri", "rust-src"])


def libclang_candidates():
    """The libclang shared libraries clang-sys (bindgen's loader) accepts, in
    the places it looks: LIBCLANG_PATH alone when set; else `llvm-config
    --prefix`'s bin/lib/lib64, LD_LIBRARY_PATH, then /usr/local/llvm*/lib*,
    /usr/local/lib*[/*[/*]], /usr/lib*[/*[/*]]. Names: libclang.so,
    libclang-*.so, libclang.so.*, libclang-*.so.*, but never libclang-cpp
    (clang-sys skips any name with "-cpp."); 64-bit ELF only."""
    names = ["libclang.so", "libclang-*.so", "libclang.so.*", "libclang-*.so.*"]
    env = os.environ.get("LIBCLANG_PATH")
    if env:
        p = Path(env)
        dirs = [p.parent] if p.is_file() else [p]
    else:
        dirs = []
        llvm_config = shutil.which("llvm-config")
        if llvm_config:
            rc, out = sh([llvm_config, "--prefix"])
            if rc == 0 and out:
                prefix = Path(out.splitlines()[0])
                dirs += [prefix / "bin", prefix / "lib", prefix / "lib64"]
        dirs += [Path(d) for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
        for pattern in ["/usr/local/llvm*/lib*", "/usr/local/lib*/*/*", "/usr/local/lib*/*", "/usr/local/lib*",
                        "/usr/lib*/*/*", "/usr/lib*/*", "/usr/lib*"]:
            dirs += [Path(d) for d in sorted(glob.glob(pattern)) if os.path.isdir(d)]
    found = []
    for d in dirs:
        for name in names:
            for f in sorted(glob.glob(os.path.join(glob.escape(str(d)), name))):
                if "-cpp." in os.path.basename(f) or f in found:
                    continue
                try:
                    with open(f, "rb") as fh:
                        head = fh.read(5)
                except OSError:
                    continue
                if head[:4] == b"\x7fELF" and head[4] == 2:
                    found.append(f)
    return found


def check_libclang():
    found = libclang_candidates()
    if not found:
        where = f"in LIBCLANG_PATH={os.environ['LIBCLANG_PATH']}" if os.environ.get("LIBCLANG_PATH") \
            else "where clang-sys looks"
        raise Missing(f"no libclang.so / libclang-<N>.so* {where} (libclang-cpp does not count)")
    return found[0]


def install_libclang():
    return apt_install("libclang-dev")


# glibc's source, for test-glibc: Debian's source package of the installed
# libc6, fetched with a private apt configuration (the system's apt sources
# are not touched), unpacked under target/glibc/src/.
GLIBC_CACHE = REPO / "target" / "glibc"


def glibc_version():
    if shutil.which("dpkg-query") is None:
        raise Missing("no dpkg-query: not a Debian system")
    rc, out = sh(["dpkg-query", "-W", "-f=${source:Version}", "libc6"])
    if rc != 0 or not out:
        raise Missing("libc6's source version is unknown to dpkg")
    return out


def glibc_srcdir():
    return GLIBC_CACHE / "src" / f"glibc-{glibc_version()}"


def check_glibc_source():
    d = glibc_srcdir()
    if not (d / ".complete").is_file():
        raise Missing(f"{d} not fetched yet")
    return str(d)


def install_glibc_source():
    version = glibc_version()
    done = []
    if shutil.which("dpkg-source") is None:
        done.append(apt_install("dpkg-dev"))
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if not keyring.is_file():
        done.append(apt_install("debian-archive-keyring"))
    codename = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    if not codename:
        raise Missing("no VERSION_CODENAME in /etc/os-release")
    apt = GLIBC_CACHE / "apt"
    for d in (apt / "lists/partial", apt / "cache/archives/partial", GLIBC_CACHE / "src/download"):
        d.mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text("".join(
        f"deb-src [signed-by={keyring}] http://deb.debian.org/{archive} {suite} main\n"
        for archive, suite in [("debian", codename), ("debian", f"{codename}-updates"),
                               ("debian-security", f"{codename}-security")]))
    opts = ["-o", f"Dir::Etc::SourceList={apt / 'sources.list'}", "-o", f"Dir::Etc::SourceParts={apt / 'none'}",
            "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt / 'cache'}",
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-q"]
    log = GLIBC_CACHE / "apt.log"
    if not logged(["apt-get", *opts, "update"], log):
        raise Missing(f"apt-get update of the deb-src lists failed (no network?), see {log}")
    if not logged(["apt-get", *opts, "source", "--download-only", f"glibc={version}"], log,
                  cwd=GLIBC_CACHE / "src/download"):
        raise Missing(f"apt-get source glibc={version} failed, see {log}")
    srcdir = glibc_srcdir()
    shutil.rmtree(srcdir, ignore_errors=True)
    if not logged(["dpkg-source", "-x", "--no-check", GLIBC_CACHE / f"src/download/glibc_{version}.dsc", srcdir],
                  log):
        raise Missing(f"dpkg-source -x failed, see {log}")
    (srcdir / ".complete").touch()
    done.append(f"apt-get source glibc={version} into {srcdir}")
    return "; ".join(done)


def check_cargo_fuzz():
    rc, out = sh(["cargo", "fuzz", "--version"])
    if rc != 0:
        raise Missing("`cargo fuzz` does not run (cargo install cargo-fuzz)")
    return out


def install_cargo_fuzz():
    log = LOGDIR / "cargo-install.log"
    if not logged(["cargo", "install", "--locked", "cargo-fuzz"], log):
        raise Missing(f"cargo install cargo-fuzz failed ({log}: {tail(log, 2)})")
    return "cargo install --locked cargo-fuzz"


def check_matplotlib():
    # What bench/run.py and bench/soak.py do: the Agg backend's pyplot.
    rc, _ = sh([sys.executable, "-c", "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot"])
    if rc != 0:
        raise Missing(f"{sys.executable} cannot import matplotlib.pyplot")
    return f"{sys.executable}: import matplotlib.pyplot"


def install_matplotlib():
    log = LOGDIR / "pip.log"
    if not logged([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], log):
        raise Missing(f"pip install matplotlib failed ({log}: {tail(log, 2)})")
    return "pip install matplotlib"


class Prereq:
    def __init__(self, name, what, needed_by, check, install=None, if_missing=None, group="test", report_installs=True):
        self.name, self.what, self.needed_by = name, what, needed_by
        self.check, self.install = check, install
        # False: `report` (make test) does not install it; `ensure` does.
        self.report_installs = report_installs
        # What happens without it (default: the suites needing it skip).
        self.if_missing = if_missing or f"{needed_by} will SKIP"
        self.group = group


PREREQS = [
    Prereq("nightly", "the repository's nightly (rust-toolchain.toml), cargo fmt, cargo clippy",
           "every suite", check_nightly, install_nightly, if_missing="make test and make lint fail"),
    Prereq("stable", "`cargo +stable`, `cargo +stable clippy`", "test-stable, lint-stable",
           check_stable, install_stable),
    Prereq("embedded-targets", "libcore of " + ", ".join(EMBEDDED_TARGETS) + " in the nightly's sysroot",
           "test-embedded's cross builds", check_embedded_targets, install_embedded_targets,
           if_missing="test-embedded skips those cross builds"),
    Prereq("cc", "`cc` and `gcc` on PATH", "test-c, test-real, test-retention, test-glibc, test-embedded, test-arceos",
           lambda: check_commands("cc", "gcc"), lambda: apt_install("gcc"),
           if_missing="the C suites fail"),
    Prereq("pkg-config", "`pkg-config` on PATH (Debian pkgconf)", "test-install",
           lambda: check_commands("pkg-config"), lambda: apt_install("pkgconf")),
    Prereq("miri", f"`cargo +{MIRI_TOOLCHAIN} miri`, rust-src in its sysroot", "test-miri", check_miri, install_miri),
    Prereq("glibc-source", "glibc's source for the installed libc6 under target/glibc/src/", "test-glibc",
           check_glibc_source, install_glibc_source),
    # make test does not build cargo-fuzz (minutes of compiling, then a
    # sanitizer build); `make fuzz` installs it.
    Prereq("cargo-fuzz", "`cargo fuzz` (make fuzz installs it: cargo install cargo-fuzz)", "test-fuzz's libFuzzer pass",
           check_cargo_fuzz, install_cargo_fuzz, report_installs=False,
           if_missing="test-fuzz runs the corpus through the deterministic driver instead"),
    Prereq("arceos-toolchain", f"{PINNED}'s x86_64-unknown-none libcore and rust-lld", "test-arceos",
           check_arceos_toolchain, install_arceos_toolchain),
    Prereq("qemu", "`qemu-system-x86_64` on PATH (Debian qemu-system-x86)", "test-arceos",
           lambda: check_commands("qemu-system-x86_64"), lambda: apt_install("qemu-system-x86")),
    Prereq("libclang", "libclang.so / libclang-<N>.so* as clang-sys finds it (Debian libclang-dev)", "test-arceos",
           check_libclang, install_libclang),
    # Benchmarks (make bench, bench-fastpath, soak).
    Prereq("valgrind", "`valgrind` on PATH", "bench-fastpath", lambda: check_commands("valgrind"),
           lambda: apt_install("valgrind"), group="bench"),
    Prereq("matplotlib", "`import matplotlib.pyplot` (Agg) in python3", "the charts of bench and soak", check_matplotlib,
           install_matplotlib, if_missing="bench and soak skip their charts", group="bench"),
    Prereq("peer-tools", "`cc`, `make`, `nm` on PATH (bench/build_peers.sh, jemalloc's build)", "bench-peers",
           lambda: check_commands("cc", "make", "nm"), lambda: apt_install("gcc", "make", "binutils"),
           if_missing="bench runs without C mimalloc and jemalloc", group="bench"),
]
BY_NAME = {p.name: p for p in PREREQS}


def lookup(name):
    if name in BY_NAME:
        return BY_NAME[name]
    if name.startswith("target:"):
        triple = name.split(":", 1)[1]
        return Prereq(name, f"libcore of {triple} in the nightly's sysroot", "the cross build",
                      lambda: check_target(triple), lambda: install_target(triple))
    raise SystemExit(f"prereqs: no prerequisite {name!r} ({', '.join(BY_NAME)}, target:<triple>)")


def settle(p, install=True, say=None):
    """('found' | 'installed', detail), or raise Missing. `say` is told
    before an install starts (installs can take minutes)."""
    try:
        return "found", p.check()
    except Missing as first:
        if p.install is None or not install:
            raise
        if say:
            say(f"installing {p.name} ({first})")
        how = p.install()
        try:
            return "installed", f"{how} -> {p.check()}"
        except Missing as e:
            raise Missing(f"{how} ran, but still {e}")


def ensure(suite, *names, log=print):
    """For a suite: install what is missing; raise Missing on the first that
    cannot be had. Prints one line per install, nothing when all is there."""
    for name in names:
        p = lookup(name)
        status, detail = settle(p, say=lambda msg: log(f"{suite}: {msg}"))
        if status == "installed":
            log(f"{suite}: installed {p.name}: {detail}")


def cmd_report(args):
    skips = []
    for p in PREREQS:
        if p.group != args.group:
            continue
        try:
            status, detail = settle(p, install=p.report_installs and not args.no_install,
                                    say=lambda msg: print(f"prereqs: {msg}", flush=True))
            print(f"prereqs: {p.name:<17} {status}: {detail}", flush=True)
        except Missing as e:
            print(f"prereqs: {p.name:<17} missing: {e}; {p.if_missing}", flush=True)
            skips.append(p.if_missing)
    if skips:
        print(f"prereqs: without what is missing: {'; '.join(skips)}")
    else:
        print(f"prereqs: all {args.group} prerequisites present")
    return 0


def cmd_ensure(args):
    try:
        ensure(args.suite, *args.names, log=lambda m: print(m, flush=True))
    except Missing as e:
        if args.optional:
            print(f"{args.suite}: {e} (going on without it)")
            return 0
        if args.fail:
            print(f"FAIL {args.suite}: {e}")
            return 1
        print(f"SKIP {args.suite}: {e}")
        return 3
    return 0


def cmd_check(args):
    """Status 0 when every named prerequisite is there (nothing installed, nothing printed)."""
    for name in args.names:
        try:
            lookup(name).check()
        except Missing:
            return 1
    return 0


def cmd_list(_args):
    for p in PREREQS:
        print(f"{p.name:<17} [{p.group}] {p.what}; needed by {p.needed_by}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--group", choices=["test", "bench"], default="test")
    r.add_argument("--no-install", action="store_true")
    e = sub.add_parser("ensure")
    e.add_argument("--suite", required=True)
    e.add_argument("--optional", action="store_true")
    e.add_argument("--fail", action="store_true")
    e.add_argument("names", nargs="+")
    c = sub.add_parser("check")
    c.add_argument("names", nargs="+")
    sub.add_parser("list")
    args = ap.parse_args()
    sys.exit({"report": cmd_report, "ensure": cmd_ensure, "check": cmd_check, "list": cmd_list}[args.cmd](args))


if __name__ == "__main__":
    main()
