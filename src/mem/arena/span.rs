//! Spans: free slices found and taken for a page or a singleton (in a
//! chunk of the right class, resident ones first, a fresh chunk when none
//! has room), and given back.

use super::chunks::{map_chunk, mark_free, push_chunk};
use super::lock::with_arena;
use super::state::{Span, State};
use super::trim::trim;
use crate::base::constants::*;
use crate::mem::chunk::{find_run, run_mask, Chunk, ChunkKind, ALL_SLICES, CLASS_SINGLETONS};
use crate::mem::page::OWNER_NONE;
use core::ptr;
use core::sync::atomic::Ordering;

/// Find free slices, in a chunk of `class` (or an empty one, which then
/// takes that class), else with `any_class` in any chunk: `plain` of them
/// not at slice 0, or `at0` (None: slice 0 is not allowed) starting at
/// slice 0, whose area is shortened by the header. Marks them used. Lock held.
pub(super) fn take_span(
    st: &mut State,
    class: u8,
    any_class: bool,
    plain: usize,
    at0: Option<usize>,
) -> Option<Span> {
    // Resident free slices first (no page faults), when there may be enough
    // (embedded memory is all resident: one best-fit pass).
    if cfg!(feature = "hosted") && st.dirty_slices >= plain {
        let span = take_span_of(st, class, any_class, plain, at0, true);
        if span.is_some() {
            return span;
        }
    }
    take_span_of(st, class, any_class, plain, at0, false)
}

/// [`take_span`] among all free slices, or with `dirty` among the resident
/// ones only.
pub(super) fn take_span_of(
    st: &mut State,
    class: u8,
    any_class: bool,
    plain: usize,
    at0: Option<usize>,
    dirty: bool,
) -> Option<Span> {
    let (chunk, first, count) = if cfg!(feature = "hosted") {
        first_fit(st, class, any_class, plain, at0, dirty)?
    } else {
        best_fit(st, class, any_class, plain, at0)?
    };
    // SAFETY: a listed chunk; we hold the lock.
    let meta = unsafe { Chunk::meta(chunk) };
    if meta.free == ALL_SLICES {
        st.empty -= 1;
        meta.class = class;
    }
    let mask = run_mask(first, count);
    let is_zero = meta.zero & mask == mask;
    meta.free &= !mask;
    st.dirty_slices -= (meta.dirty & mask).count_ones() as usize;
    meta.dirty &= !mask;
    if meta.dirty == 0 {
        meta.purge_at = 0;
    }
    // The span is about to be written.
    meta.zero &= !mask;
    super::directory::sync(&mut st.dir, chunk, meta);
    Some(Span {
        chunk,
        first,
        count,
        is_zero,
    })
}

/// Whether a chunk of `chunk_class` with `free` slices may give spans for
/// `class`: its own class, or empty, or any with `any_class`.
fn class_fits(chunk_class: u8, free: u64, (class, any_class): (u8, bool)) -> bool {
    any_class || chunk_class == class || free == ALL_SLICES
}

/// The run `first_fit` takes in a chunk of `chunk_class` whose `free`
/// slices are all free and whose `bits` the search may use (all free ones,
/// or the resident ones), if any: (first slice, count).
fn fit_in(
    bits: u64,
    (chunk_class, free): (u8, u64),
    want: (u8, bool),
    plain: usize,
    at0: Option<usize>,
) -> Option<(usize, usize)> {
    if bits == 0 || !class_fits(chunk_class, free, want) {
        None
    } else if let Some(first) = find_run(bits, plain, !1) {
        Some((first, plain))
    } else {
        at0.filter(|&n| n <= 64 && find_run(bits, n, 1) == Some(0))
            .map(|n| (0, n))
    }
}

/// The first chunk (oldest first) with room, its lowest run: (chunk,
/// first slice, count). Moves `st.scan` past the full chunks it starts with.
fn first_fit(
    st: &mut State,
    class: u8,
    any_class: bool,
    plain: usize,
    at0: Option<usize>,
    dirty: bool,
) -> Option<(*mut Chunk, usize, usize)> {
    if st.scan.is_null() {
        return None;
    }
    // SAFETY: `scan` is a listed chunk; we hold the lock.
    let scan_seq = unsafe { Chunk::meta(st.scan) }.seq;
    if let Some(start) = st.dir.index_of(scan_seq) {
        return first_fit_dense(st, start, (class, any_class), plain, at0, dirty);
    }
    let mut chunk = st.scan;
    let mut leading = true;
    while !chunk.is_null() {
        // SAFETY: chunks on the list are live; we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        // Full chunks at the start of the search move the start past them.
        if leading && meta.free == 0 {
            st.scan = meta.next;
        } else {
            leading = false;
        }
        let free = if dirty { meta.dirty } else { meta.free };
        let want = (class, any_class);
        if let Some((first, count)) = fit_in(free, (meta.class, meta.free), want, plain, at0) {
            return Some((chunk, first, count));
        }
        chunk = meta.next;
    }
    None
}

/// `first_fit` over the directory from entry `start` (`scan`'s): the same
/// answer, from consecutive entries; the chunk's own bits are checked
/// before its run is returned.
fn first_fit_dense(
    st: &mut State,
    start: usize,
    want: (u8, bool),
    plain: usize,
    at0: Option<usize>,
    dirty: bool,
) -> Option<(*mut Chunk, usize, usize)> {
    let entries = st.dir.entries()?;
    let mut leading = true;
    let mut scan = None;
    let mut found = None;
    for (i, e) in entries.iter().enumerate().skip(start) {
        if leading && e.free == 0 {
            scan = Some(entries.get(i + 1).map_or(ptr::null_mut(), |n| n.chunk));
            continue;
        }
        leading = false;
        let bits = if dirty { e.dirty } else { e.free };
        let Some(run) = fit_in(bits, (e.class, e.free), want, plain, at0) else {
            continue;
        };
        // SAFETY: a listed chunk (the directory mirrors the list).
        let meta = unsafe { Chunk::meta(e.chunk) };
        let real = if dirty { meta.dirty } else { meta.free };
        debug_assert!(
            real == bits && meta.class == e.class,
            "stale directory entry"
        );
        if fit_in(real, (meta.class, meta.free), want, plain, at0) == Some(run) {
            found = Some((e.chunk, run.0, run.1));
            break;
        }
    }
    if let Some(s) = scan {
        st.scan = s;
    }
    found
}

/// Chunks `best_fit` looks at after the first that fits.
const BEST_FIT_CHUNKS: usize = 64;

/// Embedded: the free run that fits most tightly over all chunks (the
/// oldest of equals; after the first fit, over the next `BEST_FIT_CHUNKS`
/// chunks only), its first slices: (chunk, first slice, count). Pages
/// of a few slices and singletons of up to a whole chunk share the chunks
/// here, and a small span cut from a long run would leave a big block no
/// room: first fit left 4 of the ArceOS stress's 25 MiB of chunks free at
/// its peak; best fit, with no chunk classes, takes 1-1.5 MiB off the
/// provider's peak on average (docs/arceos.md section 5). Every
/// slice is resident, so there is no dirty pass. Moves `st.scan` past the
/// full chunks it starts with.
fn best_fit(
    st: &mut State,
    class: u8,
    any_class: bool,
    plain: usize,
    at0: Option<usize>,
) -> Option<(*mut Chunk, usize, usize)> {
    let mut best: Option<(*mut Chunk, usize, usize)> = None;
    let mut best_spare = usize::MAX;
    // Chunks with room looked at once one fits: bounds the walk (under the
    // lock) where a region holds many chunks; a 64 MiB budget is all of it.
    let mut budget = BEST_FIT_CHUNKS;
    let mut chunk = st.scan;
    let mut leading = true;
    while !chunk.is_null() {
        if best.is_some() {
            if budget == 0 {
                break;
            }
            budget -= 1;
        }
        // SAFETY: chunks on the list are live; we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        if leading && meta.free == 0 {
            st.scan = meta.next;
        } else {
            leading = false;
        }
        if meta.free != 0 && class_fits(meta.class, meta.free, (class, any_class)) {
            let mut runs = meta.free;
            while runs != 0 {
                let start = runs.trailing_zeros() as usize;
                let len = (!(runs >> start)).trailing_zeros() as usize;
                runs &= !run_mask(start, len);
                // A span at slice 0 takes `at0` slices; elsewhere `plain`.
                let (first, need, len) = match (start, at0) {
                    (0, Some(n)) if n <= len => (0, n, len),
                    (0, _) => (1, plain, len - 1),
                    _ => (start, plain, len),
                };
                if need <= len && len - need < best_spare {
                    best_spare = len - need;
                    best = Some((chunk, first, need));
                    if best_spare == 0 {
                        return best;
                    }
                }
            }
        }
        chunk = meta.next;
    }
    best
}

/// A span of `plain` slices (or `at0` at slice 0), from a chunk of `class`
/// with room (embedded: any chunk) or a fresh one; None when the platform
/// has no memory.
pub(super) fn alloc_span(class: u8, plain: usize, at0: Option<usize>) -> Option<Span> {
    loop {
        // Embedded, any chunk's free run comes before a fresh chunk (the
        // classes are not kept apart): memory is physical, and each chunk
        // mapped counts against the region or the provider's cap. Hosted
        // keeps the classes apart, so that a chunk whose big blocks are
        // freed goes back whole.
        let any_class = !cfg!(feature = "hosted");
        if let Some(span) = with_arena(|st| take_span(st, class, any_class, plain, at0)) {
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
            return with_arena(|st| take_span(st, class, true, plain, at0));
        }
        // Taken from in the same lock hold: with no spare chunks
        // (embedded) a purge pass would give the fresh chunk back while it
        // is still empty.
        let span = with_arena(|st| {
            push_chunk(st, chunk);
            take_span(st, class, false, plain, at0)
        });
        if span.is_some() {
            return span;
        }
    }
}

/// Give the slices of a span back (an empty chunk beyond the spares goes
/// back to the platform once the lock is dropped). Lock held.
///
/// # Safety
/// The span `first..first + count` of `chunk` is in use and nobody uses
/// its memory any more.
pub(super) unsafe fn release_span(st: &mut State, chunk: *mut Chunk, first: usize, count: usize) {
    // SAFETY: as the caller guarantees; we hold the lock.
    unsafe { Chunk::set_span(chunk, first, count, true) };
    // SAFETY: a page header of the caller's live chunk.
    unsafe { &*Chunk::page(chunk, first) }
        .owner
        .store(OWNER_NONE, Ordering::Release);
    let mask = run_mask(first, count);
    // SAFETY: as the caller guarantees.
    let dirty = mask & !unsafe { Chunk::meta(chunk) }.zero;
    mark_free(st, chunk, mask, dirty);
    trim(st);
}
