//! The arena: every chunk of memory mirs has, shared by all threads, and
//! the spans of slices it hands out as pages.
//!
//! ```text
//! ARENA (one spin lock, taken once per page, never per block)
//!  chunks     -> chunk <-> chunk <-> ...   normal chunks, oldest first
//!  empty         how many of them have every slice free (at most SPARE_CHUNKS kept)
//!  huge_cache    freed huge chunks kept for reuse by size (hosted)
//! ABANDONED[bin] pages of each size class waiting for an adopter (a hint,
//!                read without the lock)
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
//! Memory goes back as soon as nothing uses it: a freed span's slices are
//! purged (hosted: `madvise`) once they have been free for the purge delay;
//! an empty chunk beyond the few spares goes back to the platform (the OS,
//! or the embedder's region or page provider); a freed huge block is cached
//! for reuse by size (hosted), purged after the delay, and unmapped when the
//! cache is full or memory runs short.
//!
//! Invariants (under the lock): a slice is in exactly one span or free;
//! `span_of[i]` names the span start of every slice of a span and is `i`
//! for a free slice, whose page header has `OWNER_NONE`; `abandoned` bit i is set iff `pages[i].owner
//! == OWNER_ABANDONED`, and `ABANDONED[bin]` counts those bits per bin.

use crate::address;
use crate::chunk::{
    self, find_run, run_mask, Chunk, ChunkKind, ALL_SLICES, CHUNK_INFO_SIZE, CLASS_PAGES,
    CLASS_SINGLETONS,
};
use crate::chunk_map;
use crate::constants::*;
use crate::page::{OwnerHeap, Page, OWNER_NONE, OWNER_SINGLETON};
use crate::page_map;
use crate::platform;
use crate::size_class::{bin_of_size, BIN_COUNT};
use crate::stats::{self, Counter};
use crate::sync::SpinLock;
use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

struct State {
    /// Normal chunks, oldest first (older chunks are preferred for new
    /// spans, so younger ones drain and can be released).
    first: *mut Chunk,
    last: *mut Chunk,
    /// Normal chunks with every slice free.
    empty: usize,
    /// Freed huge chunks (hosted); null slots are empty.
    huge_cache: [*mut Chunk; HUGE_CACHE_SLOTS],
    /// Free slices whose memory may be resident (dirty), over all chunks,
    /// and bytes of dirty cached huge chunks: what `trim` bounds.
    dirty_slices: usize,
    dirty_huge: usize,
}

// SAFETY: the raw chunk pointers are only followed under the lock.
unsafe impl Send for State {}

static ARENA: SpinLock<State> = SpinLock::new(State {
    first: ptr::null_mut(),
    last: ptr::null_mut(),
    empty: 0,
    huge_cache: [ptr::null_mut(); HUGE_CACHE_SLOTS],
    dirty_slices: 0,
    dirty_huge: 0,
});

/// Abandoned pages per bin and in all (changed under the lock, read without it).
static ABANDONED: [AtomicUsize; BIN_COUNT] = [const { AtomicUsize::new(0) }; BIN_COUNT];
static ABANDONED_TOTAL: AtomicUsize = AtomicUsize::new(0);
/// The earliest time (ms) a purge is due; u64::MAX when none is pending.
/// Lowered without the lock's help being needed (fetch_min), recomputed by
/// each purge pass under the lock, so a pass that has nothing to do costs
/// one load.
static PURGE_DUE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Huge blocks are cached only where purging returns their memory and the
/// address space is plentiful; embedded memory goes straight back.
const HUGE_CACHE: bool = cfg!(feature = "hosted");

/// Slices of a page of blocks of `block_size` (a size class up to
/// `LARGE_OBJ_SIZE_MAX`): one for small blocks, else room for about
/// `BLOCKS_PER_PAGE` blocks.
pub fn page_slices(block_size: usize) -> usize {
    if block_size <= SMALL_OBJ_SIZE_MAX {
        1
    } else {
        (block_size * BLOCKS_PER_PAGE)
            .div_ceil(SLICE_SIZE)
            .min(MAX_PAGE_SLICES)
    }
}

/// The largest block a singleton span in a normal chunk holds; larger
/// blocks get a huge chunk.
pub const SINGLETON_MAX: usize = (SLICES_PER_CHUNK - 1) * SLICE_SIZE;

// ------------------------------------------------------------------ spans

/// A span found for a request: its chunk, first slice and length, and
/// whether all of its memory reads as zero.
struct Span {
    chunk: *mut Chunk,
    first: usize,
    count: usize,
    is_zero: bool,
}

/// Find free slices, in a chunk of `class` (or an empty one, which then
/// takes that class), else with `any_class` in any chunk: `plain` of them
/// not at slice 0, or `at0` (None: slice 0 is not allowed) starting at
/// slice 0, whose area is shortened by the header. Marks them used. Lock held.
fn take_span(
    st: &mut State,
    class: u8,
    any_class: bool,
    plain: usize,
    at0: Option<usize>,
) -> Option<Span> {
    let mut chunk = st.first;
    while !chunk.is_null() {
        // SAFETY: chunks on the list are live; we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        let other = meta.class != class && meta.free != ALL_SLICES;
        let found = if meta.free == 0 || (other && !any_class) {
            None
        } else if let Some(first) = find_run(meta.free, plain, !1) {
            Some((first, plain))
        } else {
            at0.filter(|&n| n <= 64 && find_run(meta.free, n, 1) == Some(0))
                .map(|n| (0, n))
        };
        if let Some((first, count)) = found {
            if meta.free == ALL_SLICES {
                st.empty -= 1;
                meta.class = class;
            }
            let mask = run_mask(first, count);
            let is_zero = meta.zero & mask == mask;
            meta.free &= !mask;
            st.dirty_slices -= (meta.dirty & mask).count_ones() as usize;
            meta.dirty &= !mask;
            // The span is about to be written.
            meta.zero &= !mask;
            return Some(Span {
                chunk,
                first,
                count,
                is_zero,
            });
        }
        chunk = meta.next;
    }
    None
}

/// Append a fresh chunk to the list. Lock held.
fn push_chunk(st: &mut State, chunk: *mut Chunk) {
    // SAFETY: `chunk` is a fresh, initialised chunk only we know; we hold the lock.
    let meta = unsafe { Chunk::meta(chunk) };
    meta.prev = st.last;
    meta.next = ptr::null_mut();
    if st.last.is_null() {
        st.first = chunk;
    } else {
        // SAFETY: list members are live; we hold the lock.
        unsafe { Chunk::meta(st.last) }.next = chunk;
    }
    st.last = chunk;
    st.empty += 1;
}

fn unlink_chunk(st: &mut State, chunk: *mut Chunk) {
    let (prev, next) = {
        // SAFETY: `chunk` is on the list; we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        (meta.prev, meta.next)
    };
    if prev.is_null() {
        st.first = next;
    } else {
        // SAFETY: its neighbours are live list members; we hold the lock.
        unsafe { Chunk::meta(prev) }.next = next;
    }
    if next.is_null() {
        st.last = prev;
    } else {
        // SAFETY: as above.
        unsafe { Chunk::meta(next) }.prev = prev;
    }
}

/// Fresh memory for a chunk (normal, or huge of `size` bytes aligned to
/// `align`), its header initialised and entered in the chunk map. Called
/// without the lock (the platform may take its own).
fn map_chunk(kind: ChunkKind, size: usize, align: usize) -> *mut Chunk {
    let Some(memory) = platform::os_alloc_chunk(size, align, chunk_map::can_insert) else {
        return ptr::null_mut();
    };
    let chunk = memory.base.cast::<Chunk>();
    if !address::same_half(memory.base as usize, size) {
        // Its blocks could not go on thread_free stacks (address.rs).
        // SAFETY: we just mapped it and nobody else knows it.
        unsafe { platform::os_free(memory.base, size) };
        return ptr::null_mut();
    }
    if cfg!(feature = "secure") {
        let guard = memory.base.wrapping_add(chunk::CHUNK_HEADER_SIZE);
        // SAFETY: the guard lies inside the fresh mapping, after the header.
        unsafe { platform::os_protect_none(guard, chunk::GUARD_SIZE) };
    }
    // SAFETY: fresh memory of `size` bytes that only we know.
    unsafe { Chunk::init(chunk, kind, size, memory.is_zero) };
    if !chunk_map::insert(chunk as usize, size, kind) {
        // SAFETY: we just mapped it and nobody else knows it.
        unsafe { platform::os_free(memory.base, size) };
        return ptr::null_mut();
    }
    if kind == ChunkKind::Normal
        && !page_map::insert_chunk(chunk as usize, |s| Chunk::page(chunk, s))
    {
        chunk_map::remove(chunk as usize, size);
        // SAFETY: we just mapped it and nobody else knows it.
        unsafe { platform::os_free(memory.base, size) };
        return ptr::null_mut();
    }
    stats::add(Counter::Reserved, size as i64);
    stats::add(Counter::Chunks, 1);
    chunk
}

/// Give a chunk that nobody references any more back to the platform.
///
/// # Safety
/// `chunk` is off every list and cache, with no span in use.
unsafe fn unmap_chunk(chunk: *mut Chunk) {
    // SAFETY: as the caller guarantees.
    let size = unsafe { (*chunk).size };
    // SAFETY: as above.
    if unsafe { (*chunk).kind } == ChunkKind::Normal {
        page_map::remove_chunk(chunk as usize);
    }
    chunk_map::remove(chunk as usize, size);
    stats::add(Counter::Reserved, -(size as i64));
    stats::add(Counter::Chunks, -1);
    // SAFETY: the mapping is ours and unreferenced.
    unsafe { platform::os_free(chunk.cast(), size) };
}

/// A span of `plain` slices (or `at0` at slice 0), from a chunk of `class`
/// with room or a fresh one; None when the platform has no memory.
fn alloc_span(class: u8, plain: usize, at0: Option<usize>) -> Option<Span> {
    loop {
        if let Some(span) = take_span(&mut ARENA.lock(), class, false, plain, at0) {
            return Some(span);
        }
        let chunk = map_chunk(ChunkKind::Normal, CHUNK_SIZE, CHUNK_SIZE);
        if chunk.is_null() {
            // No fresh memory: a singleton may take room in a chunk of
            // pages; pages take room among singletons only where memory is
            // a fixed region (embedded), since small pages left there keep
            // the chunk from ever going back whole.
            let any_class = class == CLASS_SINGLETONS || !cfg!(feature = "hosted");
            if !any_class {
                return None;
            }
            return take_span(&mut ARENA.lock(), class, true, plain, at0);
        }
        push_chunk(&mut ARENA.lock(), chunk);
    }
}

/// Give the slices of a span back. Returns a chunk to unmap (after the
/// lock is dropped) when this emptied one beyond the spares. Lock held.
///
/// # Safety
/// The span `first..first + count` of `chunk` is in use and nobody uses
/// its memory any more.
unsafe fn release_span(
    st: &mut State,
    chunk: *mut Chunk,
    first: usize,
    count: usize,
) -> *mut Chunk {
    // SAFETY: as the caller guarantees; we hold the lock.
    unsafe { Chunk::set_span(chunk, first, count, true) };
    // SAFETY: a page header of the caller's live chunk.
    unsafe { &*Chunk::page(chunk, first) }
        .owner
        .store(OWNER_NONE, Ordering::Release);
    // SAFETY: as the caller guarantees.
    let meta = unsafe { Chunk::meta(chunk) };
    let mask = run_mask(first, count);
    debug_assert!(meta.free & mask == 0, "span freed twice");
    meta.free |= mask;
    st.dirty_slices += (mask & !meta.zero & !meta.dirty).count_ones() as usize;
    meta.dirty |= mask & !meta.zero;
    if meta.dirty != 0 && meta.purge_at == 0 {
        meta.purge_at = platform::now_ms() + crate::options::purge_delay_ms();
        PURGE_DUE.fetch_min(meta.purge_at, Ordering::Relaxed);
    }
    if meta.free == ALL_SLICES {
        st.empty += 1;
        if st.empty > spare_chunks() {
            st.empty -= 1;
            st.dirty_slices -= meta.dirty.count_ones() as usize;
            unlink_chunk(st, chunk);
            trim(st);
            return chunk;
        }
    }
    trim(st);
    ptr::null_mut()
}

fn spare_chunks() -> usize {
    // Embedded memory is physical and shared with the embedder: keep one.
    if cfg!(feature = "hosted") {
        SPARE_CHUNKS
    } else {
        1
    }
}

// ------------------------------------------------------------------ pages

/// A page for blocks of `block_size` (a size class), owned by the thread
/// `owner` through `heap`, with its first blocks not yet carved; null when
/// out of memory.
pub fn alloc_page(
    heap: *mut OwnerHeap,
    owner: usize,
    block_size: usize,
    key: crate::block::ListKey,
) -> *mut Page {
    debug_assert!(block_size <= LARGE_OBJ_SIZE_MAX);
    let n = page_slices(block_size);
    let Some(span) = alloc_span(CLASS_PAGES, n, Some(n)) else {
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
    let release = {
        let mut st = ARENA.lock();
        // SAFETY: the page's span is in use and ours to give back.
        unsafe { release_span(&mut st, chunk, first, count) }
    };
    if !release.is_null() {
        // SAFETY: unlinked, every slice free.
        unsafe { unmap_chunk(release) };
    }
}

// ------------------------------------------------------------------ singletons and huge blocks

/// One block of `size` bytes aligned to `align` (0 or a power of two) in a
/// span or huge chunk of its own: returns the block and whether it reads
/// as zero. Any thread may free it.
pub fn alloc_singleton(size: usize, align: usize) -> Option<(*mut u8, bool)> {
    let align = align.max(MAX_ALIGN_GUARANTEE);
    if size <= SINGLETON_MAX && align <= SLICE_SIZE {
        let plain = size.div_ceil(SLICE_SIZE);
        // Slice 0's area starts after the header, which is only OS-page aligned.
        let at0 = (align <= OS_PAGE_SIZE).then(|| (size + CHUNK_INFO_SIZE).div_ceil(SLICE_SIZE));
        let span = alloc_span(CLASS_SINGLETONS, plain, at0)?;
        let is_zero = span.is_zero;
        let (start, area) = Chunk::span_area(span.chunk, span.first, span.count);
        let page = Chunk::page(span.chunk, span.first);
        // SAFETY: the span is ours alone until `init` publishes the page.
        let block = unsafe { singleton_block(page, start, area, is_zero, span.first, span.count) };
        // SAFETY: our span; we publish it to `free` last.
        unsafe { Chunk::set_span(span.chunk, span.first, span.count, false) };
        return Some((block, is_zero));
    }
    alloc_huge(size, align)
}

/// A huge chunk for one block: from the cache when one fits, else fresh.
fn alloc_huge(size: usize, align: usize) -> Option<(*mut u8, bool)> {
    // The block starts at the first `align` boundary after the header.
    let offset = CHUNK_INFO_SIZE.next_multiple_of(align);
    let total = offset
        .checked_add(size)?
        .checked_next_multiple_of(SLICE_SIZE)?;
    if total > MAX_ALLOC_SIZE {
        return None;
    }
    let chunk = match take_cached_huge(total, align) {
        Some(chunk) => chunk,
        None => {
            let chunk = map_chunk(ChunkKind::Huge, total, align.max(CHUNK_SIZE));
            if chunk.is_null() {
                return None;
            }
            chunk
        }
    };
    // SAFETY: the chunk is ours alone (fresh, or taken out of the cache).
    let meta = unsafe { Chunk::meta(chunk) };
    let is_zero = meta.zero == ALL_SLICES;
    meta.zero = 0;
    meta.dirty = 0;
    let start = (chunk as *mut u8).wrapping_add(offset);
    // SAFETY: as above.
    let area = unsafe { (*chunk).size } - offset;
    // SAFETY: as above: its one page header is ours to make.
    let block = unsafe { singleton_block(Chunk::page(chunk, 0), start, area, is_zero, 0, 0) };
    Some((block, is_zero))
}

/// realloc of a huge block to `new_size` bytes without copying it: the
/// chunk's mapping is resized where it lies (hosted: `mremap` without
/// `MREMAP_MAYMOVE`; embedded: the free 4 MiB units after it in its
/// region), or else (hosted) its pages are moved, not copied, to a
/// fresh aligned address (`MREMAP_MAYMOVE | MREMAP_FIXED`); a move leaves
/// half again the old size as room to grow (address space only: untouched
/// pages cost no memory), so a block grown step by step moves a few times,
/// not at every step. Returns the block's (possibly new) address, None when
/// neither worked (the chunk is as it was; the caller copies instead; so
/// with `secure` hosted, whose guard page splits the mapping).
///
/// Resized where it lies, the chunk map gains (before) or loses (after) the
/// 4 MiB regions at its end; moved, the chunk leaves the map before its old
/// range goes and comes back at its new extent once its header is there,
/// its base still 4 MiB aligned (and aligned as the block was: an
/// over-aligned block keeps its alignment).
///
/// # Safety
/// `page` is the page of a huge chunk whose live block `p` is, given up by
/// the caller (no other thread uses it meanwhile).
pub unsafe fn remap_huge(p: *mut u8, page: *mut Page, new_size: usize) -> Option<*mut u8> {
    if cfg!(all(feature = "secure", feature = "hosted")) {
        return None;
    }
    let chunk = Chunk::of_page(page);
    // SAFETY: as the caller guarantees: a live chunk, ours while `p` is.
    if unsafe { (*chunk).kind } != ChunkKind::Huge {
        return None;
    }
    // SAFETY: as above.
    let old_total = unsafe { (*chunk).size };
    let offset = p as usize - chunk as usize;
    let new_total = offset
        .checked_add(new_size)?
        .checked_next_multiple_of(SLICE_SIZE)?;
    if new_total > MAX_ALLOC_SIZE {
        return None;
    }
    let base = chunk as usize;
    // Where it lies. Hosted, the mapping grows first (the address space it
    // takes is then ours: no other chunk can be recorded there) and the
    // chunk map then covers the regions gained, their leaves made
    // beforehand; embedded, where chunks of other windows share the map's
    // slots, the slots are claimed first (as every insert does) and given
    // back if the units are taken. Readers only read the header at the
    // base, which stays. A shrink is recorded after.
    let grows = new_total > old_total;
    let in_place = if grows && cfg!(feature = "hosted") {
        chunk_map::prepare(base, new_total)
            // SAFETY: our chunk's whole mapping; nobody uses it meanwhile.
            && unsafe { platform::os_remap_in_place(chunk.cast(), old_total, new_total) }
            && {
                let recorded = chunk_map::resize(base, old_total, new_total);
                debug_assert!(recorded, "regions of our own mapping are nobody's");
                true
            }
    } else if grows {
        chunk_map::resize(base, old_total, new_total) && {
            // SAFETY: as above.
            let grown = unsafe { platform::os_remap_in_place(chunk.cast(), old_total, new_total) };
            if !grown {
                // The slots just claimed go back.
                chunk_map::resize(base, new_total, old_total);
            }
            grown
        }
    } else {
        // SAFETY: as above.
        let shrunk = unsafe { platform::os_remap_in_place(chunk.cast(), old_total, new_total) };
        if shrunk {
            chunk_map::resize(base, old_total, new_total);
        }
        shrunk
    };
    let (chunk, total) = if in_place {
        (chunk, new_total)
    } else {
        // Moved: out of the chunk map before the old range goes, back in at
        // the new address once the header is there. The base keeps the
        // block's alignment: 4 MiB, or an over-aligned block's own (its
        // offset is then its alignment).
        if !grows || !cfg!(feature = "hosted") {
            return None;
        }
        let base_align = CHUNK_SIZE.max(1 << offset.trailing_zeros());
        let roomy = new_total.max((old_total + old_total / 2).next_multiple_of(SLICE_SIZE));
        let roomy = if roomy > MAX_ALLOC_SIZE {
            new_total
        } else {
            roomy
        };
        chunk_map::remove(base, old_total);
        // SAFETY: as above.
        let moved = unsafe {
            platform::os_remap_move(
                chunk.cast(),
                old_total,
                roomy,
                base_align,
                chunk_map::prepare,
            )
        };
        let Some(new_base) = moved else {
            // Unchanged: recorded again as it was (its leaves exist).
            let again = chunk_map::insert(base, old_total, ChunkKind::Huge);
            debug_assert!(again);
            return None;
        };
        (new_base.cast::<Chunk>(), roomy)
    };
    let block = (chunk as *mut u8).wrapping_add(offset);
    // SAFETY: our chunk at its new extent; others read only its page's
    // `start` (below, if moved, before it is back in the map).
    unsafe { (*chunk).size = total };
    // SAFETY: as above: its page header, at the chunk's new address.
    let pg = unsafe { &*Chunk::page(chunk, 0) };
    // SAFETY: as above.
    unsafe { pg.resize_singleton(block, total - offset, 0) };
    if block != p {
        // `prepare` made every leaf the new extent needs.
        let recorded = chunk_map::insert(chunk as usize, total, ChunkKind::Huge);
        debug_assert!(recorded);
    }
    stats::add(Counter::Reserved, total as i64 - old_total as i64);
    stats::add(Counter::PageBytes, total as i64 - old_total as i64);
    stats::add(Counter::HugeRemaps, 1);
    if block != p {
        stats::add(Counter::HugeMoves, 1);
    }
    Some(block)
}

/// realloc of a singleton span's block to `new_size` bytes (at most
/// `SINGLETON_MAX`) where it lies: the span takes the free slices right
/// after it in its chunk, under the lock. False (nothing changed) when they
/// are not free or the chunk ends first; the caller then moves the block.
///
/// # Safety
/// `page` is a singleton page of a normal chunk whose live block `p` is,
/// given up by the caller (no other thread uses it meanwhile).
pub unsafe fn grow_span(p: *mut u8, page: *mut Page, new_size: usize) -> bool {
    let chunk = Chunk::of_page(page);
    // SAFETY: as the caller guarantees: a live chunk.
    if unsafe { (*chunk).kind } != ChunkKind::Normal {
        return false;
    }
    // SAFETY: as above: a page in use, whose span fields stay while its
    // block is the caller's.
    let (first, count) = unsafe { &*page }.span();
    let end = (p as usize - chunk as usize).saturating_add(new_size);
    let want = end.div_ceil(SLICE_SIZE).saturating_sub(first);
    if want <= count {
        return false;
    }
    if first + want > SLICES_PER_CHUNK {
        return false;
    }
    let extra = run_mask(first + count, want - count);
    let mut st = ARENA.lock();
    // SAFETY: a live normal chunk; we hold the lock.
    let meta = unsafe { Chunk::meta(chunk) };
    if meta.free & extra != extra {
        return false;
    }
    meta.free &= !extra;
    st.dirty_slices -= (meta.dirty & extra).count_ones() as usize;
    meta.dirty &= !extra;
    meta.zero &= !extra;
    drop(st);
    let (start, area) = Chunk::span_area(chunk, first, want);
    debug_assert!(start == p);
    // SAFETY: the slices are ours now (off the free mask); the page and
    // its block are the caller's.
    unsafe { Chunk::set_span(chunk, first, want, false) };
    // SAFETY: as above: a page header of a live chunk.
    let pg = unsafe { &*page };
    let old_area = pg.area_bytes();
    // SAFETY: as above; the page's span changed under the lock.
    unsafe { pg.resize_singleton(start, area, want) };
    stats::add(Counter::PageBytes, area as i64 - old_area as i64);
    stats::add(Counter::SpanGrowths, 1);
    true
}

/// Make `page` a singleton page over `start..start + area` (its one block
/// spans all of it, so usable_size reports it all) and hand out its block.
///
/// # Safety
/// `page` heads a span (or huge chunk) that is ours alone.
unsafe fn singleton_block(
    page: *mut Page,
    start: *mut u8,
    area: usize,
    is_zero: bool,
    first: usize,
    count: usize,
) -> *mut u8 {
    // SAFETY: as the caller guarantees; the lock holder owns the page
    // while it makes it.
    let pg = unsafe {
        Page::init(
            page,
            OWNER_SINGLETON,
            ptr::null_mut(),
            area,
            start,
            area,
            is_zero,
            (first, count),
            crate::block::ListKey::PLAIN,
        )
    };
    pg.extend();
    stats::singleton_allocated(area);
    pg.pop_free()
}

/// The smallest cached huge chunk of at least `total` bytes (and at most
/// half again as big) whose base suits `align`.
fn take_cached_huge(total: usize, align: usize) -> Option<*mut Chunk> {
    if !HUGE_CACHE {
        return None;
    }
    let chunk = {
        let mut st = ARENA.lock();
        let mut best: Option<usize> = None;
        for (i, &c) in st.huge_cache.iter().enumerate() {
            if c.is_null() {
                continue;
            }
            // SAFETY: cached chunks are live and ours (lock held).
            let size = unsafe { (*c).size };
            let fits =
                size >= total && size - total <= total / 2 && (c as usize).is_multiple_of(align);
            // SAFETY: as above.
            if fits && best.is_none_or(|b| unsafe { (*st.huge_cache[b]).size } > size) {
                best = Some(i);
            }
        }
        let i = best?;
        let c = core::mem::replace(&mut st.huge_cache[i], ptr::null_mut());
        st.dirty_huge -= huge_dirty_bytes(c);
        c
    };
    stats::add(Counter::CacheHits, 1);
    // SAFETY: the chunk is ours now; the tail past `total` may hold memory
    // from a bigger block before: give it back.
    let size = unsafe { (*chunk).size };
    // SAFETY: as above.
    if size > total && unsafe { Chunk::meta(chunk) }.zero != ALL_SLICES {
        let tail = (chunk as *mut u8).wrapping_add(total);
        // SAFETY: the tail of our chunk, which no block uses.
        unsafe { platform::os_purge(tail, size - total) };
    }
    Some(chunk)
}

/// Free the block of a singleton page (any thread). `p` was checked to be
/// the block's start. False when the page was no singleton any more under
/// the lock (another thread freed it first: a double free).
///
/// # Safety
/// `page` is a live singleton page whose block is `p`, handed to us by the
/// caller's free.
pub unsafe fn free_singleton(page: *mut Page) -> bool {
    let chunk = Chunk::of_page(page);
    let mut st = ARENA.lock();
    // SAFETY: the chunk is live (the caller found it in the map and a
    // freed singleton stays mapped until the lock is dropped); an owner
    // of OWNER_SINGLETON under the lock means nobody else is freeing it.
    let p = unsafe { &*page };
    if p.owner.load(Ordering::Relaxed) != OWNER_SINGLETON {
        return false;
    }
    stats::singleton_freed(p.area_bytes());
    // SAFETY: as above.
    let release = if unsafe { (*chunk).kind } == ChunkKind::Normal {
        let (first, count) = p.span();
        // SAFETY: our singleton span of the live chunk; lock held.
        unsafe { release_span(&mut st, chunk, first, count) }
    } else {
        p.owner.store(OWNER_NONE, Ordering::Release);
        // SAFETY: a live huge chunk; lock held.
        let meta = unsafe { Chunk::meta(chunk) };
        meta.cached_at = platform::now_ms();
        meta.dirty = ALL_SLICES;
        meta.zero = 0;
        PURGE_DUE.fetch_min(
            meta.cached_at + crate::options::purge_delay_ms(),
            Ordering::Relaxed,
        );
        cache_huge(&mut st, chunk)
    };
    drop(st);
    if !release.is_null() {
        // SAFETY: off every list and cache, nothing in use.
        unsafe { unmap_chunk(release) };
    }
    true
}

/// Put a freed huge chunk in the cache; returns the chunk to unmap (it, or
/// the oldest cached one when the cache is full). Lock held.
fn cache_huge(st: &mut State, chunk: *mut Chunk) -> *mut Chunk {
    if !HUGE_CACHE {
        return chunk;
    }
    st.dirty_huge += huge_dirty_bytes(chunk);
    if let Some(slot) = st.huge_cache.iter_mut().find(|c| c.is_null()) {
        *slot = chunk;
        trim(st);
        return ptr::null_mut();
    }
    let oldest = (0..HUGE_CACHE_SLOTS)
        // SAFETY: every slot holds a live cached chunk (the cache is full).
        .min_by_key(|&i| unsafe { Chunk::meta(st.huge_cache[i]).cached_at })
        .unwrap_or(0);
    let evicted = core::mem::replace(&mut st.huge_cache[oldest], chunk);
    st.dirty_huge -= huge_dirty_bytes(evicted);
    trim(st);
    evicted
}

/// Bytes of a huge chunk's body that may be resident (0 once purged).
fn huge_dirty_bytes(chunk: *mut Chunk) -> usize {
    // SAFETY: a live huge chunk the caller holds (lock held or ours alone).
    if unsafe { Chunk::meta(chunk) }.dirty != 0 {
        // SAFETY: as above.
        unsafe { (*chunk).size - CHUNK_INFO_SIZE }
    } else {
        0
    }
}

/// Purge a cached huge chunk's body. Lock held, `chunk` in the cache.
fn purge_huge(st: &mut State, chunk: *mut Chunk) {
    let bytes = huge_dirty_bytes(chunk);
    if bytes == 0 {
        return;
    }
    let body = (chunk as *mut u8).wrapping_add(CHUNK_INFO_SIZE);
    // SAFETY: a cached chunk: nobody uses its memory; we hold the lock.
    let zeroed = unsafe { platform::os_purge(body, bytes) };
    stats::add(Counter::Purged, bytes as i64);
    // SAFETY: as above.
    let meta = unsafe { Chunk::meta(chunk) };
    meta.dirty = 0;
    meta.zero = if zeroed { ALL_SLICES } else { 0 };
    st.dirty_huge -= bytes;
}

/// Memory that free spans and cached huge chunks may keep resident: half
/// of what the program has in pages now, at least `DIRTY_FLOOR`. A program
/// that shrinks (or frees everything) gets its memory back at once, not at
/// the next purge pass, which only a later allocation would run; one in a
/// steady state keeps its working set warm.
const DIRTY_FLOOR: usize = 4 << 20;

/// Purge until the dirty memory is within budget (hosted: elsewhere purging
/// gives nothing back). Lock held.
fn trim(st: &mut State) {
    if !cfg!(feature = "hosted") {
        return;
    }
    let budget = DIRTY_FLOOR.max(stats::current(Counter::PageBytes).max(0) as usize / 2);
    while st.dirty_huge + st.dirty_slices * SLICE_SIZE > budget {
        // The oldest dirty huge chunk first, then the chunks' free slices.
        let oldest = (0..HUGE_CACHE_SLOTS)
            .filter(|&i| !st.huge_cache[i].is_null() && huge_dirty_bytes(st.huge_cache[i]) > 0)
            // SAFETY: cached chunks are live, lock held.
            .min_by_key(|&i| unsafe { Chunk::meta(st.huge_cache[i]).cached_at });
        if let Some(i) = oldest {
            let c = st.huge_cache[i];
            purge_huge(st, c);
            continue;
        }
        let mut chunk = st.first;
        while !chunk.is_null() && st.dirty_slices * SLICE_SIZE > budget {
            // SAFETY: listed chunks are live; we hold the lock.
            st.dirty_slices -= unsafe { purge_chunk(chunk, 0, true) };
            // SAFETY: as above.
            chunk = unsafe { Chunk::meta(chunk) }.next;
        }
        break;
    }
}

// ------------------------------------------------------------------ abandon and adopt

/// The thread owning `page` exits and the page still holds live blocks:
/// leave it for an adopter, or free it now if its last blocks came back
/// meanwhile.
///
/// # Safety
/// The calling thread owns `page` (its heap is going away), the page is in
/// no queue, its delayed-free state is `NeverDelayedFree`, and `used`
/// counts its live blocks plus those on `thread_free`.
pub unsafe fn abandon(page: *mut Page) {
    let chunk = Chunk::of_page(page);
    // SAFETY: as the caller guarantees.
    let p = unsafe { Page::owned(page) };
    let used = p.used();
    let bin = bin_of_size(p.block_size());
    {
        let _st = ARENA.lock();
        p.heap.store(ptr::null_mut(), Ordering::Relaxed);
        p.abandon_words().publish(used);
        // SAFETY: the page's chunk is live; we hold the lock.
        unsafe { Chunk::meta(chunk) }.abandoned |= 1 << p.span().0;
        ABANDONED[bin].fetch_add(1, Ordering::Relaxed);
        ABANDONED_TOTAL.fetch_add(1, Ordering::Relaxed);
    }
    stats::add(Counter::Abandoned, 1);
    // Frees that saw a live owner do not check; frees after the
    // publication do (`free_abandoned_if_empty`). One that falls between
    // leaves the page for the sweep in `purge`.
    if p.abandon_words().emptied_meanwhile(used) {
        free_abandoned_if_empty(page);
    }
}

/// A thread pushed onto an abandoned page's `thread_free` and the stack's
/// length reached the page's live count: free the page if that still
/// holds under the lock (an adopter may have taken it first). `page` is
/// only trusted after the chunk is found live under the lock.
pub fn free_abandoned_if_empty(page: *mut Page) {
    let chunk = Chunk::of_page(page);
    let mut st = ARENA.lock();
    if !chunk_map::is_chunk(chunk as usize) {
        return;
    }
    // SAFETY: the chunk is live (in the map, lock held); its page headers
    // are readable.
    let p = unsafe { &*page };
    if !p.abandon_words().may_free() {
        return;
    }
    // SAFETY: an abandoned page is the lock holder's to change.
    unsafe { unmark_abandoned(page) };
    stats::page_freed(p.area_bytes());
    let (first, count) = p.span();
    // SAFETY: as above; every block of the page is back.
    let release = unsafe { release_span(&mut st, chunk, first, count) };
    drop(st);
    if !release.is_null() {
        // SAFETY: unlinked, every slice free.
        unsafe { unmap_chunk(release) };
    }
}

/// Clear the abandoned marks of `page`. Lock held, page abandoned.
///
/// # Safety
/// As stated.
unsafe fn unmark_abandoned(page: *mut Page) {
    // SAFETY: as the caller guarantees.
    let p = unsafe { &*page };
    // SAFETY: as above: the page's chunk is live and we hold the lock.
    unsafe { Chunk::meta(Chunk::of_page(page)) }.abandoned &= !(1 << p.span().0);
    ABANDONED[bin_of_size(p.block_size())].fetch_sub(1, Ordering::Relaxed);
    ABANDONED_TOTAL.fetch_sub(1, Ordering::Relaxed);
}

/// Are there abandoned pages of `bin` (a hint)?
#[inline]
pub fn has_abandoned(bin: usize) -> bool {
    ABANDONED[bin].load(Ordering::Relaxed) != 0
}

/// Take an abandoned page of blocks of `block_size` for the thread `owner`
/// (whose heap is `heap`); null when there is none. The page's
/// `thread_free` is collected by the caller.
pub fn adopt(heap: *mut OwnerHeap, owner: usize, block_size: usize) -> *mut Page {
    let bin = bin_of_size(block_size);
    if !has_abandoned(bin) {
        return ptr::null_mut();
    }
    let st = ARENA.lock();
    // SAFETY: abandoned pages' headers are the lock holder's to read.
    let Some(page) = find_abandoned(&st, |p| unsafe { (*p).block_size() } == block_size) else {
        return ptr::null_mut();
    };
    // SAFETY: an abandoned page: the lock holder may change it.
    unsafe { unmark_abandoned(page) };
    // SAFETY: as above.
    let p = unsafe { &*page };
    debug_assert!(p.abandon_words().may_adopt());
    p.heap.store(heap, Ordering::Relaxed);
    p.abandon_words().adopt(owner);
    stats::add(Counter::Reclaimed, 1);
    page
}

/// The first abandoned page that `pick` accepts (the lock is held: `st`).
fn find_abandoned(st: &State, mut pick: impl FnMut(*mut Page) -> bool) -> Option<*mut Page> {
    let mut chunk = st.first;
    while !chunk.is_null() {
        // SAFETY: listed chunks are live; the caller holds the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        let mut bits = meta.abandoned;
        while bits != 0 {
            let page = Chunk::page(chunk, bits.trailing_zeros() as usize);
            bits &= bits - 1;
            if pick(page) {
                return Some(page);
            }
        }
        chunk = meta.next;
    }
    None
}

/// Visit every abandoned page, lock held (tests, whose process must be
/// quiescent, and the statistics report, which reads only its atomics).
pub fn for_each_abandoned(mut f: impl FnMut(*mut Page)) {
    let st = ARENA.lock();
    find_abandoned(&st, |page| {
        f(page);
        false
    });
}

// ------------------------------------------------------------------ purge and release

/// Purge memory that has been free for the purge delay (all of it with
/// `force`), and free abandoned pages whose blocks have all come back
/// (a free that raced with the abandonment leaves one for this sweep).
pub fn purge(force: bool) {
    let now = platform::now_ms();
    // Nothing due and nothing to sweep: no lock, no walk.
    if !force
        && now < PURGE_DUE.load(Ordering::Relaxed)
        && ABANDONED_TOTAL.load(Ordering::Relaxed) == 0
    {
        return;
    }
    let mut st = ARENA.lock();
    // Recomputed below from what stays pending (changes under the lock only).
    PURGE_DUE.store(u64::MAX, Ordering::Relaxed);
    let mut chunk = st.first;
    let mut release: [*mut Chunk; 4] = [ptr::null_mut(); 4];
    let mut n_release = 0;
    while !chunk.is_null() {
        // SAFETY: listed chunks are live; we hold the lock.
        let next = unsafe { Chunk::meta(chunk).next };
        // SAFETY: as above.
        let abandoned = unsafe { Chunk::meta(chunk).abandoned };
        let mut bits = abandoned;
        while bits != 0 {
            let page = Chunk::page(chunk, bits.trailing_zeros() as usize);
            bits &= bits - 1;
            // SAFETY: an abandoned page of a live chunk, lock held.
            let p = unsafe { &*page };
            if p.abandon_words().may_free() && n_release < release.len() {
                // SAFETY: as above: abandoned pages are the lock holder's.
                unsafe { unmark_abandoned(page) };
                stats::page_freed(p.area_bytes());
                let (first, count) = p.span();
                // SAFETY: as above; every block of the page is back.
                let r = unsafe { release_span(&mut st, chunk, first, count) };
                if !r.is_null() {
                    release[n_release] = r;
                    n_release += 1;
                }
            }
        }
        // SAFETY: as above.
        st.dirty_slices -= unsafe { purge_chunk(chunk, now, force) };
        chunk = next;
    }
    for i in 0..HUGE_CACHE_SLOTS {
        let c = st.huge_cache[i];
        if c.is_null() || huge_dirty_bytes(c) == 0 {
            continue;
        }
        // SAFETY: cached chunks are ours, lock held.
        let due = unsafe { Chunk::meta(c).cached_at } + crate::options::purge_delay_ms();
        if force || due <= now {
            purge_huge(&mut st, c);
        } else {
            PURGE_DUE.fetch_min(due, Ordering::Relaxed);
        }
    }
    drop(st);
    for &c in &release[..n_release] {
        // SAFETY: unlinked, every slice free.
        unsafe { unmap_chunk(c) };
    }
}

/// Purge the dirty free slices of `chunk` once their delay has passed;
/// returns how many slices were purged.
///
/// # Safety
/// `chunk` is live and the arena lock is held.
unsafe fn purge_chunk(chunk: *mut Chunk, now: u64, force: bool) -> usize {
    // SAFETY: as the caller guarantees.
    let meta = unsafe { Chunk::meta(chunk) };
    if meta.dirty == 0 {
        return 0;
    }
    if !force && meta.purge_at > now {
        PURGE_DUE.fetch_min(meta.purge_at, Ordering::Relaxed);
        return 0;
    }
    let purged = meta.dirty.count_ones() as usize;
    let mut bits = meta.dirty;
    while bits != 0 {
        let first = bits.trailing_zeros() as usize;
        let len = (!(bits >> first)).trailing_zeros() as usize;
        let mask = run_mask(first, len);
        bits &= !mask;
        let (start, area) = Chunk::span_area(chunk, first, len);
        // SAFETY: free slices of a live chunk: nobody uses their memory,
        // and nobody can take them while we hold the lock.
        let zeroed = unsafe { platform::os_purge(start, area) };
        stats::add(Counter::Purged, area as i64);
        if zeroed {
            // Slice 0's header stays; its area is what reads as zero.
            meta.zero |= mask;
        }
    }
    meta.dirty = 0;
    meta.purge_at = 0;
    purged
}

/// Out of memory: hand every cached huge chunk and spare empty chunk back
/// to the platform. Returns whether anything was released.
pub fn release_caches() -> bool {
    let mut released = false;
    loop {
        let victim = {
            let mut st = ARENA.lock();
            if let Some(i) = (0..HUGE_CACHE_SLOTS).find(|&i| !st.huge_cache[i].is_null()) {
                let c = core::mem::replace(&mut st.huge_cache[i], ptr::null_mut());
                st.dirty_huge -= huge_dirty_bytes(c);
                c
            } else {
                let mut found = ptr::null_mut();
                let mut chunk = st.first;
                while !chunk.is_null() {
                    // SAFETY: listed chunks are live; we hold the lock.
                    let meta = unsafe { Chunk::meta(chunk) };
                    if meta.free == ALL_SLICES {
                        found = chunk;
                        break;
                    }
                    chunk = meta.next;
                }
                if !found.is_null() {
                    st.empty -= 1;
                    // SAFETY: as above.
                    st.dirty_slices -= unsafe { Chunk::meta(found).dirty.count_ones() } as usize;
                    unlink_chunk(&mut st, found);
                }
                found
            }
        };
        if victim.is_null() {
            return released;
        }
        // SAFETY: off the list and the cache, nothing in use.
        unsafe { unmap_chunk(victim) };
        released = true;
    }
}

/// Spare empty chunks and cached huge chunks (statistics).
pub fn cached_count() -> usize {
    let st = ARENA.lock();
    st.empty + st.huge_cache.iter().filter(|c| !c.is_null()).count()
}

/// Free memory not yet purged (free slices and cached huge chunks that were
/// written to), for the statistics report's committed bytes.
pub fn dirty_bytes() -> usize {
    let st = ARENA.lock();
    st.dirty_slices * SLICE_SIZE + st.dirty_huge
}

// ------------------------------------------------------------------ fork

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
    unsafe { ARENA.release() };
}
