//! The table of live heaps by thread key: embedded, it finds a thread's
//! heap without thread-local storage and lets mirs reap the heaps of
//! threads that died without `mirs_thread_done()`; hosted, it catches the
//! heap of a thread whose first allocation came after its last pthread key
//! destructor round (no destructor runs for it): the next thread with the
//! same id (glibc reuses a thread's descriptor only after it ended) reaps it.
//!
//! ```text
//! key = platform::thread_key()             (the embedder's id << 1: bit 0 is the table state)
//! TABLE[hash(key)]: { key, heap }  linear probing; key 0 = never used,
//!                                  1 = free again (tombstone), 3 = being changed
//! OCCUPIED: bit i set iff slot i holds a heap (set and cleared by the
//!           slot's changer while the key reads CHANGING)
//! ```
//!
//! `malloc` (without `thread-local`) hashes the key, loads one slot and
//! compares: no lock, no atomic read-modify-write. Only a thread changes its
//! own slot (first allocation, `mirs_thread_done`), except that heaps of
//! threads the alive hook (`platform::thread_alive`) reports dead are taken
//! over (reaped) by whoever asks for room: when the table is full, when
//! memory runs out, or on `mirs_thread_reap()`. A thread id the embedder
//! reuses finds the previous holder's heap and continues with it (ids are
//! unique among live threads, so that thread is gone). With `thread-local`
//! the heap pointer lives in a thread-local; the table still records heaps
//! by key, on the slow path only, so dead threads can be reaped.
//!
//! Reaping visits only the occupied slots (the bitmap: 32 words for the
//! 2,048 hosted slots), so an allocation that fails with few threads alive
//! does not walk the whole table.

use crate::heap::{self, Heap};
use crate::platform;
#[cfg(not(feature = "hosted"))]
use crate::platform::MAX_THREADS;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Abandons the heap of a thread that has ended (the thread layer's
/// `heap_abandon`): the table finds dead threads' heaps, the layer that owns
/// heaps says what giving one up means. Called with the heap's slot held
/// (CHANGING), so by one reaper only.
pub(crate) type Abandon = unsafe fn(*mut Heap);

#[cfg(not(feature = "hosted"))]
const SLOTS: usize = (MAX_THREADS * 2).next_power_of_two();
/// Hosted: heaps beyond this many live threads simply go unrecorded (all
/// that costs is the late-destructor catch above). 32 KiB of `.bss`.
#[cfg(feature = "hosted")]
const SLOTS: usize = 2048;
const SLOT_BITS: u32 = SLOTS.trailing_zeros();
const NEVER_USED: usize = 0;
const TOMBSTONE: usize = 1;
const CHANGING: usize = 3;

/// Bit i: slot i holds a heap (its key is a thread's). Changed only by the
/// thread that holds the slot in CHANGING, before it publishes the key.
static OCCUPIED: [AtomicU64; SLOTS.div_ceil(64)] =
    [const { AtomicU64::new(0) }; SLOTS.div_ceil(64)];

fn set_occupied(i: usize, on: bool) {
    let bit = 1u64 << (i % 64);
    if on {
        OCCUPIED[i / 64].fetch_or(bit, Ordering::Relaxed);
    } else {
        OCCUPIED[i / 64].fetch_and(!bit, Ordering::Relaxed);
    }
}

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
            set_occupied(i, true);
            slot.key.store(key, Ordering::Release);
            return true;
        }
        i = (i + 1) & (SLOTS - 1);
    }
    false
}

/// Take over slot `i`, which held `key`, a thread that has ended: abandon
/// its heap and free the slot. False when someone else changed it first.
fn reap_slot(i: usize, key: usize, abandon: Abandon) -> bool {
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
        unsafe { abandon(dead) };
    }
    set_occupied(i, false);
    slot.key.store(TOMBSTONE, Ordering::Release);
    true
}

/// Out of memory: take over the heaps of threads the alive hook reports
/// dead, so their empty pages go back to the arena. Returns whether any was.
pub(crate) fn reap_dead_threads(abandon: Abandon) -> bool {
    reap_dead(abandon) > 0
}

/// Reclaim the heaps of threads the alive hook reports dead; how many.
/// Visits the occupied slots only.
pub(crate) fn reap_dead(abandon: Abandon) -> usize {
    let me = platform::thread_key();
    let mut reaped = 0;
    for (w, word) in OCCUPIED.iter().enumerate() {
        let mut bits = word.load(Ordering::Relaxed);
        while bits != 0 {
            let i = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let key = TABLE[i].key.load(Ordering::Acquire);
            if key & 1 != 0 || key == NEVER_USED || key == me {
                continue;
            }
            match platform::thread_alive(key >> 1) {
                None => return reaped, // no alive hook: nothing can be reaped
                Some(true) => continue,
                Some(false) => {}
            }
            if reap_slot(i, key, abandon) {
                reaped += 1;
            }
        }
    }
    reaped
}

/// The calling thread's heap from the table (the empty heap if none).
#[cfg(all(not(feature = "hosted"), not(feature = "thread-local")))]
#[inline(always)]
pub(crate) fn heap_get() -> *mut Heap {
    let key = platform::thread_key();
    home_heap(key).unwrap_or_else(|| heap_probe(key))
}

/// The calling thread's heap if its key is in its home slot (the common
/// case); None otherwise, and then [`heap_get`] finds it.
#[cfg(all(not(feature = "hosted"), not(feature = "thread-local")))]
#[inline(always)]
pub(crate) fn heap_get_home() -> Option<*mut Heap> {
    home_heap(platform::thread_key())
}

/// The heap in `key`'s home slot, if the slot holds `key`.
#[cfg(all(not(feature = "hosted"), not(feature = "thread-local")))]
#[inline(always)]
fn home_heap(key: usize) -> Option<*mut Heap> {
    let slot = &TABLE[home(key)];
    // Both words read unconditionally (each one indexed load): only this
    // thread puts its key in a slot or changes a slot holding it, so when
    // the key matches, `heap` was read from our own, unchanging entry.
    let heap = slot.heap.load(Ordering::Relaxed);
    (slot.key.load(Ordering::Relaxed) == key).then_some(heap)
}

/// `heap_get` when the thread's key is not in its home slot.
#[cfg(all(not(feature = "hosted"), not(feature = "thread-local")))]
#[cold]
#[inline(never)]
fn heap_probe(key: usize) -> *mut Heap {
    match find(key) {
        Some(i) => TABLE[i].heap.load(Ordering::Relaxed),
        None => heap::EMPTY_HEAP_PTR,
    }
}

#[cfg(not(feature = "hosted"))]
static TABLE_FULL_REPORTED: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Record the calling thread's heap (or, with a static empty heap, forget
/// it). False when the table has no room even after reaping dead threads.
pub(crate) fn record(heap: *mut Heap, abandon: Abandon) -> bool {
    let key = platform::thread_key();
    if heap::is_empty_heap(heap) {
        if let Some(i) = find(key) {
            let slot = &TABLE[i];
            if slot
                .key
                .compare_exchange(key, CHANGING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                slot.heap.store(ptr::null_mut(), Ordering::Relaxed);
                set_occupied(i, false);
                slot.key.store(TOMBSTONE, Ordering::Release);
            }
        }
        return true;
    }
    // An entry under our id belongs to a thread that has ended (ids are
    // unique among live threads). With the table lookup we would have found
    // and used it; with a thread-local slot we reap it.
    if let Some(i) = find(key) {
        reap_slot(i, key, abandon);
    }
    if !insert(key, heap) && (reap_dead(abandon) == 0 || !insert(key, heap)) {
        return table_full();
    }
    true
}

/// Hosted: the heap works unrecorded (the slot is only a safety net).
#[cfg(feature = "hosted")]
fn table_full() -> bool {
    true
}

/// Embedded: the thread gets no heap (its allocations fail), said once.
#[cfg(not(feature = "hosted"))]
fn table_full() -> bool {
    if !TABLE_FULL_REPORTED.swap(true, Ordering::Relaxed) {
        crate::support::output::mirs_print!(
            "mirs: error: thread table full ({} heaps, MIRS_MAX_THREADS={}): call \
             mirs_thread_done() at thread exit, install an alive hook, or raise \
             MIRS_MAX_THREADS\n",
            SLOTS,
            MAX_THREADS
        );
    }
    false
}
