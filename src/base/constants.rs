//! Every size and shift of the allocator in one place, with the arithmetic
//! that ties them together. A bad combination fails to compile.
//!
//! Two geometries, the same shape: hosted (address space is plentiful,
//! purging returns memory) and embedded (no `hosted`: memory is physical,
//! a fixed region or a capped page provider, so every unit mirs holds
//! beyond the live blocks counts, docs/arceos.md section 5).
//!
//! ```text
//!                     hosted               embedded
//! chunk               4 MiB (aligned)      1 MiB (aligned)
//! slice               64 KiB               16 KiB      (64 slices a chunk)
//! small pages         1 slice, <= 8 KiB    1 slice, <= 2 KiB blocks
//! size-class pages    2..8 slices          2..8 slices (~8 blocks, >= 4)
//!                     <= 128 KiB blocks    <= 32 KiB blocks
//! singletons          <= 63 slices         <= 63 slices (one block each)
//!
//! chunk = 64 slices, shared by all threads
//! +--------+--------------------------------------------------------------+
//! | header | spans of slices, each one page owned by one thread:          |
//! | (slice |   small  pages: 1 slice                                      |
//! |  0)    |   medium pages: 2..MAX_PAGE_SLICES slices                    |
//! |        |   singletons:   one block, up to 63 slices                   |
//! +--------+--------------------------------------------------------------+
//! huge blocks (bigger than a chunk can hold; hosted, from 1 MiB) get 4 MiB
//! units of a region (`mem/arena/region.rs`) or a mapping of their own,
//! with a chunk header in front. A span starting at slice 0 is shortened
//! by the header (hosted: at most a quarter of the slice; embedded, where
//! the header is most of a 16 KiB slice, a page there takes one slice more,
//! `chunk::page_slices_at0`).
//! ```

/// Hosted or embedded geometry (see the table above).
const HOSTED: bool = cfg!(feature = "hosted");

/// Bytes in a machine word; every block size is a multiple of it.
pub const WORD_SIZE: usize = core::mem::size_of::<usize>();
/// Page areas start at this alignment, so a block whose size is a multiple
/// of it is aligned to it (malloc(16 * k) is 16-aligned, as with glibc).
pub const MAX_ALIGN_GUARANTEE: usize = 16;
/// The smallest block, in words: 16 bytes, so every block, even malloc(1)'s,
/// is 16-byte aligned like glibc's (measured cost: README, "Semantics").
pub const MIN_BLOCK_WSIZE: usize = MAX_ALIGN_GUARANTEE / WORD_SIZE;

/// A chunk: the unit of memory the arena takes from the platform, and the
/// granularity of the chunk map that validates pointers.
pub const CHUNK_SHIFT: usize = if HOSTED { 22 } else { 20 };
pub const CHUNK_SIZE: usize = 1 << CHUNK_SHIFT;
pub const CHUNK_MASK: usize = CHUNK_SIZE - 1;

/// A slice: the unit pages are made of.
pub const SLICE_SHIFT: usize = if HOSTED { 16 } else { 14 };
pub const SLICE_SIZE: usize = 1 << SLICE_SHIFT;
pub const SLICES_PER_CHUNK: usize = CHUNK_SIZE / SLICE_SIZE;

/// Blocks up to this size share one-slice pages (eight or more a page).
pub const SMALL_OBJ_SIZE_MAX: usize = SLICE_SIZE / BLOCKS_PER_PAGE;
/// Blocks up to this size share pages of several slices (hosted four to
/// eight blocks a page, embedded four); larger ones get a span of their
/// own ("singleton"), given back the moment they are freed. A thread keeps at most one partly used
/// page per size class, so big size classes would pin big pages per thread:
/// that is what a 32 MiB embedded region cannot afford (128 KiB hosted,
/// 32 KiB embedded).
pub const LARGE_OBJ_SIZE_MAX: usize = 2 * SLICE_SIZE;
pub const LARGE_OBJ_WSIZE_MAX: usize = LARGE_OBJ_SIZE_MAX / WORD_SIZE;
/// One-slice pages hold at least this many blocks.
pub const BLOCKS_PER_PAGE: usize = 8;
/// Pages of blocks above `SMALL_OBJ_SIZE_MAX` are sized for about this
/// many blocks. Embedded four: a thread keeps a partly used page per size
/// class, and these pages were most of what the threads held beyond their
/// live blocks (the ArceOS stress, docs/arceos.md section 5: about 1 MiB
/// less provider memory on average than with eight).
pub const LARGE_BLOCKS_PER_PAGE: usize = if HOSTED { 8 } else { 4 };
/// The longest span of a size-class page (512 KiB hosted, 128 KiB
/// embedded): four of the largest class's blocks.
pub const MAX_PAGE_SLICES: usize = 8;

/// Requests up to this size index the heap's direct page table.
pub const SMALL_SIZE_MAX: usize = 1024;
pub const SMALL_WSIZE_MAX: usize = SMALL_SIZE_MAX / WORD_SIZE;
/// Entries of `Heap::pages_direct`: one per word size 0..=SMALL_WSIZE_MAX.
pub const PAGES_DIRECT: usize = SMALL_WSIZE_MAX + 1;

/// OS page granularity for commit/purge decisions.
pub const OS_PAGE_SIZE: usize = 4096;

/// A fresh page's free list is carved lazily, at most this many bytes (and at
/// least `MIN_EXTEND` blocks) at a time, so a page's memory is touched only
/// when it is needed. Carving writes each block's link, so it touches an OS
/// page per block of 4 KiB and more: one block at a time for those, as a
/// thread that uses one or two blocks of a big class (each of 32 Python
/// threads in `make bench-python`) would otherwise touch four (median peak
/// RSS 38 -> 30 MiB there; malloc/free instructions of bench-ops unchanged).
pub const MAX_EXTEND_SIZE: usize = 4 * 1024;
pub const MIN_EXTEND: usize = 1;

/// Slow-path calls an emptied page at the head of its queue survives before it
/// is returned to the arena: a loop that empties and refills a page does not
/// tear it down each time.
pub const RETIRE_CYCLES: u8 = 16;
/// Every emptied page gets the grace, with one exception: embedded, pages
/// of blocks over this size (none in the embedded geometry, whose classes
/// end at 32 KiB) would go back at once. Hosted, a shorter grace for big
/// blocks (a quarter, then a half) made each of 32 Python threads
/// round-tripping json make and free a page of each 40-64 KiB class per
/// round (3,200 pages per class; peak RSS 31-34 MiB, against 22-27 with the
/// full grace, `make bench-python`). Embedded, returning the pages of blocks
/// over 2 KiB at once made no difference to the ArceOS stress's footprint
/// beyond its boot-to-boot spread.
pub const RETIRE_SIZE_MAX: usize = 32 * 1024;
/// Slow-path calls per retire step (so the grace is RETIRE_CYCLES * RETIRE_STEP calls).
pub const RETIRE_STEP: u64 = 4;
/// Emptied pages (of blocks up to RETIRE_SIZE_MAX) a heap keeps with the
/// same grace besides the first of each queue, hosted: a program that
/// mallocs a burst of blocks and frees them all, again and again, reuses
/// its pages instead of taking each one back from the arena (`simple`,
/// 1600 blocks of 1 KiB a burst at 2 threads: 331 -> 421 M ops/s, C
/// mimalloc v2 429, whose freed pages stay in the thread's segments).
/// Hosted only: embedded memory is physical and shared.
pub const RETIRE_KEEP_MAX: usize = 32;

/// Empty chunks the arena keeps (purged, still mapped) before giving them
/// back to the platform (embedded none: memory is physical and shared with
/// the embedder, and a 1 MiB chunk is cheap to get again; a spare cost the
/// ArceOS stress 0.5 MiB of provider memory on average), and freed huge
/// mappings kept for reuse by size (hosted only).
pub const SPARE_CHUNKS: usize = if HOSTED { 4 } else { 0 };
pub const HUGE_CACHE_SLOTS: usize = 8;

/// Milliseconds an unused span or cached mapping keeps its memory before it is
/// handed back to the OS with `madvise(MADV_DONTNEED)`.
pub const PURGE_DELAY_MS: u64 = 10;
/// Slow-path calls between looks at the clock for due purges.
pub const PURGE_CHECK_INTERVAL: u64 = 8;

/// Largest alignment `malloc_aligned` accepts (the issue asks for at least 1 GiB).
pub const ALIGNMENT_MAX: usize = 1 << 40;

/// Largest request we try to satisfy: C's object size limit.
pub const MAX_ALLOC_SIZE: usize = isize::MAX as usize;
/// Larger single requests are refused at once: no mapping of that size can
/// exist in a 48-bit address space (user space is 47 bits on x86_64 Linux;
/// a kernel's half on ArceOS).
pub const MAX_REQUEST_SIZE: usize = 1 << 47;

const _: () = {
    assert!(CHUNK_SIZE.is_power_of_two() && SLICE_SIZE.is_power_of_two());
    assert!(
        SLICES_PER_CHUNK == 64,
        "a chunk's slice bitmaps are one u64"
    );
    assert!(SMALL_OBJ_SIZE_MAX * BLOCKS_PER_PAGE <= SLICE_SIZE);
    // The largest class's pages hold at least four blocks; pages of the
    // larger classes are sized for four to eight.
    assert!(LARGE_OBJ_SIZE_MAX * 4 <= MAX_PAGE_SLICES * SLICE_SIZE);
    assert!(LARGE_BLOCKS_PER_PAGE >= 4 && LARGE_BLOCKS_PER_PAGE <= BLOCKS_PER_PAGE);
    assert!(MAX_PAGE_SLICES < SLICES_PER_CHUNK);
    assert!(SMALL_SIZE_MAX <= SMALL_OBJ_SIZE_MAX);
    assert!(SMALL_OBJ_SIZE_MAX < LARGE_OBJ_SIZE_MAX);
    assert!(SMALL_SIZE_MAX.is_multiple_of(WORD_SIZE));
    assert!(MAX_ALIGN_GUARANTEE.is_power_of_two());
    assert!(WORD_SIZE == 8, "mirs supports 64-bit targets");
};
