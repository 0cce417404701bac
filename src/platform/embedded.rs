//! Embedded mode (no `hosted` feature): the embedder supplies memory,
//! thread identity and output through plain C-ABI functions, so a Rust
//! (ArceOS axlibc) or C embedder can provide them and the linker binds them.
//! Everything is declared in `include/mirs.h`; `docs/arceos.md` shows an
//! integration.
//!
//! | symbol                                   | who defines | purpose                                  |
//! |------------------------------------------|-------------|------------------------------------------|
//! | `mirs_hook_thread_id() -> size_t`        | embedder    | non-zero id unique among live threads (< 2^63) |
//! | `mirs_hook_write(ptr, len)`              | embedder    | statistics and warnings output           |
//! | `__errno_location()`                     | its libc    | C errno of the calling thread            |
//! | `mirs_region_add(base, size)`            | mirs        | hand mirs a memory region                |
//! | `mirs_page_provider_set(alloc, free)`    | mirs        | optional: aligned page runs on demand    |
//! | `mirs_thread_alive_hook_set(alive)`      | mirs        | optional: lets mirs reclaim dead threads |
//! | `mirs_thread_done()`                     | mirs        | the calling thread (task) is exiting     |
//! | `mirs_thread_reap()`                     | mirs        | reclaim heaps of dead threads now        |
//!
//! Memory (`embedded_memory`): the static region (feature `static-region`,
//! sized by `MIRS_STATIC_REGION_MB` at build time), regions from
//! `mirs_region_add`, then the page provider. Freed chunks go back to
//! their region (or provider) and are reused; nothing is purged.
//!
//! The heap of a thread is found without thread-local storage by default:
//!
//! ```text
//! key = mirs_hook_thread_id() << 1          (bit 0 stays free for the table state)
//! TABLE[hash(key)]: { key, heap }  linear probing; key 0 = never used,
//!                                  1 = free again (tombstone), 3 = being changed
//! ```
//!
//! `malloc` calls the hook, hashes, loads one slot and compares the key: no
//! lock, no atomic read-modify-write. Only a thread changes its own slot
//! (first allocation, `mirs_thread_done`), except that heaps of threads the
//! alive hook reports dead are taken over (reaped) by whoever asks for room:
//! when the table is full, when memory runs out, or on `mirs_thread_reap()`.
//! A thread id the embedder reuses finds the previous holder's heap and
//! simply continues with it (the id is unique among live threads, so that
//! thread is gone).
//!
//! With feature `thread-local` (an embedder with working `#[thread_local]`,
//! e.g. ArceOS with its `tls` feature) the heap pointer lives in a
//! thread-local and the page owner id is the thread pointer (x86_64: the
//! TCB self-pointer at `fs:0`) or, elsewhere, a thread-local's address:
//! `malloc` and `free` then make no hook call. The table still records
//! heaps by hook id, on the slow path only, so dead threads can be reaped.

use super::common::OsMemory;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

#[path = "embedded_memory.rs"]
mod memory;

pub use memory::{PageAlloc, PageFree};

extern "C" {
    /// Embedder hook: a non-zero id (below 2^63) unique among the live
    /// threads; called by every `malloc` and `free` unless mirs is built
    /// with `thread-local`, so keep it to a few instructions.
    pub fn mirs_hook_thread_id() -> usize;
    /// Embedder hook: write `len` bytes of statistics or warnings (called
    /// rarely, never with a lock held).
    pub fn mirs_hook_write(bytes: *const u8, len: usize);
    fn __errno_location() -> *mut i32;
}

// ---------------------------------------------------------------- memory

/// Hand mirs a memory region to carve 1 MiB-aligned chunks from (the
/// unaligned ends serve for metadata). Returns false when it cannot be used:
/// too small, or 8 regions (the static region included) are already in use.
/// Regions larger than 16 GiB are truncated. All memory within one 4 GiB
/// window is usable; parts of regions further apart that fall on the same
/// slots of mirs's chunk map (1 MiB slots modulo 4 GiB) are skipped.
///
/// # Safety
/// `base..base+size` is readable and writable memory nobody else uses, for
/// the rest of the program.
#[no_mangle]
pub unsafe extern "C" fn mirs_region_add(base: *mut c_void, size: usize) -> bool {
    !base.is_null() && memory::region_add(base.cast::<u8>(), size, false)
}

/// Cap the memory mirs holds from the page provider at `bytes` (0: no
/// cap; the default is the build-time `MIRS_PROVIDER_MAX_MB`, 0 unless
/// set). Past the cap an allocation that finds no room in the regions
/// fails with ENOMEM instead of taking the embedder's own memory. Memory
/// already held above a lowered cap stays until mirs frees it.
#[no_mangle]
pub extern "C" fn mirs_provider_limit(bytes: usize) {
    memory::set_provider_limit(bytes);
}

/// Install (or, with NULLs, remove) a page provider, asked for memory when
/// the regions are full: `alloc(size, align)` returns `size` bytes (a
/// multiple of 4 KiB) aligned to `align` (a power of two, 4 KiB or at
/// least 1 MiB, the chunk size) or NULL; `free(ptr, size)` takes back exactly what `alloc`
/// returned. Both may be called from any thread, never with a mirs lock
/// held, and must not call back into mirs.
#[no_mangle]
pub extern "C" fn mirs_page_provider_set(
    alloc: Option<unsafe extern "C" fn(size: usize, align: usize) -> *mut c_void>,
    free: Option<unsafe extern "C" fn(ptr: *mut c_void, size: usize)>,
) {
    memory::set_page_provider(alloc, free);
}

pub fn os_alloc_aligned(size: usize, align: usize) -> Option<OsMemory> {
    os_alloc_chunk(size, align, |_, _| true)
}

/// Memory for a chunk, at an address where `placeable(base, size)` holds
/// (the caller's chunk map can record it). Out of memory is handled above,
/// in the allocation slow path (`thread::recover`), which also reaps dead
/// threads' heaps.
pub fn os_alloc_chunk(
    size: usize,
    align: usize,
    placeable: fn(usize, usize) -> bool,
) -> Option<OsMemory> {
    let found = memory::alloc(size, align, placeable)?;
    Some(OsMemory {
        base: found.0,
        is_zero: found.1,
    })
}

/// # Safety
/// The range came from [`os_alloc_aligned`] (a chunk) and is unused.
pub unsafe fn os_free(base: *mut u8, size: usize) {
    memory::free(base, size);
}

/// Resize a chunk of region memory where it lies (its region's 1 MiB
/// units: a growth takes the free units right after it); false for
/// page-provider memory or when those units are taken.
///
/// # Safety
/// `base..base + old` is a chunk of ours that nobody else uses meanwhile.
pub unsafe fn os_remap_in_place(base: *mut u8, old: usize, new: usize) -> bool {
    memory::resize(base, old, new)
}

/// Embedded chunks are not moved (realloc of a huge block that cannot grow
/// where it lies copies).
///
/// # Safety
/// None needed: nothing is touched.
pub unsafe fn os_remap_move(
    _base: *mut u8,
    _old: usize,
    _new: usize,
    _align: usize,
    _prepare: fn(usize, usize) -> bool,
) -> Option<*mut u8> {
    None
}

/// Embedded builds have no address space to reserve apart from memory:
/// their regions are the embedder's (`mirs_region_add`).
pub fn os_reserve(_size: usize, _align: usize) -> Option<OsMemory> {
    None
}

/// Nothing is reserved (`os_reserve`), so nothing moves.
///
/// # Safety
/// None needed: nothing is touched.
pub unsafe fn os_move_pages(_from: *mut u8, _old: usize, _to: *mut u8, _new: usize) -> bool {
    false
}

/// No pages of any size to ask for here.
///
/// # Safety
/// None needed: nothing is touched.
pub unsafe fn os_huge_pages(_base: *mut u8, _size: usize, _on: bool) {}

/// Embedded memory stays with mirs: nothing to purge, nothing zeroed.
///
/// # Safety
/// The range is unused.
pub unsafe fn os_purge(_base: *mut u8, _size: usize) -> bool {
    false
}

/// The most one request could be given after mirs hands back what it
/// holds: unknown here (a page provider may have more), so no request is
/// refused before a recovery attempt.
pub fn memory_limit() -> usize {
    usize::MAX
}

/// Bytes of region memory registered so far (tests).
#[cfg(test)]
pub fn region_bytes() -> usize {
    memory::region_bytes()
}

// ---------------------------------------------------------------- thread identity

/// With `thread-local` (other than x86_64): a thread-local whose address
/// is the thread's id. A `u64`, so the address is 8-aligned (the TLS block
/// honours the largest alignment of its variables) and therefore even, as
/// owner ids must be, with no masking on the fast paths.
#[cfg(all(feature = "thread-local", not(target_arch = "x86_64")))]
#[thread_local]
static THREAD_ANCHOR: u64 = 0;

/// The page owner id of the calling thread: even and non-zero.
///
/// With `thread-local` on x86_64: the thread pointer, the TCB self-pointer
/// at `fs:0` (the x86-64 ELF TLS ABI; every `#[thread_local]` access of a
/// non-glibc target reads it there, `THREAD_HEAP`'s too), one load. It is
/// a fixed distance from any thread-local's address, so it is as unique
/// among live threads as an anchor's address, and aligned to the TLS
/// block's alignment (at least 8: even).
#[inline(always)]
pub fn thread_id() -> usize {
    #[cfg(all(feature = "thread-local", target_arch = "x86_64"))]
    {
        let tp = super::common::fs0();
        debug_assert!(tp & 1 == 0);
        tp
    }
    #[cfg(all(feature = "thread-local", not(target_arch = "x86_64")))]
    {
        let id = core::ptr::addr_of!(THREAD_ANCHOR) as usize;
        debug_assert!(id & 1 == 0);
        id
    }
    #[cfg(not(feature = "thread-local"))]
    {
        thread_key()
    }
}

/// Is `id` the calling thread's id? With `thread-local` on x86_64 one
/// compare with fs:0 and a branch (an asm label, as hosted: the compiler
/// cannot fold `thread_id`'s asm read into the compare).
#[inline(always)]
pub fn is_current_thread(id: usize) -> bool {
    #[cfg(all(feature = "thread-local", target_arch = "x86_64"))]
    {
        super::common::is_fs0(id)
    }
    #[cfg(not(all(feature = "thread-local", target_arch = "x86_64")))]
    {
        id == thread_id()
    }
}

/// The calling thread's key in the heap table: the embedder's id shifted
/// left (bit 0 stays free for the table's slot states).
#[inline(always)]
pub fn thread_key() -> usize {
    // SAFETY: the embedder's hook has no preconditions.
    unsafe { mirs_hook_thread_id() << 1 }
}

type AliveHook = extern "C" fn(thread_id: usize) -> bool;
static ALIVE_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with NULL, remove) the liveness hook: `alive(id)` returns
/// false only when no live thread has id `id` (as `mirs_hook_thread_id`
/// returned it) and the thread that had it will never call mirs again; the
/// embedder must make that thread's last writes visible to the caller (a
/// join or the scheduler's own locking does). mirs then reclaims the heaps
/// of threads that ended without `mirs_thread_done()`: when its thread
/// table is full, when memory runs out, and on `mirs_thread_reap()`. The
/// hook is called from allocation slow paths and must not allocate through
/// mirs.
#[no_mangle]
pub extern "C" fn mirs_thread_alive_hook_set(
    alive: Option<extern "C" fn(thread_id: usize) -> bool>,
) {
    ALIVE_HOOK.store(alive.map_or(0, |f| f as usize), Ordering::Release);
}

/// Is the thread with the embedder's id `id` alive? None without an alive hook.
pub fn thread_alive(id: usize) -> Option<bool> {
    let hook = ALIVE_HOOK.load(Ordering::Acquire);
    if hook == 0 {
        return None;
    }
    // SAFETY: a non-zero value was stored from an `AliveHook`.
    let alive: AliveHook = unsafe { core::mem::transmute::<usize, AliveHook>(hook) };
    Some(alive(id))
}

/// Embedded threads end by calling `mirs_thread_done()` (or are reaped):
/// there is nothing to register.
pub fn register_thread_callbacks(_exit: extern "C" fn(*mut c_void), _fork_child: extern "C" fn()) {}

/// See [`register_thread_callbacks`].
pub fn set_thread_exit_value(_value: *mut c_void) {}

/// No memory protection in embedded mode: guard pages are a no-op.
///
/// # Safety
/// None needed; kept `unsafe` to match the hosted signature.
pub unsafe fn os_protect_none(_base: *mut u8, _size: usize) {}

/// Entropy for secret keys: an address (where the embedder placed our data)
/// mixed with the tick counter; embedders wanting more can seed through
/// their own hook in a later version.
pub fn random_seed() -> u64 {
    let local = 0u8;
    (core::ptr::addr_of!(local) as u64).rotate_left(29)
        ^ now_ms().wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

pub fn spin_yield() {
    core::hint::spin_loop();
}

/// No way to sleep on a word here: a waiter keeps spinning (the embedder's
/// scheduler preempts it, or the holder runs on another core).
pub fn lock_wait(_word: &core::sync::atomic::AtomicU32, _expected: u32) {
    core::hint::spin_loop();
}

pub fn lock_wake(_word: &core::sync::atomic::AtomicU32) {}

// ---------------------------------------------------------------- time, output, options

/// No clock, and none needed: time only schedules purges, and embedded
/// memory is never purged. Standing still, nothing ages into a purge (which
/// would be wasted work here) and no shared counter is touched. The crate's
/// tests move it by hand ([`TEST_CLOCK_MS`]), so purge scheduling runs.
pub fn now_ms() -> u64 {
    #[cfg(test)]
    {
        TEST_CLOCK_MS.load(Ordering::Relaxed)
    }
    #[cfg(not(test))]
    {
        0
    }
}

/// The clock of the crate's own tests (`src/tests/embedded.rs`), in ms.
#[cfg(test)]
pub static TEST_CLOCK_MS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

pub fn write_stderr(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: the pointer and length describe a live slice.
    unsafe { mirs_hook_write(bytes.as_ptr(), bytes.len()) };
}

/// No environment: options keep their defaults.
pub fn env_var(_name: &[u8]) -> Option<&'static [u8]> {
    None
}

/// A fatal error (after printing it): stop this thread for good.
pub fn abort() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

pub fn set_errno(value: i32) {
    // SAFETY: the embedder's libc defines errno for the calling thread.
    let errno = unsafe { __errno_location() };
    // SAFETY: as above: a valid location.
    unsafe { *errno = value };
}

#[cfg(test)]
pub fn errno() -> i32 {
    // SAFETY: as in `set_errno`.
    let errno = unsafe { __errno_location() };
    // SAFETY: as above.
    unsafe { *errno }
}
