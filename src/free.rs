//! `free` and the pointer checks behind `usable_size`.
//!
//! Fast path (owner thread, page not full, no aligned blocks, `p` a block
//! start): mask to the segment, one bit test in the segment map, compare the
//! owner, push on the page's `local_free`. Everything else goes through
//! `free_generic`:
//! - a pointer outside every segment is ignored (and reported when verbose);
//! - an interior pointer of an aligned allocation is mapped to its block;
//! - any other pointer that is not a handed-out block start is reported and
//!   ignored, never linked into a list;
//! - another thread's block is pushed on the page's `thread_free` (one CAS),
//!   or, when that page is full, on its heap's delayed list;
//! - a block of an abandoned segment: the freeing thread reclaims the segment.

use crate::abandoned;
use crate::block::Block;
use crate::constants::SEGMENT_MASK;
use crate::heap::{self, Heap};
use crate::output::warning;
use crate::page::Page;
use crate::platform;
use crate::segment::Segment;
use crate::segment_map;
use crate::stats::{self, Counter};
use core::sync::atomic::Ordering;

/// Free a block (null and foreign pointers are ignored).
// Takes any pointer by design (C's free): it is validated through the
// segment map before anything is read.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[inline(always)]
pub fn free(p: *mut u8) {
    let base = p as usize & !SEGMENT_MASK;
    let page_shift = segment_map::page_shift_at(base);
    if page_shift == 0 {
        return free_outside_segment_start(p);
    }
    // SAFETY: the segment map says a live segment header starts at `base`,
    // and `p` lies in its first 4 MiB.
    unsafe {
        let seg = Segment::at(base);
        let page = Segment::page_at(seg, p, page_shift);
        if (*seg).state.load(Ordering::Relaxed) == platform::thread_id()
            && (*page).is_plain_block_start(p)
        {
            #[cfg(any(debug_assertions, feature = "secure"))]
            if is_double_free(&*page, p.cast()) {
                return;
            }
            // An emptied page is retired (cold), unless it already is: a
            // retiring page that keeps being used is noticed by the heap.
            if (*page).push_local(p.cast()) && (*page).retire_expire == 0 {
                retire_page(page);
            }
            return;
        }
        free_generic(seg, page, p);
    }
}

#[cold]
#[inline(never)]
fn retire_page(page: *mut Page) {
    // SAFETY: the calling thread owns the page, so its heap is the thread's live heap.
    unsafe { (*(*page).heap.load(Ordering::Relaxed)).page_retire(page) };
}

/// Pointers whose 4 MiB region is not a segment start: null, foreign, or deep
/// inside a huge or over-aligned block.
#[cold]
#[inline(never)]
fn free_outside_segment_start(p: *mut u8) {
    if p.is_null() {
        return;
    }
    match segment_map::segment_containing(p as usize) {
        // SAFETY: the map lists a live segment starting at `base` that spans `p`.
        Some(base) => unsafe {
            let seg = Segment::at(base);
            free_generic(seg, Segment::page_of(seg, p), p);
        },
        None => invalid_free(p, "a pointer mirs does not own"),
    }
}

#[cold]
fn invalid_free(p: *mut u8, what: &str) {
    stats::add(Counter::InvalidFrees, 1);
    warning!("free of {} ignored: {:p}", what, p);
}

/// Resolve `p` to the block it frees, or report why it cannot be freed.
///
/// # Safety
/// `seg` is a live segment spanning `p` and `page` its page for `p`.
unsafe fn block_to_free(page: &Page, p: *mut u8) -> Option<*mut Block> {
    if !page.in_use {
        invalid_free(p, "a pointer into an unused page");
        return None;
    }
    if page.is_block_start(p) {
        return Some(p.cast());
    }
    if page.has_aligned() {
        if let Some(block) = page.block_containing(p) {
            return Some(block);
        }
    }
    invalid_free(p, "a pointer that is not the start of a block");
    None
}

#[cold]
#[inline(never)]
unsafe fn free_generic(seg: *mut Segment, page: *mut Page, p: *mut u8) {
    // SAFETY: as the caller guarantees (a live segment spanning `p`).
    unsafe {
        let Some(block) = block_to_free(&*page, p) else {
            return;
        };
        let tid = platform::thread_id();
        let mut owner = abandoned::owner_of((*seg).state.load(Ordering::Acquire));
        if owner == 0 {
            // Freeing into an abandoned segment: take it over, if we have a heap.
            let heap = platform::heap_get();
            if !heap::is_empty_heap(heap) && abandoned::try_claim(seg, tid) {
                if !Segment::reclaim(&mut *heap, seg) {
                    // Cannot happen: the block we free keeps its page in use.
                    debug_assert!(false, "reclaimed segment freed itself");
                    return;
                }
                owner = tid;
            }
        }
        if owner == tid {
            if is_double_free(&*page, block) {
                return;
            }
            let heap = (*page).heap.load(Ordering::Relaxed);
            (*heap).free_local(page, block);
        } else {
            free_block_mt(page, block);
        }
    }
}

/// Free a block of a page another thread owns (or nobody owns).
///
/// # Safety
/// `block` is a handed-out block start of `page`, now owned by the caller.
unsafe fn free_block_mt(page: *mut Page, block: *mut Block) {
    // SAFETY: as the caller guarantees; `heap` is read only in the
    // DelayedFreeing state, during which the owner keeps the heap alive.
    unsafe {
        if (*page).push_thread_free(block) {
            let heap: *mut Heap = (*page).heap.load(Ordering::Acquire);
            debug_assert!(!heap.is_null());
            Heap::push_delayed(heap, block);
            (*page).end_delayed_freeing();
        }
    }
}

/// Debug builds and `secure` builds: is `block` already on the owner's free
/// lists? Checked only when its first word decodes to a free-list link (null
/// or a block of the page), so the cost stays small; with `secure` the links
/// are encoded, so live data almost never passes that test. Other release
/// builds: never.
fn is_double_free(page: &Page, block: *mut Block) -> bool {
    if !cfg!(any(debug_assertions, feature = "secure")) {
        return false;
    }
    let found = is_on_free_list(page, block);
    if found {
        invalid_free(block.cast(), "a block that is already free (double free)");
    }
    found
}

/// Is `block` (a carved block of `page`) on the owner's `free` or
/// `local_free` list? Owner thread only.
pub(crate) fn is_on_free_list(page: &Page, block: *mut Block) -> bool {
    // SAFETY: `block` is a carved block of the page: reading its first word is in bounds.
    let next = unsafe { Block::next_with(block, page.key) };
    if !next.is_null() && !page.is_block_start(next.cast()) {
        return false;
    }
    // SAFETY: the owner's lists are well formed.
    unsafe {
        Block::list_contains(page.free, block, page.key)
            || Block::list_contains(page.local_free, block, page.key)
    }
}

/// The page of a live block this thread just allocated.
///
/// # Safety
/// `p` is a block start returned by this thread's heap.
pub unsafe fn page_of_owned(p: *mut u8) -> *mut Page {
    // SAFETY: a live block lies inside its segment's first 4 MiB region
    // (huge blocks start right after the header unless over-aligned, which
    // never takes this path).
    unsafe { Segment::page_of(Segment::at(p as usize & !SEGMENT_MASK), p) }
}

/// The usable size at `p` when `p` is a pointer mirs handed out (a carved
/// block start, or an aligned pointer into one), None otherwise.
// Takes any pointer by design (malloc_usable_size): it is validated through the
// segment map before anything is read.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn checked_usable_size(p: *const u8) -> Option<usize> {
    if p.is_null() {
        return None;
    }
    let base = p as usize & !SEGMENT_MASK;
    let base = if segment_map::is_segment_start(base) {
        base
    } else {
        segment_map::segment_containing(p as usize)?
    };
    // SAFETY: the map lists a live segment at `base` spanning `p`.
    unsafe {
        let seg = Segment::at(base);
        let page = &*Segment::page_of(seg, p);
        if !page.in_use {
            return None;
        }
        if page.is_block_start(p) {
            return Some(page.block_size);
        }
        if page.has_aligned() {
            let block = page.block_containing(p)?;
            return Some(page.block_size - (p as usize - block as usize));
        }
        None
    }
}

/// Secure mode: is `p` a block of this thread's heap that is already free
/// (so a `realloc` of it is a use after free)? Other threads' blocks are not
/// checked: their lists belong to their owners.
#[cfg(feature = "secure")]
// Takes any pointer by design (realloc): it is validated through the
// segment map before anything is read.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn is_freed_block_of_this_thread(p: *const u8) -> bool {
    let base = p as usize & !SEGMENT_MASK;
    if !segment_map::is_segment_start(base) {
        return false;
    }
    // SAFETY: the map lists a live segment at `base` spanning `p`.
    unsafe {
        let seg = Segment::at(base);
        let page = &*Segment::page_of(seg, p);
        (*seg).owner() == platform::thread_id()
            && page.in_use
            && page.is_block_start(p)
            && is_on_free_list(page, p as *mut Block)
    }
}
