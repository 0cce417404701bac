//! The arena: every chunk of memory mirs has, shared by all threads, and
//! the spans of slices it hands out as pages.
//!
//! ```text
//! ARENA (one lock, taken once per page, never per block; no system call
//!        while it is held: `with_arena` makes them after)
//!  chunks     -> chunk <-> chunk <-> ...   normal chunks, oldest first
//!  empty         how many of them have every slice free (at most SPARE_CHUNKS kept)
//!  huge_cache    freed huge chunks kept for reuse by size (hosted)
//!  regions       reservations big blocks are carved from in 4 MiB units
//!                (hosted, not `secure`; `region.rs`)
//!  abandoned[bin] -> page <-> page ...    abandoned pages per size class,
//!                oldest first (links in the chunks' meta)
//!  pending       madvise / munmap to make once the lock is dropped
//! ABANDONED[bin] how many pages are in each list (a hint, read without the lock)
//! ```
//!
//! Pages are owned one by one, never chunks: a thread takes a span for a
//! page of its size class, gives it back the moment the page is empty
//! (after the heap's retire grace), and abandons each page that still holds
//! live blocks when it exits. An abandoned page is adopted by the next
//! thread that needs a page of its size class, or freed by the thread whose
//! free makes it empty: `abandoned_used` live blocks were left in it, and
//! `thread_free`'s length word says when that many have come back.
//!
//! Memory goes back once nothing uses it for a while: a freed span's slices
//! are purged (hosted: `madvise`) once they have been free for the purge
//! delay, or sooner when the dirty memory exceeds its budget (`trim`);
//! an empty chunk beyond the few spares goes back to the platform (the OS,
//! or the embedder's region or page provider); a freed huge block is cached
//! for reuse by size (hosted), purged after the delay, and unmapped when the
//! cache is full or memory runs short.
//!
//! Invariants (under the lock): a slice is in exactly one span, or free,
//! or purging (free, out of reach until its `madvise` is done);
//! `span_of[i]` names the span start of every slice of a span and is `i`
//! for a free or purging slice, whose page header has `OWNER_NONE`;
//! `abandoned` bit i is set iff `pages[i].owner == OWNER_ABANDONED` iff the
//! page is in its bin's abandoned list, and `ABANDONED[bin]` counts them.
//!
//! The files, bottom to top (each uses only those listed before it):
//! `state` (the state the lock guards, the counters), `directory` (the
//! chunk list's bits, dense, for the span search), `chunks` (the chunk
//! list, mapping, each chunk's free / dirty / purging slices), `huge_cache`
//! (freed huge chunks kept for reuse), `region` (units of regions for big
//! blocks, free ones joined), `trim` (the dirty-memory budget),
//! `lock` (`with_arena`: the critical section, then its system calls),
//! `span` (free slices taken and given back), `huge` (singletons and huge
//! blocks), `abandoned` (abandon, adopt, sweep), `purge` (the purge pass,
//! release when out of memory); here, pages for the heaps and fork.

mod abandoned;
mod chunks;
mod directory;
mod huge;
mod huge_cache;
mod lock;
mod purge;
mod region;
mod span;
mod state;
mod trim;

pub use abandoned::{
    abandon, adopt, for_each_abandoned, free_abandoned_if_empty, sweep_abandoned_now,
};
pub use huge::{alloc_singleton, free_singleton, grow_span, remap_huge};
pub use purge::{cached_count, dirty_bytes, purge, release_caches};
pub use state::{page_slices, HUGE_MIN, SINGLETON_MAX};

use crate::base::constants::*;
use crate::mem::chunk::{page_slices_at0, Chunk, CLASS_PAGES};
use crate::mem::page::{OwnerHeap, Page};
use crate::support::stats;
use core::ptr;
use lock::with_arena;
use span::{alloc_span, release_span};
use state::ARENA;

/// A page for blocks of `block_size` (a size class), owned by the thread
/// `owner` through `heap`, with its first blocks not yet carved; null when
/// out of memory.
pub fn alloc_page(
    heap: *mut OwnerHeap,
    owner: usize,
    block_size: usize,
    key: crate::lockfree::block::ListKey,
) -> *mut Page {
    debug_assert!(block_size <= LARGE_OBJ_SIZE_MAX);
    let n = page_slices(block_size);
    let Some(span) = alloc_span(CLASS_PAGES, n, Some(page_slices_at0(n))) else {
        return ptr::null_mut();
    };
    let is_zero = span.is_zero;
    let (start, area) = Chunk::span_area(span.chunk, span.first, span.count);
    let page = Chunk::page(span.chunk, span.first);
    // SAFETY: the span is ours alone until `init` publishes the page.
    // (`heap` is only recorded: the caller holds `&mut` to it; with
    // `secure` it sets the page's key before carving.)
    unsafe {
        Page::init(
            page,
            owner,
            heap,
            block_size,
            start,
            area,
            is_zero,
            (span.first, span.count),
            key,
        )
    };
    // SAFETY: our span; we publish it to `free` last.
    unsafe { Chunk::set_span(span.chunk, span.first, span.count, false) };
    // The page's block area (`area_bytes`), as `free_page` subtracts it.
    stats::page_allocated(block_size, area / block_size * block_size);
    // Taking memory from the arena is a moment to run due purges (after
    // the span is ours: memory just freed is reused before it is purged).
    purge(false);
    page
}

/// Give an empty page back (its owner, the page in no queue).
///
/// # Safety
/// The calling thread owns `page` (or it is abandoned and the caller has
/// made sure it is empty, holding the only reference), and no block of it
/// is live.
pub unsafe fn free_page(page: *mut Page) {
    // SAFETY: as the caller guarantees.
    let p = unsafe { &*page };
    let ((first, count), area) = (p.span(), p.area_bytes());
    stats::page_freed(area);
    let chunk = Chunk::of_page(page);
    // SAFETY: the page's span is in use and ours to give back.
    with_arena(|st| unsafe { release_span(st, chunk, first, count) });
}

/// Does the chunk directory copy the chunk list (tests; lock not held)?
#[cfg(all(test, not(loom), feature = "hosted"))]
pub fn directory_mirrors_list() -> bool {
    with_arena(|st| st.dir.mirrors(st.first))
}

/// In the child after `fork` (single-threaded now): a thread of the parent
/// may have held the lock; it does not exist here. The lock is not taken
/// across `fork` in a prepare handler: glibc runs those before it takes its
/// stdio locks, so a thread waiting for the arena while holding a FILE lock
/// deadlocks `fork` (glibc's tst-malloc-fork-deadlock), and a `fork` from a
/// signal handler that interrupted the arena would wait for itself
/// (tst-mallocfork2). The arena's critical sections are a few stores long; a
/// child forked in the middle of one may lose the span it was handling.
pub fn reset_after_fork() {
    // SAFETY: only this thread exists in the child.
    unsafe { ARENA.reset() };
    // Whatever the parent's critical section left half done there, the
    // list is what the child searches.
    with_arena(|st| st.dir.invalidate());
}
