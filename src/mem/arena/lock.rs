//! The arena lock: `with_arena` runs a critical section, then, the lock
//! dropped, the system calls it left in `pending` (unmap, purge), and puts
//! what was purged back in reach.

use super::chunks::{unmap_chunk, unpurge};
use super::huge_cache::{huge_body_bytes, recache_huge};
use super::region;
use super::state::{Deferred, State, ARENA, DEFER_PURGE, DEFER_REGION};
use crate::mem::chunk::{run_mask, Chunk, CHUNK_INFO_SIZE};
use crate::platform;
use crate::support::stats::{self, Counter};

/// Run `f` with the arena lock held, then (the lock dropped) make the
/// system calls it left in `pending`: no `madvise` or `munmap` is made
/// under the lock, so its critical sections stay a few hundred
/// instructions long whatever the kernel does.
pub(super) fn with_arena<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut st = ARENA.lock();
    let r = f(&mut st);
    let work = if st.pending.is_empty() {
        None
    } else {
        Some(core::mem::replace(&mut st.pending, Deferred::NONE))
    };
    drop(st);
    if let Some(work) = work {
        work.run();
    }
    r
}

impl Deferred {
    /// Make the calls (lock not held), then put what was purged back in
    /// reach under the lock.
    fn run(self) {
        for &c in &self.unmap[..self.n_unmap] {
            // SAFETY: unlinked under the lock with every slice free; only
            // this list refers to it.
            unsafe { unmap_chunk(c) };
        }
        let mut zeroed = [0u64; DEFER_PURGE];
        for (i, &(chunk, mask)) in self.purge[..self.n_purge].iter().enumerate() {
            let mut bits = mask;
            while bits != 0 {
                let first = bits.trailing_zeros() as usize;
                let len = (!(bits >> first)).trailing_zeros() as usize;
                let run = run_mask(first, len);
                bits &= !run;
                let (start, area) = Chunk::span_area(chunk, first, len);
                // SAFETY: slices marked `purging` under the lock: free, and
                // nobody takes them until `unpurge` below.
                if unsafe { platform::os_purge(start, area) } {
                    // Slice 0's header stays; its area is what reads as zero.
                    zeroed[i] |= run;
                }
                stats::add(Counter::Purged, area as i64);
            }
        }
        if self.n_purge > 0 {
            with_arena(|st| {
                for (i, &(chunk, mask)) in self.purge[..self.n_purge].iter().enumerate() {
                    unpurge(st, chunk, mask, zeroed[i]);
                }
            });
        }
        let mut region_zeroed = [false; DEFER_REGION];
        for (i, &(_, _, _, start, len)) in self.region[..self.n_region].iter().enumerate() {
            // SAFETY: free region units taken out of reach under the lock
            // (neither free nor in a block) until `unpurge` below.
            region_zeroed[i] = unsafe { platform::os_purge(start as *mut u8, len) };
            stats::add(Counter::Purged, len as i64);
        }
        if self.n_region > 0 {
            with_arena(|st| {
                for (i, &(r, first, count, _, _)) in self.region[..self.n_region].iter().enumerate()
                {
                    region::unpurge(st, r, first, count, region_zeroed[i]);
                }
            });
        }
        for &c in &self.huge[..self.n_huge] {
            let bytes = huge_body_bytes(c);
            let body = (c as *mut u8).wrapping_add(CHUNK_INFO_SIZE);
            // SAFETY: a freed huge chunk taken out of the cache: nobody
            // else reaches it until it is cached again.
            let zeroed = unsafe { platform::os_purge(body, bytes) };
            stats::add(Counter::Purged, bytes as i64);
            let evicted = with_arena(|st| recache_huge(st, c, zeroed));
            if !evicted.is_null() {
                // SAFETY: off every list and cache, nothing in use.
                unsafe { unmap_chunk(evicted) };
            }
        }
    }
}
