//! Every size and shift of the allocator in one place, with the arithmetic
//! that ties them together. A bad combination fails to compile.
//!
//! ```text
//! segment (4 MiB, aligned to 4 MiB)
//! +--------+---------------------------------------------------------+
//! | header | small pages: 64 x 64 KiB   (blocks up to 16 KiB)        |
//! |  +page |   or medium: 8 x 512 KiB   (blocks up to 128 KiB)       |
//! | table  |   or large:  1 x 4 MiB     (blocks up to 2 MiB)         |
//! +--------+---------------------------------------------------------+
//! huge blocks (> 2 MiB) get a segment of their own, sized to fit.
//! The first page of a segment is shortened by the header.
//! ```

/// Bytes in a machine word; every block size is a multiple of it.
pub const WORD_SIZE: usize = core::mem::size_of::<usize>();
/// Page areas start at this alignment, so a block whose size is a multiple
/// of it is aligned to it (malloc(16 * k) is 16-aligned, as with glibc).
pub const MAX_ALIGN_GUARANTEE: usize = 16;
/// The smallest block, in words: 16 bytes, so every block, even malloc(1)'s,
/// is 16-byte aligned like glibc's (measured cost: README, "Semantics").
pub const MIN_BLOCK_WSIZE: usize = MAX_ALIGN_GUARANTEE / WORD_SIZE;

pub const SEGMENT_SHIFT: usize = 22;
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
pub const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;

pub const SMALL_PAGE_SHIFT: usize = 16;
pub const MEDIUM_PAGE_SHIFT: usize = 19;
pub const LARGE_PAGE_SHIFT: usize = SEGMENT_SHIFT;
pub const SMALL_PAGE_SIZE: usize = 1 << SMALL_PAGE_SHIFT;
pub const MEDIUM_PAGE_SIZE: usize = 1 << MEDIUM_PAGE_SHIFT;

pub const SMALL_PAGES_PER_SEGMENT: usize = SEGMENT_SIZE / SMALL_PAGE_SIZE;
pub const MEDIUM_PAGES_PER_SEGMENT: usize = SEGMENT_SIZE / MEDIUM_PAGE_SIZE;
/// The page table in a segment header has room for the most pages any kind uses.
pub const MAX_PAGES_PER_SEGMENT: usize = SMALL_PAGES_PER_SEGMENT;

/// A page holds at least four blocks of its largest size class.
pub const SMALL_OBJ_SIZE_MAX: usize = SMALL_PAGE_SIZE / 4;
pub const MEDIUM_OBJ_SIZE_MAX: usize = MEDIUM_PAGE_SIZE / 4;
/// Larger blocks than this are "huge": a dedicated segment each.
pub const LARGE_OBJ_SIZE_MAX: usize = SEGMENT_SIZE / 2;
pub const LARGE_OBJ_WSIZE_MAX: usize = LARGE_OBJ_SIZE_MAX / WORD_SIZE;

/// Requests up to this size index the heap's direct page table.
pub const SMALL_SIZE_MAX: usize = 1024;
pub const SMALL_WSIZE_MAX: usize = SMALL_SIZE_MAX / WORD_SIZE;
/// Entries of `Heap::pages_direct`: one per word size 0..=SMALL_WSIZE_MAX.
pub const PAGES_DIRECT: usize = SMALL_WSIZE_MAX + 1;

/// OS page granularity for commit/purge decisions.
pub const OS_PAGE_SIZE: usize = 4096;

/// A fresh page's free list is carved lazily, at most this many bytes (and at
/// least `MIN_EXTEND` blocks) at a time, so a page's memory is touched only
/// when it is needed.
pub const MAX_EXTEND_SIZE: usize = 4 * 1024;
pub const MIN_EXTEND: usize = 4;

/// Slow-path calls an emptied page at the head of its queue survives before it
/// is returned to its segment: a loop that empties and refills a page does not
/// tear it down each time.
pub const RETIRE_CYCLES: u8 = 16;
/// Slow-path calls per retire step (so the grace is RETIRE_CYCLES * RETIRE_STEP calls).
pub const RETIRE_STEP: u64 = 4;

/// Segments kept (purged, still mapped) for reuse before unmapping.
pub const SEGMENT_CACHE_SLOTS: usize = 16;

/// Milliseconds an unused page or cached segment keeps its memory before it is
/// handed back to the OS with `madvise(MADV_DONTNEED)`.
pub const PURGE_DELAY_MS: u64 = 10;
/// Slow-path calls between looks at the clock for due purges.
pub const PURGE_CHECK_INTERVAL: u64 = 8;

/// Largest alignment `malloc_aligned` accepts (the issue asks for at least 1 GiB).
pub const ALIGNMENT_MAX: usize = 1 << 40;

/// Largest request we try to satisfy: C's object size limit.
pub const MAX_ALLOC_SIZE: usize = isize::MAX as usize;

const _: () = {
    assert!(SEGMENT_SIZE.is_power_of_two());
    assert!(SMALL_PAGES_PER_SEGMENT * SMALL_PAGE_SIZE == SEGMENT_SIZE);
    assert!(MEDIUM_PAGES_PER_SEGMENT * MEDIUM_PAGE_SIZE == SEGMENT_SIZE);
    assert!(MAX_PAGES_PER_SEGMENT >= MEDIUM_PAGES_PER_SEGMENT);
    assert!(SMALL_SIZE_MAX <= SMALL_OBJ_SIZE_MAX);
    assert!(SMALL_OBJ_SIZE_MAX < MEDIUM_OBJ_SIZE_MAX);
    assert!(MEDIUM_OBJ_SIZE_MAX < LARGE_OBJ_SIZE_MAX);
    assert!(SMALL_SIZE_MAX.is_multiple_of(WORD_SIZE));
    assert!(MAX_ALIGN_GUARANTEE.is_power_of_two());
    assert!(WORD_SIZE == 8, "mirs supports 64-bit targets");
};
