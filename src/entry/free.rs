//! `free`: a pointer back to its page (the page map; `lookup` for what
//! lies outside normal chunks and for the checks), then onto a list.
//!
//! Fast path (owner thread, no aligned blocks, `p` a block start, not
//! marked free): the page map gives the page (two dependent loads; a
//! static ownerless header for memory that is not a normal chunk's);
//! compare the page's owner with our thread id; one multiply-compare for
//! block start, bounds and flags; the free-mark test; mark and push on the
//! page's `local_free`: 30 instructions to `ret` (`objdump -d` of `free`
//! in libmirs.so).
//! Everything else goes through `free_generic`, which acts on the page's owner:
//! - ours (page full, or with aligned blocks): the heap frees it;
//! - another thread's: pushed on the page's `thread_free` (one CAS), or,
//!   when that page is full, on its heap's delayed list;
//! - abandoned: pushed on `thread_free` (`free_abandoned`); the push that
//!   brings back the last live block frees the page
//!   (`arena::free_abandoned_if_empty`);
//! - a singleton (one block in its own span or huge chunk): freed at once
//!   by whichever thread frees it.
//!
//! Validation policy (docs/design.md): a pointer is freed only if it is a
//! live block: it resolves to a page in use, is the start of one of its
//! carved blocks (or the exact over-aligned pointer malloc_aligned handed
//! out; a singleton's only block must be given exactly), and does not carry
//! the free mark (confirmed on the lists by the owner). Anything else is
//! counted, reported (one line, rate-limited; `MIRS_VERBOSE=0` silences it)
//! and ignored, never linked into a list.

use crate::entry::lookup::{block_of, is_free_block, resolve};
use crate::heap::Heap;
use crate::lockfree::block::Block;
use crate::lockfree::thread_free::AbandonedFree;
use crate::mem::arena;
use crate::mem::page::{
    is_thread_owner, Page, Pushed, OWNER_ABANDONED, OWNER_NONE, OWNER_SINGLETON,
};
use crate::mem::page_map;
use crate::platform;
use core::sync::atomic::Ordering;

/// Free a block. Null is ignored; a pointer that is not a live mirs block
/// (foreign, interior, already freed) is refused, counted and reported
/// (`mirs: free(): invalid pointer ...`): it is validated through the page
/// map (huge blocks: the chunk map) before anything at `p` is read.
///
/// # Safety
/// `p` is not used afterwards, and no other thread frees or uses it at the
/// same time (a concurrent double free of one block is a race mirs cannot
/// see).
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    let Some(page) = page_map::page_of(p) else {
        return free_outside_chunk_start(p);
    };
    // SAFETY: as the caller guarantees; `page` is the page map's for `p`.
    unsafe { free_in_page(p, page) }
}

/// `free` once the page map gave `page` for `p` (realloc looked it up
/// already).
///
/// # Safety
/// As [`free`]; `page` is what `page_map::page_of(p)` returned.
#[inline(always)]
pub(crate) unsafe fn free_in_page(p: *mut u8, page: *mut Page) {
    // SAFETY: the page map holds headers of live normal chunks, or the
    // static ownerless one (the test fails for it: slow path).
    if platform::is_current_thread(unsafe { &*page }.owner.load(Ordering::Relaxed)) {
        // SAFETY: we own the page: its owner fields are ours.
        let pg = unsafe { Page::owned(page) };
        // `p` must be one of the page's carved block starts before anything
        // at `p` is read (this also rejects a pointer whose slice entry it
        // only aliases, page_map.rs). A marked block is (almost surely)
        // free already: the slow path looks it up on the lists.
        // SAFETY: as said; `p` is the caller's to free.
        if pg.is_plain_block_start(p) && !unsafe { pg.is_marked_free(p.cast()) } {
            // An emptied page is retired (cold), unless it already is: a
            // retiring page that keeps being used is noticed by the heap.
            // SAFETY: a handed-out block start of our page.
            if unsafe { pg.push_local(p.cast()) } && pg.retire_expire() == 0 {
                retire_page(page);
            }
            return;
        }
    }
    // SAFETY: a page of a live chunk, or the static ownerless header
    // (free_generic checks that `p` is one of its blocks, and hands the
    // ownerless header to free_special).
    unsafe { free_generic(p, page) }
}

#[cold]
#[inline(never)]
fn retire_page(page: *mut Page) {
    // SAFETY: the calling thread owns the page, a page of a live chunk.
    let heap = Heap::of_page(unsafe { &*page });
    // SAFETY: so its heap is the thread's live heap.
    unsafe { (*heap).page_retire(page) };
}

/// Pointers in no normal chunk's slice: null, foreign, or a huge block.
#[cold]
#[inline(never)]
fn free_outside_chunk_start(p: *mut u8) {
    if p.is_null() {
        return;
    }
    match resolve(p) {
        // SAFETY: `resolve` found a live page spanning `p`.
        Some(page) => unsafe { free_generic(p, page) },
        None => invalid_free(p, "a pointer mirs does not own"),
    }
}

/// (`p` first: free's argument register stays where it is.)
///
/// The common case first, lean (few registers, no frame: it is every free
/// of a producer/consumer program): a plain block of a page another live
/// thread owns goes on that page's `thread_free`. Everything else is
/// [`free_special`]'s.
///
/// # Safety
/// `page` is a page in use of a live chunk, spanning `p`, or the page
/// map's static ownerless header for `p`.
#[cold]
#[inline(never)]
unsafe fn free_generic(p: *mut u8, page: *mut Page) {
    // SAFETY: as the caller guarantees: a page header of a live chunk or
    // the static ownerless one (all its fields are atomics or cells:
    // `&Page` aliases nothing).
    let pg = unsafe { &*page };
    let owner = pg.owner.load(Ordering::Acquire);
    if is_thread_owner(owner) && !platform::is_current_thread(owner) && pg.is_block_start(p) {
        let block = p.cast::<Block>();
        // SAFETY: a carved block start of the page, which the caller frees:
        // no other thread writes it.
        if unsafe { pg.is_marked_free(block) } {
            return double_free(block);
        }
        // SAFETY: as above.
        unsafe { Block::set_free_mark(block, pg.free_mark()) };
        // SAFETY: the caller's block of another thread's page.
        return unsafe { free_block_mt(page, block) };
    }
    if owner == OWNER_ABANDONED && pg.is_block_start(p) {
        // SAFETY: a carved block start of a page we saw abandoned, the
        // caller's to free.
        return unsafe { free_abandoned(page, p.cast()) };
    }
    // SAFETY: as the caller guarantees.
    unsafe { free_special(p, page, owner) }
}

/// A block of an abandoned page (its thread exited and left it live; a
/// successor frees it, as larson's threads do), off `free_special`'s path
/// of the rarer cases: marked and pushed on the page's `thread_free`, the
/// page freed when that brings back its last block. Its lists are not
/// ours to walk, so the mark decides, as for another thread's page (a
/// live block's second word holds it only if the program stored the page
/// header's address there).
///
/// # Safety
/// `block` is a carved block start of `page`, a page of a live chunk seen
/// abandoned, and the caller's to free.
#[cold]
#[inline(never)]
unsafe fn free_abandoned(page: *mut Page, block: *mut Block) {
    // SAFETY: as the caller guarantees.
    let pg = unsafe { &*page };
    // SAFETY: the caller's block: no other thread writes it.
    if unsafe { pg.is_marked_free(block) } {
        return double_free(block);
    }
    // SAFETY: as above.
    unsafe { Block::set_free_mark(block, pg.free_mark()) };
    // SAFETY: the caller's block of a page we saw abandoned.
    match unsafe { pg.abandon_words().free_into(block, pg.key()) } {
        AbandonedFree::Last => arena::free_abandoned_if_empty(page),
        AbandonedFree::Pushed => {}
        // Adopted meanwhile by a heap that found it full: hand the block
        // to that heap, as for any full page.
        // SAFETY: `free_into` entered DelayedFreeing with our block.
        AbandonedFree::Delayed => unsafe { push_delayed_and_end(page, block) },
    }
}

/// Every other free: our own page (full, or with aligned blocks), an
/// abandoned page, a singleton, an interior or aligned pointer, and what
/// is no live block. `owner` is the page's owner as `free_generic` read it.
///
/// # Safety
/// As [`free_generic`].
#[cold]
#[inline(never)]
unsafe fn free_special(p: *mut u8, page: *mut Page, owner: usize) {
    if page == page_map::no_page() {
        // Not a normal chunk's slice: a huge block's, or not mirs's.
        return free_outside_chunk_start(p);
    }
    // SAFETY: as the caller guarantees: a page header of a live chunk.
    let pg = unsafe { &*page };
    if owner == OWNER_NONE {
        return invalid_free(p, "a pointer into an unused page");
    }
    let Some(block) = block_of(pg, owner, p, true) else {
        return invalid_free(p, "a pointer that is not the start of a block");
    };
    if owner == OWNER_SINGLETON {
        // SAFETY: a live singleton page whose block `p` is.
        if !unsafe { arena::free_singleton(page) } {
            // Freed by another thread meanwhile.
            double_free(block);
        }
        return;
    }
    // SAFETY (for the mark tests below): `block` is a carved block start of
    // the page, which the caller frees: no other thread writes it.
    if owner == platform::thread_id() {
        let heap = Heap::of_page(pg);
        // SAFETY: see above; our page, a page of our heap.
        if unsafe { pg.is_marked_free(block) } && unsafe { is_free_block(heap, page, block) } {
            return double_free(block);
        }
        // SAFETY: our page's heap is our live heap.
        let heap = unsafe { &mut *heap };
        // SAFETY: our heap's page; `block` a handed-out block start of it.
        return unsafe { heap.free_local(page, block) };
    }
    if owner == OWNER_ABANDONED {
        // SAFETY: see above; a page we saw abandoned.
        return unsafe { free_abandoned(page, block) };
    }
    // Another thread's page: its lists are not ours to walk, so the mark
    // decides (a live block's second word holds it only if the program
    // stored the page header's address there).
    // SAFETY: see above.
    if unsafe { pg.is_marked_free(block) } {
        return double_free(block);
    }
    // SAFETY: see above.
    unsafe { Block::set_free_mark(block, pg.free_mark()) };
    // SAFETY: the caller's block of another thread's page.
    unsafe { free_block_mt(page, block) };
}

/// Free a block of a page another thread owns.
///
/// # Safety
/// `block` is a handed-out block start of `page`, now owned by the caller.
unsafe fn free_block_mt(page: *mut Page, block: *mut Block) {
    // SAFETY: as the caller guarantees: a page header of a live chunk.
    let pg = unsafe { &*page };
    // SAFETY: as the caller guarantees.
    if unsafe { pg.push_thread_free(block) } == Pushed::Delayed {
        // SAFETY: our push entered DelayedFreeing; `heap` is read only in
        // that state, during which the owner keeps the heap alive.
        unsafe { push_delayed_and_end(page, block) };
    }
}

/// In `DelayedFreeing` (our push found the page full): put `block` on the
/// owning heap's delayed list and leave the state.
///
/// # Safety
/// The caller's push on `page` returned `Pushed::Delayed` and `block` is ours.
#[cold]
#[inline(never)]
unsafe fn push_delayed_and_end(page: *mut Page, block: *mut Block) {
    // SAFETY: the page is in DelayedFreeing, entered by our push of `block`:
    // its heap is alive until `hand_over` leaves that state.
    let pg = unsafe { &*page };
    // SAFETY: as above: `list()` is called in DelayedFreeing, while the
    // heap is alive.
    let list = || unsafe { Heap::delayed_list(Heap::of_page_acquire(pg)) };
    // SAFETY: as above; the block is ours to give up.
    unsafe { crate::lockfree::delayed::hand_over(&pg.thread_free, list, block) };
}

/// A free (or realloc) of a pointer that is not a live block mirs handed
/// out: counted, reported (`mirs: free(): invalid pointer 0x..., <what>`;
/// aborting with `MIRS_ABORT_ON_ERROR=1`), and otherwise ignored.
#[cold]
#[inline(never)]
pub(crate) fn invalid_free(p: *mut u8, what: &str) {
    crate::support::stats::add(crate::support::stats::Counter::InvalidFrees, 1);
    crate::support::output::warning!("free(): invalid pointer {:p}, {}", p, what);
}

#[cold]
fn double_free(block: *mut Block) {
    invalid_free(block.cast(), "a block that is already free (double free)");
}
