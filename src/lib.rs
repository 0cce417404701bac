//! mirs: mimalloc's design in Rust, a thread-safe malloc with a C ABI.
//!
//! Layers, top to bottom (`docs/design.md` has the picture, the protocols and the reasons):
//!
//! | module            | what lives there                                          |
//! |-------------------|-----------------------------------------------------------|
//! | [`c_api`]         | `mirs_*` exports, libc names (`override`), errno          |
//! | [`global_alloc`]  | `mirs::Mirs`, the Rust `GlobalAlloc`                      |
//! | [`alloc`], [`mod@free`] | malloc / zalloc / calloc / realloc / aligned; free      |
//! | [`heap`]          | thread-local heap: direct pages, bin queues, delayed free |
//! | [`page`], [`page_queue`], [`block`] | free / local_free / thread_free lists   |
//! | `arena`, `chunk`, `chunk_map` (crate-private) | shared chunks of 64 KiB slices, spans, abandoned pages, purge |
//! | [`platform`]      | memory, thread identity, TLS slot, output (hosted/embedded) |
//! | [`size_class`], [`constants`] | bins and the sizes that tie everything together |
//! | [`stats`], [`options`], [`output`] | statistics, `MIRS_*` options, printing    |
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
#![deny(unsafe_op_in_unsafe_fn)]
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

pub mod constants;
pub mod size_class;
pub(crate) mod sync;

pub mod block;
#[cfg(not(loom))]
pub mod page;
#[cfg(not(loom))]
pub mod page_queue;

#[cfg(not(loom))]
pub(crate) mod arena;
#[cfg(not(loom))]
pub(crate) mod chunk;
#[cfg(not(loom))]
pub(crate) mod chunk_map;
pub mod tagged_stack;
pub mod thread_free;

#[cfg(not(loom))]
pub mod heap;

#[cfg(not(loom))]
pub mod alloc;
#[cfg(not(loom))]
pub mod free;

#[cfg(not(loom))]
pub mod c_api;
#[cfg(not(loom))]
pub mod global_alloc;

#[cfg(not(loom))]
pub mod options;
#[cfg(not(loom))]
pub mod output;
#[cfg(not(loom))]
pub mod platform;
#[cfg(not(loom))]
pub mod stats;

#[cfg(all(feature = "panic-handler", not(test)))]
mod panic;

#[cfg(not(loom))]
pub use alloc::{calloc, malloc, malloc_aligned, owns, realloc, usable_size, zalloc};
#[cfg(not(loom))]
pub use free::free;
#[cfg(not(loom))]
pub use global_alloc::Mirs;

/// `major * 10000 + minor * 100 + patch`.
pub const VERSION: i32 = 100;
pub const VERSION_STRING: &str = env!("CARGO_PKG_VERSION");

/// Collect the calling thread's heap: free lists, empty pages, and with
/// `force` purge unused memory and release cached chunks to the OS.
#[cfg(not(loom))]
pub fn collect(force: bool) {
    heap::collect_current(force);
}

/// Print statistics to stderr (a fixed buffer and `write(2)`).
#[cfg(not(loom))]
pub fn stats_print() {
    stats::print();
}

// The whole-allocator tests run on the hosted platform; without `hosted`,
// the embedded core is tested on a fake embedder (also what Miri runs).
#[cfg(all(test, not(loom), feature = "hosted"))]
mod tests;
#[cfg(all(test, not(loom), not(feature = "hosted")))]
mod tests_embedded;
#[cfg(all(test, loom))]
mod tests_loom;
