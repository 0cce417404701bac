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
//! thread-local and the page owner id is that thread-local's address:
//! `malloc` and `free` then make no hook call. The table still records
//! heaps by hook id, on the slow path only, so dead threads can be reaped.

use super::OsMemory;
use crate::heap::{self, Heap, EMPTY_HEAP_PTR};
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

#[path = "embedded_memory.rs"]
mod memory;

pub use memory::{PageAlloc, PageFree, MAX_REGIONS, STATIC_REGION_BYTES};

include!(concat!(env!("OUT_DIR"), "/embedded_config.rs"));

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

/// Hand mirs a memory region to carve 4 MiB-aligned chunks from (the
/// unaligned ends serve for metadata). Returns false when it cannot be used:
/// too small, or 8 regions (the static region included) are already in use.
/// Regions larger than 16 GiB are truncated. All memory within one 4 GiB
/// window is usable; parts of regions further apart that fall on the same
/// slots of mirs's chunk map (4 MiB slots modulo 4 GiB) are skipped.
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
/// least 4 MiB) or NULL; `free(ptr, size)` takes back exactly what `alloc`
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
    // Out of memory is handled above, in the allocation slow path
    // (`heap::recover`), which also reaps dead threads' heaps.
    let found = memory::alloc(size, align)?;
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

/// Embedded memory stays with mirs: nothing to purge, nothing zeroed.
///
/// # Safety
/// The range is unused.
pub unsafe fn os_purge(_base: *mut u8, _size: usize) -> bool {
    false
}

/// Bytes of region memory registered so far (tests, statistics).
pub fn region_bytes() -> usize {
    memory::region_bytes()
}

// ---------------------------------------------------------------- thread identity

#[cfg(feature = "thread-local")]
#[thread_local]
static mut THREAD_HEAP: *mut Heap = EMPTY_HEAP_PTR;

/// The page owner id of the calling thread: even and non-zero.
#[inline(always)]
pub fn thread_id() -> usize {
    #[cfg(feature = "thread-local")]
    {
        ptr::addr_of!(THREAD_HEAP) as usize
    }
    #[cfg(not(feature = "thread-local"))]
    {
        table_key()
    }
}

/// The calling thread's key in the heap table.
#[inline(always)]
fn table_key() -> usize {
    // SAFETY: the embedder's hook has no preconditions.
    unsafe { mirs_hook_thread_id() << 1 }
}

// ---------------------------------------------------------------- the heap table

const SLOTS: usize = (MAX_THREADS * 2).next_power_of_two();
const SLOT_BITS: u32 = SLOTS.trailing_zeros();
const NEVER_USED: usize = 0;
const TOMBSTONE: usize = 1;
const CHANGING: usize = 3;

#[repr(align(16))]
struct Slot {
    key: AtomicUsize,
    heap: AtomicPtr<Heap>,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        key: AtomicUsize::new(NEVER_USED),
        heap: AtomicPtr::new(ptr::null_mut()),
    }
}; SLOTS];

#[inline(always)]
fn home(key: usize) -> usize {
    if SLOT_BITS == 0 {
        return 0;
    }
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> (usize::BITS - SLOT_BITS))
        & (SLOTS - 1)
}

/// The slot holding `key`, if any.
fn find(key: usize) -> Option<usize> {
    let mut i = home(key);
    for _ in 0..SLOTS {
        match TABLE[i].key.load(Ordering::Acquire) {
            k if k == key => return Some(i),
            NEVER_USED => return None,
            _ => i = (i + 1) & (SLOTS - 1),
        }
    }
    None
}

/// Record `key -> heap` in a free slot.
fn insert(key: usize, heap: *mut Heap) -> bool {
    let mut i = home(key);
    for _ in 0..SLOTS {
        let slot = &TABLE[i];
        let k = slot.key.load(Ordering::Relaxed);
        if (k == NEVER_USED || k == TOMBSTONE)
            && slot
                .key
                .compare_exchange(k, CHANGING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            slot.heap.store(heap, Ordering::Relaxed);
            slot.key.store(key, Ordering::Release);
            return true;
        }
        i = (i + 1) & (SLOTS - 1);
    }
    false
}

/// Take over slot `i`, which held `key`, a thread that has ended: abandon
/// its heap and free the slot. False when someone else changed it first.
fn reap_slot(i: usize, key: usize) -> bool {
    let slot = &TABLE[i];
    if slot
        .key
        .compare_exchange(key, CHANGING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    let dead = slot.heap.swap(ptr::null_mut(), Ordering::Acquire);
    if !dead.is_null() && !heap::is_empty_heap(dead) {
        // SAFETY: the heap's thread has ended for good (the alive hook said
        // so, or a live thread now holds its id), and the CHANGING key makes
        // us the only thread reaping it.
        unsafe { heap::heap_abandon(dead, false) };
    }
    slot.key.store(TOMBSTONE, Ordering::Release);
    true
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

/// Reclaim the heaps of threads the alive hook reports dead (their live
/// blocks stay valid and are adopted by whoever frees or allocates next).
/// Returns how many were reclaimed; 0 without an alive hook.
#[no_mangle]
pub extern "C" fn mirs_thread_reap() -> usize {
    reap_dead()
}

/// Out of memory: take over the heaps of threads the alive hook reports
/// dead, so their empty pages go back to the arena. Returns whether any was.
pub fn reap_dead_threads() -> bool {
    reap_dead() > 0
}

fn reap_dead() -> usize {
    let hook = ALIVE_HOOK.load(Ordering::Acquire);
    if hook == 0 {
        return 0;
    }
    // SAFETY: a non-zero value was stored from an `AliveHook`.
    let alive: AliveHook = unsafe { core::mem::transmute::<usize, AliveHook>(hook) };
    let me = table_key();
    let mut reaped = 0;
    for (i, slot) in TABLE.iter().enumerate() {
        let key = slot.key.load(Ordering::Acquire);
        if key & 1 != 0 || key == NEVER_USED || key == me || alive(key >> 1) {
            continue;
        }
        if reap_slot(i, key) {
            reaped += 1;
        }
    }
    reaped
}

#[inline(always)]
pub fn heap_get() -> *mut Heap {
    #[cfg(feature = "thread-local")]
    {
        // SAFETY: thread-local slot, only this thread reads or writes it.
        unsafe { THREAD_HEAP }
    }
    #[cfg(not(feature = "thread-local"))]
    {
        let key = table_key();
        let slot = &TABLE[home(key)];
        if slot.key.load(Ordering::Relaxed) == key {
            return slot.heap.load(Ordering::Relaxed);
        }
        heap_probe(key)
    }
}

/// `heap_get` when the thread's key is not in its home slot.
#[cfg(not(feature = "thread-local"))]
#[cold]
#[inline(never)]
fn heap_probe(key: usize) -> *mut Heap {
    match find(key) {
        Some(i) => TABLE[i].heap.load(Ordering::Relaxed),
        None => EMPTY_HEAP_PTR,
    }
}

static TABLE_FULL_REPORTED: AtomicBool = AtomicBool::new(false);

/// Record the calling thread's heap (or, with the empty heap, forget it).
/// False when the table has no room even after reaping dead threads.
pub fn heap_set(heap: *mut Heap) -> bool {
    let key = table_key();
    if heap::is_empty_heap(heap) {
        if let Some(i) = find(key) {
            let slot = &TABLE[i];
            if slot
                .key
                .compare_exchange(key, CHANGING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                slot.heap.store(ptr::null_mut(), Ordering::Relaxed);
                slot.key.store(TOMBSTONE, Ordering::Release);
            }
        }
        tls_set(heap);
        return true;
    }
    // An entry under our id belongs to a thread that has ended (ids are
    // unique among live threads). With the table lookup we would have found
    // and used it; with a thread-local slot we reap it.
    if let Some(i) = find(key) {
        reap_slot(i, key);
    }
    if !insert(key, heap) && (reap_dead() == 0 || !insert(key, heap)) {
        if !TABLE_FULL_REPORTED.swap(true, Ordering::Relaxed) {
            crate::output::mirs_print!(
                "mirs: error: thread table full ({} heaps, MIRS_MAX_THREADS={}): call \
                 mirs_thread_done() at thread exit, install an alive hook, or raise \
                 MIRS_MAX_THREADS\n",
                SLOTS,
                MAX_THREADS
            );
        }
        return false;
    }
    tls_set(heap);
    true
}

#[inline(always)]
fn tls_set(heap: *mut Heap) {
    #[cfg(feature = "thread-local")]
    // SAFETY: thread-local slot.
    unsafe {
        THREAD_HEAP = heap
    };
    #[cfg(not(feature = "thread-local"))]
    let _ = heap;
}

pub fn process_init() {}

pub fn register_thread_exit(_heap: *mut Heap) {}

/// The calling thread (task) is exiting: its heap is collected, pages
/// with live blocks are abandoned for other threads to adopt, and its slot
/// is freed. Call it last, after the thread's final `free`; a later
/// allocation on the same thread simply creates a new heap.
#[no_mangle]
pub extern "C" fn mirs_thread_done() {
    crate::heap::thread_done(heap_get());
}

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

/// The clock of the crate's own tests (`src/tests_embedded.rs`), in ms.
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
    unsafe { *__errno_location() = value };
}

pub fn errno() -> i32 {
    // SAFETY: as in `set_errno`.
    unsafe { *__errno_location() }
}
