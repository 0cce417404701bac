//! Size classes ("bins"): which block size serves a request.
//!
//! ```text
//! words:  0-2 3-4 5-6 7-8 | 9-10 11-12 13-14 15-16 | 17-20 21-24 25-28 29-32 | ...
//! bin:     2   4   6   8  |  9    10    11    12   |  13    14    15    16   | ...
//!         16-byte steps     four bins per doubling of the word size
//! ```
//!
//! Bins 1, 3, 5 and 7 (8, 24, 40, 56 bytes) stay empty: every block must be
//! 16-byte aligned (C's `max_align_t`, glibc's guarantee for every size),
//! which odd-word blocks laid end to end cannot be. Serving malloc(n <= 8)
//! from 16-byte blocks too cost at most 0.6% of peak RSS on python, gcc and
//! git (README, "Semantics").
//!
//! Four bins per doubling keep a block at most 1/5 bigger than the smallest
//! request it serves (20% worst case, 12.5% on average over a doubling);
//! mimalloc makes the same trade. Bin 0 is unused, `BIN_HUGE` holds pages of
//! one huge block each and `BIN_FULL` is the queue of pages with no free block.

use crate::base::constants::{LARGE_OBJ_WSIZE_MAX, MIN_BLOCK_WSIZE, PAGES_DIRECT, WORD_SIZE};

/// Queue of huge pages (blocks above `LARGE_OBJ_SIZE_MAX`).
pub const BIN_HUGE: usize = bin_of_wsize(LARGE_OBJ_WSIZE_MAX) + 1;
/// Queue of pages that had no free block when last looked at.
pub const BIN_FULL: usize = BIN_HUGE + 1;
/// Number of page queues in a heap.
pub const BIN_COUNT: usize = BIN_FULL + 1;

/// Request size in words, rounded up.
#[inline(always)]
pub const fn wsize_of(size: usize) -> usize {
    size.div_ceil(WORD_SIZE)
}

/// The smallest bin whose blocks hold `wsize` words (for `wsize <=
/// LARGE_OBJ_WSIZE_MAX`).
#[inline]
pub const fn bin_of_wsize(wsize: usize) -> usize {
    if wsize <= MIN_BLOCK_WSIZE {
        MIN_BLOCK_WSIZE
    } else if wsize <= 8 {
        // Round odd word counts up: a request of 17..24 bytes must be 16-byte
        // aligned (a `long double` fits in it), so 24-, 40- and 56-byte
        // blocks would break C's alignment guarantee. glibc's smallest
        // chunks make the same trade.
        (wsize + 1) & !1
    } else {
        // Bins of one doubling share the top bit `b` of `wsize - 1` and split on
        // the next two bits; the first eight word sizes use bins 1..=8.
        let w = wsize - 1;
        let b = (usize::BITS - 1 - w.leading_zeros()) as usize;
        (b << 2) + ((w >> (b - 2)) & 3) - 3
    }
}

/// The bin serving a request of `size` bytes (`BIN_HUGE` for huge requests).
#[inline]
pub const fn bin_of_size(size: usize) -> usize {
    let wsize = wsize_of(size);
    if wsize > LARGE_OBJ_WSIZE_MAX {
        BIN_HUGE
    } else {
        bin_of_wsize(wsize)
    }
}

/// Block size in bytes of a (non-huge) bin: the largest request mapping to it.
pub const fn bin_block_size(bin: usize) -> usize {
    debug_assert!(bin >= 1 && bin < BIN_HUGE);
    if bin <= 8 {
        bin * WORD_SIZE
    } else {
        let b = (bin + 3) >> 2;
        let quarter = (bin + 3) & 3;
        ((5 + quarter) << (b - 2)) * WORD_SIZE
    }
}

/// The word sizes bin `bin` (a small one, in use) serves: from one past
/// the next smaller bin's block size to its own. Heaps point these entries
/// of their direct-page table at the bin's first page.
#[inline]
pub const fn bin_wsizes(bin: usize) -> core::ops::RangeInclusive<usize> {
    let hi = bin_block_size(bin) / WORD_SIZE;
    // The smallest bin (its number is its word size) takes word sizes from 0.
    if bin <= MIN_BLOCK_WSIZE {
        return 0..=hi;
    }
    // Bins below 8 are even (odd-word blocks would break 16-byte alignment).
    let smaller = if bin <= 8 { bin - 2 } else { bin - 1 };
    bin_block_size(smaller) / WORD_SIZE + 1..=hi
}

/// The alignment every block of the class serving `wsize` words has, for
/// the word sizes malloc's direct pages cover: the largest power of two
/// dividing its block size (page areas start OS-page aligned, and these
/// blocks are far smaller). `malloc_aligned` tests a natural alignment
/// with one load instead of computing the bin.
#[inline(always)]
pub fn natural_align(wsize: usize) -> usize {
    usize::from(NATURAL_ALIGN[wsize])
}

static NATURAL_ALIGN: [u16; PAGES_DIRECT] = {
    let mut table = [0u16; PAGES_DIRECT];
    let mut w = 0;
    while w < PAGES_DIRECT {
        let bs = bin_block_size(bin_of_wsize(w));
        table[w] = (1usize << bs.trailing_zeros()) as u16;
        w += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::constants::LARGE_OBJ_SIZE_MAX;

    #[test]
    fn bins_are_contiguous_and_monotone() {
        let mut prev = 1;
        for w in 1..=LARGE_OBJ_WSIZE_MAX {
            let b = bin_of_wsize(w);
            let step = if (4..=8).contains(&b) { 2 } else { 1 };
            assert!(b == prev || b == prev + step, "gap at wsize {w}");
            prev = b;
        }
        assert_eq!(prev + 1, BIN_HUGE);
        // Four bins per doubling up to LARGE_OBJ_SIZE_MAX (128 KiB hosted,
        // 32 KiB embedded: two doublings fewer), plus the huge and full queues.
        let about = if cfg!(feature = "hosted") { 57 } else { 49 };
        assert!(
            (about - 3..=about + 3).contains(&BIN_COUNT),
            "about {about} bins, got {BIN_COUNT}"
        );
    }

    #[test]
    fn every_size_maps_to_the_smallest_bin_that_fits() {
        for size in 0..=LARGE_OBJ_SIZE_MAX {
            let bin = bin_of_size(size);
            assert!(
                bin_block_size(bin) >= size,
                "size {size} does not fit bin {bin}"
            );
            // The next smaller bin in use is too small.
            let smaller = if (3..=8).contains(&bin) {
                bin - 2
            } else {
                bin - 1
            };
            if bin > 1 && (bin != 2) {
                assert!(
                    bin_block_size(smaller) < size,
                    "size {size} fits the smaller bin {smaller}"
                );
            }
        }
        assert_eq!(bin_of_size(LARGE_OBJ_SIZE_MAX + 1), BIN_HUGE);
        assert_eq!(bin_of_size(usize::MAX / 2), BIN_HUGE);
    }

    #[test]
    fn bin_wsizes_are_exactly_the_word_sizes_of_each_bin() {
        for w in 0..=LARGE_OBJ_WSIZE_MAX {
            let bin = bin_of_wsize(w);
            assert!(
                bin_wsizes(bin).contains(&w),
                "wsize {w} not in bin {bin}'s range"
            );
        }
        for bin in (2..BIN_HUGE).filter(|&b| b > 8 || b % 2 == 0) {
            for w in bin_wsizes(bin) {
                assert_eq!(bin_of_wsize(w), bin, "wsize {w} in bin {bin}'s range");
            }
        }
    }

    #[test]
    fn natural_align_is_the_block_alignment_of_each_direct_class() {
        for w in 0..crate::base::constants::PAGES_DIRECT {
            let bs = bin_block_size(bin_of_wsize(w));
            let a = natural_align(w);
            assert!(a.is_power_of_two() && bs.is_multiple_of(a), "wsize {w}");
            assert!(
                !bs.is_multiple_of(2 * a),
                "wsize {w}: {a} is not the largest"
            );
            assert!(a >= 16, "wsize {w}: every block is 16-byte aligned");
        }
        // 48-byte blocks are 16-aligned only; 64-byte ones 64-aligned.
        assert_eq!(natural_align(6), 16);
        assert_eq!(natural_align(8), 64);
    }

    #[test]
    fn small_bins_step_by_16_bytes() {
        assert_eq!(bin_block_size(bin_of_wsize(0)), 16);
        assert_eq!(bin_block_size(bin_of_wsize(1)), 16);
        for w in 2..=8 {
            assert_eq!(
                bin_block_size(bin_of_wsize(w)),
                w.next_multiple_of(2) * WORD_SIZE
            );
        }
    }

    #[test]
    fn every_block_is_a_16_byte_multiple() {
        for size in 0..=4096 {
            assert_eq!(bin_block_size(bin_of_size(size)) % 16, 0, "size {size}");
        }
    }

    #[test]
    fn waste_bounds_hold() {
        // Worst case per request: under 1/5 of the block; averaged over each
        // doubling above 64 bytes: at most 12.5% of the request.
        let mut doubling_start = 65;
        while doubling_start <= LARGE_OBJ_SIZE_MAX / 2 {
            let (mut waste, mut requested) = (0u128, 0u128);
            for size in doubling_start..2 * doubling_start {
                let block = bin_block_size(bin_of_size(size));
                assert!(
                    (block - size) * 5 < block,
                    "size {size} wastes too much in {block}"
                );
                waste += (block - size) as u128;
                requested += size as u128;
            }
            assert!(
                waste * 8 <= requested,
                "mean waste above 12.5% from {doubling_start}"
            );
            doubling_start *= 2;
        }
    }

    #[test]
    fn block_sizes_of_even_bins_keep_16_byte_alignment() {
        for bin in 9..BIN_HUGE {
            assert_eq!(bin_block_size(bin) % 16, 0, "bin {bin}");
        }
    }
}
