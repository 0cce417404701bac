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
//! lookup. The maps are zero-initialised statics (32 MiB + 1 MiB of address
//! space when hosted): the OS only backs the pages that are touched, one
//! 4 KiB page of `starts` per 16 GiB of address space in use.

use crate::constants::{SEGMENT_SHIFT, SEGMENT_SIZE};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Address bits the maps cover: user space on x86_64 Linux (mmap stays
/// below 2^47 unless asked for more); aarch64 uses 48.
#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
const ADDRESS_BITS: usize = 47;
#[cfg(all(feature = "hosted", not(target_arch = "x86_64")))]
const ADDRESS_BITS: usize = 48;
/// Embedded: a smaller window keeps the static small (see `platform::embedded`).
#[cfg(not(feature = "hosted"))]
const ADDRESS_BITS: usize = crate::platform::ADDRESS_BITS;

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
    debug_assert!(base % SEGMENT_SIZE == 0 && page_shift > 0 && page_shift < 64);
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

/// Is there a segment header at `segment_base`?
#[inline(always)]
pub fn is_segment_start(segment_base: usize) -> bool {
    page_shift_at(segment_base) != 0
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn out_of_range_addresses_are_not_segments() {
        assert!(!is_segment_start(usize::MAX & !(SEGMENT_SIZE - 1)));
        assert!(!insert(1 << 60, SEGMENT_SIZE, 16));
        assert_eq!(segment_containing(usize::MAX), None);
    }
}
