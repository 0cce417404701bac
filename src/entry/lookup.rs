//! Which block a pointer names, if any: the lookup and validation that
//! free, realloc, usable_size, owns, in_heap and the aligned allocator share.
//!
//! `resolve` finds the page (the chunk map validates the chunk before its
//! header is read; free's fast path inlines the page map's first step
//! instead); `block_of` accepts only a block start, a singleton's exact
//! block, or the exact over-aligned pointer `malloc_aligned` marked
//! (`mark_aligned`); `is_free_block` settles the free mark on the owner's
//! lists. Validation policy: docs/design.md.

use crate::base::constants::CHUNK_MASK;
use crate::heap::Heap;
use crate::lockfree::block::Block;
use crate::mem::chunk::Chunk;
use crate::mem::chunk_map;
use crate::mem::page::{is_thread_owner, Page, OWNER_NONE, OWNER_SINGLETON};
use crate::mem::page_map;
use crate::platform;
use core::sync::atomic::Ordering;

/// The page of any pointer mirs might have handed out: the chunk map
/// validates the chunk before its header is read; None when `p` lies in no
/// page in use. The one pointer-resolution routine: free's fast path asks
/// the page map alone and comes here for what lies outside normal chunks.
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
pub(crate) fn block_of(page: &Page, owner: usize, p: *mut u8, consume: bool) -> Option<*mut Block> {
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

/// Owner thread: is `block` (a carved block of `page`, marked free) on one
/// of the page's lists or the heap's delayed list? Exact: a live block whose
/// data happens to hold the mark is freed normally.
///
/// # Safety
/// The calling thread owns `page`, a page of `heap`.
#[cold]
pub(crate) unsafe fn is_free_block(heap: *mut Heap, page: *mut Page, block: *mut Block) -> bool {
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
/// The common case as free's fast path finds it (realloc and
/// malloc_usable_size of a block of a thread's page): the page map's page,
/// owned by a thread, `p` one of its carved block starts, unmarked.
/// Everything else: [`live_usable_size_slow`].
///
/// # Safety
/// No other thread frees `p` or writes its block meanwhile.
#[inline(always)]
pub(crate) unsafe fn live_usable_size(p: *const u8) -> Option<usize> {
    // SAFETY: as the caller guarantees.
    match unsafe { live_block_fast(p) } {
        Some((_, size)) => Some(size),
        // SAFETY: as the caller guarantees.
        None => unsafe { live_usable_size_slow(p) },
    }
}

/// [`live_usable_size`]'s common case with the page map's page for `p`
/// (realloc frees `p` through it), None for everything else (which need
/// not be an invalid pointer: ask [`live_usable_size_slow`]).
///
/// # Safety
/// As [`live_usable_size`].
#[inline(always)]
pub(crate) unsafe fn live_block_fast(p: *const u8) -> Option<(*mut Page, usize)> {
    let page = page_map::page_of(p)?;
    // SAFETY: the page map holds headers of live normal chunks, or the
    // static ownerless one (not a thread's: None).
    let pg = unsafe { &*page };
    (is_thread_owner(pg.owner.load(Ordering::Acquire))
        && pg.is_block_start(p)
        // SAFETY: a carved block start of the page; the caller rules out
        // writers.
        && !unsafe { pg.is_marked_free(p as *mut Block) })
    .then(|| (page, pg.block_size()))
}

/// [`live_usable_size`] by the chunk map: huge blocks, singletons, aligned
/// pointers, marked blocks (settled on the owner's lists), and what is no
/// live block.
///
/// # Safety
/// As [`live_usable_size`].
#[cold]
#[inline(never)]
pub(crate) unsafe fn live_usable_size_slow(p: *const u8) -> Option<usize> {
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
