#!/usr/bin/env python3
"""Switch an axlibc source tree (ArceOS ulib/axlibc, crate 0.3.0-preview.3)
from its own malloc to mirs (or to C mimalloc, the reference peer), in place.
docs/arceos.md describes each edit.

  switch_axlibc.py AXLIBC_DIR GLUE_DIR

GLUE_DIR is a glue crate of this repository: arceos-glue/ (mirs-arceos) or
arceos-glue-mimalloc/ (mimalloc-arceos); below, GLUE is its name and P the
name without `-arceos` (mirs, mimalloc).
- Cargo.toml: the dependency on GLUE, turned on by `alloc`; `multitask` and
  `tls` passed on to it; features `P-page-provider` and (when GLUE has a
  static region) `P-static-region` choose the allocator's memory, and
  (when GLUE has one) `P-v3` its version (C mimalloc v3).
- src/malloc.rs: axlibc's malloc/free (a size header before each block over
  the kernel heap) replaced by a re-export of GLUE's C functions.
- c/stdlib.c: its calloc and realloc removed (realloc reads that header).
- src/pthread.rs: pthread_create starts the routine through GLUE's
  trampoline, pthread_exit tells the allocator first.
- include/stdlib.h: posix_memalign and aligned_alloc declared; include/malloc.h
  added (memalign, malloc_usable_size).

Every edit checks that the text it changes is there, so an axlibc that has
moved on fails loudly instead of being half switched.
"""

import re
import sys
import tomllib
from pathlib import Path

MARK = "mirs-arceos"  # the glue crate's name, set by main()


def fail(msg):
    sys.exit(f"switch_axlibc: {msg}")


def add_to_feature(text, name, items):
    """Prepend `items` to the array of feature `name` in [features]."""
    m = re.search(r"(?ms)^\[features\]\n(.*?)(?=^\[|\Z)", text)
    if not m:
        fail("Cargo.toml has no [features] table")
    section = m.group(1)
    fm = re.search(rf"(?m)^{re.escape(name)} = \[", section)
    if not fm:
        fail(f"Cargo.toml has no feature `{name}`")
    quoted = "".join(f'"{i}", ' for i in items)
    if section[fm.end() :].startswith("\n"):  # a multi-line array
        quoted = quoted.rstrip()
    section = section[: fm.end()] + quoted + section[fm.end() :]
    return text[: m.start(1)] + section + text[m.end(1) :]


def add_features(text, entries):
    m = re.search(r"(?m)^\[features\]\n", text)
    lines = "".join(f"{k} = [{', '.join(f'{chr(34)}{i}{chr(34)}' for i in v)}]\n" for k, v in entries)
    return text[: m.end()] + lines + text[m.end() :]


def edit_cargo_toml(path, glue, glue_features):
    text = path.read_text()
    if MARK in text:
        fail(f"{path} already depends on {MARK}")
    prefix = MARK.removesuffix("-arceos")
    text = add_to_feature(text, "alloc", [f"dep:{MARK}"])
    text = add_to_feature(text, "multitask", [f"{MARK}?/multitask"])
    text = add_to_feature(text, "tls", [f"{MARK}?/thread-local"])
    memory = [(f"{prefix}-{f}", ["alloc", f"{MARK}/{f}"]) for f in ("page-provider", "static-region", "v3")
              if f in glue_features]
    text = add_features(text, memory)
    text += (
        f"\n[dependencies.{MARK}]\n"
        f'path = "{glue}"\n'
        "default-features = false\n"
        "optional = true\n"
    )
    cfg = tomllib.loads(text)  # still valid TOML, and says what we meant
    feats = cfg["features"]
    assert f"dep:{MARK}" in feats["alloc"] and f"{MARK}/page-provider" in feats[f"{prefix}-page-provider"]
    assert cfg["dependencies"][MARK]["path"] == str(glue)
    path.write_text(text)


def replace_once(text, old, new, what):
    if text.count(old) != 1:
        fail(f"{what}: expected exactly one `{old.strip()}`, found {text.count(old)}")
    return text.replace(old, new)


def remove_c_function(text, signature, what):
    """Delete the definition that starts with `signature` up to its closing brace."""
    start = text.find(signature)
    if start < 0 or text.find(signature, start + 1) >= 0:
        fail(f"{what}: expected one definition `{signature}`")
    open_brace = text.index("{", start)
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                end = i + 1
                while end < len(text) and text[end] == "\n":
                    end += 1
                return text[:start] + text[end:]
    fail(f"{what}: unbalanced braces after `{signature}`")


MALLOC_RS = """\
//! malloc and the other C allocation functions come from the glue crate
//! GLUE (the C names, the allocator's hooks and the page provider); see
//! mirs's docs/arceos.md. Re-exporting the two names axlibc has always
//! exported links the crate in; calloc, realloc, posix_memalign,
//! aligned_alloc, memalign and malloc_usable_size come with it.

pub use GLUE_IDENT::{free, malloc};
"""

MALLOC_H = """\
#ifndef _MALLOC_H
#define _MALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void *malloc(size_t);
void *calloc(size_t, size_t);
void *realloc(void *, size_t);
void free(void *);
int posix_memalign(void **, size_t, size_t);
void *aligned_alloc(size_t, size_t);
void *memalign(size_t, size_t);
size_t malloc_usable_size(void *);

#ifdef __cplusplus
}
#endif

#endif
"""

PTHREAD_CREATE_OLD = "    e(api::sys_pthread_create(res, attr, start_routine, arg))\n"
PTHREAD_CREATE_NEW = """\
    // malloc: the routine runs in GLUE's trampoline, which tells the
    // allocator when it returns (the thread's heap goes back).
    #[cfg(feature = "alloc")]
    let (start_routine, arg) = match GLUE_IDENT::thread_entry(start_routine, arg) {
        Some(entry) => entry,
        None => return axerrno::LinuxError::EAGAIN as c_int,
    };
    let ret = e(api::sys_pthread_create(res, attr, start_routine, arg));
    #[cfg(feature = "alloc")]
    if ret != 0 {
        // SAFETY: no thread was created with `arg`.
        unsafe { GLUE_IDENT::thread_entry_unused(arg) };
    }
    ret
"""
PTHREAD_EXIT_OLD = "    api::sys_pthread_exit(retval)\n"
PTHREAD_EXIT_NEW = """\
    // malloc: this thread's heap goes back before the task ends.
    #[cfg(feature = "alloc")]
    GLUE_IDENT::thread_exiting();
    api::sys_pthread_exit(retval)
"""


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    axlibc = Path(sys.argv[1])
    glue = Path(sys.argv[2]).resolve()
    if not (glue / "Cargo.toml").is_file():
        fail(f"{glue} is not a glue crate (no Cargo.toml)")
    global MARK
    glue_cfg = tomllib.loads((glue / "Cargo.toml").read_text())
    MARK = glue_cfg["package"]["name"]
    if MARK not in ("mirs-arceos", "mimalloc-arceos"):
        fail(f"{glue} is {MARK}, not mirs-arceos or mimalloc-arceos")
    ident = MARK.replace("-", "_")

    def subst(t):
        return t.replace("GLUE_IDENT", ident).replace("GLUE", MARK)

    edit_cargo_toml(axlibc / "Cargo.toml", glue, glue_cfg.get("features", {}))

    malloc_rs = axlibc / "src/malloc.rs"
    if "MemoryControlBlock" not in malloc_rs.read_text():
        fail(f"{malloc_rs} is not axlibc's size-header malloc")
    malloc_rs.write_text(subst(MALLOC_RS))

    stdlib_c = axlibc / "c/stdlib.c"
    text = stdlib_c.read_text()
    text = remove_c_function(text, "void *calloc(size_t m, size_t n)", "c/stdlib.c")
    text = remove_c_function(text, "void *realloc(void *memblock, size_t size)", "c/stdlib.c")
    stdlib_c.write_text(text)

    pthread_rs = axlibc / "src/pthread.rs"
    text = pthread_rs.read_text()
    text = replace_once(text, PTHREAD_CREATE_OLD, subst(PTHREAD_CREATE_NEW), "src/pthread.rs")
    text = replace_once(text, PTHREAD_EXIT_OLD, subst(PTHREAD_EXIT_NEW), "src/pthread.rs")
    pthread_rs.write_text(text)

    stdlib_h = axlibc / "include/stdlib.h"
    text = stdlib_h.read_text()
    text = replace_once(
        text,
        "void free(void *);\n",
        "void free(void *);\nint posix_memalign(void **, size_t, size_t);\nvoid *aligned_alloc(size_t, size_t);\n",
        "include/stdlib.h",
    )
    stdlib_h.write_text(text)
    (axlibc / "include/malloc.h").write_text(MALLOC_H)
    print(f"switch_axlibc: {axlibc} now takes malloc from {MARK} ({glue})")


if __name__ == "__main__":
    main()
