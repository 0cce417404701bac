//! The cache of freed huge chunks (hosted) under the lock: entering one,
//! evicting the oldest, taking one out to purge and putting it back.

use super::state::{State, HUGE_CACHE};
use crate::base::constants::*;
use crate::mem::chunk::{Chunk, ALL_SLICES, CHUNK_INFO_SIZE};
use core::ptr;

/// Put a freed huge chunk in the cache; returns the chunk to unmap (it, or
/// the oldest cached one when the cache is full). Lock held.
pub(super) fn cache_huge(st: &mut State, chunk: *mut Chunk) -> *mut Chunk {
    if !HUGE_CACHE {
        return chunk;
    }
    st.dirty_huge += huge_dirty_bytes(chunk);
    if let Some(slot) = st.huge_cache.iter_mut().find(|c| c.is_null()) {
        *slot = chunk;
        return ptr::null_mut();
    }
    let oldest = (0..HUGE_CACHE_SLOTS)
        // SAFETY: every slot holds a live cached chunk (the cache is full).
        .min_by_key(|&i| unsafe { Chunk::meta(st.huge_cache[i]).cached_at })
        .unwrap_or(0);
    let evicted = core::mem::replace(&mut st.huge_cache[oldest], chunk);
    st.dirty_huge -= huge_dirty_bytes(evicted);
    evicted
}

/// A huge chunk taken out by [`purge_huge_later`] is purged: back into the
/// cache (returns a chunk to unmap when the cache filled meanwhile). Lock held.
pub(super) fn recache_huge(st: &mut State, chunk: *mut Chunk, zeroed: bool) -> *mut Chunk {
    // SAFETY: ours alone while out of the cache; lock held.
    let meta = unsafe { Chunk::meta(chunk) };
    meta.dirty = 0;
    meta.zero = if zeroed { ALL_SLICES } else { 0 };
    cache_huge(st, chunk)
}

/// Bytes of a huge chunk's body (all of it but the header).
pub(super) fn huge_body_bytes(chunk: *mut Chunk) -> usize {
    // SAFETY: a live huge chunk the caller holds (lock held or ours alone).
    unsafe { (*chunk).size - CHUNK_INFO_SIZE }
}

/// Bytes of a huge chunk's body that may be resident (0 once purged).
pub(super) fn huge_dirty_bytes(chunk: *mut Chunk) -> usize {
    // SAFETY: a live huge chunk the caller holds (lock held or ours alone).
    if unsafe { Chunk::meta(chunk) }.dirty != 0 {
        huge_body_bytes(chunk)
    } else {
        0
    }
}

/// Take the dirty huge chunk of cache slot `i` out of the cache to purge
/// once the lock is dropped. Lock held.
pub(super) fn purge_huge_later(st: &mut State, i: usize) {
    let c = core::mem::replace(&mut st.huge_cache[i], ptr::null_mut());
    st.dirty_huge -= huge_dirty_bytes(c);
    st.pending.huge[st.pending.n_huge] = c;
    st.pending.n_huge += 1;
}
