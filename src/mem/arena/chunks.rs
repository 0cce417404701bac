//! Normal chunks under the lock: the list, mapping and unmapping, and each
//! chunk's free / dirty / purging slice bits (a span's slices going free,
//! out to purge, back from it), spare empty chunks.

use super::directory;
use super::state::{State, DEFER_PURGE, DEFER_UNMAP, PURGE_DUE};
use crate::base::address;
use crate::base::constants::*;
use crate::mem::chunk::{self, Chunk, ChunkKind, ALL_SLICES};
use crate::mem::chunk_map;
use crate::mem::page_map;
use crate::platform;
use crate::support::stats::{self, Counter};
use core::ptr;
use core::sync::atomic::Ordering;

/// Append a fresh chunk to the list. Lock held.
pub(super) fn push_chunk(st: &mut State, chunk: *mut Chunk) {
    // SAFETY: `chunk` is a fresh, initialised chunk only we know; we hold the lock.
    let meta = unsafe { Chunk::meta(chunk) };
    meta.prev = st.last;
    meta.next = ptr::null_mut();
    meta.seq = st.next_seq;
    st.next_seq += 1;
    if st.scan.is_null() {
        st.scan = chunk;
    }
    if st.last.is_null() {
        st.first = chunk;
    } else {
        // SAFETY: list members are live; we hold the lock.
        unsafe { Chunk::meta(st.last) }.next = chunk;
    }
    st.last = chunk;
    st.empty += 1;
    // SAFETY: as above.
    directory::push(&mut st.dir, chunk, unsafe { Chunk::meta(chunk) });
}

pub(super) fn unlink_chunk(st: &mut State, chunk: *mut Chunk) {
    let (prev, next, seq) = {
        // SAFETY: `chunk` is on the list; we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        (meta.prev, meta.next, meta.seq)
    };
    directory::remove(&mut st.dir, seq);
    if st.scan == chunk {
        st.scan = next;
    }
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
pub(super) fn map_chunk(kind: ChunkKind, size: usize, align: usize) -> *mut Chunk {
    if kind == ChunkKind::Normal {
        directory::reserve();
    }
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
pub(super) unsafe fn unmap_chunk(chunk: *mut Chunk) {
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

/// Slices `mask` of `chunk` become free (`dirty` of them may hold resident
/// memory). A chunk emptied beyond the spares is unlinked and left in
/// `pending` to unmap. Lock held, `chunk` live and listed.
pub(super) fn mark_free(st: &mut State, chunk: *mut Chunk, mask: u64, dirty: u64) {
    // Where the search for free slices starts (read before `chunk`'s meta
    // is borrowed: it may be the same chunk).
    let scan_seq = if st.scan.is_null() || st.scan == chunk {
        None
    } else {
        // SAFETY: `scan` is a listed chunk; we hold the lock.
        Some(unsafe { Chunk::meta(st.scan) }.seq)
    };
    // SAFETY: as stated.
    let meta = unsafe { Chunk::meta(chunk) };
    debug_assert!(meta.free & mask == 0, "span freed twice");
    meta.free |= mask;
    if st.scan.is_null() || scan_seq.is_some_and(|seq| meta.seq < seq) {
        st.scan = chunk;
    }
    st.dirty_slices += (dirty & !meta.dirty).count_ones() as usize;
    meta.dirty |= dirty;
    if dirty != 0 {
        // Purged once the chunk has had no free for the delay: memory
        // freed again and again is in use, and the chunk freed into last
        // is the last `trim` picks.
        let first = meta.purge_at == 0;
        meta.purge_at = platform::now_ms() + crate::support::options::purge_delay_ms();
        if first {
            PURGE_DUE.fetch_min(meta.purge_at, Ordering::Relaxed);
        }
    }
    directory::sync(&mut st.dir, chunk, meta);
    if meta.free == ALL_SLICES {
        st.empty += 1;
        release_if_spare(st, chunk);
    }
}

/// `chunk` is empty: if there are more empty chunks than the spares,
/// unlink it and leave it in `pending` to unmap (when there is room).
/// Lock held, `chunk` live and listed.
pub(super) fn release_if_spare(st: &mut State, chunk: *mut Chunk) {
    if st.empty > SPARE_CHUNKS && st.pending.n_unmap < DEFER_UNMAP {
        st.empty -= 1;
        // SAFETY: as stated.
        st.dirty_slices -= unsafe { Chunk::meta(chunk) }.dirty.count_ones() as usize;
        unlink_chunk(st, chunk);
        st.pending.unmap[st.pending.n_unmap] = chunk;
        st.pending.n_unmap += 1;
    }
}

/// Take the dirty free slices `mask` of `chunk` out of reach to purge them
/// once the lock is dropped; false when this lock hold has no room for
/// more. Lock held, `chunk` live and listed.
pub(super) fn purge_later(st: &mut State, chunk: *mut Chunk, mask: u64) -> bool {
    if st.pending.n_purge == DEFER_PURGE {
        return false;
    }
    // SAFETY: as stated.
    let meta = unsafe { Chunk::meta(chunk) };
    debug_assert!(meta.free & mask == mask && meta.dirty & mask == mask);
    if meta.free == ALL_SLICES {
        st.empty -= 1;
    }
    meta.free &= !mask;
    meta.dirty &= !mask;
    if meta.dirty == 0 {
        meta.purge_at = 0;
    }
    meta.purging |= mask;
    directory::sync(&mut st.dir, chunk, meta);
    st.dirty_slices -= mask.count_ones() as usize;
    st.pending.purge[st.pending.n_purge] = (chunk, mask);
    st.pending.n_purge += 1;
    true
}

/// Slices taken out by [`purge_later`] are purged: back into `free`
/// (`zeroed` of them read as zero now). Lock held.
pub(super) fn unpurge(st: &mut State, chunk: *mut Chunk, mask: u64, zeroed: u64) {
    // SAFETY: a chunk with slices purging is neither unlinked nor unmapped
    // (it is not empty); we hold the lock.
    let meta = unsafe { Chunk::meta(chunk) };
    debug_assert!(meta.purging & mask == mask);
    meta.purging &= !mask;
    meta.zero |= zeroed;
    mark_free(st, chunk, mask, 0);
}
