//! The dirty-memory budget: free slices, cached huge chunks and free
//! region units may stay resident up to it; above it the memory unused longest is purged.

use super::chunks::purge_later;
use super::huge_cache::{huge_dirty_bytes, purge_huge_later};
use super::region;
use super::state::State;
use crate::base::constants::*;
use crate::mem::chunk::Chunk;
use crate::platform;
use crate::support::stats::{self, Counter};
use core::ptr;

/// Memory that free spans and cached huge chunks may keep resident: half
/// of what the program has in pages now, at least `DIRTY_FLOOR`. A program
/// that shrinks (or frees everything) gets its memory back at once, not at
/// the next purge pass, which only a later allocation would run; one in a
/// steady state keeps its working set warm (and what stays unused for the
/// purge delay goes back at the next pass). Over budget, the memory unused
/// longest goes first.
pub(super) const DIRTY_FLOOR: usize = 4 << 20;
/// Above the budget, memory freed recently (less than `RECENT_DELAYS`
/// purge delays ago) may stay resident up to three times the budget more
/// (so at least 12 MiB): a program that frees big blocks and allocates the
/// next ones at once (a producer and a consumer of buffers, a loop of large
/// blocks, rounds of threads that come and go) reuses them instead of
/// faulting them in again, and the allowance grows with its working set.
/// It goes back at the next purge pass once it has been unused for the
/// delay. (Three, not two: producer/consumer of 1-8 MiB buffers faults
/// half as often and runs 1.3-1.8x as fast, mstress 1.14x, for 6% more
/// peak RSS and the same RSS once everything is freed.)
pub(super) const RECENT_FACTOR: usize = 3;
/// How many purge delays freed memory counts as recent for `trim`: reuse
/// that comes a little later than the delay (a loop whose steps take
/// longer) still finds it resident.
pub(super) const RECENT_DELAYS: u64 = 10;

/// What free spans and cached huge chunks may keep resident for good.
pub(super) fn dirty_budget() -> usize {
    DIRTY_FLOOR.max(stats::current(Counter::PageBytes).max(0) as usize / 2)
}

/// Purge until the dirty memory is within budget (hosted: elsewhere purging
/// gives nothing back), recent memory beyond it within the recent
/// allowance. Lock held; the purges are made once it is dropped.
pub(super) fn trim(st: &mut State) {
    if !cfg!(feature = "hosted") {
        return;
    }
    let budget = dirty_budget();
    let recent = RECENT_FACTOR * budget;
    // Due times (free + delay) after this are recent.
    let recent_after = platform::now_ms()
        .saturating_sub(RECENT_DELAYS * crate::support::options::purge_delay_ms());
    while st.dirty_huge + st.dirty_slices * SLICE_SIZE + st.dirty_region > budget {
        // The dirty huge chunk freed longest ago first.
        let oldest = (0..HUGE_CACHE_SLOTS)
            .filter(|&i| !st.huge_cache[i].is_null() && huge_dirty_bytes(st.huge_cache[i]) > 0)
            // SAFETY: cached chunks are live, lock held.
            .min_by_key(|&i| unsafe { Chunk::meta(st.huge_cache[i]).cached_at });
        // Then the chunk whose free slices are unused longest.
        let mut stalest: *mut Chunk = ptr::null_mut();
        let mut stalest_at = u64::MAX;
        let mut chunk = st.first;
        while !chunk.is_null() {
            // SAFETY: listed chunks are live; we hold the lock.
            let meta = unsafe { Chunk::meta(chunk) };
            if meta.dirty != 0 && meta.purge_at < stalest_at {
                stalest = chunk;
                stalest_at = meta.purge_at;
            }
            chunk = meta.next;
        }
        let huge_at = oldest.map_or(u64::MAX, |i| {
            // SAFETY: as above.
            let at = unsafe { Chunk::meta(st.huge_cache[i]).cached_at };
            at + crate::support::options::purge_delay_ms()
        });
        // Everything left is recent and within the allowance: it stays.
        // Free region units have the allowance while big blocks are being
        // cycled (some in use, or one carved since the last free but one),
        // not once the program has let them all go: then only the budget
        // stays until the next purge pass.
        let stays = |st: &State, units_at: u64| {
            huge_at.min(stalest_at).min(units_at) > recent_after
                && st.dirty_huge + st.dirty_slices * SLICE_SIZE + st.dirty_region <= budget + recent
                && (st.region_used != 0 || st.region_frees <= 1 || st.dirty_region <= budget)
        };
        // (A bound on the free region units' times settles that for a
        // program cycling big blocks without a scan of the units at every
        // free: that scan cost ~2,500 instructions per free of a big block.)
        if stays(st, region::dirty_due_at_least(st)) {
            break;
        }
        // Then the free region units freed longest ago.
        let units = region::oldest_dirty(st);
        let units_at = units.map_or(u64::MAX, |(at, _, _)| at);
        if stays(st, units_at) {
            break;
        }
        if let Some((_, r, u)) = units.filter(|_| units_at <= huge_at.min(stalest_at)) {
            if !region::purge_around(st, r, u) {
                break;
            }
        } else if let Some(i) = oldest.filter(|_| huge_at <= stalest_at) {
            purge_huge_later(st, i);
        } else if !stalest.is_null() {
            // SAFETY: as above.
            let dirty = unsafe { Chunk::meta(stalest) }.dirty;
            if !purge_later(st, stalest, dirty) {
                break;
            }
        } else {
            break;
        }
    }
}
