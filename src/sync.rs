//! Atomics used by the lock-free protocols. Under `--cfg loom` they are
//! loom's, so the model tests in `tests_loom` explore every interleaving of
//! the real code.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicUsize, Ordering};
