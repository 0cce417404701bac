//! The platform boundary: memory, thread identity, the thread-local heap
//! slot, thread exit, time, output and options. Chosen at compile time, so
//! the fast path pays nothing for the indirection.
//!
//! | need              | hosted (Linux, `libc`)           | embedded (hooks)            |
//! |-------------------|----------------------------------|-----------------------------|
//! | chunk memory    | `mmap`, over-map and trim        | regions / page provider     |
//! | purge             | `madvise(MADV_DONTNEED)`         | nothing (memory stays)      |
//! | resize a chunk    | `mremap` (in place, or moved)    | not done (realloc copies)   |
//! | memory limit      | RAM + swap (`sysinfo`, once)     | none known                  |
//! | thread id         | address of a thread-local        | `mirs_hook_thread_id()`     |
//! | heap slot         | `std::thread_local!` (const, no destructor); `#[thread_local]` initial-exec with `thread-local` | table keyed by thread id; `#[thread_local]` with `thread-local` |
//! | thread exit       | pthread key destructor           | `mirs_thread_done()`        |
//! | output            | `write(2)`                       | `mirs_hook_write()`         |
//!
//! Every function here is safe to call before the heap exists and never
//! allocates through mirs.

#[cfg(feature = "hosted")]
mod hosted;
#[cfg(feature = "hosted")]
pub use hosted::*;

#[cfg(not(feature = "hosted"))]
mod embedded;
#[cfg(not(feature = "hosted"))]
pub use embedded::*;

/// Memory handed out by [`os_alloc_aligned`].
#[derive(Clone, Copy)]
pub struct OsMemory {
    pub base: *mut u8,
    /// The memory is known to read as zero (fresh from the OS).
    pub is_zero: bool,
}

/// errno values mirs sets (Linux's numbers, which C libraries for embedded
/// targets such as ArceOS's axlibc share).
pub const ENOMEM: i32 = 12;
pub const EINVAL: i32 = 22;
