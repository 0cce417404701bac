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
    // Resident free slices first (no page faults), when there may be enough.
    if st.dirty_slices >= plain {
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
        let other = meta.class != class && meta.free != ALL_SLICES;
        let free = if dirty { meta.dirty } else { meta.free };
        let found = if free == 0 || (other && !any_class) {
            None
        } else if let Some(first) = find_run(free, plain, !1) {
            Some((first, plain))
        } else {
            at0.filter(|&n| n <= 64 && find_run(free, n, 1) == Some(0))
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
            if meta.dirty == 0 {
                meta.purge_at = 0;
            }
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

/// A span of `plain` slices (or `at0` at slice 0), from a chunk of `class`
/// with room (embedded: or of the other class) or a fresh one; None when
/// the platform has no memory.
pub(super) fn alloc_span(class: u8, plain: usize, at0: Option<usize>) -> Option<Span> {
    loop {
        // Embedded, a free run in a chunk of the other class comes before
        // a fresh chunk: memory is physical, and each chunk mapped counts
        // against the region or the provider's cap (the ArceOS stress:
        // 0.8 MiB less provider memory on average). Hosted keeps the classes
        // apart, so that a chunk whose big blocks are freed goes back whole.
        let spill = !cfg!(feature = "hosted");
        if let Some(span) = with_arena(|st| {
            take_span(st, class, false, plain, at0)
                .or_else(|| spill.then(|| take_span(st, class, true, plain, at0))?)
        }) {
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
