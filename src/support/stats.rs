//! Statistics. Only slow-path events are counted (chunks, pages, blocks
//! carved, purges, abandon/reclaim), straight into global atomics: they are
//! rare enough that contention does not matter, and the malloc/free fast
//! paths stay free of counters.
//! The report (text and JSON, `report.rs`) reads them and formats with
//! integers only.

use crate::base::size_class::{BIN_COUNT, BIN_HUGE};
use core::fmt::Write;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Clone, Copy)]
#[repr(usize)]
pub enum Counter {
    /// Chunks mapped (normal and huge, spare and cached ones included).
    Chunks,
    /// Bytes mapped for chunks (spare and cached ones included; a chunk
    /// carved from a region counts its size, and free region memory not
    /// yet purged counts too).
    Reserved,
    /// Pages handed to heaps.
    Pages,
    /// Bytes of page areas handed to heaps.
    PageBytes,
    /// Bytes given back to the OS with a purge.
    Purged,
    /// Huge blocks served from the huge cache instead of the OS.
    CacheHits,
    /// Pages abandoned by exiting threads.
    Abandoned,
    /// Abandoned pages adopted by another thread.
    Reclaimed,
    /// Threads that created a heap.
    Threads,
    /// Threads whose heap was collected at exit.
    ThreadsDone,
    /// Frees of pointers mirs does not own, or not the start of a live block.
    InvalidFrees,
    /// Huge blocks resized by realloc without a copy (`arena::remap_huge`).
    HugeRemaps,
    /// Of those, the ones whose pages moved to a new address.
    HugeMoves,
    /// Singleton spans grown by realloc over the free slices after them.
    SpanGrowths,
    /// Secure mode: free-list links that did not decode to a block.
    CorruptLists,
    /// Bytes of singleton pages (one large or huge block each, handed out
    /// whole): live until freed.
    SingletonBytes,
    /// Address space reserved for regions (hosted), which huge blocks are
    /// carved from: not memory (what their blocks use is in `Reserved`).
    RegionSpace,
}

const COUNTERS: usize = Counter::RegionSpace as usize + 1;

struct Stat {
    current: AtomicI64,
    peak: AtomicI64,
    total: AtomicI64,
}

static STATS: [Stat; COUNTERS] = [const {
    Stat {
        current: AtomicI64::new(0),
        peak: AtomicI64::new(0),
        total: AtomicI64::new(0),
    }
}; COUNTERS];
/// Per bin: pages handed out, and blocks carved from fresh memory.
static BIN_PAGES: [AtomicU64; BIN_COUNT] = [const { AtomicU64::new(0) }; BIN_COUNT];
static BIN_BLOCKS: [AtomicU64; BIN_COUNT] = [const { AtomicU64::new(0) }; BIN_COUNT];

pub(crate) fn add(counter: Counter, delta: i64) {
    let s = &STATS[counter as usize];
    let now = s.current.fetch_add(delta, Ordering::Relaxed) + delta;
    if delta > 0 {
        s.total.fetch_add(delta, Ordering::Relaxed);
        s.peak.fetch_max(now, Ordering::Relaxed);
    }
}

pub fn current(counter: Counter) -> i64 {
    STATS[counter as usize].current.load(Ordering::Relaxed)
}

pub fn peak(counter: Counter) -> i64 {
    STATS[counter as usize].peak.load(Ordering::Relaxed)
}

pub fn total(counter: Counter) -> i64 {
    STATS[counter as usize].total.load(Ordering::Relaxed)
}

/// The statistics bin of pages of `block_size` (`BIN_HUGE` for anything larger).
pub(crate) fn bin_index(block_size: usize) -> usize {
    let bin = crate::base::size_class::bin_of_size(block_size);
    if bin >= BIN_HUGE {
        BIN_HUGE
    } else {
        bin
    }
}

pub(crate) fn page_allocated(block_size: usize, area: usize) {
    add(Counter::Pages, 1);
    add(Counter::PageBytes, area as i64);
    BIN_PAGES[bin_index(block_size)].fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn page_freed(area: usize) {
    add(Counter::Pages, -1);
    add(Counter::PageBytes, -(area as i64));
}

/// A singleton page of `area` bytes (its one block) was handed out.
pub(crate) fn singleton_allocated(area: usize) {
    page_allocated(area, area);
    add(Counter::SingletonBytes, area as i64);
}

/// A singleton page of `area` bytes was freed.
pub(crate) fn singleton_freed(area: usize) {
    page_freed(area);
    add(Counter::SingletonBytes, -(area as i64));
}

/// Pages handed out for blocks of `bin` so far.
pub fn bin_pages(bin: usize) -> u64 {
    BIN_PAGES[bin].load(Ordering::Relaxed)
}

/// Blocks of `bin` carved from fresh page memory so far.
pub fn bin_blocks_carved(bin: usize) -> u64 {
    BIN_BLOCKS[bin].load(Ordering::Relaxed)
}

pub(crate) fn blocks_carved(block_size: usize, count: usize) {
    BIN_BLOCKS[bin_index(block_size)].fetch_add(count as u64, Ordering::Relaxed);
}

/// Blocks carved from fresh page memory so far (each served at least one
/// allocation; the fast path keeps no counter of its own).
pub fn blocks_carved_total() -> u64 {
    BIN_BLOCKS.iter().map(|b| b.load(Ordering::Relaxed)).sum()
}

/// A byte count printed with a binary unit and one decimal (integer
/// arithmetic: no floats in the allocator); honours width and alignment.
pub(crate) struct Bytes(pub i64);

impl core::fmt::Display for Bytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        let mut s = crate::support::output::StackStr::new();
        let unit = [(30, "GiB"), (20, "MiB"), (10, "KiB")]
            .into_iter()
            .find(|&(shift, _)| a >= 10 << shift);
        let _ = match unit {
            Some((shift, name)) => {
                // Tenths, rounded to nearest.
                let tenths = (a * 10 + (1 << (shift - 1))) >> shift;
                write!(s, "{sign}{}.{} {name}", tenths / 10, tenths % 10)
            }
            None => write!(s, "{sign}{a} B"),
        };
        f.pad(s.as_str())
    }
}

/// `n` followed by `one` or `many`: "1 thread", "2 threads".
pub(crate) struct Plural(pub i64, pub &'static str, pub &'static str);

impl core::fmt::Display for Plural {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let word = if self.0 == 1 { self.1 } else { self.2 };
        write!(f, "{} {word}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{Bytes, Plural};
    use std::format;

    #[test]
    fn integer_formatting() {
        assert_eq!(format!("{}", Bytes(0)), "0 B");
        assert_eq!(format!("{}", Bytes(10239)), "10239 B");
        assert_eq!(format!("{}", Bytes(10240)), "10.0 KiB");
        assert_eq!(format!("{}", Bytes(15 << 20)), "15.0 MiB");
        assert_eq!(format!("{}", Bytes((10 << 20) + (1 << 19))), "10.5 MiB");
        assert_eq!(format!("{}", Bytes(-(12 << 30))), "-12.0 GiB");
        assert_eq!(format!("{:>10}", Bytes(100)), "     100 B");
        assert_eq!(format!("{}", Plural(1, "thread", "threads")), "1 thread");
        assert_eq!(format!("{}", Plural(2, "thread", "threads")), "2 threads");
    }
}
