//! mirs: mimalloc's design in Rust, a thread-safe malloc with a C ABI.
//!
//! The public surface: [`Mirs`] (a `GlobalAlloc`), the allocating
//! functions ([`malloc`], [`zalloc`], [`calloc`], [`malloc_aligned`],
//! [`zalloc_aligned`]: safe, they return pointers), the ones that take a
//! pointer back ([`free`], [`realloc`], [`usable_size`], [`owns`]: `unsafe`,
//! with C's contracts), [`collect`], [`stats_print`], the statistics
//! ([`stats`]) and the C API ([`c_api`], declared in `include/mirs.h`).
//!
//! Layers, top to bottom, as folders; each module uses only those below
//! it (`docs/design.md` has the picture, the protocols and the reasons;
//! `tools/module_graph.py` holds the order and checks every edge):
//!
//! <!-- layers: generated from tools/module_graph.py (LAYERS) by --write; make lint compares -->
//! | layer | modules, top to bottom | what lives there |
//! |-------|------------------------|------------------|
//! | `src/` | lib.rs, panic, c_api (embedder, cxx_new, libc_names, prefixed), global_alloc, process, report | the top: the statistics report (text and JSON; live bytes read from the caller's heap and the abandoned pages), process load/exit hooks, GlobalAlloc, the C API (mirs_*, libc names, C++ new/delete, embedder API), the panic handler; lib.rs, the table of contents |
//! | `entry/` | alloc, free, lookup | lookup: the one pointer-resolution routine and validation; free and its slow path; malloc, zalloc, realloc, aligned, usable_size, owns |
//! | `thread/` | mod.rs, table | the thread's heap slot, the heap pool, lazy process init, thread exit, the exiting heap of late key destructors, fork-child reset, reaping dead threads' heaps (table), the one out-of-memory recover() |
//! | `heap/` | mod.rs, page_queue | the thread-local heap: direct pages, bin queues, full queue, delayed frees, retire, collect, abandon (the page layer knows a heap only as an opaque OwnerHeap) |
//! | `mem/` | arena (purge, abandoned, huge, span, lock, trim, region, huge_cache, chunks, state, directory), chunk_map, chunk, page_map, page | page: a page's three free lists (free, local_free, atomic thread_free) and its owner; page_map: each slice's page header (free's one lookup); chunk, chunk_map: the chunk header (page headers, slice table), which chunk-sized regions are chunks; arena: spans of slices, singletons and the huge cache, abandoned pages, purge (one lock, taken once per page, no system call while it is held) |
//! | `support/` | stats, output, options | MIRS_* options, printing (fixed buffer, write(2)), statistics counters |
//! | `lockfree/` | tagged_stack, delayed, thread_free, block, sync | what other threads touch: atomics (loom), free-list links, thread_free, delayed free, the pool stack; loom runs these as they are |
//! | `platform/` | mod.rs, embedded (memory), hosted, config, common | the declared contract (mod.rs) and its two backends: memory, time, thread id, output, errno, thread-exit/fork callbacks; no heap |
//! | `base/` | version, size_class, address, constants | sizes tied together at compile time, address packing, size classes, the version |
//! <!-- /layers -->
//!
//! The library is `#![no_std]` in every configuration: nothing inside it can
//! call back into a system or Rust global allocator. With the default
//! features (`hosted` without `thread-local`, stable Rust) std is linked for
//! one thing only, `std::thread_local!` holding the heap pointer; the C
//! libraries (`thread-local`, nightly) link no std at all.

#![no_std]
#![cfg_attr(feature = "thread-local", feature(thread_local))]
#![cfg_attr(
    all(feature = "panic-handler", not(test)),
    feature(lang_items),
    allow(internal_features)
)]
#![cfg_attr(loom, allow(unused_features))]
// The loom build compiles only the atomic building blocks, not what uses them.
#![cfg_attr(loom, allow(dead_code))]
#![deny(unsafe_op_in_unsafe_fn)]
// Every unsafe block holds one operation and says why it is sound (tests,
// which exercise the library, are exempt).
#![cfg_attr(
    not(test),
    warn(
        clippy::undocumented_unsafe_blocks,
        clippy::multiple_unsafe_ops_per_block
    )
)]
#![allow(clippy::missing_safety_doc)] // every unsafe fn has a `# Safety` section in prose

#[cfg(any(test, all(feature = "hosted", not(feature = "thread-local"))))]
extern crate std;

#[cfg(all(
    feature = "hosted",
    feature = "panic-handler",
    not(feature = "thread-local")
))]
compile_error!(
    "mirs: `panic-handler` with `hosted` needs `thread-local` (nightly): without it mirs \
     links std, which has its own panic handler"
);

// The layers (the table above; rustfmt keeps them alphabetical, which also
// puts c_api before platform, the order of include/mirs.h).
pub(crate) mod base;
#[cfg(not(loom))]
pub mod c_api;
#[cfg(not(loom))]
pub(crate) mod entry;
#[cfg(not(loom))]
pub(crate) mod global_alloc;
#[cfg(not(loom))]
pub(crate) mod heap;
pub(crate) mod lockfree;
#[cfg(not(loom))]
pub(crate) mod mem;
#[cfg(not(loom))]
pub(crate) mod platform;
#[cfg(all(not(loom), feature = "hosted"))]
mod process;
#[cfg(not(loom))]
pub(crate) mod report;
#[cfg(not(loom))]
pub(crate) mod support;
#[cfg(not(loom))]
pub(crate) mod thread;

#[cfg(all(feature = "panic-handler", not(test)))]
mod panic;

#[cfg(not(loom))]
pub use entry::alloc::{
    calloc, in_heap, malloc, malloc_aligned, owns, realloc, usable_size, zalloc, zalloc_aligned,
};
#[cfg(not(loom))]
pub use entry::free::free;
#[cfg(not(loom))]
pub use global_alloc::Mirs;
#[cfg(not(loom))]
pub use support::stats;

/// Internals for the fuzzing crate and out-of-tree tests (feature
/// `internals`): not part of the supported API.
#[cfg(all(feature = "internals", not(loom)))]
#[doc(hidden)]
pub mod internals {
    /// Check every invariant of the calling thread's heap and its pages
    /// (panics on a violation); returns the number of live blocks in them.
    pub fn check_heap() -> usize {
        crate::thread::check_current()
    }
}

pub use base::version::{VERSION, VERSION_STRING};

/// Collect the calling thread's heap: free lists, empty pages, and with
/// `force` purge unused memory and release cached chunks to the OS.
#[cfg(not(loom))]
pub fn collect(force: bool) {
    thread::collect_current(force);
}

/// Print statistics to stderr (a fixed buffer and `write(2)`).
#[cfg(not(loom))]
pub fn stats_print() {
    report::print_text();
}

/// The statistics as JSON into `buf` (NUL-terminated, truncated to fit);
/// returns the JSON's length in bytes without the NUL (as `snprintf`): a
/// result `>= buf.len()` means the buffer was too small.
#[cfg(not(loom))]
pub fn stats_json(buf: &mut [u8]) -> usize {
    report::json_into(buf)
}

// The tests (src/tests/mod.rs says which run in which configuration).
#[cfg(test)]
mod tests;
