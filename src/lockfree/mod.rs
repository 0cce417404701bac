//! The lock-free pieces other threads touch, on `sync`'s atomics only, so
//! loom runs them as they are (`src/tests/loom.rs`).

pub(crate) mod block;
pub(crate) mod delayed;
pub(crate) mod sync;
pub(crate) mod tagged_stack;
pub(crate) mod thread_free;
