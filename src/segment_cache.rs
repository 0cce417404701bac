//! A small global cache of empty standard-size segments, so a thread that
//! frees its last page and allocates again does not go to the OS each time.
//!
//! Slots are atomic pointers: `put` and `take` are one CAS or swap, with no
//! lock (so `fork` can never inherit a held one). A segment in a slot keeps
//! its memory for `PURGE_DELAY_MS`, then its body is purged; beyond
//! `SEGMENT_CACHE_SLOTS` segments go straight back to the OS.

use crate::constants::{OS_PAGE_SIZE, SEGMENT_CACHE_SLOTS, SEGMENT_SIZE};
use crate::platform;
use crate::segment::{Segment, SEGMENT_INFO_SIZE};
use crate::stats::{self, Counter};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

static SLOTS: [AtomicPtr<Segment>; SEGMENT_CACHE_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; SEGMENT_CACHE_SLOTS];

/// Keep an empty segment; false when the cache is full.
///
/// # Safety
/// `seg` is an unused standard-size segment owned by the caller.
pub unsafe fn put(seg: *mut Segment) -> bool {
    // SAFETY: the caller owns `seg`.
    unsafe {
        debug_assert!((*seg).size == SEGMENT_SIZE && (*seg).used == 0);
        (*seg).cached_at = platform::now_ms();
        let s = &*seg;
        let zero = s.pages[..s.page_count].iter().all(|p| p.area_is_zero);
        (*seg).body_is_zero = zero;
    }
    for slot in &SLOTS {
        if slot.load(Ordering::Relaxed).is_null()
            && slot
                .compare_exchange(ptr::null_mut(), seg, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return true;
        }
    }
    false
}

/// An empty segment from the cache, if any.
pub fn take() -> Option<*mut Segment> {
    for slot in &SLOTS {
        if !slot.load(Ordering::Relaxed).is_null() {
            let seg = slot.swap(ptr::null_mut(), Ordering::AcqRel);
            if !seg.is_null() {
                return Some(seg);
            }
        }
    }
    None
}

/// Purge the bodies of segments cached longer than the purge delay (all of
/// them when `force`); with `release` also unmap them.
pub fn purge(now: u64, force: bool, release: bool) {
    for slot in &SLOTS {
        let seg = slot.load(Ordering::Relaxed);
        if seg.is_null() {
            continue;
        }
        // SAFETY: reading the timestamp of a cached segment: cached segments
        // stay mapped until taken out of their slot, and a racing `take` only
        // makes the value stale (we re-check ownership with the swap below).
        let (at, zero) = unsafe { ((*seg).cached_at, (*seg).body_is_zero) };
        if !force && (zero || now < at + crate::options::purge_delay_ms()) {
            continue;
        }
        // Take the segment out while purging so nobody allocates from it.
        if slot
            .compare_exchange(seg, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        if release {
            // SAFETY: out of the cache and unused: ours to unmap.
            unsafe { Segment::unmap(seg) };
            continue;
        }
        // SAFETY: we hold the segment exclusively; its body is unused.
        unsafe {
            if !(*seg).body_is_zero {
                let body = seg.cast::<u8>().add(SEGMENT_INFO_SIZE);
                let zeroed = platform::os_purge(body, SEGMENT_SIZE - SEGMENT_INFO_SIZE);
                stats::add(Counter::Purged, (SEGMENT_SIZE - SEGMENT_INFO_SIZE) as i64);
                (*seg).body_is_zero = zeroed;
            }
            if !put_back(seg) {
                Segment::unmap(seg);
            }
        }
    }
    const _: () = assert!(SEGMENT_INFO_SIZE.is_multiple_of(OS_PAGE_SIZE));
}

/// Return a purged segment to any free slot.
fn put_back(seg: *mut Segment) -> bool {
    SLOTS.iter().any(|slot| {
        slot.compare_exchange(ptr::null_mut(), seg, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Segments currently cached.
pub fn count() -> usize {
    SLOTS
        .iter()
        .filter(|s| !s.load(Ordering::Relaxed).is_null())
        .count()
}
