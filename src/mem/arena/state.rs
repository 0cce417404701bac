//! The arena's state, which its one lock guards (`with_arena` in
//! `lock.rs` takes it), the counters read without it, and the sizes the
//! rest share.

use crate::base::constants::*;
use crate::base::size_class::BIN_COUNT;
use crate::lockfree::sync::SpinLock;
use crate::mem::chunk::Chunk;
use crate::mem::page::Page;
use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize};

pub(super) struct State {
    /// Normal chunks, oldest first (older chunks are preferred for new
    /// spans, so younger ones drain and can be released).
    pub(super) first: *mut Chunk,
    pub(super) last: *mut Chunk,
    /// Normal chunks with every slice free.
    pub(super) empty: usize,
    /// Where searches for free slices start: every chunk before it (in list
    /// order, by `seq`) has no free slice, so a full arena is not walked
    /// chunk by chunk for each span.
    pub(super) scan: *mut Chunk,
    /// `seq` of the next chunk pushed.
    pub(super) next_seq: u64,
    /// Freed huge chunks (hosted); null slots are empty.
    pub(super) huge_cache: [*mut Chunk; HUGE_CACHE_SLOTS],
    /// Free slices whose memory may be resident (dirty), over all chunks,
    /// and bytes of dirty cached huge chunks: what `trim` bounds.
    pub(super) dirty_slices: usize,
    pub(super) dirty_huge: usize,
    /// Abandoned pages of each bin, oldest first (the ones that had the
    /// longest to get their blocks back): a doubly linked list through
    /// their chunks' `ab_next` / `ab_prev`, so an adopter takes one without
    /// a search.
    pub(super) abandoned: [*mut Page; BIN_COUNT],
    pub(super) abandoned_last: [*mut Page; BIN_COUNT],
    /// System calls found to do while the lock was held, made once it is
    /// dropped ([`with_arena`]).
    pub(super) pending: Deferred,
}

// SAFETY: the raw chunk pointers are only followed under the lock.
unsafe impl Send for State {}

pub(super) static ARENA: SpinLock<State> = SpinLock::new(State {
    first: ptr::null_mut(),
    last: ptr::null_mut(),
    empty: 0,
    scan: ptr::null_mut(),
    next_seq: 0,
    huge_cache: [ptr::null_mut(); HUGE_CACHE_SLOTS],
    dirty_slices: 0,
    dirty_huge: 0,
    abandoned: [ptr::null_mut(); BIN_COUNT],
    abandoned_last: [ptr::null_mut(); BIN_COUNT],
    pending: Deferred::NONE,
});

/// Purge runs deferred per lock hold (more wait for the next pass).
pub(super) const DEFER_PURGE: usize = 64;
/// Chunks to unmap per lock hold (more stay as spares until the next
/// purge pass, which gives back the empty chunks beyond the spares).
pub(super) const DEFER_UNMAP: usize = 16;

/// System calls to make after the lock is dropped. What they act on is out
/// of everyone else's reach meanwhile: unlinked chunks, free slices moved
/// from `free` to `purging`, huge chunks taken out of the cache.
#[derive(Clone, Copy)]
pub(super) struct Deferred {
    pub(super) unmap: [*mut Chunk; DEFER_UNMAP],
    pub(super) n_unmap: usize,
    /// A chunk and the slices of it to purge (its `purging` bits).
    pub(super) purge: [(*mut Chunk, u64); DEFER_PURGE],
    pub(super) n_purge: usize,
    /// Huge chunks (out of the cache) whose body to purge.
    pub(super) huge: [*mut Chunk; HUGE_CACHE_SLOTS],
    pub(super) n_huge: usize,
}

impl Deferred {
    pub(super) const NONE: Deferred = Deferred {
        unmap: [ptr::null_mut(); DEFER_UNMAP],
        n_unmap: 0,
        purge: [(ptr::null_mut(), 0); DEFER_PURGE],
        n_purge: 0,
        huge: [ptr::null_mut(); HUGE_CACHE_SLOTS],
        n_huge: 0,
    };

    pub(super) fn is_empty(&self) -> bool {
        self.n_unmap == 0 && self.n_purge == 0 && self.n_huge == 0
    }
}

/// Abandoned pages per bin and in all (changed under the lock, read without it).
pub(super) static ABANDONED: [AtomicUsize; BIN_COUNT] = [const { AtomicUsize::new(0) }; BIN_COUNT];
pub(super) static ABANDONED_TOTAL: AtomicUsize = AtomicUsize::new(0);
/// The earliest time (ms) a purge is due; u64::MAX when none is pending.
/// Lowered without the lock's help being needed (fetch_min), recomputed by
/// each purge pass under the lock, so a pass that has nothing to do costs
/// one load.
pub(super) static PURGE_DUE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Huge blocks are cached only where purging returns their memory and the
/// address space is plentiful; embedded memory goes straight back.
pub(super) const HUGE_CACHE: bool = cfg!(feature = "hosted");

/// Slices of a page of blocks of `block_size` (a size class up to
/// `LARGE_OBJ_SIZE_MAX`): one for small blocks, else room for about
/// `LARGE_BLOCKS_PER_PAGE` blocks.
pub fn page_slices(block_size: usize) -> usize {
    if block_size <= SMALL_OBJ_SIZE_MAX {
        1
    } else {
        (block_size * LARGE_BLOCKS_PER_PAGE)
            .div_ceil(SLICE_SIZE)
            .min(MAX_PAGE_SLICES)
    }
}

/// The largest block a singleton span in a normal chunk holds; larger
/// blocks get a huge chunk.
pub const SINGLETON_MAX: usize = (SLICES_PER_CHUNK - 1) * SLICE_SIZE;

/// A span found for a request: its chunk, first slice and length, and
/// whether all of its memory reads as zero.
pub(super) struct Span {
    pub(super) chunk: *mut Chunk,
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) is_zero: bool,
}
