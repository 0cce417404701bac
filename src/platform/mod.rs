//! The platform contract: every primitive the allocator needs from below,
//! with what it must do, written once here and pinned at compile time. A
//! backend that lacks one, or gives it another signature, does not build
//! (the `const _: fn(..) = backend::name` pins below; mimalloc's `prim.h`
//! and snmalloc's PAL concept are the models). The rest of mirs uses only
//! the names re-exported here.
//!
//! | need              | hosted (`hosted.rs`: Linux, `libc`) | embedded (`embedded.rs`: hooks) |
//! |-------------------|----------------------------------|-----------------------------|
//! | chunk memory      | `mmap`, over-map and trim        | regions / page provider     |
//! | purge             | `madvise(MADV_DONTNEED)`         | nothing (memory stays)      |
//! | resize a chunk    | `mremap` (in place, or moved)    | in place in a region only   |
//! | memory limit      | RAM + swap (`sysinfo`, once)     | none known                  |
//! | thread id         | the thread pointer               | `mirs_hook_thread_id()` (or a thread-local's address) |
//! | thread exit       | pthread key destructor           | `mirs_thread_done()`        |
//! | output            | `write(2)`                       | `mirs_hook_write()`         |
//!
//! The heap slot is not here: the thread layer keeps it (`thread/mod.rs`)
//! and uses only thread ids and the plain callbacks registered here. Every
//! primitive is safe to call before any heap exists and never allocates
//! through mirs.

mod common;
#[cfg(not(feature = "hosted"))]
#[allow(dead_code)] // STATIC_REGION_MB is read only with `static-region`
pub(crate) mod config;
#[cfg(not(feature = "hosted"))]
mod embedded;
#[cfg(feature = "hosted")]
mod hosted;

#[cfg(not(feature = "hosted"))]
use embedded as backend;
#[cfg(feature = "hosted")]
use hosted as backend;

use core::ffi::c_void;
use core::sync::atomic::AtomicU32;

pub use common::{OsMemory, EINVAL, ENOMEM};

/// Each primitive: its contract (the doc), re-exported from the backend,
/// and its signature pinned (`const _`), so both backends must define it
/// with exactly this type.
macro_rules! contract {
    ($($(#[doc = $doc:literal])* [$($qual:tt)*] fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        $(#[doc = $doc])*
        #[allow(unused_imports)] // some serve one feature set only (os_protect_none: `secure`)
        pub use backend::$name;
        const _: $($qual)* fn($($ty),*) $(-> $ret)? = backend::$name;
    )*};
}

contract! {
    // ---------------------------------------------------------------- memory

    /// `size` bytes aligned to `align` (a power of two, at least
    /// `OS_PAGE_SIZE`), readable and writable, or None; `is_zero` when the
    /// memory is known to read as zero. Never through mirs's own heap.
    [] fn os_alloc_aligned(size: usize, align: usize) -> Option<OsMemory>;
    /// As `os_alloc_aligned`, for a chunk, at an address where
    /// `placeable(base, size)` holds (the chunk map can record it there).
    [] fn os_alloc_chunk(size: usize, align: usize, placeable: fn(usize, usize) -> bool) -> Option<OsMemory>;
    /// Give back `base..base + size`, which came whole from
    /// `os_alloc_aligned` / `os_alloc_chunk` (or a remap) and is unused.
    [unsafe] fn os_free(base: *mut u8, size: usize);
    /// Resize the chunk `base..base + old` to `new` bytes where it lies;
    /// false (nothing changed) when that cannot be done.
    [unsafe] fn os_remap_in_place(base: *mut u8, old: usize, new: usize) -> bool;
    /// Move the chunk `base..base + old` to a fresh `align`-aligned address,
    /// `new` bytes long, without copying, after `prepare(address, new)`
    /// accepted the address; the old range is gone. None (nothing
    /// changed) when not possible.
    [unsafe] fn os_remap_move(base: *mut u8, old: usize, new: usize, align: usize, prepare: fn(usize, usize) -> bool) -> Option<*mut u8>;
    /// Reserve `size` bytes of address space aligned to `align`, readable
    /// and writable, committing nothing until written (None where there
    /// is no such thing: embedded).
    [] fn os_reserve(size: usize, align: usize) -> Option<OsMemory>;
    /// Move the pages of `from..from + old` to `to` (`new` bytes there)
    /// without copying, both inside `os_reserve` reservations, and leave
    /// the vacated range mapped and empty; false (nothing changed) when not
    /// possible.
    [unsafe] fn os_move_pages(from: *mut u8, old: usize, to: *mut u8, new: usize) -> bool;
    /// Ask for transparent huge pages in a page-aligned range of an
    /// `os_reserve` reservation (`on`), or for small pages only (advice).
    [unsafe] fn os_huge_pages(base: *mut u8, size: usize, on: bool);
    /// Return the physical memory behind an unused, page-aligned range of
    /// a chunk (it stays mapped); true when it then reads as zero.
    [unsafe] fn os_purge(base: *mut u8, size: usize) -> bool;
    /// Make an unused, page-aligned range of a chunk inaccessible (secure
    /// mode's guard pages; a no-op where there is no protection).
    [unsafe] fn os_protect_none(base: *mut u8, size: usize);
    /// The most one request could ever be given, even after mirs handed
    /// back everything it holds (`usize::MAX`: unknown); a larger failed
    /// request is refused without a recovery attempt.
    [] fn memory_limit() -> usize;

    // ---------------------------------------------------------------- threads

    /// A non-zero, even id of the calling thread, unique among live threads
    /// (a page's owner is compared with it on every free: keep it cheap).
    [] fn thread_id() -> usize;
    /// Is `id` the calling thread's id (`thread_id() == id`)? The free fast
    /// path's owner test, so one compare where the platform allows it.
    [] fn is_current_thread(id: usize) -> bool;
    /// The calling thread's key in the thread layer's heap table: non-zero,
    /// bit 0 clear, unique among live threads.
    [] fn thread_key() -> usize;
    /// Is the thread whose key is `id` still alive? None when the platform
    /// cannot tell (hosted: thread exits are noticed instead).
    [] fn thread_alive(id: usize) -> Option<bool>;
    /// Once per process: `exit` runs at the end of each thread that set a
    /// value with `set_thread_exit_value`, `fork_child` in the child after
    /// each `fork` (a no-op where threads report their end themselves).
    [] fn register_thread_callbacks(exit: extern "C" fn(*mut c_void), fork_child: extern "C" fn());
    /// The value the thread-exit callback gets for the calling thread
    /// (null: no callback).
    [] fn set_thread_exit_value(value: *mut c_void);
    /// Let another thread run while we wait on a short critical section.
    [] fn spin_yield();
    /// Sleep while `word` holds `expected` (or until woken, or spuriously;
    /// spinning is a correct implementation).
    [] fn lock_wait(word: &AtomicU32, expected: u32);
    /// Wake one thread sleeping in `lock_wait` on `word`.
    [] fn lock_wake(word: &AtomicU32);

    // ---------------------------------------------------------------- the rest

    /// Entropy for secret list keys (`secure`).
    [] fn random_seed() -> u64;
    /// A coarse monotonic clock in milliseconds, without a system call (it
    /// only schedules purges; one standing still disables purging).
    [] fn now_ms() -> u64;
    /// The value of environment variable `name`, read without allocating
    /// (None: not set, or no environment).
    [] fn env_var(name: &[u8]) -> Option<&'static [u8]>;
    /// Write all of `bytes` to the error output, without allocating and
    /// keeping errno.
    [] fn write_stderr(bytes: &[u8]);
    /// Stop after a fatal error (already printed); never returns.
    [] fn abort() -> !;
    /// Set the C `errno` of the calling thread.
    [] fn set_errno(value: i32);
}

/// The C `errno` of the calling thread (the tests read it; hosted's
/// `write_stderr` keeps it).
#[cfg(test)]
pub use backend::errno;
#[cfg(test)]
const _: fn() -> i32 = backend::errno;

// Backend-only names, for the layers that exist only with that backend.
#[cfg(all(feature = "hosted", any(test, feature = "fault-injection")))]
pub use backend::fault;
#[cfg(all(feature = "hosted", feature = "override", target_arch = "x86_64"))]
pub use backend::next_symbol;
#[cfg(not(feature = "hosted"))]
pub use backend::{
    mirs_page_provider_set, mirs_provider_limit, mirs_region_add, mirs_thread_alive_hook_set,
    PageAlloc, PageFree,
};
#[cfg(all(not(feature = "hosted"), test))]
pub use backend::{region_bytes, TEST_CLOCK_MS};
#[cfg(not(feature = "hosted"))]
pub use config::MAX_THREADS;
