//! Memory that programs free comes back, whichever thread frees it and
//! whether or not its owner has exited (issue 9's retention patterns). Each
//! test runs in its own process (panic-abort-tests), so the statistics
//! belong to the pattern: after it, with everything freed, the page memory
//! in use must be near zero and the mapped bytes within a stated bound.
//!
//! Bounds: `SPARE` is what the arena may keep on purpose (4 empty chunks
//! of 4 MiB, purged, plus one chunk the main thread still uses); the huge
//! cache may keep freed huge blocks until `collect(true)`.

use super::api;
use crate::entry::alloc;
use crate::support::stats::{current, Counter};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;
use std::vec::Vec;

const MIB: i64 = 1 << 20;
/// Mapped bytes the arena keeps on purpose when nothing is live.
const SPARE: i64 = 5 * 4 * MIB;

fn fill(p: *mut u8, size: usize, byte: u8) {
    assert!(!p.is_null(), "malloc({size}) failed");
    // SAFETY: `p` is a fresh block of at least `size` bytes.
    unsafe { core::ptr::write_bytes(p, byte, size) };
}

fn page_bytes() -> i64 {
    current(Counter::PageBytes)
}

fn reserved() -> i64 {
    current(Counter::Reserved)
}

/// Everything was freed: pages in use hold at most `live_pages_max` bytes
/// (the main thread's few partly used pages), mapped memory is within
/// `SPARE + extra`, and after `collect(true)` within one chunk.
fn assert_returned(what: &str, extra: i64) {
    let (pages, mapped) = (page_bytes(), reserved());
    assert!(
        pages <= 2 * MIB,
        "{what}: {pages} bytes of pages still in use"
    );
    assert!(
        mapped <= SPARE + extra,
        "{what}: {mapped} bytes still mapped"
    );
    crate::collect(true);
    let mapped = reserved();
    assert!(
        mapped <= 4 * MIB,
        "{what}: {mapped} bytes mapped after collect(true)"
    );
}

/// A thread allocates 5 MB, another frees it, 200 rounds (v1: 981 MB kept).
#[test]
fn huge_blocks_freed_by_another_thread_come_back() {
    let slot = Arc::new(AtomicPtr::new(core::ptr::null_mut()));
    for _ in 0..200 {
        let s = slot.clone();
        std::thread::spawn(move || {
            let p = alloc::malloc(5_000_000);
            fill(p, 5_000_000, 1);
            s.store(p, Ordering::Release);
        })
        .join()
        .unwrap();
        let s = slot.clone();
        std::thread::spawn(move || api::free(s.swap(core::ptr::null_mut(), Ordering::AcqRel)))
            .join()
            .unwrap();
        assert!(
            reserved() <= SPARE + 16 * MIB,
            "{} bytes mapped",
            reserved()
        );
    }
    assert_returned("5 MB blocks", 8 * 6 * MIB);
}

/// A worker allocates 20,000 x 64 B and exits; main frees half, another
/// thread the rest; 200 rounds (v1: 255 MB kept).
#[test]
fn abandoned_pages_freed_by_two_threads_come_back() {
    const N: usize = 20_000;
    for _ in 0..200 {
        let blocks: Vec<usize> = std::thread::spawn(|| {
            (0..N)
                .map(|_| {
                    let p = alloc::malloc(64);
                    fill(p, 64, 2);
                    p as usize
                })
                .collect()
        })
        .join()
        .unwrap();
        for &p in &blocks[..N / 2] {
            api::free(p as *mut u8);
        }
        let rest = blocks[N / 2..].to_vec();
        std::thread::spawn(move || {
            for p in rest {
                api::free(p as *mut u8);
            }
        })
        .join()
        .unwrap();
    }
    assert_returned("abandoned 64 B blocks", 0);
}

/// Each generation a new thread allocates 1 KiB blocks and swaps them with
/// other threads through a shared array; 300 generations, then everything
/// is freed (v1: 268 MB kept).
#[test]
fn thread_churn_with_hand_offs_comes_back() {
    const SLOTS: usize = 4096;
    let slots: Arc<Vec<AtomicUsize>> = Arc::new((0..SLOTS).map(|_| AtomicUsize::new(0)).collect());
    for generation in 0..300 {
        let s = slots.clone();
        std::thread::spawn(move || {
            let mut x = generation as u64 * 0x9e37_79b9 + 1;
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = alloc::malloc(1024);
                fill(p, 1024, 3);
                let old = s[(x as usize) % SLOTS].swap(p as usize, Ordering::AcqRel);
                if old != 0 {
                    api::free(old as *mut u8);
                }
            }
        })
        .join()
        .unwrap();
    }
    for s in slots.iter() {
        let p = s.swap(0, Ordering::AcqRel);
        if p != 0 {
            api::free(p as *mut u8);
        }
    }
    assert_returned("thread churn", 0);
}

/// Producer/consumer of 1-8 MB buffers through a bounded queue, 200
/// buffers: the peak stays near what is in flight (v1: 760 MB peak).
#[test]
fn producer_consumer_of_large_buffers_stays_bounded() {
    const DEPTH: usize = 4;
    let queue: Arc<Vec<AtomicUsize>> = Arc::new((0..DEPTH).map(|_| AtomicUsize::new(0)).collect());
    let q = queue.clone();
    let producer = std::thread::spawn(move || {
        for i in 0..200usize {
            let size = (1 + i * 7 % 8) << 20;
            let p = alloc::malloc(size);
            fill(p, size, 4);
            let slot = &q[i % DEPTH];
            while slot
                .compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                std::thread::yield_now();
            }
        }
    });
    let mut peak = 0;
    for i in 0..200usize {
        let slot = &queue[i % DEPTH];
        let p = loop {
            let p = slot.swap(0, Ordering::AcqRel);
            if p != 0 {
                break p;
            }
            std::thread::yield_now();
        };
        peak = peak.max(reserved());
        api::free(p as *mut u8);
    }
    producer.join().unwrap();
    // In flight: at most DEPTH + 2 buffers of up to 8 MB, plus the caches.
    assert!(
        peak <= (DEPTH as i64 + 2) * 8 * MIB + SPARE + 8 * 8 * MIB,
        "peak mapped {peak}"
    );
    assert_returned("large buffers", 8 * 9 * MIB);
}

/// A loop of malloc/free of 40-64 KiB blocks (pages of 4 to 8 blocks)
/// keeps its page through the retire grace instead of making and freeing
/// one every few blocks (issue 18: a page per 4 blocks before), and the
/// page still goes back when the thread is done.
#[test]
fn large_block_pages_retire_with_a_grace() {
    std::thread::spawn(|| {
        let before = crate::support::stats::total(Counter::Pages);
        for i in 0..4000 {
            let size = 40 * 1024 + (i % 4) * 6 * 1024;
            let p = alloc::malloc(size);
            fill(p, 64, 1);
            api::free(p);
        }
        let made = crate::support::stats::total(Counter::Pages) - before;
        assert!(made <= 8, "{made} pages made for 4000 large blocks");
    })
    .join()
    .unwrap();
    assert_returned("large-block pages", 0);
}

/// A freed huge block with a mapping of its own (over-aligned here; also
/// blocks too big for a region) serves the next such request of another
/// size (issue 18: malloc_large faulted 1.4x glibc's pages): a bigger one
/// grows the cached chunk (mremap: its resident pages move, only the growth
/// is new memory), a smaller one takes it whole while the dirty budget has
/// room for the tail. (Not with `secure`, whose guard page splits the
/// mapping; those builds map a fresh chunk.)
#[cfg(all(feature = "hosted", not(feature = "secure")))]
#[test]
fn huge_memory_serves_the_next_request_of_any_size() {
    use crate::support::options::{self, Opt};
    // Nothing is purged for the time being: the cache is what is tested.
    assert!(options::set(Opt::PurgeDelay, 1_000_000));
    const ALIGN: usize = 8 << 20;
    let total = crate::support::stats::total;
    let p = alloc::malloc_aligned(2 << 20, ALIGN);
    fill(p, 2 << 20, 1);
    api::free(p);
    let (hits, remaps, mapped) = (
        total(Counter::CacheHits),
        total(Counter::HugeRemaps),
        reserved(),
    );
    let q = alloc::malloc_aligned(4 << 20, ALIGN);
    fill(q, 4 << 20, 2);
    assert_eq!(total(Counter::CacheHits), hits + 1, "taken from the cache");
    assert_eq!(total(Counter::HugeRemaps), remaps + 1, "grown, not mapped");
    let grown = reserved() - mapped;
    assert!(
        (2 * MIB..3 * MIB).contains(&grown),
        "{grown} bytes mapped for a 4 MiB block after a 2 MiB one"
    );
    api::free(q);
    // Smaller: the 4 MiB block's chunk, its tail kept (no fresh memory at all).
    let r = alloc::malloc_aligned(2 << 20, ALIGN);
    fill(r, 2 << 20, 3);
    assert_eq!(total(Counter::CacheHits), hits + 2);
    assert_eq!(reserved() - mapped, grown, "no fresh memory");
    assert!(api::usable_size(r) >= 4 << 20, "the whole chunk");
    api::free(r);
    crate::thread::collect_current(true);
    assert!(reserved() < mapped, "collect(true) unmaps the cached chunk");
}

/// Page faults of the calling thread so far (getrusage RUSAGE_THREAD).
#[cfg(all(feature = "hosted", not(feature = "secure")))]
fn thread_faults() -> i64 {
    // SAFETY: `rusage` is a struct of integers: all zeros is a valid value.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer; the call only fills it.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) }, 0);
    ru.ru_minflt
}

/// Buffers of 1-8 MiB written in full, two live at a time (prodcons's
/// pattern, issue 18): once warm, the next ones fault in far less, since
/// freed blocks' region units join and serve any size (before: each
/// buffer of up to ~4 MiB took a span of a chunk and bigger ones a huge
/// chunk, and what could not be reused was purged and faulted in again). Then, everything freed, the memory goes
/// back at the next purge pass.
#[cfg(all(feature = "hosted", not(feature = "secure")))]
#[test]
fn big_blocks_cycled_fault_in_less() {
    // Small pages only, so the count does not hang on the system's
    // transparent huge page setting (this test has its process to itself).
    // SAFETY: PR_SET_THP_DISABLE takes integers and touches no memory.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) },
        0
    );
    // Nor on the machine's speed: nothing is purged for its age, all of it
    // counts as recent (the budget and its allowance still apply).
    use crate::support::options::{self, Opt};
    assert!(options::set(Opt::PurgeDelay, 1_000_000));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_size = || {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (1 << 20) + ((rng >> 33) as usize % (7 << 20))
    };
    let mut live: Vec<(*mut u8, usize)> = Vec::new();
    let mut step = |live: &mut Vec<(*mut u8, usize)>| {
        let size = next_size();
        let p = alloc::malloc(size);
        fill(p, size, 7);
        live.push((p, size));
        if live.len() > 2 {
            api::free(live.remove(0).0);
        }
    };
    for _ in 0..50 {
        step(&mut live);
    }
    let before = thread_faults();
    const BUFFERS: i64 = 200;
    for _ in 0..BUFFERS {
        step(&mut live);
    }
    let faults = thread_faults() - before;
    // Written fresh, each buffer would fault ~1,150 pages; before regions
    // ~420 of them did, now ~150 (what is still faulted: units trim purged
    // to keep free memory within its allowance).
    assert!(
        faults < BUFFERS * 250,
        "{faults} page faults for {BUFFERS} buffers of 1-8 MiB after a warm-up"
    );
    for (p, _) in live.drain(..) {
        api::free(p);
    }
    crate::mem::arena::purge(true);
    assert!(
        crate::mem::arena::dirty_bytes() <= 4 << 20,
        "{} bytes left resident in free memory",
        crate::mem::arena::dirty_bytes()
    );
    assert_returned("big blocks cycled", 0);
}

/// A pointer into the units a freed big block had in its region is in no
/// chunk: free refuses it (and the block's own pointer, freed twice), and
/// the units serve the next block intact.
#[cfg(all(feature = "hosted", not(feature = "secure")))]
#[test]
fn pointers_into_free_region_units_are_refused() {
    use crate::support::stats::total;
    let p = alloc::malloc(10 << 20);
    fill(p, 10 << 20, 1);
    let keep = alloc::malloc(2 << 20);
    fill(keep, 2 << 20, 2);
    api::free(p);
    let before = total(Counter::InvalidFrees);
    api::free(p);
    api::free(p.wrapping_add(4 << 20));
    api::free(p.wrapping_add((8 << 20) + 4096));
    assert_eq!(total(Counter::InvalidFrees) - before, 3);
    // SAFETY: no other thread frees anything here.
    assert!(!unsafe { alloc::owns(p.wrapping_add(4 << 20)) });
    let q = alloc::malloc(10 << 20);
    fill(q, 10 << 20, 3);
    api::free(q);
    api::free(keep);
    assert_eq!(total(Counter::InvalidFrees) - before, 3, "valid frees pass");
}

/// Freed big blocks side by side in a region join: a block as big as both
/// takes their units (their resident memory), and a realloc grows a block
/// over the free units after it without moving it.
#[cfg(all(feature = "hosted", not(feature = "secure")))]
#[test]
fn freed_neighbours_in_a_region_join() {
    let a = alloc::malloc(6 << 20);
    let b = alloc::malloc(6 << 20);
    let c = alloc::malloc(6 << 20);
    fill(a, 6 << 20, 1);
    fill(b, 6 << 20, 2);
    fill(c, 6 << 20, 3);
    assert_eq!(
        b as usize - a as usize,
        8 << 20,
        "side by side, two units each"
    );
    api::free(a);
    api::free(b);
    let joined = alloc::malloc(15 << 20);
    assert_eq!(joined, a, "the two freed blocks' units serve one block");
    // SAFETY: `joined` is a live block of ours, no other thread uses it.
    let grown = unsafe { alloc::realloc(joined, 15 << 20) };
    assert_eq!(grown, joined);
    api::free(c);
    // SAFETY: as above.
    let grown = unsafe { alloc::realloc(joined, 22 << 20) };
    assert_eq!(grown, joined, "grown over the freed units after it");
    fill(grown, 22 << 20, 4);
    api::free(grown);
}

/// Kilobytes of the process's memory in transparent huge pages.
#[cfg(all(feature = "hosted", not(feature = "secure")))]
fn anon_huge_kib() -> i64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Huge pages only where a big block covers them whole: blocks of 1.1 MiB
/// carved over units whose huge pages an earlier, longer block had asked
/// for (then purged) fault in small pages, not a 2 MiB page each (asking
/// on whole regions held 401 MiB for 212 MiB of such blocks). The advice
/// for the huge page a block ends in is given only where the block will
/// fault there, so a warm unit makes no call (region.rs `take_units`).
#[cfg(all(feature = "hosted", not(feature = "secure")))]
#[test]
fn big_blocks_fault_huge_pages_only_where_they_cover_them() {
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.is_empty() || thp.contains("[never]") {
        std::eprintln!("no transparent huge pages here: nothing to check");
        return;
    }
    // A live block keeps the region (so the units and their advice) while
    // the others' memory is purged.
    let keeper = alloc::malloc(1 << 20);
    const LONG: usize = 6 << 20;
    let long: Vec<*mut u8> = (0..16).map(|_| alloc::malloc(LONG)).collect();
    for &p in &long {
        fill(p, LONG, 1);
    }
    for p in long {
        api::free(p);
    }
    crate::collect(true);
    let before = anon_huge_kib();
    const SHORT: usize = (1 << 20) + (100 << 10);
    let short: Vec<*mut u8> = (0..32).map(|_| alloc::malloc(SHORT)).collect();
    for &p in &short {
        fill(p, SHORT, 2);
    }
    let grown = anon_huge_kib() - before;
    assert!(
        grown <= 2048,
        "32 blocks of 1.1 MiB took {grown} KiB more in huge pages"
    );
    for p in short {
        api::free(p);
    }
    api::free(keeper);
}
