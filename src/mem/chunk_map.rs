//! Which chunk-sized regions of the address space (4 MiB hosted, 1 MiB
//! embedded) belong to mirs chunks.
//!
//! ```text
//! address bits:  47 .. CHUNK_SHIFT | CHUNK_SHIFT - 1 .. 0
//!                region index      | offset in a chunk-sized region
//! entry[index]:  NORMAL / HUGE iff a chunk header starts this region,
//!                COVERED iff a huge chunk spans it from further down,
//!                0 otherwise (one byte per region)
//! ```
//!
//! `free` masks a pointer down to its region and tests its entry
//! before it reads any header, so a pointer mirs never handed out (foreign,
//! garbage, from another allocator) is detected instead of dereferenced.
//!
//! Two implementations behind the same functions:
//!
//! - hosted: a two-level table. The top level (64 KiB of `.bss`, untouched
//!   until used) points at one 4 KiB leaf per 16 GiB of address space that
//!   holds chunks; leaves come from the platform and are never freed. The
//!   lookup is two dependent loads; the virtual footprint at start-up is
//!   64 KiB, not the 32 MiB a flat table would reserve.
//! - embedded (no `hosted`): the embedder's loader zeroes `.bss` and backs
//!   all of it, so the map is a small direct-mapped table of `MAP_SLOTS`
//!   words (4096 of 1 MiB regions, 32 KiB) indexed by
//!   `region & (MAP_SLOTS - 1)`, each word tagged with its full region
//!   number. Any address works (kernel addresses such as
//!   `0xffff_ffc0_8000_0000` included); chunks within one
//!   `MAP_SLOTS * CHUNK_SIZE` window (4 GiB) never collide; the
//!   platform places chunks of its regions where [`can_insert`] allows,
//!   and a chunk whose slots are taken anyway (page-provider memory from
//!   far away) is refused by [`insert`] (its memory goes back).

use crate::mem::chunk::ChunkKind;

/// Entry of a region where a normal chunk starts.
pub const NORMAL: u8 = 1;
/// Entry of a region where a huge chunk starts.
pub const HUGE: u8 = 2;

fn kind_byte(kind: ChunkKind) -> u8 {
    match kind {
        ChunkKind::Normal => NORMAL,
        ChunkKind::Huge => HUGE,
    }
}

#[cfg(feature = "hosted")]
mod imp {
    use crate::base::constants::{CHUNK_SHIFT, CHUNK_SIZE, OS_PAGE_SIZE};
    use core::ptr;
    use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

    /// Address bits the map covers: user space on x86_64 Linux (mmap stays
    /// below 2^47 unless asked for more); aarch64 uses 48.
    #[cfg(target_arch = "x86_64")]
    const ADDRESS_BITS: usize = 47;
    #[cfg(not(target_arch = "x86_64"))]
    const ADDRESS_BITS: usize = 48;

    const REGIONS: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT);
    const LEAF_BITS: usize = 12;
    const LEAF: usize = 1 << LEAF_BITS;
    const TOP: usize = REGIONS / LEAF;
    /// The entry of a region spanned by a huge chunk that starts further down.
    const COVERED: u8 = 3;

    type Leaf = [AtomicU8; LEAF];
    const _: () = assert!(core::mem::size_of::<Leaf>() == OS_PAGE_SIZE);

    /// The leaf of every 16 GiB window without chunks: all zero, never
    /// written (a window gets a leaf of its own before its first entry is
    /// set), so the lookup needs no null test.
    static EMPTY_LEAF: Leaf = [const { AtomicU8::new(0) }; LEAF];

    /// Top-level entry `t` holds its leaf's address minus `t << LEAF_BITS`,
    /// so the entry of region `index` is at `TOP_LEVEL[index >> LEAF_BITS] +
    /// index`: the lookup needs no masking of the index.
    static TOP_LEVEL: [AtomicPtr<AtomicU8>; TOP] = {
        let mut top = [const { AtomicPtr::new(ptr::null_mut()) }; TOP];
        let mut t = 0;
        while t < TOP {
            top[t] = AtomicPtr::new(biased(ptr::addr_of!(EMPTY_LEAF).cast_mut(), t));
            t += 1;
        }
        top
    };

    /// The top-level value of leaf `leaf` for window `t`.
    const fn biased(leaf: *mut Leaf, t: usize) -> *mut AtomicU8 {
        leaf.cast::<AtomicU8>().wrapping_sub(t << LEAF_BITS)
    }

    #[inline(always)]
    fn entry(index: usize) -> Option<&'static AtomicU8> {
        let leaf = TOP_LEVEL.get(index >> LEAF_BITS)?.load(Ordering::Acquire);
        // SAFETY: every top-level entry points at a leaf (or the empty leaf)
        // biased by its window, never freed: `leaf + index` lies in it.
        Some(unsafe { &*leaf.wrapping_add(index) })
    }

    /// The entry of `index`, creating its leaf; None when out of range or
    /// out of memory.
    fn entry_or_make(index: usize) -> Option<&'static AtomicU8> {
        let t = index >> LEAF_BITS;
        let top = TOP_LEVEL.get(t)?;
        let empty = biased(ptr::addr_of!(EMPTY_LEAF).cast_mut(), t);
        if top.load(Ordering::Acquire) == empty {
            let fresh = crate::platform::os_alloc_aligned(OS_PAGE_SIZE, OS_PAGE_SIZE)?;
            let leaf = biased(fresh.base.cast::<Leaf>(), t);
            if top
                .compare_exchange(empty, leaf, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: our fresh page lost the race; nobody else has seen it.
                unsafe { crate::platform::os_free(fresh.base, OS_PAGE_SIZE) };
            }
        }
        entry(index)
    }

    /// Record a chunk of `size` bytes at `base` (chunk aligned) whose header
    /// entry is `kind`. Returns false when the range lies outside the
    /// covered address space (the chunk must then not be used).
    pub fn insert(base: usize, size: usize, kind: u8) -> bool {
        debug_assert!(base.is_multiple_of(CHUNK_SIZE));
        let first = base >> CHUNK_SHIFT;
        let Some(last) = base.checked_add(size - 1).map(|a| a >> CHUNK_SHIFT) else {
            return false;
        };
        if last >= REGIONS || (first..=last).any(|i| entry_or_make(i).is_none()) {
            return false;
        }
        for index in first + 1..=last {
            if let Some(e) = entry(index) {
                e.store(COVERED, Ordering::Release);
            }
        }
        if let Some(e) = entry(first) {
            e.store(kind, Ordering::Release);
        }
        true
    }

    /// A huge chunk at `base` recorded for `old` bytes now spans `new`
    /// (realloc resized its mapping where it lies, after [`prepare`] made
    /// the leaves): regions it gains are marked covered, regions it loses
    /// cleared. False (nothing changed) when a gained region cannot be
    /// recorded or is another chunk's.
    pub fn resize(base: usize, old: usize, new: usize) -> bool {
        let old_last = (base + old - 1) >> CHUNK_SHIFT;
        let Some(new_last) = base.checked_add(new - 1).map(|a| a >> CHUNK_SHIFT) else {
            return false;
        };
        if new_last > old_last {
            if new_last >= REGIONS || (old_last + 1..=new_last).any(|i| entry_or_make(i).is_none())
            {
                return false;
            }
            // A gained region must be nobody's (another chunk may start there).
            for index in old_last + 1..=new_last {
                let claimed = entry(index).is_some_and(|e| {
                    e.compare_exchange(0, COVERED, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                });
                if !claimed {
                    for undo in old_last + 1..index {
                        if let Some(e) = entry(undo) {
                            e.store(0, Ordering::Release);
                        }
                    }
                    return false;
                }
            }
        } else {
            for index in new_last + 1..=old_last {
                if let Some(e) = entry(index) {
                    if !core::ptr::eq(e, &EMPTY_LEAF[index & (LEAF - 1)]) {
                        e.store(0, Ordering::Release);
                    }
                }
            }
        }
        true
    }

    /// Make the leaves a chunk of `size` bytes at `base` needs, so that an
    /// [`insert`] there cannot fail; nothing is recorded. False when the
    /// range is not covered (or a leaf cannot be had).
    pub fn prepare(base: usize, size: usize) -> bool {
        let first = base >> CHUNK_SHIFT;
        let Some(last) = base.checked_add(size - 1).map(|a| a >> CHUNK_SHIFT) else {
            return false;
        };
        last < REGIONS && (first..=last).all(|i| entry_or_make(i).is_some())
    }

    /// Forget a chunk recorded by [`insert`].
    pub fn remove(base: usize, size: usize) {
        let (first, last) = (base >> CHUNK_SHIFT, (base + size - 1) >> CHUNK_SHIFT);
        for index in first..=last.min(REGIONS - 1) {
            if let Some(e) = entry(index) {
                if !core::ptr::eq(e, &EMPTY_LEAF[index & (LEAF - 1)]) {
                    e.store(0, Ordering::Release);
                }
            }
        }
    }

    /// The entry at `chunk_base` (a chunk-aligned address): NORMAL, HUGE,
    /// or something else when no chunk starts there. The free fast path's
    /// test: a bounds check and two dependent loads.
    #[inline(always)]
    pub fn kind_at(chunk_base: usize) -> u8 {
        let index = chunk_base >> CHUNK_SHIFT;
        let Some(top) = TOP_LEVEL.get(index >> LEAF_BITS) else {
            return 0;
        };
        // SAFETY: as in `entry` (no Option here: the fast path needs no null test).
        unsafe { (*top.load(Ordering::Acquire).wrapping_add(index)).load(Ordering::Relaxed) }
    }

    /// The base of the chunk spanning `addr`, if any: walks back from the
    /// region of `addr` to the region where its chunk starts. Used for
    /// pointers deep inside huge blocks, never on the fast path.
    pub fn chunk_containing(addr: usize) -> Option<usize> {
        let mut index = addr >> CHUNK_SHIFT;
        loop {
            match entry(index)?.load(Ordering::Relaxed) {
                COVERED => index = index.checked_sub(1)?,
                0 => return None,
                _ => return Some(index << CHUNK_SHIFT),
            }
        }
    }
}

/// The embedded map; also compiled into the hosted unit tests, which test it.
#[cfg(any(not(feature = "hosted"), test))]
mod windowed {
    use crate::base::constants::{CHUNK_SHIFT, CHUNK_SIZE};
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// The window: chunks less than `1 << WINDOW_BITS` bytes (4 GiB) apart
    /// never share a slot.
    pub const WINDOW_BITS: usize = 32;
    /// Slots in the table: a power of two; regions `r` and `r + MAP_SLOTS`
    /// share a slot (embedded: 4096 slots of 1 MiB regions).
    pub const MAP_SLOTS: usize = 1 << (WINDOW_BITS - CHUNK_SHIFT);
    const _: () = assert!(MAP_SLOTS.is_power_of_two());
    // Two chunks sharing a page-map entry (page_map.rs) share a slot here
    // too, so the second is refused before it reaches the page map.
    #[cfg(not(feature = "hosted"))]
    const _: () = assert!(crate::mem::page_map::WINDOW_BITS >= WINDOW_BITS);

    /// Slot word: `region << TAG_SHIFT | COVERED | kind`, or 0 (free).
    /// `kind` is non-zero iff a chunk starts in this region.
    const SHIFT_MASK: usize = 0xff;
    const COVERED: usize = 0x100;
    const TAG_SHIFT: usize = 9;

    static SLOTS: [AtomicUsize; MAP_SLOTS] = [const { AtomicUsize::new(0) }; MAP_SLOTS];

    #[inline(always)]
    fn slot(region: usize) -> &'static AtomicUsize {
        &SLOTS[region & (MAP_SLOTS - 1)]
    }

    #[inline(always)]
    fn tag(region: usize) -> usize {
        region << TAG_SHIFT
    }

    /// The slot word of `region` if it is recorded there (0 otherwise).
    #[inline(always)]
    fn entry(region: usize) -> usize {
        let word = slot(region).load(Ordering::Relaxed);
        if word & !(COVERED | SHIFT_MASK) == tag(region) {
            word
        } else {
            0
        }
    }

    /// Record a chunk of `size` bytes at `base` (chunk aligned) whose pages
    /// are `1 << page_shift` bytes. Returns false when a slot it needs holds
    /// another chunk's region (the chunk must then not be used).
    pub fn insert(base: usize, size: usize, kind: u8) -> bool {
        debug_assert!(base.is_multiple_of(CHUNK_SIZE) && kind > 0);
        let Some(last_addr) = base.checked_add(size - 1) else {
            return false;
        };
        let (first, last) = (base >> CHUNK_SHIFT, last_addr >> CHUNK_SHIFT);
        if last - first >= MAP_SLOTS {
            return false;
        }
        for region in first..=last {
            let shift = if region == first { kind as usize } else { 0 };
            let word = tag(region) | COVERED | shift;
            if slot(region)
                .compare_exchange(0, word, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                for undo in first..region {
                    slot(undo).store(0, Ordering::Release);
                }
                return false;
            }
        }
        true
    }

    /// Could a chunk of `size` bytes at `base` be recorded now (no slot
    /// it needs is taken)? Lets the platform skip placements that collide.
    pub fn can_insert(base: usize, size: usize) -> bool {
        let Some(last_addr) = base.checked_add(size - 1) else {
            return false;
        };
        let (first, last) = (base >> CHUNK_SHIFT, last_addr >> CHUNK_SHIFT);
        last - first < MAP_SLOTS
            && (first..=last).all(|region| slot(region).load(Ordering::Relaxed) == 0)
    }

    /// Forget a chunk recorded by [`insert`].
    pub fn remove(base: usize, size: usize) {
        let (first, last) = (base >> CHUNK_SHIFT, (base + size - 1) >> CHUNK_SHIFT);
        for region in first..=last {
            if entry(region) & COVERED != 0 {
                slot(region).store(0, Ordering::Release);
            }
        }
    }

    /// As the hosted `resize`: a huge chunk recorded for `old` bytes now
    /// spans `new`; false (nothing changed) when a gained region's slot is
    /// taken. Embedded claims the slots before the memory grows (slots are
    /// shared between windows; readers only read the header at the base).
    pub fn resize(base: usize, old: usize, new: usize) -> bool {
        let first = base >> CHUNK_SHIFT;
        let old_last = (base + old - 1) >> CHUNK_SHIFT;
        let Some(new_last) = base.checked_add(new - 1).map(|a| a >> CHUNK_SHIFT) else {
            return false;
        };
        if new_last - first >= MAP_SLOTS {
            return false;
        }
        if new_last > old_last {
            for region in old_last + 1..=new_last {
                if slot(region)
                    .compare_exchange(
                        0,
                        tag(region) | COVERED,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    for undo in old_last + 1..region {
                        slot(undo).store(0, Ordering::Release);
                    }
                    return false;
                }
            }
        } else {
            for region in new_last + 1..=old_last {
                slot(region).store(0, Ordering::Release);
            }
        }
        true
    }

    /// The kind of the chunk whose header is at `chunk_base`, or 0.
    #[inline(always)]
    pub fn kind_at(chunk_base: usize) -> u8 {
        (entry(chunk_base >> CHUNK_SHIFT) & SHIFT_MASK) as u8
    }

    /// The base of the chunk spanning `addr`, if any.
    pub fn chunk_containing(addr: usize) -> Option<usize> {
        let mut region = addr >> CHUNK_SHIFT;
        for _ in 0..MAP_SLOTS {
            let word = entry(region);
            if word & COVERED == 0 {
                return None;
            }
            if word & SHIFT_MASK != 0 {
                return Some(region << CHUNK_SHIFT);
            }
            region = region.checked_sub(1)?;
        }
        None
    }
}

#[cfg(not(feature = "hosted"))]
use windowed as imp;

/// Record a chunk of `size` bytes at `base` (chunk aligned); false when it
/// cannot be recorded (it must then not be used).
pub fn insert(base: usize, size: usize, kind: ChunkKind) -> bool {
    imp::insert(base, size, kind_byte(kind))
}

#[cfg(feature = "hosted")]
pub use imp::prepare;
pub use imp::{chunk_containing, kind_at, remove, resize};
/// Embedded: can a chunk be recorded there now (nothing is made ahead)?
#[cfg(not(feature = "hosted"))]
pub fn prepare(base: usize, size: usize) -> bool {
    windowed::can_insert(base, size)
}
#[cfg(not(feature = "hosted"))]
pub use windowed::can_insert;

/// Hosted: the two-level map records any user-space address.
#[cfg(feature = "hosted")]
pub fn can_insert(_base: usize, _size: usize) -> bool {
    true
}

/// Is there a normal chunk's header at `chunk_base`? (The free fast path.)
#[inline(always)]
pub fn is_chunk(chunk_base: usize) -> bool {
    kind_at(chunk_base) == NORMAL
}

/// Is there any chunk's header at `chunk_base`?
#[cfg(test)]
pub fn is_chunk_start(chunk_base: usize) -> bool {
    matches!(kind_at(chunk_base), NORMAL | HUGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::constants::CHUNK_SIZE;

    #[test]
    fn insert_lookup_remove() {
        // An address range no real mapping uses in the test process.
        let base = (1usize << 46) + 17 * CHUNK_SIZE;
        assert!(!is_chunk_start(base));
        assert!(insert(base, 3 * CHUNK_SIZE, ChunkKind::Huge));
        assert!(is_chunk_start(base) && !is_chunk(base));
        assert_eq!(kind_at(base), HUGE);
        assert!(!is_chunk_start(base + CHUNK_SIZE));
        assert_eq!(chunk_containing(base + 2 * CHUNK_SIZE + 5), Some(base));
        assert_eq!(chunk_containing(base + 3 * CHUNK_SIZE), None);
        remove(base, 3 * CHUNK_SIZE);
        assert!(!is_chunk_start(base));
        assert_eq!(chunk_containing(base + 5), None);
        assert!(insert(base, CHUNK_SIZE, ChunkKind::Normal));
        assert!(is_chunk(base));
        remove(base, CHUNK_SIZE);
        assert!(!is_chunk(base));
    }

    #[test]
    #[cfg(feature = "hosted")]
    fn out_of_range_addresses_are_not_chunks() {
        assert!(!is_chunk_start(usize::MAX & !(CHUNK_SIZE - 1)));
        assert!(!insert(1 << 60, CHUNK_SIZE, ChunkKind::Normal));
        assert_eq!(chunk_containing(usize::MAX), None);
    }

    /// The embedded (windowed) map, tested directly in every configuration.
    #[test]
    fn windowed_kernel_addresses_and_collisions() {
        use super::windowed::*;
        let starts = |base| kind_at(base) != 0;
        // A higher-half kernel address, as ArceOS maps its memory.
        let base = 0xffff_ffc0_8000_0000usize + 5 * CHUNK_SIZE;
        assert!(!starts(base));
        assert!(can_insert(base, 2 * CHUNK_SIZE));
        assert!(insert(base, 2 * CHUNK_SIZE, NORMAL));
        assert!(!can_insert(base + CHUNK_SIZE, CHUNK_SIZE));
        assert_eq!(kind_at(base), NORMAL);
        assert_eq!(kind_at(base + CHUNK_SIZE), 0);
        assert_eq!(chunk_containing(base + CHUNK_SIZE + 1), Some(base));
        // The same slots one window further: refused, and nothing half-recorded.
        let alias = base.wrapping_sub(MAP_SLOTS * CHUNK_SIZE) - CHUNK_SIZE;
        assert!(!insert(alias, 2 * CHUNK_SIZE, HUGE));
        assert!(!starts(alias));
        assert_eq!(kind_at(base), NORMAL);
        remove(base, 2 * CHUNK_SIZE);
        assert!(!starts(base));
        assert!(insert(alias, 2 * CHUNK_SIZE, HUGE));
        assert!(!starts(base));
        assert_eq!(kind_at(alias), HUGE);
        remove(alias, 2 * CHUNK_SIZE);
        assert!(!insert(
            usize::MAX & !(CHUNK_SIZE - 1),
            2 * CHUNK_SIZE,
            NORMAL
        ));
    }

    /// Resizing a recorded huge chunk (realloc where it lies), both maps:
    /// gained regions are covered, lost ones cleared, and a gained region
    /// that is another chunk's is refused with nothing changed.
    #[test]
    fn resize_covers_and_refuses() {
        let base = (1usize << 46) + 40 * CHUNK_SIZE;
        assert!(insert(base, CHUNK_SIZE + 4096, ChunkKind::Huge));
        assert!(insert(base + 4 * CHUNK_SIZE, CHUNK_SIZE, ChunkKind::Normal));
        assert!(resize(base, CHUNK_SIZE + 4096, 3 * CHUNK_SIZE));
        assert_eq!(chunk_containing(base + 2 * CHUNK_SIZE + 7), Some(base));
        assert!(
            !resize(base, 3 * CHUNK_SIZE, 5 * CHUNK_SIZE),
            "the next chunk's region"
        );
        assert_eq!(chunk_containing(base + 3 * CHUNK_SIZE + 7), None);
        assert!(
            is_chunk(base + 4 * CHUNK_SIZE),
            "the neighbour is untouched"
        );
        assert!(resize(base, 3 * CHUNK_SIZE, CHUNK_SIZE));
        assert_eq!(chunk_containing(base + CHUNK_SIZE + 7), None);
        assert_eq!(kind_at(base), HUGE);
        remove(base, CHUNK_SIZE);
        remove(base + 4 * CHUNK_SIZE, CHUNK_SIZE);

        use super::windowed;
        let base = 0xffff_ffc0_8000_0000usize + 300 * CHUNK_SIZE;
        assert!(windowed::insert(base, 2 * CHUNK_SIZE, HUGE));
        assert!(windowed::insert(base + 3 * CHUNK_SIZE, CHUNK_SIZE, NORMAL));
        assert!(windowed::resize(base, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE));
        assert_eq!(
            windowed::chunk_containing(base + 2 * CHUNK_SIZE + 7),
            Some(base)
        );
        assert!(!windowed::resize(base, 3 * CHUNK_SIZE, 4 * CHUNK_SIZE));
        assert_eq!(windowed::kind_at(base + 3 * CHUNK_SIZE), NORMAL);
        assert!(windowed::resize(base, 3 * CHUNK_SIZE, CHUNK_SIZE));
        assert_eq!(windowed::chunk_containing(base + CHUNK_SIZE + 7), None);
        windowed::remove(base, CHUNK_SIZE);
        windowed::remove(base + 3 * CHUNK_SIZE, CHUNK_SIZE);
    }
}
