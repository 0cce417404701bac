//! Statistics. Only slow-path events are counted (chunks, pages, blocks
//! carved, purges, abandon/reclaim), straight into global atomics: they are
//! rare enough that contention does not matter, and the malloc/free fast
//! paths stay free of counters.
//! Printing goes through `output::Writer` (a fixed buffer and `write(2)`).

use crate::output::Writer;
use crate::size_class::{bin_block_size, BIN_COUNT, BIN_HUGE};
use core::fmt::Write;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Clone, Copy)]
#[repr(usize)]
pub enum Counter {
    /// Chunks mapped (normal and huge, spare and cached ones included).
    Chunks,
    /// Bytes mapped for chunks (spare and cached ones included).
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
}

const COUNTERS: usize = Counter::CorruptLists as usize + 1;

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

fn bin_index(block_size: usize) -> usize {
    let bin = crate::size_class::bin_of_size(block_size);
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

pub(crate) fn blocks_carved(block_size: usize, count: usize) {
    BIN_BLOCKS[bin_index(block_size)].fetch_add(count as u64, Ordering::Relaxed);
}

/// Blocks carved from fresh page memory so far (each served at least one
/// allocation; the fast path keeps no counter of its own).
pub fn blocks_carved_total() -> u64 {
    BIN_BLOCKS.iter().map(|b| b.load(Ordering::Relaxed)).sum()
}

/// A byte count printed with a binary unit; honours width and alignment.
struct Bytes(i64);

/// A short string formatted on the stack (for padding a composite value).
struct StackStr {
    buf: [u8; 32],
    len: usize,
}

impl core::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl core::fmt::Display for Bytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let v = self.0;
        let a = v.unsigned_abs();
        let mut s = StackStr {
            buf: [0; 32],
            len: 0,
        };
        let _ = if a >= 10 << 30 {
            write!(s, "{:.1} GiB", v as f64 / (1u64 << 30) as f64)
        } else if a >= 10 << 20 {
            write!(s, "{:.1} MiB", v as f64 / (1u64 << 20) as f64)
        } else if a >= 10 << 10 {
            write!(s, "{:.1} KiB", v as f64 / 1024.0)
        } else {
            write!(s, "{v} B")
        };
        f.pad(core::str::from_utf8(&s.buf[..s.len]).unwrap_or("?"))
    }
}

/// Print the statistics to stderr; `cached` is the number of chunks the
/// arena keeps for reuse (the caller asks it: statistics sit below the arena).
pub(crate) fn print(cached: usize) {
    let mut w = Writer::new();
    let _ = writeln!(w, "mirs: statistics (version {})", crate::VERSION_STRING);
    let _ = writeln!(
        w,
        "{:<22} {:>12} {:>12} {:>12}",
        "", "current", "peak", "total"
    );
    let rows: [(&str, Counter, bool); 6] = [
        ("chunks", Counter::Chunks, false),
        ("reserved", Counter::Reserved, true),
        ("pages", Counter::Pages, false),
        ("page memory", Counter::PageBytes, true),
        ("threads", Counter::Threads, false),
        ("invalid frees", Counter::InvalidFrees, false),
    ];
    for (name, c, bytes) in rows {
        if bytes {
            let _ = writeln!(
                w,
                "{:<22} {:>12} {:>12} {:>12}",
                name,
                Bytes(current(c)),
                Bytes(peak(c)),
                Bytes(total(c))
            );
        } else {
            let _ = writeln!(
                w,
                "{:<22} {:>12} {:>12} {:>12}",
                name,
                current(c),
                peak(c),
                total(c)
            );
        }
    }
    let _ = writeln!(
        w,
        "{:<22} purged {}, cache hits {}, cached {}, abandoned {}, reclaimed {}, threads done {}, \
         huge remaps {} (moved {}), spans grown {}",
        "chunks/memory",
        Bytes(total(Counter::Purged)),
        total(Counter::CacheHits),
        cached,
        total(Counter::Abandoned),
        total(Counter::Reclaimed),
        total(Counter::ThreadsDone),
        total(Counter::HugeRemaps),
        total(Counter::HugeMoves),
        total(Counter::SpanGrowths),
    );
    let _ = writeln!(
        w,
        "{:<22} {:>12} {:>12}",
        "size class", "pages", "blocks carved"
    );
    for bin in 1..BIN_COUNT {
        let pages = BIN_PAGES[bin].load(Ordering::Relaxed);
        if pages == 0 {
            continue;
        }
        let blocks = BIN_BLOCKS[bin].load(Ordering::Relaxed);
        if bin == BIN_HUGE {
            let _ = writeln!(w, "  {:<20} {:>12} {:>12}", "huge", pages, blocks);
        } else {
            let _ = writeln!(
                w,
                "  {:<20} {:>12} {:>12}",
                Bytes(bin_block_size(bin) as i64),
                pages,
                blocks
            );
        }
    }
    let _ = writeln!(
        w,
        "mirs: served {} blocks from {} pages to {} threads, peak page memory {}",
        blocks_carved_total(),
        total(Counter::Pages),
        total(Counter::Threads).max(1),
        Bytes(peak(Counter::PageBytes)),
    );
}
