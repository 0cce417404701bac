//! Out of memory: the platform refuses memory (`platform::fault`, compiled
//! into the crate's own tests), and every entry point must return null with
//! `errno = ENOMEM`, leave live blocks intact, leak nothing, and allocate
//! again once memory is granted again.
//!
//! The test harness runs each test in its own process (panic-abort-tests),
//! so the injection state and the statistics belong to one test.

use super::api;
use crate::c_api::prefixed::{mirs_aligned_alloc, mirs_posix_memalign};
use crate::platform::fault;
use crate::platform::ENOMEM;
use crate::support::stats::{self, Counter};
use crate::{entry::alloc, heap, platform};
use core::ffi::c_void;
use std::vec::Vec;

/// Bytes mapped for chunks, and chunks mapped.
fn footprint() -> (i64, i64) {
    (
        stats::current(Counter::Reserved),
        stats::current(Counter::Chunks),
    )
}

/// Everything freed and the cache released: the footprint left behind.
fn settle() -> (i64, i64) {
    crate::thread::collect_current(true);
    crate::thread::check_current();
    footprint()
}

/// Call `f` with errno cleared; a null result must come with ENOMEM.
fn expect_null(what: &str, f: impl FnOnce() -> *mut u8) {
    platform::set_errno(0);
    let p = f();
    assert!(
        p.is_null(),
        "{what}: {p:p} while the platform refuses memory"
    );
    assert_eq!(platform::errno(), ENOMEM, "{what}: errno after the failure");
}

fn fill(p: *mut u8, size: usize, byte: u8) {
    // SAFETY: the callers pass live blocks of at least `size` bytes.
    unsafe { core::ptr::write_bytes(p, byte, size) };
}

fn holds(p: *const u8, size: usize, byte: u8) -> bool {
    // SAFETY: as in `fill`.
    unsafe { core::slice::from_raw_parts(p, size) }
        .iter()
        .all(|&b| b == byte)
}

/// Allocate `size`-byte blocks until the allocator says no (at most `limit`);
/// every block is filled and kept in `keep`. Returns how many succeeded.
fn exhaust(size: usize, limit: usize, keep: &mut Vec<(*mut u8, usize)>) -> usize {
    for n in 0..limit {
        platform::set_errno(0);
        let p = alloc::malloc(size);
        if p.is_null() {
            assert_eq!(
                platform::errno(),
                ENOMEM,
                "malloc({size}) failed without ENOMEM"
            );
            return n;
        }
        fill(p, size, size as u8);
        keep.push((p, size));
    }
    panic!("malloc({size}) still succeeds after {limit} blocks with no memory from the platform");
}

fn every_entry_point_fails(live: *mut u8, live_size: usize) {
    expect_null("malloc(16)", || alloc::malloc(16));
    expect_null("malloc(1000)", || alloc::malloc(1000));
    expect_null("malloc(100000)", || alloc::malloc(100_000));
    expect_null("malloc(1 MiB) (large)", || alloc::malloc(1 << 20));
    expect_null("malloc(8 MiB) (huge)", || alloc::malloc(8 << 20));
    expect_null("zalloc(64)", || alloc::zalloc(64));
    expect_null("calloc(4, 1000)", || alloc::calloc(4, 1000));
    expect_null("calloc(1, 8 MiB)", || alloc::calloc(1, 8 << 20));
    expect_null("malloc_aligned(100, 64)", || alloc::malloc_aligned(100, 64));
    expect_null("malloc_aligned(100, 64 KiB)", || {
        alloc::malloc_aligned(100, 64 << 10)
    });
    expect_null("malloc_aligned(1000, 1 MiB)", || {
        alloc::malloc_aligned(1000, 1 << 20)
    });
    expect_null("malloc_aligned(5 MiB, 8 MiB) (huge, aligned)", || {
        alloc::malloc_aligned(5 << 20, 8 << 20)
    });
    expect_null("mirs_aligned_alloc(4096, 100000)", || {
        mirs_aligned_alloc(4096, 100_000).cast()
    });
    // posix_memalign reports ENOMEM by its result and, like glibc, in errno;
    // *out stays untouched.
    let mut out: *mut c_void = 0x1234 as *mut c_void;
    platform::set_errno(77);
    // SAFETY: `out` is a writable pointer.
    let rc = unsafe { mirs_posix_memalign(&mut out, 256, 200_000) };
    assert_eq!(rc, ENOMEM, "posix_memalign result");
    assert_eq!(out as usize, 0x1234, "posix_memalign wrote *out on failure");
    assert_eq!(
        platform::errno(),
        ENOMEM,
        "posix_memalign errno (glibc: ENOMEM)"
    );
    // A failed realloc (growing out of the block) keeps the old block intact.
    for new_size in [live_size * 4, 200_000, 8 << 20] {
        expect_null("realloc (grow)", || api::realloc(live, new_size));
        assert!(
            holds(live, live_size, 0x5a),
            "realloc failure damaged the old block"
        );
        assert!(api::usable_size(live) >= live_size);
    }
}

/// The process's very first allocation has no heap yet: refusing the memory
/// for the heap struct itself must fail cleanly too.
#[test]
fn first_allocation_refused_then_granted() {
    assert_eq!(footprint(), (0, 0), "this test must run in a fresh process");
    fault::fail_after(0);
    expect_null("first malloc(16)", || alloc::malloc(16));
    expect_null("first calloc", || alloc::calloc(2, 8));
    expect_null("first malloc_aligned(10, 1 MiB)", || {
        alloc::malloc_aligned(10, 1 << 20)
    });
    expect_null("first realloc(null, 100)", || {
        api::realloc(core::ptr::null_mut(), 100)
    });
    assert!(heap::is_empty_heap(crate::thread::heap_get()));
    assert_eq!(footprint(), (0, 0));
    assert!(fault::refused() >= 4);
    fault::disable();
    let p = alloc::malloc(16);
    assert!(!p.is_null());
    fill(p, 16, 1);
    api::free(p);
    assert_eq!(settle(), (0, 0));
}

/// Exhaust what is mapped, check every entry point, then grant memory again.
#[test]
fn every_entry_point_returns_enomem_and_recovers() {
    // Warm up: the heap exists, some chunks come and go.
    let warm: Vec<*mut u8> = (0..1000).map(|i| alloc::malloc(8 + i * 37)).collect();
    warm.into_iter().for_each(api::free);
    let baseline = settle();

    let live_size = 500;
    let live = alloc::malloc(live_size);
    fill(live, live_size, 0x5a);

    fault::fail_after(0);
    let mut keep = Vec::new();
    // Each size class takes pages until no chunk has a free slice left.
    let sizes = [
        16,
        48,
        512,
        1000,
        3000,
        16 << 10,
        100 << 10,
        1 << 20,
        8 << 20,
    ];
    let got: Vec<usize> = sizes
        .iter()
        .map(|&s| exhaust(s, 1 << 20, &mut keep))
        .collect();
    // Large and huge blocks need a fresh chunk: refused outright.
    assert_eq!(
        got[got.len() - 2..],
        [0, 0],
        "large/huge allocations without memory: {got:?}"
    );
    every_entry_point_fails(live, live_size);
    // Freeing some blocks makes room again without the platform.
    let (p, size) = keep.pop().expect("some blocks fitted in mapped chunks");
    assert!(holds(p, size, size as u8));
    api::free(p);
    let q = alloc::malloc(size);
    assert!(
        !q.is_null(),
        "a freed block is reused while the platform refuses"
    );
    keep.push((q, size));
    fill(q, size, size as u8);

    // Memory is available again: everything works.
    fault::disable();
    let mut more = Vec::new();
    for &s in &sizes {
        let p = alloc::malloc(s);
        assert!(!p.is_null(), "malloc({s}) after memory returned");
        fill(p, s, 3);
        more.push(p);
    }
    let a = alloc::malloc_aligned(5 << 20, 8 << 20);
    assert!(!a.is_null() && (a as usize).is_multiple_of(8 << 20));
    more.push(a);
    let c = alloc::calloc(1, 3 << 20);
    assert!(!c.is_null() && holds(c, 3 << 20, 0));
    more.push(c);
    let live = api::realloc(live, 200_000);
    assert!(!live.is_null() && holds(live, live_size, 0x5a));
    more.push(live);

    for (p, size) in keep {
        assert!(
            holds(p, size, size as u8),
            "a block changed while out of memory"
        );
        api::free(p);
    }
    more.into_iter().for_each(api::free);
    assert_eq!(
        settle(),
        baseline,
        "(reserved bytes, chunks) after freeing everything"
    );
}

/// A random workload with the platform refusing after n requests, for many n:
/// every failure is a clean ENOMEM, blocks stay intact, nothing leaks.
#[test]
fn refusing_after_n_requests_loses_nothing() {
    let baseline = {
        api::free(alloc::malloc(1));
        settle()
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut failures = 0;
    for n in 0..24 {
        fault::fail_after(n);
        let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
        for step in 0..3000 {
            let r = next();
            let size = match r % 16 {
                0 => (r >> 8) as usize % (6 << 20),
                1..=3 => (r >> 8) as usize % (256 << 10),
                _ => (r >> 8) as usize % 2048,
            };
            let tag = step as u8;
            if r % 5 == 4 && !live.is_empty() {
                let (p, s, t) = live.swap_remove((r >> 32) as usize % live.len());
                assert!(holds(p, s.min(4096), t));
                api::free(p);
                continue;
            }
            platform::set_errno(0);
            let p = match (r >> 4) % 4 {
                0 => alloc::calloc(1, size),
                1 => alloc::malloc_aligned(size, 1 << ((r >> 40) % 22)),
                2 if !live.is_empty() => {
                    let i = (r >> 32) as usize % live.len();
                    let (old, s, t) = live[i];
                    let q = api::realloc(old, size);
                    if q.is_null() {
                        assert!(holds(old, s.min(4096), t), "failed realloc lost the block");
                    } else {
                        assert!(
                            holds(q, s.min(size).min(4096), t),
                            "realloc lost the contents"
                        );
                        live.swap_remove(i);
                    }
                    q
                }
                _ => alloc::malloc(size),
            };
            if p.is_null() {
                assert_eq!(platform::errno(), ENOMEM, "n={n} step={step} size={size}");
                failures += 1;
                continue;
            }
            fill(p, size.min(4096), tag);
            live.push((p, size, tag));
        }
        fault::disable();
        let p = alloc::malloc(1 << 20);
        assert!(
            !p.is_null(),
            "allocation works again after the refusals (n={n})"
        );
        api::free(p);
        for (p, s, t) in live {
            assert!(holds(p, s.min(4096), t));
            api::free(p);
        }
        assert_eq!(settle(), baseline, "footprint after round n={n}");
    }
    assert!(
        failures > 100,
        "the platform refused too little to test anything ({failures})"
    );
}

/// The one recovery path: with every slice taken and the platform refusing
/// memory, freeing the blocks of one page of a size class (a page the heap
/// keeps retiring, not yet given back) lets the very next malloc of another
/// size class succeed: the slow path recovers and searches again instead of
/// failing once first.
#[test]
fn freeing_one_page_serves_the_next_malloc_of_another_class() {
    let warm = alloc::malloc(16);
    assert!(!warm.is_null());
    fault::fail_after(0);
    let mut keep = Vec::new();
    let n = exhaust(1000, 1_000_000, &mut keep);
    assert!(
        n > 100,
        "only {n} blocks of 1000 B fitted in the first chunk"
    );
    expect_null("malloc(3000) with every slice taken", || {
        alloc::malloc(3000)
    });
    // Free every block of the page that holds the first block.
    let page = crate::entry::lookup::resolve(keep[0].0).expect("a live block's page");
    let (same, rest): (Vec<_>, Vec<_>) = keep
        .into_iter()
        .partition(|&(p, _)| crate::entry::lookup::resolve(p) == Some(page));
    assert!(same.len() > 10, "{} blocks in the page", same.len());
    for &(p, size) in &same {
        assert!(holds(p, size, size as u8));
        api::free(p);
    }
    platform::set_errno(0);
    let p = alloc::malloc(3000);
    assert!(!p.is_null(), "malloc(3000) right after a page was freed");
    assert_eq!(platform::errno(), 0, "no ENOMEM on the way");
    fill(p, 3000, 3);
    api::free(p);
    for &(p, size) in &rest {
        assert!(holds(p, size, size as u8));
        api::free(p);
    }
    api::free(warm);
    fault::disable();
}

/// A refused request larger than the platform could ever give (hosted:
/// memory plus swap) fails at once, without a recovery (issue 20: a failing
/// huge request costs a few hundred instructions): a cached huge chunk stays
/// cached. A refused request within that limit recovers first (the cache is
/// handed back) and fails only then.
#[cfg(feature = "hosted")]
#[test]
fn recovery_runs_only_when_it_could_serve_the_request() {
    // Over-aligned: a mapping of its own and the huge cache, not a region
    // (whose free units would serve the next request without the platform).
    const ALIGN: usize = 8 << 20;
    let p = alloc::malloc_aligned(8 << 20, ALIGN);
    assert!(!p.is_null());
    api::free(p);
    let cached = crate::mem::arena::cached_count();
    assert!(cached >= 1, "the freed huge block is cached");
    fault::fail_after(0);
    let beyond = platform::memory_limit().next_multiple_of(1 << 22) + (1 << 22);
    expect_null("malloc beyond memory plus swap", || alloc::malloc(beyond));
    assert_eq!(crate::mem::arena::cached_count(), cached, "no recovery ran");
    expect_null("malloc_aligned(16 MiB)", || {
        alloc::malloc_aligned(16 << 20, ALIGN)
    });
    assert_eq!(
        crate::mem::arena::cached_count(),
        0,
        "the recovery released the cache"
    );
    fault::disable();
}

/// `thread::recover` says whether *this call* released something, not
/// whether the process's page count fell meanwhile: while another thread
/// keeps freeing and refilling pages of its own (its blocks and ours keep
/// every chunk in use, so no chunk is ever spare), a recovery with nothing
/// of its own to give back answers false every time (the answer read off
/// the process-wide page count said true about once in 20,000 calls);
/// one that frees this thread's empty page answers true. The calls go on
/// until the other thread has churned 100 rounds during them (progress,
/// not time: the machine may run either thread late).
#[test]
fn recovery_reports_only_what_it_released() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    // An anchor block in the chunk everyone uses, and nothing else of ours.
    let anchor = alloc::malloc(64);
    assert!(!anchor.is_null());
    crate::thread::collect_current(true);
    let heap = crate::thread::heap_get();
    assert!(!crate::thread::recover(heap), "nothing to give back yet");
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let churn = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        std::thread::spawn(move || {
            let keep = alloc::malloc(64);
            while !stop.load(Ordering::Relaxed) {
                // Two pages of 1 KiB blocks taken, then given back.
                let blocks: Vec<*mut u8> = (0..128).map(|_| alloc::malloc(1024)).collect();
                blocks.iter().for_each(|&b| api::free(b));
                crate::thread::collect_current(false);
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            api::free(keep);
        })
    };
    let pages_before = stats::total(Counter::Pages);
    let start = rounds.load(Ordering::Relaxed);
    let (mut calls, mut answers) = (0, 0);
    while calls < 20_000 || rounds.load(Ordering::Relaxed) < start + 100 {
        answers += crate::thread::recover(heap) as usize;
        calls += 1;
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().expect("the churning thread");
    assert!(
        stats::total(Counter::Pages) - pages_before >= 200,
        "the other thread took pages meanwhile"
    );
    assert_eq!(
        answers, 0,
        "recoveries that released nothing said true ({calls} calls)"
    );
    // Our own empty page: given back, and said so.
    let p = alloc::malloc(2048);
    assert!(!p.is_null());
    api::free(p);
    assert!(crate::thread::recover(heap), "our emptied page was freed");
    api::free(anchor);
}
