//! Singletons (one block in a span of its own) and huge blocks (a chunk of
//! their own, from the cache when one fits): allocation, growth in place
//! or by remapping, free.

use super::chunks::{map_chunk, unmap_chunk};
use super::huge_cache::{cache_huge, huge_dirty_bytes};
use super::lock::with_arena;
use super::region::{self, REGIONS, REGION_MAX_UNITS};
use super::span::{alloc_span, release_span};
use super::state::{ARENA, HUGE_CACHE, HUGE_MIN, HUGE_PAGE, PURGE_DUE};
use super::trim::{dirty_budget, trim, RECENT_FACTOR};
use crate::base::constants::*;
use crate::mem::chunk::{
    run_mask, Chunk, ChunkKind, ALL_SLICES, CHUNK_INFO_SIZE, CLASS_SINGLETONS,
};
use crate::mem::chunk_map;
use crate::mem::page::{Page, OWNER_NONE, OWNER_SINGLETON};
use crate::platform;
use crate::support::stats::{self, Counter};
use core::ptr;
use core::sync::atomic::Ordering;

/// One block of `size` bytes aligned to `align` (0 or a power of two) in a
/// span or huge chunk of its own: returns the block and whether it reads
/// as zero. Any thread may free it.
pub fn alloc_singleton(size: usize, align: usize) -> Option<(*mut u8, bool)> {
    let align = align.max(MAX_ALIGN_GUARANTEE);
    if size < HUGE_MIN && align <= SLICE_SIZE {
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
pub(super) fn alloc_huge(size: usize, align: usize) -> Option<(*mut u8, bool)> {
    // The block starts at the first `align` boundary after the header.
    let offset = CHUNK_INFO_SIZE.next_multiple_of(align);
    let total = offset
        .checked_add(size)?
        .checked_next_multiple_of(SLICE_SIZE)?;
    if total > MAX_ALLOC_SIZE {
        return None;
    }
    let chunk = match alloc_in_region(total, align).or_else(|| take_cached_huge(total, align)) {
        Some(chunk) => chunk,
        None => {
            let chunk = map_chunk(ChunkKind::Huge, total, align.max(CHUNK_SIZE));
            if chunk.is_null() {
                return None;
            }
            advise_whole_huge_pages(chunk.cast::<u8>().wrapping_add(offset), size);
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

/// `secure` (whose huge blocks all have mappings of their own): transparent
/// huge pages for the 2 MiB pages a fresh huge chunk's block of `size`
/// bytes at `block` covers whole, as regions ask for theirs (region.rs): a
/// block written in full faults once per 2 MiB there, and holds no more
/// resident than it touches (the pages it ends in or shares with the
/// header and the guard page stay small). The advice stays with the
/// mapping while it is cached and reused. Not in other builds: advice on
/// part of a mapping splits it, and `mremap` grows only a whole one
/// (`remap_huge`; `secure`'s guard page splits it anyway).
fn advise_whole_huge_pages(block: *mut u8, size: usize) {
    if !cfg!(feature = "secure") || !crate::support::options::huge_pages() {
        return;
    }
    let pages = whole_huge_pages(block as usize, size);
    if !pages.is_empty() {
        // SAFETY: whole huge pages inside the fresh mapping of our chunk.
        unsafe { platform::os_huge_pages(pages.start as *mut u8, pages.len(), true) };
    }
}

/// The addresses of the 2 MiB pages `block..block + size` covers whole.
fn whole_huge_pages(block: usize, size: usize) -> core::ops::Range<usize> {
    let from = block.next_multiple_of(HUGE_PAGE);
    let to = (block + size) & !(HUGE_PAGE - 1);
    from..to.max(from)
}

/// realloc of a huge block to `new_size` bytes without copying it: the
/// chunk's mapping is resized where it lies (hosted: `mremap` without
/// `MREMAP_MAYMOVE`; embedded: the free 1 MiB units after it in its
/// region), or else (hosted) its pages are moved, not copied, to a
/// fresh aligned address (`MREMAP_MAYMOVE | MREMAP_FIXED`); a move leaves
/// half again the old size as room to grow (address space only: untouched
/// pages cost no memory), so a block grown step by step moves a few times,
/// not at every step. Returns the block's (possibly new) address, None when
/// neither worked (the chunk is as it was; the caller copies instead; so
/// with `secure` hosted, whose guard page splits the mapping).
///
/// Resized where it lies, the chunk map gains (before) or loses (after) the
/// chunk-sized regions at its end; moved (hosted), the chunk leaves the map
/// before its old range goes and comes back at its new extent once its
/// header is there, its base still 4 MiB aligned (and aligned as the block was: an
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
    if let Some((r, first)) = region::region_of(base) {
        // SAFETY: as the caller guarantees; the chunk starts at that unit.
        let (chunk, total) = unsafe { remap_in_region(chunk, r, first, old_total, new_total) }?;
        // SAFETY: as above, at its new extent.
        return Some(unsafe { finish_remap(p, chunk, offset, total, old_total) });
    }
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
    // SAFETY: as the caller guarantees, at the chunk's new extent.
    Some(unsafe { finish_remap(p, chunk, offset, total, old_total) })
}

/// A huge chunk was resized (and maybe moved): its size, page and the
/// chunk map follow; returns the block's address.
///
/// # Safety
/// `chunk` is the caller's huge chunk (its block `p` given up by the
/// caller), now `total` bytes long; moved, it is out of the chunk map,
/// whose leaves for the new extent exist.
unsafe fn finish_remap(
    p: *mut u8,
    chunk: *mut Chunk,
    offset: usize,
    total: usize,
    old_total: usize,
) -> *mut u8 {
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
    block
}

/// realloc of a huge block carved from a region (`remap_huge`): a shrink
/// frees the units after the new end; a growth takes the free units after
/// the block, else the block's pages move (`os_move_pages`, no copy) to
/// free units elsewhere, their old units given back (reading as zero).
/// Returns the chunk and its new size; None (nothing changed) when no
/// units are to be had.
///
/// # Safety
/// As `remap_huge`; `chunk` starts at unit `first` of region `r`.
unsafe fn remap_in_region(
    chunk: *mut Chunk,
    r: usize,
    first: usize,
    old_total: usize,
    new_total: usize,
) -> Option<(*mut Chunk, usize)> {
    let base = chunk as usize;
    let old_units = old_total.div_ceil(CHUNK_SIZE);
    let new_units = new_total.div_ceil(CHUNK_SIZE);
    if new_total <= old_total {
        chunk_map::resize(base, old_total, new_total);
        with_arena(|st| {
            // What the block wrote in its last kept unit stays resident.
            let last = new_units - 1;
            region::note_resident(st, r, first + last, region::covered(old_total, last));
            if new_units < old_units {
                let rest = old_total - new_units * CHUNK_SIZE;
                region::release_units(st, r, first + new_units, old_units - new_units, rest, false);
                trim(st);
            }
        });
        return Some((chunk, new_total));
    }
    if new_units > REGION_MAX_UNITS {
        return None;
    }
    let in_place = new_units == old_units
        || with_arena(|st| region::grow_units(st, r, first + old_units, new_units - old_units));
    if in_place {
        // The region's leaves exist; the units' entries are free.
        let recorded = chunk_map::resize(base, old_total, new_total);
        debug_assert!(recorded, "free units are in no chunk");
        return Some((chunk, new_total));
    }
    let (to, _) = carve_units(new_total)?;
    to.advise();
    chunk_map::remove(base, old_total);
    // SAFETY: our block's units and free units just taken: disjoint, in
    // regions, used by nobody else meanwhile.
    if !unsafe { platform::os_move_pages(chunk.cast(), old_total, to.base as *mut u8, new_total) } {
        with_arena(|st| region::release_units(st, to.region, to.first, new_units, 0, false));
        let again = chunk_map::insert(base, old_total, ChunkKind::Huge);
        debug_assert!(again);
        return None;
    }
    with_arena(|st| {
        region::release_units(st, r, first, old_units, old_total, true);
        trim(st);
    });
    Some((to.base as *mut Chunk, new_total))
}

/// Free region units for a block of `total` bytes (a new region reserved
/// when none has room), and whether the caller is to purge the dirty tail
/// of the last unit. None when no region can be had.
fn carve_units(total: usize) -> Option<(region::Carved, bool)> {
    let units = total.div_ceil(CHUNK_SIZE);
    let mut reserved = false;
    loop {
        let got = with_arena(|st| {
            let c = region::take_units(st, units, total)?;
            // The last unit's memory after the block (an earlier, longer
            // block's) stays resident while dirty memory is within the
            // budget and its recent allowance (a longer block next reuses
            // it), else goes back now.
            let dirty = st.dirty_huge + st.dirty_slices * SLICE_SIZE + st.dirty_region;
            let purge_tail =
                c.tail_dirty != 0 && dirty + c.tail_dirty > (1 + RECENT_FACTOR) * dirty_budget();
            if purge_tail {
                let last = units - 1;
                region::tail_purged(st, c.region, c.first + last, region::covered(total, last));
            }
            Some((c, purge_tail))
        });
        if got.is_some() || reserved {
            return got;
        }
        let base = region::map_region()?;
        if !with_arena(|st| region::add_region(st, base)) {
            // SAFETY: just reserved, never entered: nobody knows it.
            unsafe { region::unmap_region(base) };
            return None;
        }
        reserved = true;
    }
}

/// A huge chunk carved from a region, when the block suits one (hosted,
/// not `secure`, at most `REGION_MAX_UNITS` units, aligned to at most a
/// chunk); entered in the chunk map.
fn alloc_in_region(total: usize, align: usize) -> Option<*mut Chunk> {
    if !REGIONS || align > CHUNK_SIZE || total.div_ceil(CHUNK_SIZE) > REGION_MAX_UNITS {
        return None;
    }
    let (c, purge_tail) = carve_units(total)?;
    c.advise();
    if purge_tail {
        let tail = (c.base + total) as *mut u8;
        // SAFETY: the units are ours; the tail after the block is used by
        // nobody (page aligned: `total` is a multiple of a slice).
        unsafe { platform::os_purge(tail, c.tail_dirty.next_multiple_of(OS_PAGE_SIZE)) };
    }
    let chunk = c.base as *mut Chunk;
    // SAFETY: units just taken: ours alone until the chunk map has them.
    unsafe { Chunk::init(chunk, ChunkKind::Huge, total, c.is_zero) };
    if !chunk_map::insert(c.base, total, ChunkKind::Huge) {
        debug_assert!(false, "free units are in no chunk");
        with_arena(|st| {
            region::release_units(
                st,
                c.region,
                c.first,
                total.div_ceil(CHUNK_SIZE),
                total,
                false,
            )
        });
        return None;
    }
    stats::add(Counter::Reserved, total as i64);
    stats::add(Counter::Chunks, 1);
    Some(chunk)
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
    super::directory::sync(&mut st.dir, chunk, meta);
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
pub(super) unsafe fn singleton_block(
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
            crate::lockfree::block::ListKey::PLAIN,
        )
    };
    pg.extend();
    stats::singleton_allocated(area);
    pg.pop_free()
}

/// A cached huge chunk of at least `total` bytes whose base suits
/// `align`: the smallest resident one at most twice as big, else the
/// biggest resident smaller one grown to `total` (its pages moved, not
/// copied: only the growth is faulted in), else the smallest purged one at
/// most twice as big. So freed huge memory serves the next request of any
/// size, as a coalescing heap would, without faulting it in again.
pub(super) fn take_cached_huge(total: usize, align: usize) -> Option<*mut Chunk> {
    if !HUGE_CACHE {
        return None;
    }
    // With `secure` the guard page splits the mapping: it cannot be remapped.
    let can_grow = cfg!(all(feature = "hosted", not(feature = "secure")));
    let (chunk, purge_tail) = with_arena(|st| {
        // Ranked: a resident fit (smallest), a resident one to grow
        // (biggest), a purged fit (smallest).
        let mut best: Option<(usize, (u8, usize))> = None;
        for (i, &c) in st.huge_cache.iter().enumerate() {
            if c.is_null() || !(c as usize).is_multiple_of(align) {
                continue;
            }
            // SAFETY: cached chunks are live and ours (lock held).
            let size = unsafe { (*c).size };
            let resident = huge_dirty_bytes(c) != 0;
            let fits = size >= total && size - total <= total;
            let rank = if fits && resident {
                (0, size)
            } else if resident && size < total && can_grow {
                (1, usize::MAX - size)
            } else if fits {
                (2, size)
            } else {
                continue;
            };
            if best.is_none_or(|(_, r)| rank < r) {
                best = Some((i, rank));
            }
        }
        let (i, _) = best?;
        let c = core::mem::replace(&mut st.huge_cache[i], ptr::null_mut());
        let dirty = huge_dirty_bytes(c);
        st.dirty_huge -= dirty;
        // The tail past `total` may hold memory from a bigger block before.
        // It stays resident while the dirty budget has room for it (a
        // bigger block next reuses it without faults), else it goes back.
        // SAFETY: as above.
        let tail = unsafe { (*c).size }.saturating_sub(total);
        let purge_tail = dirty != 0
            && tail != 0
            && st.dirty_huge + st.dirty_slices * SLICE_SIZE + tail > dirty_budget();
        Some((c, purge_tail))
    })?;
    // SAFETY: the chunk is ours now.
    let size = unsafe { (*chunk).size };
    if size < total {
        // SAFETY: out of the cache, no block in it: ours alone.
        let grown = unsafe { grow_cached_huge(chunk, total, align) };
        if grown.is_none() {
            let evicted = with_arena(|st| cache_huge(st, chunk));
            if !evicted.is_null() {
                // SAFETY: off every list and cache, nothing in use.
                unsafe { unmap_chunk(evicted) };
            }
        }
        stats::add(Counter::CacheHits, grown.is_some() as i64);
        return grown;
    }
    stats::add(Counter::CacheHits, 1);
    if purge_tail {
        let tail = (chunk as *mut u8).wrapping_add(total);
        // SAFETY: the chunk is ours now, and its tail is used by no block.
        unsafe { platform::os_purge(tail, size - total) };
    }
    Some(chunk)
}

/// Grow a cached huge chunk's mapping to `total` bytes: where it lies, else
/// moved (its pages, not copied) to a base aligned to `align` and 4 MiB.
/// The chunk map follows. None when neither worked (the chunk is as it was).
///
/// # Safety
/// `chunk` is a huge chunk taken out of the cache: no block is in it and
/// nobody else refers to it.
pub(super) unsafe fn grow_cached_huge(
    chunk: *mut Chunk,
    total: usize,
    align: usize,
) -> Option<*mut Chunk> {
    // SAFETY: as the caller guarantees.
    let old = unsafe { (*chunk).size };
    let base = chunk as usize;
    let in_place = chunk_map::prepare(base, total)
        // SAFETY: our chunk's whole mapping; nobody uses it meanwhile.
        && unsafe { platform::os_remap_in_place(chunk.cast(), old, total) }
        && {
            let recorded = chunk_map::resize(base, old, total);
            debug_assert!(recorded, "regions of our own mapping are nobody's");
            true
        };
    let chunk = if in_place {
        chunk
    } else {
        chunk_map::remove(base, old);
        // SAFETY: as above.
        let moved = unsafe {
            platform::os_remap_move(
                chunk.cast(),
                old,
                total,
                align.max(CHUNK_SIZE),
                chunk_map::prepare,
            )
        };
        let Some(new_base) = moved else {
            // Unchanged: recorded again as it was (its leaves exist).
            let again = chunk_map::insert(base, old, ChunkKind::Huge);
            debug_assert!(again);
            return None;
        };
        new_base.cast::<Chunk>()
    };
    // SAFETY: our chunk at its new extent.
    unsafe { (*chunk).size = total };
    if !in_place {
        // `prepare` made every leaf the new extent needs.
        let recorded = chunk_map::insert(chunk as usize, total, ChunkKind::Huge);
        debug_assert!(recorded);
    }
    stats::add(Counter::Reserved, total as i64 - old as i64);
    stats::add(Counter::HugeRemaps, 1);
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
    let evicted = with_arena(|st| {
        // SAFETY: the chunk is live (the caller found it in the map and a
        // freed singleton stays mapped until the lock is dropped); an owner
        // of OWNER_SINGLETON under the lock means nobody else is freeing it.
        let p = unsafe { &*page };
        if p.owner.load(Ordering::Relaxed) != OWNER_SINGLETON {
            return None;
        }
        stats::singleton_freed(p.area_bytes());
        // SAFETY: as above.
        if unsafe { (*chunk).kind } == ChunkKind::Normal {
            let (first, count) = p.span();
            // SAFETY: our singleton span of the live chunk; lock held.
            unsafe { release_span(st, chunk, first, count) };
            return Some(ptr::null_mut());
        }
        p.owner.store(OWNER_NONE, Ordering::Release);
        if let Some((r, first)) = region::region_of(chunk as usize) {
            // Out of the chunk map before its units can be carved again.
            // SAFETY: as above.
            let size = unsafe { (*chunk).size };
            chunk_map::remove(chunk as usize, size);
            region::release_units(st, r, first, size.div_ceil(CHUNK_SIZE), size, false);
            stats::add(Counter::Reserved, -(size as i64));
            stats::add(Counter::Chunks, -1);
            trim(st);
            return Some(ptr::null_mut());
        }
        // SAFETY: a live huge chunk; lock held.
        let meta = unsafe { Chunk::meta(chunk) };
        meta.cached_at = platform::now_ms();
        meta.dirty = ALL_SLICES;
        meta.zero = 0;
        PURGE_DUE.fetch_min(
            meta.cached_at + crate::support::options::purge_delay_ms(),
            Ordering::Relaxed,
        );
        let evicted = cache_huge(st, chunk);
        trim(st);
        Some(evicted)
    });
    let Some(evicted) = evicted else {
        return false;
    };
    if !evicted.is_null() {
        // SAFETY: off every list and cache, nothing in use.
        unsafe { unmap_chunk(evicted) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_chunks_advise_only_the_huge_pages_their_block_covers_whole() {
        const M: usize = 1 << 20;
        // A block after a chunk header: its first, shared huge page stays small.
        assert_eq!(whole_huge_pages(64 * M + 12288, 3 * M), 66 * M..66 * M);
        assert_eq!(whole_huge_pages(64 * M + 12288, 5 * M), 66 * M..68 * M);
        // Aligned to a huge page at both ends: all of it.
        assert_eq!(whole_huge_pages(64 * M, 8 * M), 64 * M..72 * M);
        // Within one huge page: none.
        assert!(whole_huge_pages(64 * M + 4096, M).is_empty());
    }
}
