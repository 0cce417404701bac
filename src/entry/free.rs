//! `free`, and the one routine that resolves a pointer to its page.
//!
//! Fast path (owner thread, no aligned blocks, `p` a block start, not
//! marked free): the page map gives the page (two dependent loads; a
//! static ownerless header for memory that is not a normal chunk's);
//! compare the page's owner with our thread id; bounds and divisibility
//! test; the free-mark test; mark and push on the page's `local_free`: 34
//! instructions to `ret` (`objdump -d` of `free` in libmirs.so).
//! Everything else goes through `free_generic`, which acts on the page's owner:
//! - ours (page full, or with aligned blocks): the heap frees it;
//! - another thread's: pushed on the page's `thread_free` (one CAS), or,
//!   when that page is full, on its heap's delayed list;
//! - abandoned: pushed on `thread_free`; the push that brings back the last
//!   live block frees the page (`arena::free_abandoned_if_empty`);
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

use crate::base::constants::CHUNK_MASK;
use crate::heap::Heap;
use crate::lockfree::block::Block;
use crate::lockfree::thread_free::AbandonedFree;
use crate::mem::arena;
use crate::mem::chunk::Chunk;
use crate::mem::chunk_map;
use crate::mem::page::{Page, Pushed, OWNER_ABANDONED, OWNER_NONE, OWNER_SINGLETON};
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
    let page = page_map::page_of(p);
    // SAFETY: the page map holds headers of live normal chunks, or the
    // static ownerless one (the test fails for it: slow path).
    if unsafe { &*page }.owner.load(Ordering::Relaxed) == platform::thread_id() {
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
    if page == page_map::no_page() {
        return free_outside_chunk_start(p);
    }
    // SAFETY: a page of a live chunk (free_generic checks that `p` is one
    // of its blocks).
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

/// The page of any pointer mirs might have handed out: the chunk map
/// validates the chunk before its header is read; None when `p` lies in no
/// page in use. The one pointer-resolution routine (free's fast path
/// inlines its first step).
pub(crate) fn resolve(p: *const u8) -> Option<*mut Page> {
    if p.is_null() {
        return None;
    }
    let mut base = p as usize & !CHUNK_MASK;
    let mut kind = chunk_map::kind_at(base);
    if kind != chunk_map::NORMAL && kind != chunk_map::HUGE {
        base = chunk_map::chunk_containing(p as usize)?;
        kind = chunk_map::kind_at(base);
    }
    let chunk = base as *mut Chunk;
    let page = if kind == chunk_map::HUGE {
        Chunk::page(chunk, 0)
    } else {
        // SAFETY: the map lists a live chunk at `base` spanning `p`.
        unsafe { Chunk::page_of(chunk, p) }
    };
    // SAFETY: a page header of a live chunk.
    let owner = unsafe { (*page).owner.load(Ordering::Acquire) };
    (owner != OWNER_NONE).then_some(page)
}

/// The block `p` frees in `page`, if `p` is one mirs handed out. With
/// `consume` (free), an aligned pointer's mark is cleared.
fn block_of(page: &Page, owner: usize, p: *mut u8, consume: bool) -> Option<*mut Block> {
    if owner == OWNER_SINGLETON {
        // One block, given exactly (any offset test would misfire on blocks
        // over 4 GiB).
        return (p == page.start()).then_some(p.cast());
    }
    if page.is_block_start(p) {
        return Some(p.cast());
    }
    if page.has_aligned() {
        let block = page.block_containing(p)?;
        // Only the pointer malloc_aligned handed out, not any interior one.
        if p as usize - block as usize >= ALIGN_MARK_MIN {
            let mark = p.wrapping_sub(8).cast::<u64>();
            // SAFETY: `p - 8` lies inside the carved block (at least 16 bytes in).
            let marked = unsafe { mark.read() } == align_mark(p);
            if marked {
                if consume {
                    // SAFETY: as above; the block is being freed.
                    unsafe { mark.write(0) };
                }
                return Some(block);
            }
        }
    }
    None
}

/// An aligned pointer handed out inside a bigger block lies at least this
/// far into it (blocks are 16-byte aligned), leaving room for its mark.
const ALIGN_MARK_MIN: usize = 16;

/// The word stored just below an over-aligned pointer `p`: free accepts an
/// interior pointer only when it finds it there, so an arbitrary interior
/// pointer (a bug in the caller) is refused instead of freeing its block.
fn align_mark(p: *const u8) -> u64 {
    (p as u64).rotate_left(29) ^ 0x6d69_7273_2d61_6c69
}

/// Mark `p` as an over-aligned pointer handed out (see [`align_mark`]).
///
/// # Safety
/// `p` lies at least 16 bytes into a live block the caller owns.
pub(crate) unsafe fn mark_aligned(p: *mut u8) {
    let mark = p.wrapping_sub(8).cast::<u64>();
    // SAFETY: as the caller guarantees; the 8 bytes below `p` are padding.
    unsafe { mark.write(align_mark(p)) };
}

/// (`p` first: free's argument register stays where it is.)
///
/// # Safety
/// `page` is a page in use of a live chunk, spanning `p`.
#[cold]
#[inline(never)]
unsafe fn free_generic(p: *mut u8, page: *mut Page) {
    // SAFETY: as the caller guarantees: a page header of a live chunk
    // (all its fields are atomics or cells: `&Page` aliases nothing).
    let pg = unsafe { &*page };
    let owner = pg.owner.load(Ordering::Acquire);
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
    // Another thread's or an abandoned page: its lists are not ours to
    // walk, so the mark decides (a live block's second word holds it
    // only if the program stored the page header's address there).
    // SAFETY: see above.
    if unsafe { pg.is_marked_free(block) } {
        return double_free(block);
    }
    // SAFETY: see above.
    unsafe { Block::set_free_mark(block, pg.free_mark()) };
    if owner == OWNER_ABANDONED {
        // SAFETY: the caller's block of a page we saw abandoned.
        match unsafe { pg.abandon_words().free_into(block, pg.key()) } {
            AbandonedFree::Last => arena::free_abandoned_if_empty(page),
            AbandonedFree::Pushed => {}
            // Adopted meanwhile by a heap that found it full: hand the
            // block to that heap, as for any full page.
            // SAFETY: `free_into` entered DelayedFreeing with our block.
            AbandonedFree::Delayed => unsafe { push_delayed_and_end(page, block) },
        }
    } else {
        // SAFETY: the caller's block of another thread's page.
        unsafe { free_block_mt(page, block) };
    }
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

/// Owner thread: is `block` (a carved block of `page`, marked free) on one
/// of the page's lists or the heap's delayed list? Exact: a live block whose
/// data happens to hold the mark is freed normally.
///
/// # Safety
/// The calling thread owns `page`, a page of `heap`.
#[cold]
unsafe fn is_free_block(heap: *mut Heap, page: *mut Page, block: *mut Block) -> bool {
    // SAFETY: as the caller guarantees; the owner may collect its page and
    // drain its delayed list (which moves its blocks to their pages' lists).
    unsafe { (*heap).drain_delayed_free() };
    // SAFETY: as the caller guarantees.
    let pg = unsafe { Page::owned(page) };
    pg.collect_thread_free();
    pg.lists_contain(block)
}

/// The usable size at `p` when `p` is a pointer mirs handed out and has
/// not had back (a singleton in use, or a carved block start, or aligned
/// pointer into one, without the free mark; for the owner thread exactly,
/// by the lists), None otherwise.
///
/// # Safety
/// No other thread frees `p` or writes its block meanwhile.
pub(crate) unsafe fn live_usable_size(p: *const u8) -> Option<usize> {
    let page = resolve(p)?;
    // SAFETY: `resolve` found a live page spanning `p`.
    let page_ref = unsafe { &*page };
    let owner = page_ref.owner.load(Ordering::Acquire);
    let block = block_of(page_ref, owner, p as *mut u8, false)?;
    let size = page_ref.block_size() - (p as usize - block as usize);
    // SAFETY: a carved block start of the page; the caller rules out writers.
    if owner == OWNER_SINGLETON || !unsafe { page_ref.is_marked_free(block) } {
        return Some(size);
    }
    if owner != platform::thread_id() {
        return None;
    }
    // SAFETY: our own page, a page of our heap.
    let free = unsafe { is_free_block(Heap::of_page(page_ref), page, block) };
    (!free).then_some(size)
}
