//! Which 4 MiB regions of the address space belong to mirs segments.
//!
//! ```text
//! address bits:  46 ........ 22 | 21 ....... 0
//!                region index   | offset in a segment-sized region
//! starts[index]:  the segment's page shift (16, 19, 22 or 63) iff a segment
//!                 begins at this region, else 0 (one byte per region)
//! covered[index]: 1 iff a segment (possibly a huge one) spans this region
//! ```
//!
//! `free` masks a pointer down to its 4 MiB region and loads its `starts`
//! byte before it reads any header, so a pointer mirs never handed out
//! (foreign, garbage, from another allocator) is detected instead of
//! dereferenced, and the same load yields the page shift for the page
//! lookup.
//!
//! Two implementations behind the same functions:
//!
//! - hosted: zero-initialised statics indexed directly by the region number
//!   (32 MiB + 1 MiB of address space): the OS only backs the pages that are
//!   touched, one 4 KiB page of `starts` per 16 GiB of address space in use.
//!   The lookup is one bounds check and one byte load.
//! - embedded (no `hosted`): the embedder's loader zeroes `.bss` and backs
//!   all of it, so the map is a small direct-mapped table of `MAP_SLOTS`
//!   words (8 KiB by default) indexed by `region & (MAP_SLOTS - 1)`, each
//!   word tagged with its full region number. Any address works (kernel
//!   addresses such as `0xffff_ffc0_8000_0000` included); segments within
//!   one `MAP_SLOTS * 4 MiB` window (4 GiB by default) never collide; the
//!   platform places segments of its regions where `can_insert` allows,
//!   and a segment whose slots are taken anyway (page-provider memory from
//!   far away) is refused by [`insert`] (its memory goes back). The lookup
//!   is one word load and one compare.

#[cfg(feature = "hosted")]
mod imp {
    use crate::constants::{SEGMENT_SHIFT, SEGMENT_SIZE};
    use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

    /// Address bits the maps cover: user space on x86_64 Linux (mmap stays
    /// below 2^47 unless asked for more); aarch64 uses 48.
    #[cfg(target_arch = "x86_64")]
    const ADDRESS_BITS: usize = 47;
    #[cfg(not(target_arch = "x86_64"))]
    const ADDRESS_BITS: usize = 48;

    const REGIONS: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT);
    const WORDS: usize = REGIONS / 64;

    struct Bitmap([AtomicU64; WORDS]);

    static STARTS: [AtomicU8; REGIONS] = [const { AtomicU8::new(0) }; REGIONS];
    static COVERED: Bitmap = Bitmap([const { AtomicU64::new(0) }; WORDS]);

    #[inline(always)]
    fn region_of(addr: usize) -> Option<usize> {
        let index = addr >> SEGMENT_SHIFT;
        (index < REGIONS).then_some(index)
    }

    impl Bitmap {
        #[inline(always)]
        fn get(&self, index: usize) -> bool {
            self.0[index / 64].load(Ordering::Relaxed) & (1 << (index % 64)) != 0
        }
        fn set(&self, index: usize, on: bool) {
            let bit = 1u64 << (index % 64);
            if on {
                self.0[index / 64].fetch_or(bit, Ordering::AcqRel);
            } else {
                self.0[index / 64].fetch_and(!bit, Ordering::AcqRel);
            }
        }
    }

    /// Record a segment of `size` bytes at `base` (4 MiB aligned) whose pages
    /// are `1 << page_shift` bytes. Returns false when the range lies outside
    /// the covered address space (the segment must then not be used).
    pub fn insert(base: usize, size: usize, page_shift: usize) -> bool {
        debug_assert!(base.is_multiple_of(SEGMENT_SIZE) && page_shift > 0 && page_shift < 64);
        let (Some(first), Some(last)) = (region_of(base), region_of(base + size - 1)) else {
            return false;
        };
        for index in first..=last {
            COVERED.set(index, true);
        }
        STARTS[first].store(page_shift as u8, Ordering::Release);
        true
    }

    /// A recorded segment was re-initialised for pages of another size.
    pub fn set_page_shift(base: usize, page_shift: usize) {
        if let Some(index) = region_of(base) {
            STARTS[index].store(page_shift as u8, Ordering::Release);
        }
    }

    /// Forget a segment recorded by [`insert`].
    pub fn remove(base: usize, size: usize) {
        let (Some(first), Some(last)) = (region_of(base), region_of(base + size - 1)) else {
            return;
        };
        STARTS[first].store(0, Ordering::Release);
        for index in first..=last {
            COVERED.set(index, false);
        }
    }

    /// The page shift of the segment whose header is at `segment_base` (a 4 MiB
    /// aligned address), or 0 when no segment starts there. This is the test on
    /// the free fast path.
    #[inline(always)]
    pub fn page_shift_at(segment_base: usize) -> usize {
        match region_of(segment_base) {
            Some(index) => STARTS[index].load(Ordering::Relaxed) as usize,
            None => 0,
        }
    }

    /// The base of the segment spanning `addr`, if any: walks back from the
    /// region of `addr` to the region where its segment starts. Used for pointers
    /// deep inside huge or over-aligned blocks, never on the fast path.
    pub fn segment_containing(addr: usize) -> Option<usize> {
        let mut index = region_of(addr)?;
        loop {
            if !COVERED.get(index) {
                return None;
            }
            if STARTS[index].load(Ordering::Relaxed) != 0 {
                return Some(index << SEGMENT_SHIFT);
            }
            index = index.checked_sub(1)?;
        }
    }
}

/// The embedded map; also compiled into the hosted unit tests, which test it.
#[cfg(any(not(feature = "hosted"), test))]
mod windowed {
    use crate::constants::{SEGMENT_SHIFT, SEGMENT_SIZE};
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// Slots in the table: a power of two; regions `r` and `r + MAP_SLOTS`
    /// share a slot. 1024 slots cover any 4 GiB window.
    pub const MAP_SLOTS: usize = 1024;
    const _: () = assert!(MAP_SLOTS.is_power_of_two());

    /// Slot word: `region << TAG_SHIFT | COVERED | page_shift`, or 0 (free).
    /// `page_shift` is non-zero iff a segment starts in this region.
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

    /// Record a segment of `size` bytes at `base` (4 MiB aligned) whose pages
    /// are `1 << page_shift` bytes. Returns false when a slot it needs holds
    /// another segment's region (the segment must then not be used).
    pub fn insert(base: usize, size: usize, page_shift: usize) -> bool {
        debug_assert!(base.is_multiple_of(SEGMENT_SIZE) && page_shift > 0 && page_shift < 256);
        let Some(last_addr) = base.checked_add(size - 1) else {
            return false;
        };
        let (first, last) = (base >> SEGMENT_SHIFT, last_addr >> SEGMENT_SHIFT);
        if last - first >= MAP_SLOTS {
            return false;
        }
        for region in first..=last {
            let shift = if region == first { page_shift } else { 0 };
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

    /// Could a segment of `size` bytes at `base` be recorded now (no slot
    /// it needs is taken)? Lets the platform skip placements that collide.
    pub fn can_insert(base: usize, size: usize) -> bool {
        let Some(last_addr) = base.checked_add(size - 1) else {
            return false;
        };
        let (first, last) = (base >> SEGMENT_SHIFT, last_addr >> SEGMENT_SHIFT);
        last - first < MAP_SLOTS
            && (first..=last).all(|region| slot(region).load(Ordering::Relaxed) == 0)
    }

    /// A recorded segment was re-initialised for pages of another size.
    pub fn set_page_shift(base: usize, page_shift: usize) {
        let region = base >> SEGMENT_SHIFT;
        if entry(region) & COVERED != 0 {
            slot(region).store(tag(region) | COVERED | page_shift, Ordering::Release);
        }
    }

    /// Forget a segment recorded by [`insert`].
    pub fn remove(base: usize, size: usize) {
        let (first, last) = (base >> SEGMENT_SHIFT, (base + size - 1) >> SEGMENT_SHIFT);
        for region in first..=last {
            if entry(region) & COVERED != 0 {
                slot(region).store(0, Ordering::Release);
            }
        }
    }

    /// The page shift of the segment whose header is at `segment_base`, or 0.
    #[inline(always)]
    pub fn page_shift_at(segment_base: usize) -> usize {
        entry(segment_base >> SEGMENT_SHIFT) & SHIFT_MASK
    }

    /// The base of the segment spanning `addr`, if any.
    pub fn segment_containing(addr: usize) -> Option<usize> {
        let mut region = addr >> SEGMENT_SHIFT;
        for _ in 0..MAP_SLOTS {
            let word = entry(region);
            if word & COVERED == 0 {
                return None;
            }
            if word & SHIFT_MASK != 0 {
                return Some(region << SEGMENT_SHIFT);
            }
            region = region.checked_sub(1)?;
        }
        None
    }
}

#[cfg(not(feature = "hosted"))]
use windowed as imp;

pub use imp::{insert, page_shift_at, remove, segment_containing, set_page_shift};
#[cfg(not(feature = "hosted"))]
pub use windowed::{can_insert, MAP_SLOTS};

/// Is there a segment header at `segment_base`?
#[inline(always)]
pub fn is_segment_start(segment_base: usize) -> bool {
    page_shift_at(segment_base) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::SEGMENT_SIZE;

    #[test]
    fn insert_lookup_remove() {
        // An address range no real mapping uses in the test process.
        let base = (1usize << 46) + 17 * SEGMENT_SIZE;
        assert!(!is_segment_start(base));
        assert!(insert(base, 3 * SEGMENT_SIZE, 63));
        assert!(is_segment_start(base));
        assert_eq!(page_shift_at(base), 63);
        set_page_shift(base, 16);
        assert_eq!(page_shift_at(base), 16);
        assert!(!is_segment_start(base + SEGMENT_SIZE));
        assert_eq!(segment_containing(base + 2 * SEGMENT_SIZE + 5), Some(base));
        assert_eq!(segment_containing(base + 3 * SEGMENT_SIZE), None);
        remove(base, 3 * SEGMENT_SIZE);
        assert!(!is_segment_start(base));
        assert_eq!(segment_containing(base + 5), None);
    }

    #[test]
    #[cfg(feature = "hosted")]
    fn out_of_range_addresses_are_not_segments() {
        assert!(!is_segment_start(usize::MAX & !(SEGMENT_SIZE - 1)));
        assert!(!insert(1 << 60, SEGMENT_SIZE, 16));
        assert_eq!(segment_containing(usize::MAX), None);
    }

    /// The embedded (windowed) map, tested directly in every configuration.
    #[test]
    fn windowed_kernel_addresses_and_collisions() {
        use super::windowed::*;
        let starts = |base| page_shift_at(base) != 0;
        // A higher-half kernel address, as ArceOS maps its memory.
        let base = 0xffff_ffc0_8000_0000usize + 5 * SEGMENT_SIZE;
        assert!(!starts(base));
        assert!(can_insert(base, 2 * SEGMENT_SIZE));
        assert!(insert(base, 2 * SEGMENT_SIZE, 16));
        assert!(!can_insert(base + SEGMENT_SIZE, SEGMENT_SIZE));
        set_page_shift(base, 19);
        assert_eq!(page_shift_at(base), 19);
        assert_eq!(page_shift_at(base + SEGMENT_SIZE), 0);
        assert_eq!(segment_containing(base + SEGMENT_SIZE + 1), Some(base));
        // The same slots one window further: refused, and nothing half-recorded.
        let alias = base.wrapping_sub(MAP_SLOTS * SEGMENT_SIZE) - SEGMENT_SIZE;
        assert!(!insert(alias, 2 * SEGMENT_SIZE, 16));
        assert!(!starts(alias));
        assert_eq!(page_shift_at(base), 19);
        remove(base, 2 * SEGMENT_SIZE);
        assert!(!starts(base));
        assert!(insert(alias, 2 * SEGMENT_SIZE, 16));
        assert!(!starts(base));
        assert_eq!(page_shift_at(alias), 16);
        remove(alias, 2 * SEGMENT_SIZE);
        assert!(!insert(
            usize::MAX & !(SEGMENT_SIZE - 1),
            2 * SEGMENT_SIZE,
            16
        ));
    }
}
