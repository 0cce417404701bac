//! Atomics used by the lock-free protocols. Under `--cfg loom` they are
//! loom's, so the model tests in `tests_loom` explore every interleaving of
//! the real code.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicUsize, Ordering};

/// Wait a moment in a spin loop for another thread to make progress (loom
/// needs every spin loop to yield, or it never schedules the other thread).
#[cfg(not(loom))]
#[inline]
pub fn spin_hint() {
    crate::platform::spin_yield();
}
#[cfg(loom)]
pub fn spin_hint() {
    loom::thread::yield_now();
}
