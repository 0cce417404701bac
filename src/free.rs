//! `free`, and the one routine that resolves a pointer to its page.
//!
//! Fast path (owner thread, page not full, no aligned blocks, `p` a block
//! start): mask to the chunk, one byte test in the chunk map, one load of the
//! slice's page header offset, compare the page's owner with our thread id,
//! bounds and divisibility test, push on the page's `local_free`. Everything
//! else goes through `free_generic`, which acts on the page's owner:
//! - ours (page full, or with aligned blocks): the heap frees it;
//! - another thread's: pushed on the page's `thread_free` (one CAS), or,
//!   when that page is full, on its heap's delayed list;
//! - abandoned: pushed on `thread_free`; the push that brings back the last
//!   live block frees the page (`arena::free_abandoned_if_empty`);
//! - a singleton (one block in its own span or huge chunk): freed at once
//!   by whichever thread frees it.
//!
//! Validation policy: a pointer is freed only if it resolves to a page in
//! use and is the start of one of its carved blocks (or, in a page that
//! handed out over-aligned pointers, lies inside one; a singleton's only
//! block must be given exactly). Anything else is counted, reported with
//! `MIRS_VERBOSE=1` and ignored, never linked into a list.

use crate::arena;
use crate::block::Block;
use crate::chunk::Chunk;
use crate::chunk_map;
use crate::constants::CHUNK_MASK;
use crate::heap::Heap;
use crate::output::invalid_free;
use crate::page::{Page, Pushed, OWNER_ABANDONED, OWNER_NONE, OWNER_SINGLETON};
use crate::platform;
use core::sync::atomic::Ordering;

/// Free a block (null and foreign pointers are ignored).
// Takes any pointer by design (C's free): it is validated through the
// chunk map before anything is read.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[inline(always)]
pub fn free(p: *mut u8) {
    let base = p as usize & !CHUNK_MASK;
    if !chunk_map::is_chunk(base) {
        return free_outside_chunk_start(p);
    }
    // SAFETY: the chunk map says a live normal chunk's header is at `base`,
    // and `p` lies in its 4 MiB; the page header is inside that header.
    unsafe {
        let chunk = Chunk::at(base);
        let page = Chunk::page_of(chunk, p);
        if (*page).owner.load(Ordering::Relaxed) == platform::thread_id()
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
        free_generic(page, p);
    }
}

#[cold]
#[inline(never)]
fn retire_page(page: *mut Page) {
    // SAFETY: the calling thread owns the page, so its heap is the thread's live heap.
    unsafe { (*(*page).heap.load(Ordering::Relaxed)).page_retire(page) };
}

/// Pointers whose 4 MiB region is not a normal chunk's start: null,
/// foreign, or a huge block.
#[cold]
#[inline(never)]
fn free_outside_chunk_start(p: *mut u8) {
    if p.is_null() {
        return;
    }
    match resolve(p) {
        // SAFETY: `resolve` found a live page spanning `p`.
        Some(page) => unsafe { free_generic(page, p) },
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
    // SAFETY: the map lists a live chunk at `base` spanning `p`.
    let page = unsafe {
        let chunk = Chunk::at(base);
        if kind == chunk_map::HUGE {
            Chunk::page(chunk, 0)
        } else {
            Chunk::page_of(chunk, p)
        }
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
        return (p == page.start).then_some(p.cast());
    }
    if page.is_block_start(p) {
        return Some(p.cast());
    }
    if page.has_aligned() {
        let block = page.block_containing(p)?;
        // Only the pointer malloc_aligned handed out, not any interior one.
        if p as usize - block as usize >= ALIGN_MARK_MIN {
            // SAFETY: `p - 8` lies inside the carved block (at least 16 bytes in).
            let marked = unsafe { p.sub(8).cast::<u64>().read() } == align_mark(p);
            if marked {
                if consume {
                    // SAFETY: as above; the block is being freed.
                    unsafe { p.sub(8).cast::<u64>().write(0) };
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
    // SAFETY: as the caller guarantees; the 8 bytes below `p` are padding.
    unsafe { p.sub(8).cast::<u64>().write(align_mark(p)) };
}

/// # Safety
/// `page` is a page in use of a live chunk, spanning `p`.
#[cold]
#[inline(never)]
unsafe fn free_generic(page: *mut Page, p: *mut u8) {
    // SAFETY: as the caller guarantees.
    unsafe {
        let owner = (*page).owner.load(Ordering::Acquire);
        if owner == OWNER_NONE {
            return invalid_free(p, "a pointer into an unused page");
        }
        let Some(block) = block_of(&*page, owner, p, true) else {
            return invalid_free(p, "a pointer that is not the start of a block");
        };
        if owner == OWNER_SINGLETON {
            arena::free_singleton(page);
        } else if owner == platform::thread_id() {
            if is_double_free(&*page, block) {
                return;
            }
            let heap = (*page).heap.load(Ordering::Relaxed);
            (*heap).free_local(page, block);
        } else if owner == OWNER_ABANDONED {
            // Read before the push: afterwards the page may be gone.
            let used = (*page).abandoned_used.load(Ordering::Relaxed) as usize;
            match (*page).push_thread_free(block) {
                Pushed::Count(count) if count == used => arena::free_abandoned_if_empty(page),
                Pushed::Count(_) => {}
                // Adopted meanwhile by a heap that found it full: hand the
                // block to that heap, as for any full page.
                Pushed::Delayed => push_delayed_and_end(page, block),
            }
        } else {
            free_block_mt(page, block);
        }
    }
}

/// Free a block of a page another thread owns.
///
/// # Safety
/// `block` is a handed-out block start of `page`, now owned by the caller.
unsafe fn free_block_mt(page: *mut Page, block: *mut Block) {
    // SAFETY: as the caller guarantees; `heap` is read only in the
    // DelayedFreeing state, during which the owner keeps the heap alive.
    unsafe {
        if (*page).push_thread_free(block) == Pushed::Delayed {
            push_delayed_and_end(page, block);
        }
    }
}

/// In `DelayedFreeing` (our push found the page full): put `block` on the
/// owning heap's delayed list and leave the state.
///
/// # Safety
/// The caller's push on `page` returned `Pushed::Delayed` and `block` is ours.
unsafe fn push_delayed_and_end(page: *mut Page, block: *mut Block) {
    // SAFETY: the heap is kept alive while the page is in DelayedFreeing.
    unsafe {
        let heap: *mut Heap = (*page).heap.load(Ordering::Acquire);
        debug_assert!(!heap.is_null());
        Heap::push_delayed(heap, block);
        (*page).end_delayed_freeing();
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

/// The page of a live block this thread just allocated from its heap (a
/// size-class block in a normal chunk).
///
/// # Safety
/// `p` is a block start returned by this thread's heap for a size class.
pub unsafe fn page_of_owned(p: *mut u8) -> *mut Page {
    let chunk = p.map_addr(|a| a & !CHUNK_MASK).cast::<Chunk>();
    // SAFETY: size-class blocks lie in a normal chunk's first 4 MiB.
    unsafe { Chunk::page_of(chunk, p) }
}

/// The usable size at `p` when `p` is a pointer mirs handed out (a carved
/// block start, or an aligned pointer into one), None otherwise.
// Takes any pointer by design (malloc_usable_size): it is validated through the
// chunk map before anything is read.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn checked_usable_size(p: *const u8) -> Option<usize> {
    let page = resolve(p)?;
    // SAFETY: `resolve` found a live page spanning `p`.
    let page = unsafe { &*page };
    let owner = page.owner.load(Ordering::Acquire);
    let block = block_of(page, owner, p as *mut u8, false)?;
    Some(page.block_size - (p as usize - block as usize))
}

/// Secure mode: is `p` a block of this thread's heap that is already free
/// (so a `realloc` of it is a use after free)? Other threads' blocks are not
/// checked: their lists belong to their owners.
#[cfg(feature = "secure")]
// Takes any pointer by design (realloc): it is validated through the
// chunk map before anything is read.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn is_freed_block_of_this_thread(p: *const u8) -> bool {
    let Some(page) = resolve(p) else {
        return false;
    };
    // SAFETY: `resolve` found a live page spanning `p`.
    let page = unsafe { &*page };
    page.owner.load(Ordering::Relaxed) == platform::thread_id()
        && page.is_block_start(p)
        && is_on_free_list(page, p as *mut Block)
}
