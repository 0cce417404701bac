#!/usr/bin/env python3
"""The layers of the mirs crate, and the check that the code keeps them.

Usage (from anywhere):
  tools/module_graph.py           print every module with the modules it uses,
                                  check, exit 1 on any violation
  tools/module_graph.py --dot     the graph in Graphviz dot
  tools/module_graph.py --write   rewrite the generated layer tables in
                                  docs/design.md and src/lib.rs from LAYERS

LAYERS below is the one written order, bottom to top: a module may use only
modules listed before it (a parent module, which declares its children, is
listed after them; lib.rs, the crate root, is last). Every source file is a
module here (src/a/b.rs is `a::b`, src/a/mod.rs is `a`, a `#[path]` module
by its declared name); every edge is seen: `crate::`, `$crate::`, `super::`
and `self::` paths (use trees expanded), paths through a child module's
name, and `mod` declarations. No module stands for another. Test code
(src/tests/, `#[cfg(test)] mod ... { }` blocks) is not part of the graph.

It fails when a module uses one listed after it (an upward edge, which
includes every cycle), when a source file is not in LAYERS or LAYERS names
a module with no file, and when the layer tables in docs/design.md or
src/lib.rs differ from what LAYERS generates (`--write` regenerates them).
"""
import os
import re
import sys

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SRC = os.path.join(REPO, "src")
ROOT = "lib"

# (folder, modules bottom to top, what lives there): the written order.
LAYERS = [
    ("base/", ["base::constants", "base::address", "base::size_class", "base::version", "base"],
     "sizes tied together at compile time, address packing, size classes, the version"),
    ("platform/", ["platform::common", "platform::config", "platform::hosted", "platform::embedded::memory",
                   "platform::embedded", "platform"],
     "the declared contract (mod.rs) and its two backends: memory, time, thread id, "
     "output, errno, thread-exit/fork callbacks; no heap"),
    ("lockfree/", ["lockfree::sync", "lockfree::block", "lockfree::thread_free",
                   "lockfree::delayed", "lockfree::tagged_stack", "lockfree"],
     "what other threads touch: atomics (loom), free-list links, thread_free, "
     "delayed free, the pool stack; loom runs these as they are"),
    ("support/", ["support::options", "support::output", "support::stats", "support"],
     "MIRS_* options, printing (fixed buffer, write(2)), statistics counters"),
    ("mem/", ["mem::page", "mem::page_map", "mem::chunk", "mem::chunk_map",
              "mem::arena::directory", "mem::arena::state", "mem::arena::chunks", "mem::arena::huge_cache",
              "mem::arena::region", "mem::arena::trim", "mem::arena::lock", "mem::arena::span", "mem::arena::huge",
              "mem::arena::abandoned", "mem::arena::purge", "mem::arena", "mem"],
     "page: a page's three free lists (free, local_free, atomic thread_free) "
     "and its owner; page_map: each slice's page header (free's one lookup); "
     "chunk, chunk_map: the chunk header (page headers, slice table), which "
     "chunk-sized regions are chunks; arena: spans of slices, singletons and "
     "the huge cache, abandoned pages, purge (one lock, taken once per page, "
     "no system call while it is held)"),
    ("heap/", ["heap::page_queue", "heap"],
     "the thread-local heap: direct pages, bin queues, full queue, delayed "
     "frees, retire, collect, abandon (the page layer knows a heap only as "
     "an opaque OwnerHeap)"),
    ("thread/", ["thread::table", "thread"],
     "the thread's heap slot, the heap pool, lazy process init, thread exit, "
     "the exiting heap of late key destructors, fork-child reset, reaping dead "
     "threads' heaps (table), the one out-of-memory recover()"),
    ("entry/", ["entry::lookup", "entry::free", "entry::alloc", "entry"],
     "lookup: the one pointer-resolution routine and validation; free and "
     "its slow path; malloc, zalloc, realloc, aligned, usable_size, owns"),
    ("src/", ["report", "process", "global_alloc", "c_api::prefixed", "c_api::libc_names",
              "c_api::cxx_new", "c_api::embedder", "c_api", "panic", ROOT],
     "the top: the statistics report (text and JSON; live bytes read from "
     "the caller's heap and the abandoned pages), process load/exit hooks, "
     "GlobalAlloc, the C API (mirs_*, libc names, C++ new/delete, embedder "
     "API), the panic "
     "handler; lib.rs, the table of contents"),
]

ORDER = [m for _, mods, _ in LAYERS for m in mods]
POS = {m: i for i, m in enumerate(ORDER)}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def block_end(text, open_brace):
    depth = 0
    for j in range(open_brace, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def strip_tests(text):
    """Drop `#[cfg(test)]`/`#[cfg(all(test, ...))]` modules, inline or not."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\((?:all\()?test\b[^\]]*\]\s*(?:pub(?:\([^)]*\))?\s+)?mod \w+\s*([{;])", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        i = m.end() if m.group(1) == ";" else block_end(text, m.end() - 1) + 1
    out.append(text[i:])
    return "".join(out)


def modules():
    """{module: file} for every source file outside src/tests/."""
    found = {}

    # The `#[path]` attribute is read raw (strip_comments blanks strings).
    def walk_raw(path, name):
        found[name] = path
        raw = re.sub(r"//[^\n]*", "", open(path).read())
        raw = strip_tests(raw)
        here = os.path.dirname(path) if path.endswith(("mod.rs", "lib.rs")) else path[:-3]
        for m in re.finditer(r"(?:#\[path\s*=\s*\"([^\"]*)\"\]\s*)?(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod (\w+);", raw):
            child = m.group(2)
            if child == "tests" and name == ROOT:
                continue
            if m.group(1):
                cpath = os.path.join(os.path.dirname(path), m.group(1))
            elif os.path.exists(os.path.join(here, child + ".rs")):
                cpath = os.path.join(here, child + ".rs")
            else:
                cpath = os.path.join(here, child, "mod.rs")
            walk_raw(cpath, child if name == ROOT else f"{name}::{child}")

    walk_raw(os.path.join(SRC, "lib.rs"), ROOT)
    return found


def split_top(s):
    """Split a use-tree list at top-level commas."""
    parts, depth, cur = [], 0, ""
    for c in s:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def expand(tree, prefix=()):
    """All paths of a use tree (`a::{b, c::{d, e}}` -> a::b, a::c::d, a::c::e)."""
    tree = re.sub(r"\s+as\s+\w+$", "", tree.strip())
    m = re.match(r"^((?:\$?\w+\s*::\s*)*)\{(.*)\}$", tree, re.S)
    if m:
        head = tuple(x.strip() for x in m.group(1).split("::") if x.strip())
        paths = []
        for part in split_top(m.group(2)):
            paths += expand(part, prefix + head)
        return paths
    return [prefix + tuple(x.strip() for x in tree.split("::") if x.strip())]


def resolve(mod, segs, known, children):
    """The module a path starting in `mod` names (longest known prefix)."""
    cur = [] if mod == ROOT else mod.split("::")
    first = segs[0]
    if first in ("crate", "$crate"):
        base, rest = [], segs[1:]
    elif first == "super":
        base, rest = cur, segs
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif first == "self":
        base, rest = cur, segs[1:]
    elif first in children.get(mod, ()):
        base, rest = cur, segs
    else:
        return None
    best = ROOT if not base else "::".join(base)
    path = list(base)
    for s in rest:
        path.append(s)
        name = "::".join(path)
        if name in known:
            best = name
        else:
            break
    return best


def inline_mod_ranges(text):
    ranges = []
    for m in re.finditer(r"\bmod \w+\s*\{", text):
        ranges.append((m.end(), block_end(text, m.end() - 1)))
    return ranges


def edges(mod, path, known, children):
    text = strip_tests(strip_comments(open(path).read()))
    uses = set()
    ranges = inline_mod_ranges(text)

    def add(segs, pos):
        depth = sum(1 for a, b in ranges if a <= pos <= b)
        if segs and segs[0] == "super" and depth:
            # `super` inside an inline module names this file's module.
            segs = segs[1:] if depth == 1 else segs[depth:]
            if not segs or segs[0] == "super":
                return
            segs = ("self",) + tuple(segs)
        target = resolve(mod, segs, known, children)
        if target is not None and target != mod:
            uses.add(target)

    # use trees (pub use, pub(crate) use included)
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for p in expand(m.group(1)):
            add(p, m.start())
    # paths in code: crate::a::b, super::x, self::x, child::x
    kids = "|".join(sorted(children.get(mod, ()), key=len, reverse=True))
    heads = r"\$?crate|super|self" + ("|" + kids if kids else "")
    for m in re.finditer(r"(?<![\w:])((?:" + heads + r")(?:\s*::\s*\w+)+)", text):
        add(tuple(x.strip() for x in m.group(1).split("::")), m.start())
    # mod declarations: the parent uses its children
    for c in children.get(mod, ()):
        uses.add(c if mod == ROOT else f"{mod}::{c}")
    return uses


def layer_names(folder, mods):
    """A layer's modules, top to bottom, as short names; a module's children
    in parentheses after it; a folder's mod.rs that only declares its
    children left out."""
    out = []
    for m in reversed(mods):
        if m == ROOT:
            out.append("lib.rs")
            continue
        depth = m.count("::") - (0 if folder == "src/" else 1)
        if depth < 0:
            # the layer's own mod.rs: listed when it holds code, not only `mod`s
            src = open(modules()[m]).read()
            if re.search(r"\bfn \w+", strip_tests(strip_comments(src))):
                out.append("mod.rs")
            continue
        if depth > 0:
            continue
        kids = [k.rsplit("::", 1)[-1] for k in reversed(mods) if k.startswith(m + "::")]
        name = m.rsplit("::", 1)[-1]
        out.append(f"{name} ({', '.join(kids)})" if kids else name)
    return ", ".join(out)


def generated_table(style):
    if style == "design":
        lines = ["```text", "top (each module uses only modules below it; within a layer, those after it)"]
        for folder, mods, what in reversed(LAYERS):
            lines.append(" |")
            first, *rest = wrap(layer_names(folder, mods), 66)
            lines.append(f"{folder:10} {first}")
            for w in rest:
                lines.append(f" |{'':9} {w}")
            for w in wrap(what, 66):
                lines.append(f" |{'':9}   {w}")
        lines += ["bottom", "```"]
        return lines
    lines = ["| layer | modules, top to bottom | what lives there |",
             "|-------|------------------------|------------------|"]
    for folder, mods, what in reversed(LAYERS):
        lines.append(f"| `{folder}` | {layer_names(folder, mods)} | {what} |")
    return ["//! " + l for l in lines]


def wrap(s, width):
    out, cur = [], ""
    for w in s.split():
        if cur and len(cur) + 1 + len(w) > width:
            out.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    return out + [cur]


TARGETS = [
    (os.path.join(REPO, "docs", "design.md"), "design",
     "<!-- layers: generated from tools/module_graph.py (LAYERS) by --write; make lint compares -->",
     "<!-- /layers -->"),
    (os.path.join(SRC, "lib.rs"), "lib",
     "//! <!-- layers: generated from tools/module_graph.py (LAYERS) by --write; make lint compares -->",
     "//! <!-- /layers -->"),
]


def check_tables(write):
    bad = []
    for path, style, begin, end in TARGETS:
        text = open(path).read()
        if begin not in text or end not in text:
            bad.append(f"{os.path.relpath(path, REPO)}: no generated layer table ({begin})")
            continue
        i = text.index(begin) + len(begin)
        j = text.index(end)
        want = "\n" + "\n".join(generated_table(style)) + "\n"
        if text[i:j] != want:
            if write:
                open(path, "w").write(text[:i] + want + text[j:])
                print(f"{os.path.relpath(path, REPO)}: layer table rewritten")
            else:
                bad.append(f"{os.path.relpath(path, REPO)}: layer table differs from LAYERS "
                           "(tools/module_graph.py --write)")
    return bad


def main():
    found = modules()
    known = set(found)
    children = {}
    for m in known:
        if m == ROOT:
            continue
        parent = m.rsplit("::", 1)[0] if "::" in m else ROOT
        children.setdefault(parent, set()).add(m.rsplit("::", 1)[-1])
    graph = {m: edges(m, found[m], known, children) for m in known}
    problems = []
    for m in sorted(known - set(ORDER)):
        problems.append(f"{m} ({os.path.relpath(found[m], REPO)}) is in no layer (LAYERS)")
    for m in ORDER:
        if m not in known:
            problems.append(f"LAYERS names {m}, which has no source file")
    if "--dot" in sys.argv:
        print("digraph mirs {")
        for m in sorted(graph):
            for u in sorted(graph[m]):
                print(f'  "{m}" -> "{u}";')
        print("}")
        return 0
    problems += check_tables("--write" in sys.argv)
    width = max(len(m) for m in ORDER)
    for folder, mods, _ in reversed(LAYERS):
        print(f"[{folder}]")
        for m in reversed(mods):
            if m not in graph:
                continue
            ups = sorted(u for u in graph[m] if u in POS and POS[u] >= POS.get(m, -1))
            downs = sorted((u for u in graph[m] if u not in ups), key=lambda u: -POS.get(u, -1))
            line = f"  {m:{width}} -> {', '.join(downs) or '-'}"
            if ups:
                line += f"   UPWARD: {', '.join(ups)}"
                problems += [f"upward edge: {m} -> {u}" for u in ups]
            print(line)
    edges_n = sum(len(v) for v in graph.values())
    if problems:
        for p in problems:
            print("FAIL:", p)
        return 1
    print(f"{len(graph)} modules, {edges_n} edges, every edge points down (LAYERS order)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
