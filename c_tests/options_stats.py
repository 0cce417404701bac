#!/usr/bin/env python3
"""Options and statistics (make test-c): c_tests/test_options.c linked with
LIBDIR/libmirs.a, and python3 itself under LD_PRELOAD=LIBDIR/libmirs.so.

- every option, set by its MIRS_* variable and by mirs_option_set, changes
  what the program does (statistics at exit, warnings, abort, purging,
  JSON at exit, the warning cap); the defaults; EINVAL for bad API values;
- a bad environment value prints one warning and keeps the default;
- mirs_stats_json parses (json module) and its live bytes grow by exactly
  the usable sizes the program allocated and return when it frees them;
- MIRS_STATS_JSON=1 on a threaded python3 prints JSON that parses.

Usage: c_tests/options_stats.py [LIBDIR]   (default target/release)
Prints "N passed, N failed"; exit status 0 iff nothing failed.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBDIR = os.path.join(ROOT, sys.argv[1] if len(sys.argv) > 1 else "target/release")
BUILD = os.path.join(ROOT, "target", "c_tests")
PROG = os.path.join(BUILD, "test_options")
EINVAL = 22
SIGABRT_RC = -6

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}" + (f": {detail}" if detail else ""))


def run(args, env=None, prog=PROG):
    e = {k: v for k, v in os.environ.items() if not k.startswith("MIRS_")}
    e.update(env or {})
    p = subprocess.run([prog] + args, env=e, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def options(env=None, args=()):
    rc, out, err = run(list(args) + ["get"], env)
    vals = {}
    for line in out.splitlines():
        if line.startswith("opt "):
            n, v = line[4:].split(" = ")
            vals[int(n)] = int(v)
    return vals, err


def warnings(err):
    return [l for l in err.splitlines() if l.startswith("mirs: warning:")]


def report_lines(err):
    """Error report lines (invalid frees), not the suppression notices."""
    return [l for l in err.splitlines() if l.startswith("mirs: free(): invalid pointer")]


def purged(env=None, args=()):
    rc, out, err = run(list(args) + ["purge"], env)
    line = [l for l in out.splitlines() if l.startswith("purged ")]
    return int(line[0].split()[1]) if line else None


def json_lines(text):
    return [l for l in text.splitlines() if l.startswith('{"version"')]


def main():
    os.makedirs(BUILD, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    build = subprocess.run(
        [cc, "-O2", "-Wall", "-pthread", f"-I{ROOT}/include", "-o", PROG,
         os.path.join(ROOT, "c_tests", "test_options.c"), os.path.join(LIBDIR, "libmirs.a"), "-lpthread"],
        capture_output=True, text=True)
    if build.returncode != 0:
        print(build.stderr)
        check(False, "build of test_options")
        return

    # One documented table: every option of the header is in the README,
    # the man page and src/support/options.rs, under its enum name and its variable.
    import re
    header = open(os.path.join(ROOT, "include", "mirs.h")).read()
    names = re.findall(r"MIRS_OPTION_([A-Z_]+) = ", header)
    check(len(names) == 7, "mirs_option_t in the header", str(names))
    for doc in ["README.md", "man/mirs.3", "src/support/options.rs"]:
        text = open(os.path.join(ROOT, doc)).read().replace("\\", "")
        missing = [n for n in names if f"MIRS_{n}" not in text or (doc != "src/support/options.rs" and f"MIRS_OPTION_{n}" not in text)]
        check(not missing, f"{doc} documents every option", str(missing))

    # Defaults, and the environment.
    vals, err = options()
    check(vals == {0: 0, 1: 1, 2: 0, 3: 10, 4: 0, 5: 100, 6: 1, 7: -1}, "defaults", str(vals))
    vals, err = options({"MIRS_SHOW_STATS": "1", "MIRS_VERBOSE": "off", "MIRS_ABORT_ON_ERROR": "no",
                         "MIRS_PURGE_DELAY": "25", "MIRS_STATS_JSON": "TRUE", "MIRS_MAX_WARNINGS": "7",
                         "MIRS_HUGE_PAGES": "off"})
    check([vals.get(i) for i in range(7)] == [1, 0, 0, 25, 1, 7, 0], "every option from the environment", str(vals))

    # A bad value: one warning, the default kept.
    for var, opt, default in [("MIRS_PURGE_DELAY", 3, 10), ("MIRS_VERBOSE", 1, 1), ("MIRS_MAX_WARNINGS", 5, 100)]:
        vals, err = options({var: "abc"})
        w = warnings(err)
        check(len(w) == 1 and var in w[0] and '"abc"' in w[0], f"{var}=abc prints one warning", err)
        check(vals.get(opt) == default, f"{var}=abc keeps the default", str(vals))
    vals, err = options({"MIRS_PURGE_DELAY": "99999999999"})
    check(len(warnings(err)) == 1 and vals.get(3) == 10, "MIRS_PURGE_DELAY out of range", err)

    # The API: accepted values, EINVAL for the rest.
    rc, out, err = run(["set", "3", "-1", "set", "0", "2", "set", "99", "1", "set", "-1", "0", "set", "5", "3", "get"])
    results = [int(l.split(" -> ")[1]) for l in out.splitlines() if l.startswith("set ")]
    check(results == [EINVAL, EINVAL, EINVAL, EINVAL, 0], "mirs_option_set results", out)
    check("opt 3 = 10" in out and "opt 0 = 0" in out and "opt 5 = 3" in out, "rejected values change nothing", out)

    # Each option changes behaviour, by environment and by API.
    ways = {
        "env": lambda var, value, opt: ({var: str(value)}, []),
        "api": lambda var, value, opt: ({}, ["set", str(opt), str(value)]),
    }
    for way, how in ways.items():
        env, args = how("MIRS_SHOW_STATS", 1, 0)
        rc, out, err = run(args + ["invalid", "0"], env)
        check("mirs: statistics" in err and "to 1 thread," in err, f"SHOW_STATS ({way}) prints the table at exit", err[-300:])

        env, args = how("MIRS_VERBOSE", 0, 1)
        rc, out, err = run(args + ["invalid", "3"], env)
        check(report_lines(err) == [] and rc == 0, f"VERBOSE=0 ({way}) silences the error reports", err)

        env, args = how("MIRS_ABORT_ON_ERROR", 1, 2)
        rc, out, err = run(args + ["invalid", "1"], env)
        check(rc == SIGABRT_RC and ": aborting (MIRS_ABORT_ON_ERROR=1)" in err, f"ABORT_ON_ERROR ({way}) aborts",
              f"rc {rc} {err}")

        env, args = how("MIRS_PURGE_DELAY", 0, 3)
        now = purged(env, args)
        env, args = how("MIRS_PURGE_DELAY", 1000000000, 3)
        never = purged(env, args)
        check(now is not None and now > 0 and never == 0, f"PURGE_DELAY ({way}) 0 purges, 10^9 keeps", f"{now} {never}")

        env, args = how("MIRS_STATS_JSON", 1, 4)
        rc, out, err = run(args + ["invalid", "0"], env)
        lines = json_lines(err)
        try:
            ok = len(lines) == 1 and json.loads(lines[0])["threads"]["total"] >= 1
        except ValueError as e:
            ok = False
            err += str(e)
        check(ok, f"STATS_JSON ({way}) prints JSON at exit", err[-300:])

        env, args = how("MIRS_MAX_WARNINGS", 2, 5)
        rc, out, err = run(args + ["invalid", "5"], env)
        check(len(report_lines(err)) == 2 and "further error reports suppressed" in err,
              f"MAX_WARNINGS ({way}) caps the burst of reports", err)

        env, args = how("MIRS_HUGE_PAGES", 0, 6)
        rc, out, err = run(args + ["huge"], env)
        check(rc == 0 and "hugepage advice 0" in out, f"HUGE_PAGES=0 ({way}) gives no huge-page advice", out + err)
    # By default a big block asks for huge pages (where the kernel has them).
    if os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"):
        rc, out, err = run(["huge"])
        check(rc == 0 and "hugepage advice 1" in out, "by default an 8 MiB block's pages are advised huge", out + err)
    rc, out, err = run(["invalid", "3"])
    check(rc == 0 and len(report_lines(err)) == 3 and "statistics" not in err and not json_lines(err),
          "by default: one report per invalid free, no statistics", err)

    # Live bytes in the JSON match what was allocated.
    rc, out, err = run(["live"])
    reports = [json.loads(l[5:]) for l in out.splitlines() if l.startswith("json ")]
    alloc = [int(l.split()[1]) for l in out.splitlines() if l.startswith("allocated ")]
    if rc != 0 or len(reports) != 3 or len(alloc) != 1:
        check(False, "live: three JSON reports", out + err)
    else:
        before, during, after = (r["live_bytes"] for r in reports)
        check(during - before == alloc[0], "live bytes grow by the usable sizes allocated",
              f"{before} -> {during} (+{during - before}), allocated {alloc[0]}")
        check(after == before, "live bytes return when freed", f"{before} -> {after}")
        check(all(r["other_threads_page_bytes"] == 0 for r in reports), "single thread: every page read")
        check(all(r["page_bytes"]["current"] <= r["committed_bytes"] <= r["reserved_bytes"]["current"]
                  for r in reports), "page bytes <= committed <= reserved",
              str([(r["page_bytes"]["current"], r["committed_bytes"], r["reserved_bytes"]["current"]) for r in reports]))
        sizes = reports[1]["size_classes"]
        check(sum(c["live_bytes"] for c in sizes) + reports[1]["singleton_bytes"]["current"] == during,
              "size classes add up to live bytes")

    # A real threaded program: python3 under LD_PRELOAD with MIRS_STATS_JSON=1.
    # The threads hold their data while the main thread takes a report
    # (mirs_stats_json through ctypes), then exit; at exit MIRS_STATS_JSON prints another.
    script = """
import ctypes, threading
held, done = threading.Barrier(9), threading.Event()
def work(n):
    keep = [bytes(100 + (i * n) % 2000) for i in range(20000)]
    held.wait(); done.wait()
ts = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
[t.start() for t in ts]
held.wait()
data = [str(i) * 10 for i in range(100000)]
buf = ctypes.create_string_buffer(1 << 16)
n = ctypes.CDLL(None).mirs_stats_json(buf, len(buf))
print(buf.value.decode(), end="")
done.set(); [t.join() for t in ts]
"""
    e = {k: v for k, v in os.environ.items() if not k.startswith("MIRS_")}
    e.update(LD_PRELOAD=os.path.join(LIBDIR, "libmirs.so"), MIRS_STATS_JSON="1")
    p = subprocess.run([sys.executable, "-c", script], env=e, capture_output=True, text=True, timeout=300)
    lines = json_lines(p.stdout) + json_lines(p.stderr)
    try:
        r, at_exit = json.loads(lines[0]), json.loads(lines[-1])
        ok = (p.returncode == 0 and len(lines) == 2 and r["threads"]["current"] == 9
              and r["live_bytes"] > 1000000 and r["other_threads_page_bytes"] > 1000000
              and at_exit["threads"]["total"] >= 9)
    except (ValueError, IndexError, KeyError) as ex:
        ok = False
        r = str(ex)
    check(ok, "python3 with 8 threads: MIRS_STATS_JSON=1 parses", str(r)[:500])
    if ok:
        sample = os.path.join(BUILD, "python_threads_stats.json")
        with open(sample, "w") as f:
            f.write(lines[0] + "\n")
        print(f"options_stats: python3 with 8 threads: live {r['live_bytes']} B (main thread), "
              f"{r['other_threads_page_bytes']} B in the other threads' pages, "
              f"{r['page_bytes']['current']} B in pages; JSON in {os.path.relpath(sample, ROOT)}")


main()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
