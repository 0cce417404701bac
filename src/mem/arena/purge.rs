//! Purge and release: the pass that purges memory free for the purge
//! delay and sweeps abandoned pages, the strict trim at thread exit, and
//! out of memory, every cache handed back; what the report reads.

use super::abandoned::sweep_abandoned;
use super::chunks::{purge_later, release_if_spare, unlink_chunk, unmap_chunk};
use super::huge_cache::{huge_dirty_bytes, purge_huge_later};
use super::lock::with_arena;
use super::region;
use super::state::{State, ABANDONED_TOTAL, ARENA, PURGE_DUE};
use super::trim::dirty_budget;
use crate::base::constants::*;
use crate::mem::chunk::{Chunk, ALL_SLICES};
use crate::platform;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

/// The earliest time (ms) the abandoned-page sweep runs again (unforced).
pub(super) static SWEEP_DUE: AtomicU64 = AtomicU64::new(0);
/// Milliseconds between unforced sweeps: the sweep only catches a free
/// that raced with an abandonment, and walks every abandoned page.
pub(super) const SWEEP_INTERVAL_MS: u64 = 100;

/// Purge memory that has been free for the purge delay (all of it with
/// `force`), and free abandoned pages whose blocks have all come back
/// (a free that raced with the abandonment leaves one for this sweep).
/// One thread at a time does each unforced pass; the others go on.
/// Returns whether this call freed an abandoned page.
pub fn purge(force: bool) -> bool {
    let now = platform::now_ms();
    let due = PURGE_DUE.load(Ordering::Relaxed);
    // Claim the pass: whoever moves the due time does it.
    let purge_due = force
        || (now >= due
            && PURGE_DUE
                .compare_exchange(due, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok());
    let sweep_at = SWEEP_DUE.load(Ordering::Relaxed);
    let sweep_due = ABANDONED_TOTAL.load(Ordering::Relaxed) != 0
        && (force
            || (now >= sweep_at
                && SWEEP_DUE
                    .compare_exchange(
                        sweep_at,
                        now + SWEEP_INTERVAL_MS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()));
    if !purge_due && !sweep_due {
        return false;
    }
    with_arena(|st| {
        let freed = sweep_due && sweep_abandoned(st);
        if purge_due {
            purge_due_memory(st, now, force);
        }
        freed
    })
}

/// Purge what has been unused for the delay (all with `force`), and set
/// `PURGE_DUE` to when the rest is. Lock held; the purges are made once it
/// is dropped (what does not fit in one lock hold stays due).
pub(super) fn purge_due_memory(st: &mut State, now: u64, force: bool) {
    let mut chunk = st.first;
    while !chunk.is_null() {
        // SAFETY: listed chunks are live; we hold the lock.
        let meta = unsafe { Chunk::meta(chunk) };
        let next = meta.next;
        if meta.free == ALL_SLICES && st.empty > SPARE_CHUNKS {
            // An empty chunk left over when a lock hold had no room to
            // give more back.
            release_if_spare(st, chunk);
            chunk = next;
            continue;
        }
        if meta.dirty != 0 {
            if !force && meta.purge_at > now {
                PURGE_DUE.fetch_min(meta.purge_at, Ordering::Relaxed);
            } else {
                let dirty = meta.dirty;
                if !purge_later(st, chunk, dirty) {
                    PURGE_DUE.fetch_min(now, Ordering::Relaxed);
                }
            }
        }
        chunk = next;
    }
    // Free region units within the budget stay past the delay while big
    // blocks are in use (the next ones take them); once none is, they go.
    let others = st.dirty_slices * SLICE_SIZE + st.dirty_huge;
    let keep = if st.region_used == 0 {
        0
    } else {
        dirty_budget().saturating_sub(others)
    };
    region::purge_due(st, now, force, keep);
    for i in 0..HUGE_CACHE_SLOTS {
        let c = st.huge_cache[i];
        if c.is_null() || huge_dirty_bytes(c) == 0 {
            continue;
        }
        // SAFETY: cached chunks are ours, lock held.
        let due = unsafe { Chunk::meta(c).cached_at } + crate::support::options::purge_delay_ms();
        if force || due <= now {
            purge_huge_later(st, i);
        } else {
            PURGE_DUE.fetch_min(due, Ordering::Relaxed);
        }
    }
}

/// Out of memory: hand every empty region, cached huge chunk and spare
/// empty chunk back to the platform. Returns whether anything was released.
pub fn release_caches() -> bool {
    let mut released = false;
    while let Some(base) = with_arena(region::take_empty_region) {
        // SAFETY: every unit free: no block lies in it, nobody refers to it.
        unsafe { region::unmap_region(base) };
        released = true;
    }
    loop {
        let victim = with_arena(|st| {
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
                    unlink_chunk(st, found);
                }
                found
            }
        });
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

/// Free memory not yet purged (free slices, cached huge chunks and free
/// region units that were written to), for the statistics report's
/// committed bytes.
pub fn dirty_bytes() -> usize {
    let st = ARENA.lock();
    st.dirty_slices * SLICE_SIZE + st.dirty_huge + st.dirty_region
}
