//! mirs: mimalloc's design in Rust, a thread-safe malloc with a C ABI.
//!
//! The public surface: [`Mirs`] (a `GlobalAlloc`), the allocating
//! functions ([`malloc`], [`zalloc`], [`calloc`], [`malloc_aligned`],
//! [`zalloc_aligned`]: safe, they return pointers), the ones that take a
//! pointer back ([`free`], [`realloc`], [`usable_size`], [`owns`]: `unsafe`,
//! with C's contracts), [`collect`], [`stats_print`], the statistics
//! ([`stats`]) and the C API ([`c_api`], declared in `include/mirs.h`).
//!
//! Layers, top to bottom; each module uses only those below it
//! (`docs/design.md` has the picture, the protocols and the reasons):
//!
//! | module                          | what lives there                                     |
//! |---------------------------------|------------------------------------------------------|
//! | `c_api`, `global_alloc`         | `mirs_*` exports, libc names (`override`); `mirs::Mirs` |
//! | `alloc`, `free`                 | the entry points and their slow paths; pointer validation |
//! | `thread`                        | the thread's heap slot, heap pool, thread exit, fork, out-of-memory recovery |
//! | `heap`                          | thread-local heap: direct pages, bin queues, delayed free |
//! | `page`, `page_queue`            | a page: free / local_free / thread_free lists        |
//! | `arena`, `chunk`, `chunk_map`, `page_map` | shared chunks of 64 KiB slices, spans, abandoned pages, purge; which regions are chunks; each slice's page |
//! | `thread_free`, `delayed`, `block`, `tagged_stack` | the lock-free lists other threads free into (loom-modelled), free-list links, the pool stack |
//! | `report`                        | the statistics report: text table and JSON, live bytes read at reporting time |
//! | `stats`, `options`, `output`    | statistics counters, `MIRS_*` options, printing (fixed buffer, `write(2)`) |
//! | `platform`                      | memory, time, thread id, output, errno, thread-exit/fork callbacks |
//! | `size_class`, `constants`, `sync` | bins, the sizes that tie everything together, atomics (loom) |
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

pub(crate) mod base;
pub(crate) mod lockfree;

#[cfg(not(loom))]
pub(crate) mod platform;
#[cfg(not(loom))]
pub(crate) mod support;

#[cfg(not(loom))]
pub(crate) mod entry;
#[cfg(not(loom))]
pub(crate) mod heap;
#[cfg(not(loom))]
pub(crate) mod mem;
#[cfg(not(loom))]
pub(crate) mod thread;

#[cfg(not(loom))]
pub mod c_api;
#[cfg(not(loom))]
pub(crate) mod global_alloc;
#[cfg(all(not(loom), feature = "hosted"))]
mod process;
#[cfg(not(loom))]
pub(crate) mod report;

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
