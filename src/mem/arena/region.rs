//! Regions (hosted, without `secure`): reservations of address space
//! (`REGION_SIZE`, committing nothing until written) that huge blocks are
//! carved from in 4 MiB units, the chunk map's. Freed blocks' units join
//! their free neighbours, so freed ranges of any sizes serve a request of
//! any size; each unit remembers how much of it may be resident, so a
//! request takes the free units that hold the most resident memory and
//! faults in little (transparent huge pages on the 2 MiB pages a block
//! covers whole), and `trim` and the purge pass purge free units as they
//! do free slices (oldest first). A pointer into a free unit is in no chunk
//! (the chunk map entry goes with the block), so free refuses it.
//!
//! ```text
//! region (1 GiB, 4 MiB aligned) = 256 units
//! | block A (3 units) | free (dirty) | free (purged) | block B (1 unit) | ...
//!   dirty[u]: bytes from the unit's start that may be resident (0: zero)
//!   freed_at[u]: when a free unit was freed (ms), for the purge delay
//!   huge[h]: 2 MiB page h is advised for transparent huge pages (those a
//!            block covers whole; not the one it ends in, unless resident)
//! ```
//!
//! Blocks of more than `REGION_MAX_UNITS` units (and over-aligned ones)
//! keep a mapping of their own and the huge cache. Units are under the
//! arena lock; region bases are also published in `REGION_BASES` so the
//! owner of a live block finds its region without the lock.

use super::state::{
    Region, State, DEFER_REGION, HUGE_PAGE, MAX_REGIONS, PURGE_DUE, REGION_SIZE, UNITS, WORDS,
};
pub(super) use super::state::{REGIONS, REGION_MAX_UNITS};
use crate::base::address;
use crate::base::constants::*;
use crate::mem::chunk_map;
use crate::platform;
use crate::support::stats::{self, Counter};
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Region bases (0: none), written under the lock, read by the holder of
/// a live block to find its region (a region with a live block stays).
static REGION_BASES: [AtomicUsize; MAX_REGIONS] = [const { AtomicUsize::new(0) }; MAX_REGIONS];

/// Units carved for a block: where, and what the units held.
pub(super) struct Carved {
    pub(super) base: usize,
    pub(super) region: usize,
    pub(super) first: usize,
    /// All of the block's memory reads as zero.
    pub(super) is_zero: bool,
    /// Resident bytes in the last unit after the block's end (an earlier,
    /// longer block's), which the caller keeps or purges.
    pub(super) tail_dirty: usize,
    /// Huge-page advice to give once the lock is dropped: (start, bytes,
    /// on), bytes 0 for none.
    pub(super) advice: [(usize, usize, bool); 2],
}

impl Carved {
    /// Give the huge-page advice the carve found necessary (lock not held),
    /// unless `MIRS_HUGE_PAGES=0` (then none at all: the bitmap still
    /// tracks what would have been asked, so a change of the option acts on
    /// the blocks carved after it).
    pub(super) fn advise(&self) {
        if !crate::support::options::huge_pages() {
            return;
        }
        for &(start, len, on) in &self.advice {
            if len != 0 {
                // SAFETY: huge pages of the units just carved, in a region.
                unsafe { platform::os_huge_pages(start as *mut u8, len, on) };
            }
        }
    }
}

/// Huge pages `from..to` of a region are to be advised `on` (or not):
/// the call to make, if their advice changes. Lock held.
fn advise_huge(r: &mut Region, from: usize, to: usize, on: bool) -> (usize, usize, bool) {
    let mut change = false;
    for h in from..to {
        let (w, bit) = (h / 64, 1u64 << (h % 64));
        if (r.huge[w] & bit != 0) != on {
            change = true;
            r.huge[w] ^= bit;
        }
    }
    if change {
        (r.base + from * HUGE_PAGE, (to - from) * HUGE_PAGE, on)
    } else {
        (0, 0, on)
    }
}

/// Bytes of a block of `total` bytes that lie in its unit `k`.
pub(super) fn covered(total: usize, k: usize) -> usize {
    total.saturating_sub(k * CHUNK_SIZE).min(CHUNK_SIZE)
}

/// Free units' resident bytes change: `State::dirty_region`, and the
/// reserved bytes of the statistics, which count what regions may hold
/// resident outside blocks as well as their blocks' chunks (so committed
/// memory stays within reserved).
fn more_dirty(st: &mut State, bytes: usize) {
    st.dirty_region += bytes;
    stats::add(Counter::Reserved, bytes as i64);
}

fn less_dirty(st: &mut State, bytes: usize) {
    st.dirty_region -= bytes;
    stats::add(Counter::Reserved, -(bytes as i64));
}

/// The region and unit of `addr` (a live block's chunk base, which keeps
/// its region alive).
pub(super) fn region_of(addr: usize) -> Option<(usize, usize)> {
    if !REGIONS {
        return None;
    }
    REGION_BASES.iter().enumerate().find_map(|(i, b)| {
        let base = b.load(Ordering::Relaxed);
        (base != 0 && addr >= base && addr - base < REGION_SIZE)
            .then(|| (i, (addr - base) / CHUNK_SIZE))
    })
}

/// The huge pages of its region (2 MiB page indices) a block of `total`
/// bytes carved at unit `first` advises huge (those it covers whole), and
/// the one it advises small, if any: the huge page it ends in, unless its
/// bytes there are resident already (`last_resident`). See `take_units`.
fn huge_plan(first: usize, total: usize, last_resident: bool) -> (Range<usize>, Option<usize>) {
    let end = first * CHUNK_SIZE + total;
    let (whole, tail) = (end / HUGE_PAGE, end % HUGE_PAGE);
    let on = first * (CHUNK_SIZE / HUGE_PAGE)..whole;
    let off = (tail != 0 && !last_resident).then_some(whole);
    (on, off)
}

/// Free units for a block of `total` bytes (`units` of them): the window of
/// free units holding the most resident memory the block will use, the
/// shortest free run on a tie (fewer large runs are cut up), the lowest
/// address after that. Lock held.
pub(super) fn take_units(st: &mut State, units: usize, total: usize) -> Option<Carved> {
    debug_assert!((1..=REGION_MAX_UNITS).contains(&units) && total <= units * CHUNK_SIZE);
    let last_need = covered(total, units - 1);
    // The most a window can hold: every byte the block will use.
    let perfect = (units - 1) * CHUNK_SIZE + last_need;
    // (useful resident bytes, run length, region, first unit)
    let mut best: Option<(usize, usize, usize, usize)> = None;
    'regions: for (ri, r) in st.regions.iter().enumerate() {
        if r.base == 0 {
            continue;
        }
        let mut u = 0;
        while let Some(start) = r.next_free(u) {
            let end = r.next_used(start);
            u = end;
            let len = end - start;
            if len < units {
                continue;
            }
            // Slide a window over the run: the full units' resident bytes
            // (kept as a running sum) plus what the last unit holds of the
            // block's part of it. A region without resident free units:
            // the run's first window is as good as any.
            let last_w = if r.dirty_units == 0 {
                start
            } else {
                end - units
            };
            let mut full: usize = (start..start + units - 1)
                .map(|x| r.dirty[x] as usize)
                .sum();
            for w in start..=last_w {
                if w > start && units > 1 {
                    full = full + r.dirty[w + units - 2] as usize - r.dirty[w - 1] as usize;
                }
                let useful = full + (r.dirty[w + units - 1] as usize).min(last_need);
                let better = match best {
                    None => true,
                    Some((bu, bl, _, _)) => useful > bu || (useful == bu && len < bl),
                };
                if better {
                    best = Some((useful, len, ri, w));
                    if useful == perfect {
                        // Nothing faults in: no need to look further.
                        break 'regions;
                    }
                }
            }
        }
    }
    let (_, _, ri, first) = best?;
    let r = &mut st.regions[ri];
    // Whether all the block's bytes in its last unit are resident already
    // (read before the units are taken).
    let last_resident = r.dirty[first + units - 1] as usize >= last_need;
    let mut taken_dirty = 0;
    let mut is_zero = true;
    for u in first..first + units {
        r.set_free(u, false);
        if r.dirty[u] != 0 {
            taken_dirty += r.dirty[u] as usize;
            r.dirty_units -= 1;
            is_zero = false;
        }
    }
    // Transparent huge pages where the block covers them whole (memory it
    // writes faults once per 2 MiB); small pages in the huge page it ends
    // in, so a block that ends a little past a 2 MiB boundary does not
    // fault a whole huge page in for its last bytes. That advice matters
    // only where the block will fault: not when its bytes there are
    // resident already (a huge page stays huge, and a fault beside small
    // pages is a small page). Huge pages past the block's end keep theirs:
    // nothing of this block faults there. So blocks of changing sizes over
    // warm units make no advice calls (each one splits or joins mappings),
    // where turning the pages past each end off and on again made one per
    // malloc.
    let (on, off) = huge_plan(first, total, last_resident);
    let advice = [
        advise_huge(r, on.start, on.end, true),
        off.map_or((0, 0, false), |h| advise_huge(r, h, h + 1, false)),
    ];
    let carved = Carved {
        base: r.base + first * CHUNK_SIZE,
        region: ri,
        first,
        is_zero,
        tail_dirty: (r.dirty[first + units - 1] as usize).saturating_sub(last_need),
        advice,
    };
    less_dirty(st, taken_dirty);
    st.region_used += units * CHUNK_SIZE;
    st.region_frees = 0;
    Some(carved)
}

/// The tail of a block's last unit (after `need` bytes) is being purged by
/// the caller: the unit holds only the block's bytes. Lock held.
pub(super) fn tail_purged(st: &mut State, region: usize, unit: usize, need: usize) {
    let d = &mut st.regions[region].dirty[unit];
    *d = (*d).min(need as u32);
}

/// The units right after a block (`first..first + count` of `region`),
/// taken for it to grow in place; false (nothing changed) unless all are
/// free. Lock held.
pub(super) fn grow_units(st: &mut State, region: usize, first: usize, count: usize) -> bool {
    let r = &mut st.regions[region];
    if first + count > UNITS || !(first..first + count).all(|u| r.is_free(u)) {
        return false;
    }
    let mut taken_dirty = 0;
    for u in first..first + count {
        r.set_free(u, false);
        if r.dirty[u] != 0 {
            taken_dirty += r.dirty[u] as usize;
            r.dirty_units -= 1;
        }
    }
    less_dirty(st, taken_dirty);
    st.region_used += count * CHUNK_SIZE;
    true
}

/// Units `first..first + count` of `region` go free; they held `total`
/// bytes of a block from `first`'s start on (`fresh`: those bytes were
/// moved away and read as zero now; `total` 0: untouched units given back).
/// Lock held.
pub(super) fn release_units(
    st: &mut State,
    region: usize,
    first: usize,
    count: usize,
    total: usize,
    fresh: bool,
) {
    let now = platform::now_ms();
    let r = &mut st.regions[region];
    let mut added = 0;
    for k in 0..count {
        let u = first + k;
        debug_assert!(!r.is_free(u), "unit freed twice");
        let c = covered(total, k) as u32;
        let d = if fresh {
            if r.dirty[u] <= c {
                0
            } else {
                r.dirty[u]
            }
        } else {
            r.dirty[u].max(c)
        };
        r.dirty[u] = d;
        r.set_free(u, true);
        if d != 0 {
            r.dirty_units += 1;
            r.freed_at[u] = now;
            r.oldest_freed = r.oldest_freed.min(now);
            added += d as usize;
        }
    }
    more_dirty(st, added);
    st.region_used -= count * CHUNK_SIZE;
    st.region_frees += 1;
    if added != 0 {
        PURGE_DUE.fetch_min(
            now + crate::support::options::purge_delay_ms(),
            Ordering::Relaxed,
        );
    }
}

/// A unit of a live block may hold `bytes` resident from its start (what
/// a shrunk block left there). Lock held.
pub(super) fn note_resident(st: &mut State, region: usize, unit: usize, bytes: usize) {
    let d = &mut st.regions[region].dirty[unit];
    *d = (*d).max(bytes.min(CHUNK_SIZE) as u32);
}

/// The free unit with resident memory freed longest ago: (its purge due
/// time, region, unit). Lock held.
pub(super) fn oldest_dirty(st: &mut State) -> Option<(u64, usize, usize)> {
    let delay = crate::support::options::purge_delay_ms();
    let mut best: Option<(u64, usize, usize)> = None;
    for (ri, r) in st.regions.iter_mut().enumerate() {
        if r.base == 0 || r.dirty_units == 0 {
            continue;
        }
        let mut oldest: Option<usize> = None;
        for u in 0..UNITS {
            if r.dirty[u] != 0
                && r.is_free(u)
                && oldest.is_none_or(|o| r.freed_at[u] < r.freed_at[o])
            {
                oldest = Some(u);
            }
        }
        r.oldest_freed = oldest.map_or(u64::MAX, |u| r.freed_at[u]);
        if let Some(u) = oldest {
            if best.is_none_or(|(at, _, _)| r.freed_at[u] + delay < at) {
                best = Some((r.freed_at[u] + delay, ri, u));
            }
        }
    }
    best
}

/// At most the purge due time of every free unit with resident memory
/// (`u64::MAX` when there is none), without a scan of the units.
pub(super) fn dirty_due_at_least(st: &State) -> u64 {
    let delay = crate::support::options::purge_delay_ms();
    st.regions
        .iter()
        .filter(|r| r.base != 0 && r.dirty_units != 0)
        .map(|r| r.oldest_freed.saturating_add(delay))
        .min()
        .unwrap_or(u64::MAX)
}

/// Purge (once the lock is dropped) the run of free resident units around
/// `unit` freed no later than it; false when this lock hold has no room
/// for more. Lock held.
pub(super) fn purge_around(st: &mut State, region: usize, unit: usize) -> bool {
    let r = &st.regions[region];
    let at = r.freed_at[unit];
    let old = |u: usize| r.is_free(u) && r.dirty[u] != 0 && r.freed_at[u] <= at;
    let mut first = unit;
    while first > 0 && old(first - 1) {
        first -= 1;
    }
    let mut end = unit + 1;
    while end < UNITS && old(end) {
        end += 1;
    }
    purge_later(st, region, first, end - first)
}

/// Purge what has been free for the delay (all with `force`), oldest
/// first, until at most `keep` bytes stay resident; note when the rest is
/// due. Units within `keep` stay past the delay: big blocks are what a
/// program cycles, and faulting them in again costs more than keeping a
/// bounded amount (the caller's budget, half the page memory in use, while
/// big blocks are in use; else nothing). Lock held.
pub(super) fn purge_due(st: &mut State, now: u64, force: bool, keep: usize) {
    while force || st.dirty_region > keep {
        let Some((due, r, u)) = oldest_dirty(st) else {
            return;
        };
        if !force && due > now {
            PURGE_DUE.fetch_min(due, Ordering::Relaxed);
            return;
        }
        if !purge_around(st, r, u) {
            PURGE_DUE.fetch_min(now, Ordering::Relaxed);
            return;
        }
    }
}

/// Take free resident units `first..first + count` out of reach to purge
/// once the lock is dropped; false when this lock hold has no room. Lock
/// held.
fn purge_later(st: &mut State, region: usize, first: usize, count: usize) -> bool {
    if st.pending.n_region == DEFER_REGION {
        return false;
    }
    let r = &mut st.regions[region];
    let mut bytes = 0;
    for u in first..first + count {
        debug_assert!(r.is_free(u) && r.dirty[u] != 0);
        r.set_free(u, false);
        r.dirty_units -= 1;
        bytes += r.dirty[u] as usize;
    }
    // One call for the run: from its first unit to the resident end of its last.
    let len = (count - 1) * CHUNK_SIZE + r.dirty[first + count - 1] as usize;
    let start = r.base + first * CHUNK_SIZE;
    less_dirty(st, bytes);
    let n = st.pending.n_region;
    st.pending.region[n] = (
        region,
        first,
        count,
        start,
        len.next_multiple_of(OS_PAGE_SIZE),
    );
    st.pending.n_region += 1;
    true
}

/// Units taken out by `purge_later` are purged: free again (reading as
/// zero when `zeroed`, else still resident). Lock held.
pub(super) fn unpurge(st: &mut State, region: usize, first: usize, count: usize, zeroed: bool) {
    let now = platform::now_ms();
    let r = &mut st.regions[region];
    let mut back = 0;
    for u in first..first + count {
        r.set_free(u, true);
        if zeroed {
            r.dirty[u] = 0;
        } else {
            r.dirty_units += 1;
            r.freed_at[u] = now;
            r.oldest_freed = r.oldest_freed.min(now);
            back += r.dirty[u] as usize;
        }
    }
    more_dirty(st, back);
}

/// Reserve a new region (lock not held); its chunk map leaves are made
/// now, so carving from it never allocates. None when the platform has no
/// address space to give.
pub(super) fn map_region() -> Option<usize> {
    let memory = platform::os_reserve(REGION_SIZE, CHUNK_SIZE)?;
    let base = memory.base as usize;
    if !address::same_half(base, REGION_SIZE) || !chunk_map::prepare(base, REGION_SIZE) {
        // SAFETY: we just reserved it and nobody else knows it.
        unsafe { platform::os_free(memory.base, REGION_SIZE) };
        return None;
    }
    Some(base)
}

/// Enter a region reserved by `map_region`; false when every slot is taken
/// (the caller gives it back). Lock held.
pub(super) fn add_region(st: &mut State, base: usize) -> bool {
    let Some(i) = (0..MAX_REGIONS).find(|&i| st.regions[i].base == 0) else {
        return false;
    };
    let r = &mut st.regions[i];
    *r = Region::EMPTY;
    r.base = base;
    r.free = [u64::MAX; WORDS];
    REGION_BASES[i].store(base, Ordering::Relaxed);
    stats::add(Counter::RegionSpace, REGION_SIZE as i64);
    true
}

/// Take a region with every unit free off the list, its resident memory
/// out of the count; returns its base to give back once the lock is
/// dropped (out of memory). Lock held.
pub(super) fn take_empty_region(st: &mut State) -> Option<usize> {
    let i = (0..MAX_REGIONS).find(|&i| st.regions[i].base != 0 && st.regions[i].all_free())?;
    let r = &mut st.regions[i];
    let resident: usize = r.dirty.iter().map(|&d| d as usize).sum();
    let base = r.base;
    *r = Region::EMPTY;
    less_dirty(st, resident);
    REGION_BASES[i].store(0, Ordering::Relaxed);
    stats::add(Counter::RegionSpace, -(REGION_SIZE as i64));
    Some(base)
}

/// Give a region taken by `take_empty_region` (or never entered) back.
///
/// # Safety
/// No block lies in it and nobody refers to it.
pub(super) unsafe fn unmap_region(base: usize) {
    // SAFETY: as the caller guarantees.
    unsafe { platform::os_free(base as *mut u8, REGION_SIZE) };
}

// Hosted: embedded chunks (1 MiB) are smaller than a huge page.
#[cfg(all(test, feature = "hosted"))]
mod tests {
    use super::*;

    /// Huge pages where a block covers them whole; the huge page it ends
    /// in gets small pages unless its bytes there are resident already.
    #[test]
    fn huge_plan_covers_whole_pages_only() {
        const MIB: usize = 1 << 20;
        let per_unit = CHUNK_SIZE / HUGE_PAGE;
        assert_eq!(huge_plan(0, 6 * MIB, false), (0..3, None));
        assert_eq!(huge_plan(0, 2 * MIB + 100 * 1024, false), (0..1, Some(1)));
        assert_eq!(huge_plan(0, 2 * MIB + 100 * 1024, true), (0..1, None));
        assert_eq!(huge_plan(0, MIB + 100 * 1024, false), (0..0, Some(0)));
        assert_eq!(huge_plan(0, 4 * MIB - 4096, false), (0..1, Some(1)));
        // Pages are counted from the region's start.
        let h = 3 * per_unit;
        assert_eq!(huge_plan(3, 4 * MIB + 4096, false), (h..h + 2, Some(h + 2)));
    }
}
