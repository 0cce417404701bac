#!/usr/bin/env python3
"""Which module of the mirs crate uses which (from `crate::x` paths in the
sources, tests excluded), and whether the graph has a cycle.

Usage: tools/module_graph.py [--dot]   (from the repository root)
Prints one line per module: `module -> used modules`, then the cycles found
(strongly connected components of more than one module), and exits 1 if
there is any. Submodules count as their parent (`c_api::prefixed` is
`c_api`, `platform::hosted` is `platform`); `thread_table.rs` is `thread`.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SKIP = {"tests.rs", "tests_loom.rs", "tests_embedded.rs", "test_api.rs", "lib.rs", "panic.rs"}
ALIAS = {"thread_table": "thread", "embedded_memory": "platform"}


def module_of(path):
    rel = os.path.relpath(path, ROOT)
    parts = rel[:-3].split(os.sep)
    if parts[0] == "tests":
        return None
    name = parts[0]
    return ALIAS.get(name, name)


def strip_tests(text):
    # Drop `#[cfg(test)] mod tests { ... }` blocks (brace matching).
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\((?:all\()?test[^\]]*\]\s*mod \w+ \{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 0, m.end() - 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1
    out.append(text[i:])
    return "".join(out)


def main():
    graph = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs") or f in SKIP:
                continue
            path = os.path.join(dirpath, f)
            mod = module_of(path)
            if mod is None:
                continue
            text = strip_tests(open(path).read())
            text = re.sub(r"//.*", "", text)
            uses = set()
            for m in re.finditer(r"crate::(\w+)", text):
                uses.add(ALIAS.get(m.group(1), m.group(1)))
            for m in re.finditer(r"use crate::\{([^}]*)\}", text, re.S):
                for item in re.findall(r"(\w+)(?:::|\s*[,}]|$)", m.group(1)):
                    uses.add(ALIAS.get(item, item))
            uses.discard(mod)
            graph.setdefault(mod, set()).update(uses)
    mods = set(graph)
    for m in graph:
        graph[m] &= mods
    if "--dot" in sys.argv:
        print("digraph mirs {")
        for m in sorted(graph):
            for u in sorted(graph[m]):
                print(f'  "{m}" -> "{u}";')
        print("}")
        return 0
    for m in sorted(graph):
        print(f"{m:13} -> {', '.join(sorted(graph[m])) or '-'}")
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    if sccs:
        for c in sccs:
            print("cycle:", " <-> ".join(c))
        return 1
    print("no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
