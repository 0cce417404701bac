//! The statistics report: the counters of `stats` and what can be read at
//! reporting time (live bytes, per size class use), as the text table of
//! `mirs_stats_print` / `MIRS_SHOW_STATS=1` and as JSON (`mirs_stats_json`,
//! `MIRS_STATS_JSON=1`). Integers only; formatted with `core::fmt` into a
//! fixed buffer (stderr through `write(2)`) or the caller's buffer, never
//! through the allocator.
//!
//! Live bytes (bytes in blocks handed out and not freed) are counted when
//! the report is made, from what the reporting thread may read: the `used`
//! counts of its own heap's pages (minus the blocks other threads freed into
//! them, not yet collected), the pages of threads that exited (abandoned:
//! their live count is published in atomics), and singleton pages (one large
//! or huge block, live until freed). The pages of other running threads are
//! only their owners' to read (their `used` counts change on the fast paths,
//! which keep no shared counter): they are reported whole, as
//! `other_threads_page_bytes`. In a single-threaded program, or after the
//! other threads have exited, `live` is exact. Committed bytes are the page
//! memory plus the free memory the arena has not purged yet (what may be
//! resident); reserved bytes are all that is mapped for chunks (a big
//! block carved from a region counts its chunk's bytes); region space is
//! the address space regions reserve, which is not memory.

use crate::base::size_class::{bin_block_size, BIN_COUNT, BIN_HUGE};
use crate::heap::{self, Heap};
use crate::mem::page::Page;
use crate::support::stats::{self, bin_index, current, peak, total, Bytes, Counter, Plural};
use core::fmt::{self, Write};

/// Pages seen at reporting time for one size class.
#[derive(Clone, Copy, Default)]
pub struct BinUse {
    /// Pages of this class seen (own heap, abandoned).
    pub pages: u64,
    /// Bytes of their block areas.
    pub area: u64,
    /// Bytes in their live blocks.
    pub live: u64,
}

/// What the report shows beyond the counters.
pub struct Snapshot {
    pub bins: [BinUse; BIN_COUNT],
    /// Live bytes: own heap, abandoned pages, singletons.
    pub live: u64,
    /// Bytes of pages held by other running threads (live part unknown).
    pub other_threads: u64,
    /// Chunks the arena keeps for reuse.
    pub cached_chunks: u64,
    /// Bytes that may be resident: pages handed out plus free memory not
    /// yet purged (mapped memory never written or purged since is not).
    pub committed: u64,
}

fn add_page(bins: &mut [BinUse; BIN_COUNT], block_size: usize, area: usize, live_blocks: usize) {
    let b = &mut bins[bin_index(block_size)];
    b.pages += 1;
    b.area += area as u64;
    b.live += (live_blocks * block_size) as u64;
}

/// Gather the snapshot (slow: walks the calling thread's pages and the
/// abandoned ones, under the arena lock for the latter).
pub fn snapshot() -> Snapshot {
    let mut bins = [BinUse::default(); BIN_COUNT];
    let heap: *mut Heap = crate::thread::heap_get();
    if !heap::is_empty_heap(heap) {
        // SAFETY: the calling thread's live heap; only its owner (us) walks
        // its queues.
        let queues = unsafe { &(*heap).queues };
        for q in queues.iter() {
            for page in q.iter() {
                // SAFETY: a live page of the calling thread's heap: we are its owner.
                let p = unsafe { Page::owned(page) };
                let remote = p.thread_free.count();
                let used = (p.used() as usize).saturating_sub(remote);
                add_page(&mut bins, p.block_size(), p.area_bytes(), used);
            }
        }
    }
    crate::mem::arena::for_each_abandoned(|page| {
        // SAFETY: an abandoned page under the arena lock: its header stays
        // live; only its atomics and fixed fields are read.
        let p = unsafe { &*page };
        let remote = p.thread_free.count();
        let used = (p.abandoned_used.load(core::sync::atomic::Ordering::Acquire) as usize)
            .saturating_sub(remote);
        add_page(&mut bins, p.block_size(), p.area_bytes(), used);
    });
    let singletons = current(Counter::SingletonBytes).max(0) as u64;
    let seen: u64 = bins.iter().map(|b| b.area).sum();
    let page_bytes = current(Counter::PageBytes).max(0) as u64;
    Snapshot {
        live: bins.iter().map(|b| b.live).sum::<u64>() + singletons,
        other_threads: page_bytes.saturating_sub(seen + singletons),
        bins,
        cached_chunks: crate::mem::arena::cached_count() as u64,
        committed: page_bytes + crate::mem::arena::dirty_bytes() as u64,
    }
}

/// `part` of `whole` in percent, rounded down (0 when `whole` is 0).
fn percent(part: u64, whole: u64) -> u64 {
    (part * 100).checked_div(whole).unwrap_or(0)
}

/// The text table (`mirs_stats_print`).
pub fn write_text(w: &mut impl Write) -> fmt::Result {
    let s = snapshot();
    writeln!(
        w,
        "mirs: statistics (version {})",
        crate::base::version::VERSION_STRING
    )?;
    writeln!(
        w,
        "{:<22} {:>12} {:>12} {:>12}",
        "", "current", "peak", "total"
    )?;
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
            let (cur, pk, tot) = (Bytes(current(c)), Bytes(peak(c)), Bytes(total(c)));
            writeln!(w, "{name:<22} {cur:>12} {pk:>12} {tot:>12}")?;
        } else {
            let (cur, pk, tot) = (current(c), peak(c), total(c));
            writeln!(w, "{name:<22} {cur:>12} {pk:>12} {tot:>12}")?;
        }
    }
    if peak(Counter::RegionSpace) > 0 {
        writeln!(
            w,
            "{:<22} {:>12} (address space only: big blocks are carved from it, in reserved)",
            "region space",
            Bytes(current(Counter::RegionSpace))
        )?;
    }
    let page_bytes = current(Counter::PageBytes).max(0) as u64;
    writeln!(
        w,
        "{:<22} {:>12} (page memory and free memory not yet purged)",
        "committed",
        Bytes(s.committed as i64)
    )?;
    writeln!(
        w,
        "{:<22} {:>12} ({}% of page memory){}",
        "live",
        Bytes(s.live as i64),
        percent(s.live, page_bytes),
        if s.other_threads > 0 { "," } else { "" }
    )?;
    if s.other_threads > 0 {
        writeln!(
            w,
            "{:<22} {:>12} in pages of other running threads (not counted in live)",
            "",
            Bytes(s.other_threads as i64)
        )?;
    }
    writeln!(
        w,
        "{:<22} purged {}, cache hits {}, cached {}, abandoned {}, reclaimed {}, threads done {}, \
         huge remaps {} (moved {}), spans grown {}",
        "chunks/memory",
        Bytes(total(Counter::Purged)),
        total(Counter::CacheHits),
        s.cached_chunks,
        total(Counter::Abandoned),
        total(Counter::Reclaimed),
        total(Counter::ThreadsDone),
        total(Counter::HugeRemaps),
        total(Counter::HugeMoves),
        total(Counter::SpanGrowths),
    )?;
    writeln!(
        w,
        "{:<22} {:>12} {:>14} {:>10} {:>12} {:>12} {:>5}",
        "size class", "pages", "blocks carved", "pages now", "page memory", "live", "use"
    )?;
    for bin in 1..BIN_COUNT {
        let pages = stats::bin_pages(bin);
        if pages == 0 {
            continue;
        }
        let blocks = stats::bin_blocks_carved(bin);
        let u = s.bins[bin];
        let mut name = crate::support::output::StackStr::new();
        if bin == BIN_HUGE {
            let _ = write!(name, "huge");
        } else {
            let _ = write!(name, "{}", Bytes(bin_block_size(bin) as i64));
        }
        writeln!(
            w,
            "  {:<20} {:>12} {:>14} {:>10} {:>12} {:>12} {:>4}%",
            name.as_str(),
            pages,
            blocks,
            u.pages,
            Bytes(u.area as i64),
            Bytes(u.live as i64),
            percent(u.live, u.area)
        )?;
    }
    writeln!(
        w,
        "mirs: served {} from {} to {}, peak page memory {}",
        Plural(stats::blocks_carved_total() as i64, "block", "blocks"),
        Plural(total(Counter::Pages), "page", "pages"),
        Plural(total(Counter::Threads).max(1), "thread", "threads"),
        Bytes(peak(Counter::PageBytes)),
    )
}

/// `{"current": c, "peak": p, "total": t}` of a counter.
struct Triple(Counter);

impl fmt::Display for Triple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{\"current\": {}, \"peak\": {}, \"total\": {}}}",
            current(self.0),
            peak(self.0),
            total(self.0)
        )
    }
}

/// The statistics as one JSON object (`mirs_stats_json`). Every figure is
/// an integer; byte counts are in bytes.
pub fn write_json(w: &mut impl Write) -> fmt::Result {
    let s = snapshot();
    write!(
        w,
        "{{\"version\": \"{}\", ",
        crate::base::version::VERSION_STRING
    )?;
    write!(w, "\"live_bytes\": {}, ", s.live)?;
    write!(w, "\"other_threads_page_bytes\": {}, ", s.other_threads)?;
    write!(w, "\"reserved_bytes\": {}, ", Triple(Counter::Reserved))?;
    write!(
        w,
        "\"region_space_bytes\": {}, ",
        Triple(Counter::RegionSpace)
    )?;
    write!(w, "\"committed_bytes\": {}, ", s.committed)?;
    write!(w, "\"page_bytes\": {}, ", Triple(Counter::PageBytes))?;
    write!(
        w,
        "\"singleton_bytes\": {}, ",
        Triple(Counter::SingletonBytes)
    )?;
    write!(w, "\"chunks\": {}, ", Triple(Counter::Chunks))?;
    write!(w, "\"pages\": {}, ", Triple(Counter::Pages))?;
    write!(w, "\"threads\": {}, ", Triple(Counter::Threads))?;
    write!(w, "\"purged_bytes\": {}, ", total(Counter::Purged))?;
    write!(w, "\"huge_cache_hits\": {}, ", total(Counter::CacheHits))?;
    write!(w, "\"cached_chunks\": {}, ", s.cached_chunks)?;
    write!(w, "\"abandoned_pages\": {}, ", total(Counter::Abandoned))?;
    write!(w, "\"reclaimed_pages\": {}, ", total(Counter::Reclaimed))?;
    write!(w, "\"threads_done\": {}, ", total(Counter::ThreadsDone))?;
    write!(w, "\"huge_remaps\": {}, ", total(Counter::HugeRemaps))?;
    write!(w, "\"huge_moves\": {}, ", total(Counter::HugeMoves))?;
    write!(w, "\"spans_grown\": {}, ", total(Counter::SpanGrowths))?;
    write!(w, "\"invalid_frees\": {}, ", total(Counter::InvalidFrees))?;
    write!(w, "\"corrupt_lists\": {}, ", total(Counter::CorruptLists))?;
    write!(w, "\"blocks_carved\": {}, ", stats::blocks_carved_total())?;
    write!(w, "\"size_classes\": [")?;
    let mut first = true;
    for bin in 1..BIN_COUNT {
        let pages = stats::bin_pages(bin);
        if pages == 0 {
            continue;
        }
        let u = s.bins[bin];
        let block_size = if bin == BIN_HUGE {
            0
        } else {
            bin_block_size(bin)
        };
        write!(
            w,
            "{}{{\"block_size\": {}, \"pages_total\": {}, \"blocks_carved\": {}, \
             \"pages\": {}, \"page_bytes\": {}, \"live_bytes\": {}, \"use_percent\": {}}}",
            if first { "" } else { ", " },
            block_size,
            pages,
            stats::bin_blocks_carved(bin),
            u.pages,
            u.area,
            u.live,
            percent(u.live, u.area)
        )?;
        first = false;
    }
    writeln!(w, "]}}")
}

/// Bytes in use, for `mallinfo2` and `malloc_info`: the live bytes the
/// report can count, plus the pages of other running threads (whole).
#[cfg_attr(not(feature = "override"), allow(dead_code))]
pub fn bytes_in_use() -> usize {
    let s = snapshot();
    (s.live + s.other_threads) as usize
}

/// Print the text table to the platform's error output.
pub fn print_text() {
    let mut w = crate::support::output::Writer::new();
    let _ = write_text(&mut w);
}

/// Print the JSON object to the platform's error output (at exit, hosted).
#[cfg_attr(not(feature = "hosted"), allow(dead_code))]
pub fn print_json() {
    let mut w = crate::support::output::Writer::new();
    let _ = write_json(&mut w);
}

/// `fmt::Write` into a caller's buffer: copies what fits (leaving room for
/// a NUL), counts everything.
struct BufWriter<'a> {
    buf: &'a mut [u8],
    needed: usize,
}

impl Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(1);
        if self.needed < room {
            let n = s.len().min(room - self.needed);
            self.buf[self.needed..self.needed + n].copy_from_slice(&s.as_bytes()[..n]);
        }
        self.needed += s.len();
        Ok(())
    }
}

/// The JSON into `buf` (NUL-terminated when `buf` is not empty, truncated
/// to fit); returns its length without the NUL, as `snprintf` does.
pub fn json_into(buf: &mut [u8]) -> usize {
    let mut w = BufWriter { buf, needed: 0 };
    let _ = write_json(&mut w);
    let needed = w.needed;
    if !w.buf.is_empty() {
        let end = needed.min(w.buf.len() - 1);
        w.buf[end] = 0;
    }
    needed
}
