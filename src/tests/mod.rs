//! The tests of the allocator as a whole (std is available here). The
//! whole-allocator tests run on the hosted platform; without `hosted`, the
//! embedded core is tested on a fake embedder (also what Miri runs); under
//! `--cfg loom`, the loom models of the lock-free protocols.

#[cfg(not(loom))]
mod api;

#[cfg(all(not(loom), feature = "hosted"))]
mod basic;
#[cfg(all(not(loom), feature = "hosted"))]
mod fork_window;
#[cfg(all(not(loom), feature = "hosted"))]
mod oom;
#[cfg(all(not(loom), feature = "hosted"))]
mod retention;
#[cfg(all(not(loom), feature = "hosted"))]
mod stress;

// The fake embedder's hook definitions are not the C API:
/// cbindgen:ignore
#[cfg(all(not(loom), not(feature = "hosted")))]
mod embedded;

#[cfg(loom)]
mod loom;
