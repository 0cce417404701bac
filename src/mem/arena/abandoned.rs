//! Abandoned pages: left by an exiting thread with live blocks, in a list
//! per size class; adopted by the next thread that needs a page of that
//! class, or freed when their last block comes back (by that free, or by
//! the sweep).

use super::lock::with_arena;
use super::span::release_span;
use super::state::{State, ABANDONED, ABANDONED_TOTAL, ARENA};
use crate::base::size_class::{bin_of_size, BIN_COUNT};
use crate::mem::chunk::Chunk;
use crate::mem::chunk_map;
use crate::mem::page::{OwnerHeap, Page};
use crate::support::stats::{self, Counter};
use core::ptr;
use core::sync::atomic::Ordering;

/// The thread owning `page` exits and the page still holds live blocks:
/// leave it for an adopter, or free it now if its last blocks came back
/// meanwhile.
///
/// # Safety
/// The calling thread owns `page` (its heap is going away), the page is in
/// no queue, its delayed-free state is `NeverDelayedFree`, and `used`
/// counts its live blocks plus those on `thread_free`.
pub unsafe fn abandon(page: *mut Page) {
    // SAFETY: as the caller guarantees.
    let p = unsafe { Page::owned(page) };
    let used = p.used();
    with_arena(|st| {
        p.heap.store(ptr::null_mut(), Ordering::Relaxed);
        p.abandon_words().publish(used);
        // SAFETY: the page is abandoned now, and we hold the lock.
        unsafe { mark_abandoned(st, page) };
    });
    stats::add(Counter::Abandoned, 1);
    // Frees that saw a live owner do not check; frees after the
    // publication do (`free_abandoned_if_empty`). One that falls between
    // leaves the page for the sweep in `purge`.
    if p.abandon_words().emptied_meanwhile(used) {
        free_abandoned_if_empty(page);
    }
}

/// A thread pushed onto an abandoned page's `thread_free` and the stack's
/// length reached the page's live count: free the page if that still
/// holds under the lock (an adopter may have taken it first). `page` is
/// only trusted after the chunk is found live under the lock.
pub fn free_abandoned_if_empty(page: *mut Page) {
    let chunk = Chunk::of_page(page);
    with_arena(|st| {
        if !chunk_map::is_chunk(chunk as usize) {
            return;
        }
        // SAFETY: the chunk is live (in the map, lock held); its page
        // headers are readable, and an abandoned page is the lock holder's.
        unsafe { free_if_all_back(st, page) };
    });
}

/// Free `page` if it is abandoned with every block back; returns whether
/// it did. Lock held.
///
/// # Safety
/// `page` is a page header of a live chunk.
pub(super) unsafe fn free_if_all_back(st: &mut State, page: *mut Page) -> bool {
    // SAFETY: as the caller guarantees.
    let p = unsafe { &*page };
    if !p.abandon_words().may_free() {
        return false;
    }
    // SAFETY: an abandoned page is the lock holder's to change.
    unsafe { unmark_abandoned(st, page) };
    stats::page_freed(p.area_bytes());
    let (first, count) = p.span();
    // SAFETY: as above; every block of the page is back.
    unsafe { release_span(st, Chunk::of_page(page), first, count) };
    true
}

/// Enter `page` at the end of its bin's abandoned list. Lock held.
///
/// # Safety
/// `page` was just abandoned (its header published as such), in no list.
pub(super) unsafe fn mark_abandoned(st: &mut State, page: *mut Page) {
    // SAFETY: as the caller guarantees.
    let p = unsafe { &*page };
    let bin = bin_of_size(p.block_size());
    let (chunk, slice) = (Chunk::of_page(page), p.span().0);
    let last = st.abandoned_last[bin];
    {
        // SAFETY: the page's chunk is live; we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        meta.abandoned |= 1 << slice;
        meta.ab_next[slice] = ptr::null_mut();
        meta.ab_prev[slice] = last;
    }
    if last.is_null() {
        st.abandoned[bin] = page;
    } else {
        // SAFETY: list members are abandoned pages of live chunks.
        let last_slice = unsafe { (*last).span().0 };
        // SAFETY: as above; the previous reference has ended.
        unsafe { Chunk::meta(Chunk::of_page(last)) }.ab_next[last_slice] = page;
    }
    st.abandoned_last[bin] = page;
    ABANDONED[bin].fetch_add(1, Ordering::Relaxed);
    ABANDONED_TOTAL.fetch_add(1, Ordering::Relaxed);
}

/// Take `page` out of its bin's abandoned list. Lock held, page abandoned.
///
/// # Safety
/// As stated.
pub(super) unsafe fn unmark_abandoned(st: &mut State, page: *mut Page) {
    // SAFETY: as the caller guarantees.
    let p = unsafe { &*page };
    let bin = bin_of_size(p.block_size());
    let (chunk, slice) = (Chunk::of_page(page), p.span().0);
    let (next, prev) = {
        // SAFETY: the page's chunk is live and we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        debug_assert!(meta.abandoned & (1 << slice) != 0);
        meta.abandoned &= !(1 << slice);
        (meta.ab_next[slice], meta.ab_prev[slice])
    };
    if prev.is_null() {
        debug_assert!(st.abandoned[bin] == page);
        st.abandoned[bin] = next;
    } else {
        // SAFETY: list members are abandoned pages of live chunks.
        let s = unsafe { (*prev).span().0 };
        // SAFETY: as above.
        unsafe { Chunk::meta(Chunk::of_page(prev)) }.ab_next[s] = next;
    }
    if next.is_null() {
        debug_assert!(st.abandoned_last[bin] == page);
        st.abandoned_last[bin] = prev;
    } else {
        // SAFETY: as above.
        let s = unsafe { (*next).span().0 };
        // SAFETY: as above.
        unsafe { Chunk::meta(Chunk::of_page(next)) }.ab_prev[s] = prev;
    }
    ABANDONED[bin].fetch_sub(1, Ordering::Relaxed);
    ABANDONED_TOTAL.fetch_sub(1, Ordering::Relaxed);
}

/// Are there abandoned pages of `bin` (a hint)?
#[inline]
pub fn has_abandoned(bin: usize) -> bool {
    ABANDONED[bin].load(Ordering::Relaxed) != 0
}

/// Take an abandoned page of blocks of `block_size` for the thread `owner`
/// (whose heap is `heap`); null when there is none. The page's
/// `thread_free` is collected by the caller. The oldest abandoned page of
/// the bin is taken, with no search.
pub fn adopt(heap: *mut OwnerHeap, owner: usize, block_size: usize) -> *mut Page {
    let bin = bin_of_size(block_size);
    if !has_abandoned(bin) {
        return ptr::null_mut();
    }
    let page = with_arena(|st| {
        let page = st.abandoned[bin];
        if page.is_null() {
            return page;
        }
        // SAFETY: an abandoned page: the lock holder may change it.
        unsafe { unmark_abandoned(st, page) };
        // SAFETY: as above.
        let p = unsafe { &*page };
        debug_assert_eq!(p.block_size(), block_size);
        debug_assert!(p.abandon_words().may_adopt());
        // Under the lock, as the abandoned-page protocol requires: a last
        // free re-checks `may_free` under it.
        p.heap.store(heap, Ordering::Relaxed);
        p.abandon_words().adopt(owner);
        page
    });
    if !page.is_null() {
        stats::add(Counter::Reclaimed, 1);
    }
    page
}

/// Visit every abandoned page, lock held (tests, whose process must be
/// quiescent, and the statistics report, which reads only its atomics).
pub fn for_each_abandoned(mut f: impl FnMut(*mut Page)) {
    let st = ARENA.lock();
    for &head in &st.abandoned {
        let mut page = head;
        while !page.is_null() {
            f(page);
            // SAFETY: list members are abandoned pages of live chunks.
            let slice = unsafe { (*page).span().0 };
            // SAFETY: as above; we hold the lock.
            page = unsafe { Chunk::meta(Chunk::of_page(page)) }.ab_next[slice];
        }
    }
}

/// Out of memory: free every abandoned page whose blocks have all come
/// back, now (the unforced sweep runs at most every `SWEEP_INTERVAL_MS`);
/// whether it freed any.
pub fn sweep_abandoned_now() -> bool {
    ABANDONED_TOTAL.load(Ordering::Relaxed) != 0 && with_arena(sweep_abandoned)
}

/// Free every abandoned page whose blocks have all come back; whether it
/// freed any. Lock held.
pub(super) fn sweep_abandoned(st: &mut State) -> bool {
    let mut freed = false;
    for bin in 0..BIN_COUNT {
        let mut page = st.abandoned[bin];
        while !page.is_null() {
            // SAFETY: list members are abandoned pages of live chunks.
            let slice = unsafe { (*page).span().0 };
            // SAFETY: as above; read before the page may leave the list.
            let next = unsafe { Chunk::meta(Chunk::of_page(page)) }.ab_next[slice];
            // SAFETY: as above.
            freed |= unsafe { free_if_all_back(st, page) };
            page = next;
        }
    }
    freed
}
