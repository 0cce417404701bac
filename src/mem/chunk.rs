//! Chunks: `CHUNK_SIZE`-aligned units of arena memory (4 MiB hosted, 1 MiB
//! embedded), shared by every thread and carved into spans of 64 slices
//! (64 KiB hosted, 16 KiB embedded). Each span is one page, owned by one
//! thread (or by none: singletons and abandoned pages).
//!
//! ```text
//! chunk base (CHUNK_SIZE aligned) = block pointer & !CHUNK_MASK
//! +------------------------------+-----------+-----------+-----+-----------+
//! | pages[64]  span_of[64]  meta | slice 0   | slice 1   | ... | slice 63  |
//! | (header: first OS pages of   | (rest of  |           |     |           |
//! |  slice 0)                    |  slice 0) |           |     |           |
//! +------------------------------+-----------+-----------+-----+-----------+
//!   pages[i]:   the page header of the span that starts at slice i
//!   span_of[i]: byte offset of the page header of the span slice i belongs
//!               to; of pages[i] itself when slice i is free (that header
//!               then has no owner)
//! ```
//!
//! The free path finds a page with one load and no search:
//! `page = chunk + span_of[(p >> SLICE_SHIFT) & 63]`. A huge chunk (one block bigger
//! than a chunk can hold) is one mapping of any size with the same header;
//! its only page is `pages[0]`.
//!
//! Who touches what:
//! - `pages[i]`: see `page.rs` (owner-only fields, and the atomics any thread reads);
//! - `span_of`: written under the arena lock when a span is made or freed,
//!   read by any thread (atomic bytes);
//! - `meta`: only under the arena lock (`arena/`);
//! - `kind` and `size`: fixed before the chunk is entered in the chunk map.

use crate::base::constants::*;
use crate::mem::page::Page;
use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

/// Every slice of a chunk.
pub const ALL_SLICES: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum ChunkKind {
    /// 64 slices, spans handed out by the arena.
    Normal,
    /// One huge block: `size` bytes, one page.
    Huge,
}

/// What the arena keeps per chunk (under its lock).
pub struct ChunkMeta {
    /// Bit i: slice i is in no span.
    pub free: u64,
    /// Bit i: slice i is free and its memory may be resident and dirty.
    pub dirty: u64,
    /// Bit i: slice i reads as zero (fresh from the platform, or purged).
    pub zero: u64,
    /// Bit i: the page at slice i is abandoned (waits for an adopter).
    pub abandoned: u64,
    /// Links of the abandoned page at slice i in its bin's list
    /// (`arena::State::abandoned`).
    pub ab_next: [*mut Page; SLICES_PER_CHUNK],
    pub ab_prev: [*mut Page; SLICES_PER_CHUNK],
    /// Bit i: slice i is free but out of reach: its memory is being purged
    /// (with the lock dropped) and comes back into `free` after.
    pub purging: u64,
    /// When the dirty slices are due for purging (ms; 0 = none pending).
    pub purge_at: u64,
    /// Links in the arena's list of normal chunks.
    pub next: *mut Chunk,
    /// Order in that list (increasing from first to last).
    pub seq: u64,
    pub prev: *mut Chunk,
    /// Huge chunks in the huge cache: when they were freed (ms).
    pub cached_at: u64,
    /// What the chunk's spans serve (`CLASS_PAGES` or `CLASS_SINGLETONS`),
    /// chosen again whenever the chunk is empty.
    pub class: u8,
}

/// Chunks serving size-class pages.
pub const CLASS_PAGES: u8 = 0;
/// Chunks serving singleton blocks: kept apart from pages so that a chunk
/// whose big blocks are all freed is empty and can go back whole.
pub const CLASS_SINGLETONS: u8 = 1;

#[repr(C)]
pub struct Chunk {
    /// At offset 0, so a page's chunk is its address masked, and every page
    /// header is 128-byte aligned (its hot half is one cache line).
    pub(crate) pages: [Page; SLICES_PER_CHUNK],
    pub(crate) span_of: [AtomicU32; SLICES_PER_CHUNK],
    pub(crate) kind: ChunkKind,
    /// Bytes of the mapping (CHUNK_SIZE for normal chunks).
    pub(crate) size: usize,
    pub(crate) meta: UnsafeCell<ChunkMeta>,
}

/// Bytes of the header proper (OS-page rounded).
const HEADER_SIZE: usize = core::mem::size_of::<Chunk>().next_multiple_of(OS_PAGE_SIZE);
/// With `secure`, an inaccessible OS page between the header and the first
/// span's blocks: an overflow off the end of the metadata or an underflow
/// off the first block faults instead of corrupting the page table.
pub const GUARD_SIZE: usize = if cfg!(feature = "secure") {
    OS_PAGE_SIZE
} else {
    0
};
/// Bytes before slice 0's blocks (OS-page rounded, so page areas stay page
/// aligned and can be purged).
pub const CHUNK_INFO_SIZE: usize = HEADER_SIZE + GUARD_SIZE;
pub const CHUNK_HEADER_SIZE: usize = HEADER_SIZE;

const _: () = {
    // The header lies in slice 0 (a span there starts after it); a page
    // there still gets at least the area of its slices (`page_slices_at0`).
    assert!(CHUNK_INFO_SIZE <= SLICE_SIZE);
    assert!(core::mem::offset_of!(Chunk, pages) == 0);
};

/// Slices of a page of `n` slices (`n` as `arena::page_slices` says)
/// when it starts at slice 0, whose area the header shortens. Hosted the
/// header takes at most a quarter of a 64 KiB slice: the page keeps its
/// `n` slices. Embedded it is most of a 16 KiB slice (64 page headers of
/// 128 bytes and the rest, 12 KiB): a one-slice page there would hold a
/// quarter of its blocks, so it takes one slice more, and every page at
/// slice 0 has at least the area of `n` slices.
pub const fn page_slices_at0(n: usize) -> usize {
    if CHUNK_INFO_SIZE <= SLICE_SIZE / 4 {
        n
    } else {
        (n * SLICE_SIZE + CHUNK_INFO_SIZE).div_ceil(SLICE_SIZE)
    }
}

impl Chunk {
    /// The chunk a page header lives in.
    #[inline(always)]
    pub fn of_page(page: *const Page) -> *mut Chunk {
        // Keeps the page pointer's provenance (Miri checks accesses through
        // it against the chunk's memory, not whatever was exposed there).
        page.map_addr(|a| a & !CHUNK_MASK)
            .cast::<Chunk>()
            .cast_mut()
    }

    /// The page header at slice `slice`.
    #[inline(always)]
    pub fn page(chunk: *mut Chunk, slice: usize) -> *mut Page {
        debug_assert!(slice < SLICES_PER_CHUNK);
        // In bounds of the header for any slice below 64.
        chunk.cast::<Page>().wrapping_add(slice)
    }

    /// The page header of the span holding `p` (a pointer into a normal
    /// chunk's first `CHUNK_SIZE` bytes); the header of `p`'s own slice when that is
    /// free. Always one of the 64 headers. (`span_of` holds the header's
    /// byte offset, so this is a load and an add.)
    ///
    /// # Safety
    /// `chunk` is live.
    #[inline(always)]
    pub unsafe fn page_of(chunk: *mut Chunk, p: *const u8) -> *mut Page {
        let slice = (p as usize >> SLICE_SHIFT) & (SLICES_PER_CHUNK - 1);
        let entry = field::<AtomicU32>(chunk, offset_of!(Chunk, span_of)).wrapping_add(slice);
        // SAFETY: the caller guarantees a live header; the index is below 64.
        let offset = unsafe { (*entry).load(Ordering::Relaxed) };
        chunk.cast::<u8>().wrapping_add(offset as usize).cast()
    }

    /// The page of a block this thread just allocated from its heap (a
    /// size-class block, so in a normal chunk's first `CHUNK_SIZE` bytes).
    ///
    /// # Safety
    /// `p` is a block start returned by this thread's heap for a size class.
    #[inline(always)]
    pub unsafe fn page_of_block(p: *mut u8) -> *mut Page {
        let chunk = (p as usize & !CHUNK_MASK) as *mut Chunk;
        // SAFETY: as the caller guarantees: a live normal chunk.
        unsafe { Chunk::page_of(chunk, p) }
    }

    /// Point `span_of` of slices `first..first + count` at `first` (a
    /// span is made) or, with `free`, at themselves (it is freed).
    ///
    /// # Safety
    /// `chunk` is live, the caller holds the arena lock, `first + count <= 64`.
    pub unsafe fn set_span(chunk: *mut Chunk, first: usize, count: usize, free: bool) {
        for slice in first..first + count {
            let start = if free { slice } else { first };
            let value = (start * core::mem::size_of::<Page>()) as u32;
            let entry = field::<AtomicU32>(chunk, offset_of!(Chunk, span_of)).wrapping_add(slice);
            // SAFETY: as the caller guarantees; slice < 64.
            unsafe { (*entry).store(value, Ordering::Release) };
        }
        let page = |slice| Chunk::page(chunk, if free { slice } else { first });
        crate::mem::page_map::set(chunk as usize, first, count, page);
    }

    /// Start and byte length of the area of a span of `count` slices at `first`.
    pub fn span_area(chunk: *mut Chunk, first: usize, count: usize) -> (*mut u8, usize) {
        let skip = if first == 0 { CHUNK_INFO_SIZE } else { 0 };
        let start = chunk
            .cast::<u8>()
            .wrapping_add((first << SLICE_SHIFT) + skip);
        (start, (count << SLICE_SHIFT) - skip)
    }

    /// Initialise the header of fresh memory that is ours alone.
    ///
    /// # Safety
    /// `chunk` points at `size` bytes of mapped memory nobody else references.
    pub unsafe fn init(chunk: *mut Chunk, kind: ChunkKind, size: usize, is_zero: bool) {
        // Raw field writes, no reference to the whole (uninitialised) header.
        let span_of = field::<AtomicU32>(chunk, offset_of!(Chunk, span_of));
        // A huge chunk's one page is `pages[0]`: nothing reads the others
        // (lookups of huge blocks go to page 0; the page map does not know
        // huge chunks), so a block carved from a region does not write 8 KiB
        // of headers it never uses.
        let pages = if kind == ChunkKind::Huge {
            1
        } else {
            SLICES_PER_CHUNK
        };
        for slice in 0..SLICES_PER_CHUNK {
            if slice < pages {
                // SAFETY: as the caller guarantees; slice < 64.
                unsafe { Self::page(chunk, slice).write(Page::empty()) };
            }
            let identity = AtomicU32::new((slice * core::mem::size_of::<Page>()) as u32);
            // SAFETY: as above.
            unsafe { span_of.wrapping_add(slice).write(identity) };
        }
        // SAFETY: as above.
        unsafe { field::<ChunkKind>(chunk, offset_of!(Chunk, kind)).write(kind) };
        // SAFETY: as above.
        unsafe { field::<usize>(chunk, offset_of!(Chunk, size)).write(size) };
        let meta = UnsafeCell::new(ChunkMeta {
            free: ALL_SLICES,
            dirty: 0,
            zero: if is_zero { ALL_SLICES } else { 0 },
            abandoned: 0,
            ab_next: [ptr::null_mut(); SLICES_PER_CHUNK],
            ab_prev: [ptr::null_mut(); SLICES_PER_CHUNK],
            purging: 0,
            purge_at: 0,
            next: ptr::null_mut(),
            seq: 0,
            prev: ptr::null_mut(),
            cached_at: 0,
            class: CLASS_PAGES,
        });
        // SAFETY: as above.
        unsafe { field::<UnsafeCell<ChunkMeta>>(chunk, offset_of!(Chunk, meta)).write(meta) };
    }

    /// The arena's bookkeeping of this chunk.
    ///
    /// # Safety
    /// `chunk` is live and the caller holds the arena lock (the only way
    /// `meta` is reached), and no other reference to it is alive.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub unsafe fn meta<'a>(chunk: *mut Chunk) -> &'a mut ChunkMeta {
        let cell = field::<UnsafeCell<ChunkMeta>>(chunk, offset_of!(Chunk, meta));
        // SAFETY: as the caller guarantees.
        unsafe { &mut *UnsafeCell::raw_get(cell) }
    }
}

/// The field at `offset` of the header at `chunk` (pointer arithmetic only).
#[inline(always)]
fn field<T>(chunk: *mut Chunk, offset: usize) -> *mut T {
    chunk.cast::<u8>().wrapping_add(offset).cast()
}

/// Lowest index `i` such that bits `i..i + n` of `bits` are all set and
/// `allowed` has bit `i` set, if any (`1 <= n <= 64`).
pub fn find_run(bits: u64, n: usize, allowed: u64) -> Option<usize> {
    debug_assert!((1..=64).contains(&n));
    let mut m = bits;
    for _ in 1..n {
        m &= m >> 1;
    }
    // A run must not wrap past bit 63.
    let valid = if n == 1 {
        u64::MAX
    } else {
        u64::MAX >> (n - 1)
    };
    let m = m & valid & allowed;
    (m != 0).then(|| m.trailing_zeros() as usize)
}

/// Bits `first..first + count`.
pub fn run_mask(first: usize, count: usize) -> u64 {
    debug_assert!(count >= 1 && first + count <= 64);
    (u64::MAX >> (64 - count)) << first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs() {
        assert_eq!(find_run(0b1110, 3, u64::MAX), Some(1));
        assert_eq!(find_run(0b1110, 4, u64::MAX), None);
        assert_eq!(find_run(u64::MAX, 64, u64::MAX), Some(0));
        assert_eq!(find_run(u64::MAX, 2, !1), Some(1));
        assert_eq!(find_run(1 << 63, 1, u64::MAX), Some(63));
        assert_eq!(find_run(1 << 63 | 1, 2, u64::MAX), None);
        assert_eq!(run_mask(0, 64), u64::MAX);
        assert_eq!(run_mask(3, 2), 0b11000);
    }
}
