//! The arena's state, which its one lock guards (`with_arena` in
//! `lock.rs` takes it), the counters read without it, and the sizes the
//! rest share.

use super::directory::Directory;
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
    /// The list's free and dirty slices, dense, for the span search.
    pub(super) dir: Directory,
    /// Freed huge chunks (hosted); null slots are empty.
    pub(super) huge_cache: [*mut Chunk; HUGE_CACHE_SLOTS],
    /// Free slices whose memory may be resident (dirty), over all chunks,
    /// and bytes of dirty cached huge chunks: what `trim` bounds.
    pub(super) dirty_slices: usize,
    pub(super) dirty_huge: usize,
    /// Regions huge blocks are carved from (hosted), and the bytes their
    /// free units may hold resident (also bounded by `trim`).
    pub(super) regions: [Region; MAX_REGIONS],
    pub(super) dirty_region: usize,
    /// Bytes of units in blocks (`trim`'s allowance for free units).
    pub(super) region_used: usize,
    /// Blocks freed into regions since one was last carved.
    pub(super) region_frees: usize,
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
    dir: Directory::EMPTY,
    huge_cache: [ptr::null_mut(); HUGE_CACHE_SLOTS],
    dirty_slices: 0,
    dirty_huge: 0,
    regions: [const { Region::EMPTY }; MAX_REGIONS],
    dirty_region: 0,
    region_used: 0,
    region_frees: 0,
    abandoned: [ptr::null_mut(); BIN_COUNT],
    abandoned_last: [ptr::null_mut(); BIN_COUNT],
    pending: Deferred::NONE,
});

/// Purge runs deferred per lock hold (more wait for the next pass).
pub(super) const DEFER_PURGE: usize = 64;
/// Chunks to unmap per lock hold (more stay as spares until the next
/// purge pass, which gives back the empty chunks beyond the spares).
pub(super) const DEFER_UNMAP: usize = 16;
/// Runs of region units to purge per lock hold.
pub(super) const DEFER_REGION: usize = 16;

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
    /// Region units to purge: (region, first unit, units, start address,
    /// bytes).
    pub(super) region: [(usize, usize, usize, usize, usize); DEFER_REGION],
    pub(super) n_region: usize,
}

impl Deferred {
    pub(super) const NONE: Deferred = Deferred {
        unmap: [ptr::null_mut(); DEFER_UNMAP],
        n_unmap: 0,
        purge: [(ptr::null_mut(), 0); DEFER_PURGE],
        n_purge: 0,
        huge: [ptr::null_mut(); HUGE_CACHE_SLOTS],
        n_huge: 0,
        region: [(0, 0, 0, 0, 0); DEFER_REGION],
        n_region: 0,
    };

    pub(super) fn is_empty(&self) -> bool {
        self.n_unmap == 0 && self.n_purge == 0 && self.n_huge == 0 && self.n_region == 0
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
/// The smallest block that gets a huge chunk: from `REGION_MIN` on where
/// there are regions (hosted), else beyond `SINGLETON_MAX`.
pub const HUGE_MIN: usize = if REGIONS {
    REGION_MIN
} else {
    SINGLETON_MAX + 1
};

/// A span found for a request: its chunk, first slice and length, and
/// whether all of its memory reads as zero.
pub(super) struct Span {
    pub(super) chunk: *mut Chunk,
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) is_zero: bool,
}

// ---------------------------------------------------------------- regions
// (the units' bookkeeping is `region.rs`'s)

/// Address space per region: a few hundred MiB of big blocks fit one.
pub(super) const REGION_SIZE: usize = 1 << 30;
/// Units (chunks' 4 MiB) per region.
pub(super) const UNITS: usize = REGION_SIZE / CHUNK_SIZE;
/// Transparent huge pages (2 MiB) per region, and words of their bitmap.
pub(super) const HUGE_PAGE: usize = 2 << 20;
pub(super) const HUGE_WORDS: usize = REGION_SIZE / HUGE_PAGE / 64;
pub(super) const WORDS: usize = UNITS / 64;
/// Regions at most (16 GiB of address space); beyond them blocks get
/// mappings of their own.
pub(super) const MAX_REGIONS: usize = 16;
/// Blocks of more units than this get a mapping of their own: one such
/// block would take a good part of a region.
pub(super) const REGION_MAX_UNITS: usize = UNITS / 4;
/// Blocks from this size on are carved from regions (when there are
/// regions): the memory of freed big blocks then serves big blocks of any
/// size, in huge pages, rather than staying in spans of 4 MiB chunks.
pub(super) const REGION_MIN: usize = 1 << 20;
/// Regions exist hosted only (embedded memory is the embedder's), and not
/// with `secure`, whose guard page after each header would split them.
pub(super) const REGIONS: bool = cfg!(all(feature = "hosted", not(feature = "secure")));

const _: () = assert!(UNITS.is_multiple_of(64) && UNITS <= u16::MAX as usize);

/// A region's units (under the lock).
pub(super) struct Region {
    pub(super) base: usize,
    /// Bit u: unit u is in no block and not being purged.
    pub(super) free: [u64; WORDS],
    /// Per unit: bytes from its start that may be resident (0: reads as
    /// zero). Kept for units in use too: the tail after a block holds what
    /// an earlier, longer block left there.
    pub(super) dirty: [u32; UNITS],
    /// Per free unit with resident memory: when it was freed (ms).
    pub(super) freed_at: [u64; UNITS],
    /// Free units with resident memory.
    pub(super) dirty_units: usize,
    /// At most the earliest `freed_at` of those (exact after
    /// `region::oldest_dirty`'s scan; `u64::MAX`: none yet), so `trim` need
    /// not scan every unit to see that all of them were freed recently.
    pub(super) oldest_freed: u64,
    /// Bit h: huge page h (2 MiB) is advised for transparent huge pages.
    pub(super) huge: [u64; HUGE_WORDS],
}

impl Region {
    pub(super) const EMPTY: Region = Region {
        base: 0,
        free: [0; WORDS],
        dirty: [0; UNITS],
        freed_at: [0; UNITS],
        dirty_units: 0,
        oldest_freed: u64::MAX,
        huge: [0; HUGE_WORDS],
    };

    pub(super) fn is_free(&self, u: usize) -> bool {
        self.free[u / 64] & (1 << (u % 64)) != 0
    }

    pub(super) fn set_free(&mut self, u: usize, free: bool) {
        if free {
            self.free[u / 64] |= 1 << (u % 64);
        } else {
            self.free[u / 64] &= !(1 << (u % 64));
        }
    }

    /// The first free unit at or after `from`.
    pub(super) fn next_free(&self, from: usize) -> Option<usize> {
        self.next_where(from, false)
    }

    /// The first unit at or after `from` in a block or being purged
    /// (`UNITS` when none).
    pub(super) fn next_used(&self, from: usize) -> usize {
        self.next_where(from, true).unwrap_or(UNITS)
    }

    /// The first unit at or after `from` whose free bit is clear (`used`)
    /// or set, a word at a time.
    fn next_where(&self, from: usize, used: bool) -> Option<usize> {
        let mut i = from / 64;
        let mut mask = u64::MAX.checked_shl((from % 64) as u32).unwrap_or(0);
        while i < WORDS {
            let word = if used { !self.free[i] } else { self.free[i] } & mask;
            if word != 0 {
                return Some(i * 64 + word.trailing_zeros() as usize);
            }
            i += 1;
            mask = u64::MAX;
        }
        None
    }

    pub(super) fn all_free(&self) -> bool {
        self.free.iter().all(|&w| w == u64::MAX)
    }
}
