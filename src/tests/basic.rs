//! Single-thread behaviour of the core entry points.

use super::api;
use crate::base::constants::*;
use crate::{entry::alloc, platform};
use std::sync::atomic::Ordering;
use std::vec::Vec;

fn generic_count() -> u64 {
    // SAFETY: the test thread's own heap.
    unsafe { (*crate::thread::heap_get()).generic_count }
}

#[test]
fn malloc_free_reuses_the_block_on_the_fast_path() {
    let p = alloc::malloc(16);
    assert!(!p.is_null());
    api::free(p);
    let before = generic_count();
    for _ in 0..1000 {
        let q = alloc::malloc(16);
        api::free(q);
    }
    assert!(
        generic_count() - before <= 8,
        "slow path taken {} times",
        generic_count() - before
    );
    crate::thread::check_current();
}

#[test]
fn cycling_sizes_stay_on_the_fast_path() {
    for i in 0..2000usize {
        api::free(alloc::malloc(16 + (i * 8) % 497));
    }
    let before = generic_count();
    for i in 0..100_000usize {
        api::free(alloc::malloc(16 + (i * 8) % 497));
    }
    let slow = generic_count() - before;
    assert!(slow < 1000, "slow path taken {slow} times in 100000 pairs");
    crate::thread::check_current();
}

/// Needs feature `header` (cbindgen writes `$OUT_DIR/mirs.h`); `make test`
/// runs the debug suite with it.
#[cfg(feature = "header")]
#[test]
fn header_is_fresh() {
    let fresh = include_str!(concat!(env!("OUT_DIR"), "/mirs.h"));
    let committed = include_str!("../../include/mirs.h");
    assert!(
        fresh == committed,
        "include/mirs.h is stale: run `make header` and commit it"
    );
}

#[test]
fn zero_size_blocks_are_unique_and_freeable() {
    let a = alloc::malloc(0);
    let b = alloc::malloc(0);
    assert!(!a.is_null() && !b.is_null() && a != b);
    api::free(a);
    api::free(b);
}

#[test]
fn small_blocks_are_16_byte_aligned_from_16_bytes() {
    let mut keep = Vec::new();
    for size in 0..=4096 {
        let p = alloc::malloc(size);
        let align = if size > 8 { 16 } else { 8 };
        assert_eq!(p as usize % align, 0, "malloc({size}) = {p:p}");
        assert!(api::usable_size(p) >= size);
        keep.push(p);
    }
    keep.into_iter().for_each(api::free);
}

#[test]
fn calloc_zeroes_reused_and_fresh_memory_and_checks_overflow() {
    for size in [1usize, 8, 24, 100, 1000, 5000, 100_000, 3 << 20] {
        let dirty = alloc::malloc(size);
        // SAFETY: `dirty` has `size` writable bytes.
        unsafe { std::ptr::write_bytes(dirty, 0xAB, size) };
        api::free(dirty);
        let p = alloc::calloc(1, size);
        // SAFETY: `p` has `size` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, size) };
        assert!(bytes.iter().all(|&b| b == 0), "calloc({size}) not zeroed");
        api::free(p);
    }
    assert!(alloc::calloc(usize::MAX / 2, 3).is_null());
}

/// calloc pops the thread's own frees as malloc does (`local_free`, once
/// `free` is empty), without the slow path, and clears such a block in
/// full even where the page's blocks were fresh before.
#[test]
fn calloc_takes_the_threads_own_frees_without_the_slow_path() {
    use crate::base::size_class::wsize_of;
    use crate::mem::page::Page;
    let size = 424;
    let mut blocks = std::vec![alloc::malloc(size)];
    let heap = crate::thread::heap_get();
    // SAFETY: this thread's live heap (it just allocated); its direct
    // pages are its own.
    let page = unsafe { (*heap).pages_direct[wsize_of(size)] };
    // Take every block at hand: the page's `free` is empty now (and its
    // blocks were fresh, read as zero).
    // SAFETY: as above.
    while unsafe { Page::owned(page) }.has_free() {
        blocks.push(alloc::malloc(size));
    }
    let last = blocks.pop().unwrap();
    // SAFETY: `last` has `size` writable bytes.
    unsafe { std::ptr::write_bytes(last, 0xAB, size) };
    api::free(last);
    // SAFETY: as above.
    let slow_calls = unsafe { (*heap).generic_count };
    let p = alloc::calloc(1, size);
    assert_eq!(p, last, "calloc did not take the block just freed");
    // SAFETY: as above.
    assert_eq!(
        unsafe { (*heap).generic_count },
        slow_calls,
        "calloc took the slow path"
    );
    // SAFETY: `p` has `size` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(p, size) };
    assert!(
        bytes.iter().all(|&b| b == 0),
        "a reused block was not cleared"
    );
    api::free(p);
    blocks.into_iter().for_each(api::free);
}

#[test]
fn realloc_keeps_contents_and_stays_in_place_when_it_fits() {
    let p = alloc::malloc(100);
    // SAFETY: 100 writable bytes.
    unsafe { (0..100).for_each(|i| *p.add(i) = i as u8) };
    let usable = api::usable_size(p);
    assert_eq!(
        api::realloc(p, usable),
        p,
        "grow within the block is in place"
    );
    assert_eq!(
        api::realloc(p, usable / 2 + 1),
        p,
        "a slight shrink is in place"
    );
    let q = api::realloc(p, 10_000);
    assert_ne!(q, p);
    // SAFETY: the first 100 bytes were copied.
    unsafe { (0..100).for_each(|i| assert_eq!(*q.add(i), i as u8)) };
    let r = api::realloc(q, 50);
    assert_ne!(r, q, "a big shrink moves to a smaller block");
    // SAFETY: 50 bytes were copied.
    unsafe { (0..50).for_each(|i| assert_eq!(*r.add(i), i as u8)) };
    assert!(
        api::realloc(r, usize::MAX).is_null(),
        "a failed realloc returns null"
    );
    // SAFETY: the old block is intact after the failure.
    unsafe { (0..50).for_each(|i| assert_eq!(*r.add(i), i as u8)) };
    api::free(r);
}

#[test]
fn every_power_of_two_alignment_up_to_1_gib() {
    let mut align = 8;
    while align <= 1 << 30 {
        for size in [1usize, align / 2 + 1, align, 3 * align + 5] {
            let size = size.min(64 << 20);
            let p = alloc::malloc_aligned(size, align);
            assert!(!p.is_null(), "align {align} size {size}");
            assert_eq!(p as usize % align, 0, "align {align} size {size}");
            assert!(api::usable_size(p) >= size);
            // SAFETY: first and last byte of the block are writable.
            unsafe {
                *p = 1;
                *p.add(size - 1) = 2;
            }
            api::free(p);
        }
        align *= 2;
    }
    assert!(
        alloc::malloc_aligned(10, 24).is_null(),
        "not a power of two"
    );
    crate::thread::check_current();
}

#[test]
fn huge_blocks_round_trip() {
    for size in [LARGE_OBJ_SIZE_MAX + 1, 10 << 20, 100 << 20] {
        let p = alloc::malloc(size);
        assert!(!p.is_null() && api::usable_size(p) >= size);
        // SAFETY: the block has `size` bytes.
        unsafe {
            *p = 7;
            *p.add(size - 1) = 9;
        }
        api::free(p);
    }
    assert!(alloc::malloc(usize::MAX / 2 + 1).is_null());
}

#[test]
fn invalid_frees_are_ignored_and_counted() {
    api::invalid_frees_are_refused();
}

/// Sizes of every kind of page: small, medium (multi-slice), a singleton
/// span, a huge chunk.
const KIND_SIZES: [usize; 4] = [48, 20 << 10, 300 << 10, 8 << 20];

#[test]
fn double_frees_are_detected_in_every_build() {
    use crate::support::stats::{total, Counter};
    for size in KIND_SIZES {
        let p = alloc::malloc(size);
        let keep = alloc::malloc(size);
        api::free(p);
        assert!(!api::owns(p), "{size}: owns() after free");
        assert_eq!(api::usable_size(p), 0, "{size}: usable_size() after free");
        let before = total(Counter::InvalidFrees);
        api::free(p);
        assert_eq!(total(Counter::InvalidFrees) - before, 1, "{size}");
        // realloc of a freed block is refused too (EINVAL, nothing touched).
        assert!(
            api::realloc(p, size / 2).is_null(),
            "{size}: realloc after free"
        );
        assert_eq!(total(Counter::InvalidFrees) - before, 2, "{size}");
        let a = alloc::malloc(size);
        let b = alloc::malloc(size);
        assert_ne!(
            a, b,
            "{size}: a double free must not hand the block out twice"
        );
        assert!(api::owns(a) && api::owns(b) && api::owns(keep));
        for x in [a, b, keep] {
            api::free(x);
        }
        crate::thread::check_current();
    }
}

#[test]
fn cross_thread_double_frees_are_refused_and_never_hang() {
    use crate::support::stats::{total, Counter};
    for size in KIND_SIZES {
        let p = alloc::malloc(size) as usize;
        let q = alloc::malloc(size);
        api::free(q);
        let before = total(Counter::InvalidFrees);
        std::thread::spawn(move || {
            api::free(p as *mut u8);
            api::free(p as *mut u8);
        })
        .join()
        .unwrap();
        assert_eq!(total(Counter::InvalidFrees) - before, 1, "{size}");
        // The owner's lists stay well formed: collect walks them.
        crate::collect(true);
        crate::thread::check_current();
        let blocks: Vec<*mut u8> = (0..64).map(|_| alloc::malloc(size)).collect();
        let mut sorted: Vec<usize> = blocks.iter().map(|&b| b as usize).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            blocks.len(),
            "{size}: a block handed out twice"
        );
        blocks.into_iter().for_each(api::free);
        crate::thread::check_current();
    }
}

/// A live block whose second word holds the free mark by chance (the
/// program stored the page header's address there) is still freed by its
/// owner: the mark only sends free to the exact list lookup.
#[test]
fn a_live_block_holding_the_free_mark_is_freed() {
    use crate::support::stats::{total, Counter};
    let p = alloc::malloc(64);
    // SAFETY: a live block of this thread's heap.
    let mark = unsafe { (*crate::mem::chunk::Chunk::page_of_block(p)).free_mark() };
    // SAFETY: our 64-byte block.
    unsafe { p.cast::<usize>().add(1).write(mark) };
    let before = total(Counter::InvalidFrees);
    assert!(api::owns(p));
    api::free(p);
    assert_eq!(total(Counter::InvalidFrees), before);
    // SAFETY: our own page.
    let page = unsafe { crate::mem::page::Page::owned(crate::mem::chunk::Chunk::page_of_block(p)) };
    assert!(
        page.lists_contain(p.cast()),
        "the block went back on the page's list"
    );
    crate::thread::check_current();
}

#[test]
fn page_invariants_hold_through_collect() {
    api::invariants_hold_through_collect(10_000);
}

#[test]
fn cross_thread_frees_come_back_to_the_owner() {
    let blocks: Vec<usize> = (0..5000)
        .map(|i| alloc::malloc(16 + i % 200) as usize)
        .collect();
    std::thread::spawn(move || blocks.into_iter().for_each(|p| api::free(p as *mut u8)))
        .join()
        .unwrap();
    // The frees sit on thread_free (or the delayed list) until collected.
    crate::collect(false);
    assert_eq!(crate::thread::check_current(), 0);
}

#[test]
fn blocks_of_an_exited_thread_stay_valid_and_their_pages_come_back() {
    let blocks: Vec<usize> = std::thread::spawn(|| {
        (0..2000)
            .map(|i| {
                let p = alloc::malloc(32 + i % 500);
                // SAFETY: `p` has at least 32 bytes.
                unsafe { std::ptr::write_bytes(p, 0x5A, 32) };
                p as usize
            })
            .collect()
    })
    .join()
    .unwrap();
    let _ = alloc::malloc(1);
    let abandoned_page = |p: usize| {
        crate::entry::lookup::resolve(p as *const u8).is_some_and(|page| {
            // SAFETY: `resolve` returns a page header of a live chunk.
            unsafe { (*page).owner.load(Ordering::Acquire) == crate::mem::page::OWNER_ABANDONED }
        })
    };
    assert!(
        blocks.iter().all(|&p| abandoned_page(p)),
        "the exited thread's pages are abandoned, not taken over"
    );
    for &p in &blocks {
        // SAFETY: the block of the exited thread is still valid.
        assert!(unsafe { std::slice::from_raw_parts(p as *const u8, 32) }
            .iter()
            .all(|&b| b == 0x5A));
        api::free(p as *mut u8);
    }
    // The free that brought back a page's last block freed the page: none
    // of them is still abandoned, and none moved into this thread's heap.
    let still: usize = blocks.iter().filter(|&&p| abandoned_page(p)).count();
    assert_eq!(still, 0, "blocks whose page is still abandoned");
    crate::collect(false);
    assert!(crate::thread::check_current() <= 1);
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn rss_falls_after_a_burst() {
    let before = rss_bytes();
    let blocks: Vec<*mut u8> = (0..(256 << 20) / 64)
        .map(|_| {
            let p = alloc::malloc(64);
            // SAFETY: 64 writable bytes.
            unsafe { std::ptr::write_bytes(p, 1, 64) };
            p
        })
        .collect();
    let peak = rss_bytes();
    assert!(peak > before + (200 << 20), "the burst is resident");
    blocks.into_iter().for_each(api::free);
    // Unused memory goes back after the purge delay, during collection.
    std::thread::sleep(std::time::Duration::from_millis(50));
    crate::collect(false);
    let after = rss_bytes();
    assert!(
        after < before + (32 << 20),
        "RSS before {before}, peak {peak}, after {after}"
    );
}

#[test]
fn owned_pointers_report_usable_sizes() {
    assert_eq!(api::usable_size(std::ptr::null()), 0);
    let p = alloc::malloc(100);
    assert!(api::usable_size(p) >= 100 && api::owns(p));
    let a = alloc::malloc_aligned(100, 4096);
    assert_eq!(a as usize % 4096, 0);
    assert!(api::usable_size(a) >= 100 && api::owns(a));
    api::free(a);
    api::free(p);
}

/// `in_heap` (embedders tell mirs's blocks from another allocator's with
/// it): true for every live block, small, aligned and huge, false for
/// memory mirs never had.
#[test]
fn in_heap_tells_mirs_blocks_from_foreign_memory() {
    let small = alloc::malloc(24);
    let aligned = alloc::malloc_aligned(100, 4096);
    let huge = alloc::malloc(3 << 20);
    for p in [small, aligned, huge] {
        // SAFETY: live blocks of ours, freed only below.
        assert!(!p.is_null() && unsafe { crate::entry::alloc::in_heap(p) });
    }
    // SAFETY: inside the huge block.
    assert!(unsafe { crate::entry::alloc::in_heap(huge.add(1 << 20)) });
    static OUTSIDE: [u8; 64] = [0; 64];
    let local = [0u8; 64];
    assert!(!unsafe { crate::entry::alloc::in_heap(local.as_ptr()) });
    assert!(!unsafe { crate::entry::alloc::in_heap(OUTSIDE.as_ptr()) });
    assert!(!unsafe { crate::entry::alloc::in_heap(std::ptr::null()) });
    for p in [small, aligned, huge] {
        api::free(p);
    }
}

/// Every build: a forged link is never followed (block.rs, page.rs).
#[test]
fn free_lists_do_not_follow_a_forged_link() {
    use crate::support::stats::{total, Counter};
    let mut victim = [0u8; 256];
    let target = victim.as_mut_ptr();
    let a = alloc::malloc(64);
    let keep = alloc::malloc(64);
    api::free(a);
    // A use-after-free write plants a pointer in the freed block's link.
    // SAFETY: the block's memory stays mapped; this models the attack.
    unsafe { a.cast::<usize>().write(target as usize) };
    let before = total(Counter::CorruptLists);
    let mut got = Vec::new();
    for _ in 0..5000 {
        let p = alloc::malloc(64);
        assert_ne!(p, target, "malloc followed a forged free-list link");
        got.push(p);
    }
    assert!(
        total(Counter::CorruptLists) > before,
        "the corrupted link was noticed"
    );
    got.into_iter().for_each(api::free);
    api::free(keep);
    std::hint::black_box(&mut victim);
}

/// Every build: an overflow of 1 to 16 bytes from a live block into the
/// free block above it (its link, then its free mark), with several byte
/// values, never makes malloc hand out a pointer it did not carve, never
/// hands out a block twice, and is reported.
#[test]
fn overflow_into_a_free_block_is_never_followed() {
    use crate::support::stats::{total, Counter};
    use std::collections::HashSet;
    let before = total(Counter::CorruptLists);
    for len in [1usize, 2, 3, 7, 8, 9, 16] {
        for byte in [0x00u8, 0x41, 0xff] {
            // 48-byte blocks of one page: `low` directly below `high`.
            let mut run: Vec<*mut u8> = (0..64).map(|_| alloc::malloc(48)).collect();
            let (low, hi) = run
                .iter()
                .find_map(|&l| {
                    run.iter()
                        .position(|&h| h as usize == l as usize + 48)
                        .map(|j| (l, j))
                })
                .expect("two adjacent blocks among 64");
            let high = run.remove(hi);
            api::free(high);
            // SAFETY: models the bug: `low` is live, writing past its end.
            unsafe { low.add(48).write_bytes(byte, len) };
            let mut seen = HashSet::new();
            let mut got = Vec::new();
            for _ in 0..300 {
                let p = alloc::malloc(48);
                assert!(
                    api::owns(p),
                    "len {len} byte {byte:#x}: malloc handed out {p:p}, not a block"
                );
                assert!(
                    seen.insert(p as usize),
                    "len {len} byte {byte:#x}: {p:p} handed out twice"
                );
                assert!(!run.contains(&p), "len {len} byte {byte:#x}: {p:p} is live");
                got.push(p);
            }
            got.into_iter().chain(run).for_each(api::free);
        }
    }
    // (No invariant walk here: the dropped blocks are missing from the
    // damaged pages' lists by design.)
    assert!(
        total(Counter::CorruptLists) > before,
        "the damaged links were noticed"
    );
}

/// Freed blocks are reused before fresh ones are carved: once a page's
/// carved blocks are all handed out, the blocks freed next are what malloc
/// returns, and the page carves nothing more.
#[test]
fn malloc_reuses_freed_blocks_before_carving() {
    use crate::mem::chunk::Chunk;
    use crate::mem::page::Page;
    let size = 208;
    let first = alloc::malloc(size);
    // SAFETY: a block this thread just allocated for a size class.
    let page = unsafe { Chunk::page_of_block(first) };
    // SAFETY: our own page.
    let pg = || unsafe { Page::owned(page) };
    let mut live = std::vec![first];
    while !pg().free().is_null() || !pg().local_free().is_null() {
        live.push(alloc::malloc(size));
    }
    let capacity = pg().capacity();
    let freed: Vec<*mut u8> = live.drain(..10).collect();
    freed.iter().for_each(|&p| api::free(p));
    for _ in 0..10 {
        let q = alloc::malloc(size);
        assert!(
            freed.contains(&q),
            "malloc returned {q:p}, not one of the blocks just freed"
        );
        live.push(q);
    }
    assert_eq!(
        pg().capacity(),
        capacity,
        "the page carved blocks while freed ones waited"
    );
    live.into_iter().for_each(api::free);
}

/// Blocks of 4 KiB and more are carved one at a time (carving writes each
/// block's link, so it touches an OS page per block): a page whose free
/// lists are empty carves exactly one block for the next malloc.
#[test]
fn big_blocks_are_carved_one_at_a_time() {
    use crate::mem::chunk::Chunk;
    use crate::mem::page::Page;
    let size = 12 * 1024;
    let first = alloc::malloc(size);
    // SAFETY: a block this thread just allocated for a size class.
    let page = unsafe { Chunk::page_of_block(first) };
    // SAFETY: our own page.
    let pg = || unsafe { Page::owned(page) };
    let mut live = std::vec![first];
    let mut carves = 0;
    while u32::from(pg().capacity()) < pg().reserved() {
        if pg().free().is_null() && pg().local_free().is_null() {
            let before = pg().capacity();
            let q = alloc::malloc(size);
            // SAFETY: as above.
            if unsafe { Chunk::page_of_block(q) } == page {
                assert_eq!(pg().capacity(), before + 1, "carved more than one block");
                carves += 1;
            }
            live.push(q);
        } else {
            live.push(alloc::malloc(size));
        }
    }
    assert!(carves > 0, "the page never carved");
    live.into_iter().for_each(api::free);
}

/// An emptied page of big blocks (40 KiB) keeps the full retire grace
/// (hosted): a thread that frees its one block and goes on allocating other
/// sizes for a while finds the page still there, not made and freed again
/// (with a quarter grace, 32 Python threads made and freed 3,200 pages per
/// class; `RETIRE_CYCLES` in constants.rs).
#[cfg(feature = "hosted")]
#[test]
fn emptied_pages_of_big_blocks_keep_the_full_grace() {
    use crate::base::constants::{RETIRE_CYCLES, RETIRE_STEP};
    use crate::mem::chunk::Chunk;
    let b = alloc::malloc(40 * 1024);
    // SAFETY: a block this thread just allocated for a size class.
    let page = unsafe { Chunk::page_of_block(b) };
    // SAFETY: our own page while it is ours (checked below through its owner).
    let pg = || unsafe { &*page };
    api::free(b);
    // Half the full grace in slow-path calls (every malloc above 1 KiB
    // takes the slow path): a quarter grace would have run out.
    for _ in 0..(RETIRE_CYCLES as u64 * RETIRE_STEP / 2) {
        api::free(alloc::malloc(2000));
    }
    assert_eq!(
        pg().owner.load(core::sync::atomic::Ordering::Relaxed),
        crate::platform::thread_id(),
        "the emptied page went back to the arena"
    );
    let again = alloc::malloc(40 * 1024);
    // SAFETY: as above.
    assert_eq!(unsafe { Chunk::page_of_block(again) }, page);
    api::free(again);
}

/// A burst of blocks freed whole keeps its pages (up to `RETIRE_KEEP_MAX`
/// besides each queue's first, hosted): right after the frees every page
/// is still this thread's, the next burst of that size is served from
/// them, and once the grace runs out with nothing reused they all go back
/// to the arena. (mimalloc keeps only a queue's first page: the other 24
/// went back at once and came from the arena again for every burst.)
#[cfg(feature = "hosted")]
#[test]
fn a_freed_burst_keeps_its_pages_for_the_next() {
    use crate::base::constants::{RETIRE_CYCLES, RETIRE_KEEP_MAX, RETIRE_STEP};
    use crate::mem::chunk::Chunk;
    use crate::mem::page::Page;
    use std::collections::BTreeSet;
    let me = platform::thread_id();
    let burst = || (0..1600).map(|_| alloc::malloc(1024)).collect::<Vec<_>>();
    // SAFETY: blocks this thread allocated for a size class.
    let pages_of = |blocks: &[*mut u8]| -> BTreeSet<usize> {
        blocks
            .iter()
            .map(|&b| unsafe { Chunk::page_of_block(b) } as usize)
            .collect()
    };
    // SAFETY: page headers of live chunks (chunks stay mapped in a test).
    let owner = |page: usize| {
        unsafe { &*(page as *const Page) }
            .owner
            .load(Ordering::Relaxed)
    };
    let first = burst();
    let pages = pages_of(&first);
    assert!(
        pages.len() > 8 && pages.len() <= RETIRE_KEEP_MAX,
        "{} pages",
        pages.len()
    );
    first.into_iter().for_each(api::free);
    let kept = pages.iter().filter(|&&p| owner(p) == me).count();
    assert_eq!(kept, pages.len(), "emptied pages went back to the arena");
    let second = burst();
    assert!(
        pages_of(&second).is_subset(&pages),
        "the next burst took pages from the arena"
    );
    second.into_iter().for_each(api::free);
    // The grace, in slow-path calls (every malloc above 1 KiB takes it),
    // twice over: nothing reuses the pages, so they go.
    for _ in 0..(RETIRE_CYCLES as u64 * RETIRE_STEP * 2 + 8) {
        api::free(alloc::malloc(2000));
    }
    // SAFETY: as above.
    let still = pages
        .iter()
        .filter(|&&p| owner(p) == me && unsafe { &*(p as *const Page) }.block_size() == 1024)
        .count();
    assert_eq!(still, 0, "{still} emptied pages outlived their grace");
}

#[cfg(feature = "secure")]
#[test]
fn secure_carving_order_is_not_sequential() {
    let blocks: Vec<usize> = (0..64).map(|_| alloc::malloc(32) as usize).collect();
    let sequential = blocks.windows(2).filter(|w| w[1] == w[0] + 32).count();
    assert!(
        sequential < 32,
        "{sequential} of 63 neighbours are adjacent"
    );
    blocks.into_iter().for_each(|p| api::free(p as *mut u8));
}

/// A request no address space can hold fails at once with ENOMEM: no
/// mapping is tried (the chunk count does not move) and no recovery runs.
#[test]
fn impossible_requests_fail_without_a_mapping() {
    let warm = alloc::malloc(100);
    let chunks = crate::support::stats::total(crate::support::stats::Counter::Chunks);
    for size in [
        MAX_REQUEST_SIZE + 1,
        1 << 50,
        usize::MAX / 2,
        usize::MAX - 4096,
    ] {
        platform::set_errno(0);
        assert!(alloc::malloc(size).is_null(), "malloc({size:#x})");
        assert_eq!(
            platform::errno(),
            crate::platform::ENOMEM,
            "errno after malloc({size:#x})"
        );
        assert!(alloc::zalloc(size).is_null());
        assert!(alloc::malloc_aligned(size, 1 << 20).is_null());
    }
    assert_eq!(
        crate::support::stats::total(crate::support::stats::Counter::Chunks),
        chunks
    );
    api::free(warm);
}

/// A pthread key destructor that allocates in every one of glibc's
/// destructor rounds, the last included (after mirs's own destructor ran):
/// no heap stays owned by the thread that is gone (v1 leaked one per
/// thread: 2,000 threads, 183 MB), and the blocks stay valid.
#[test]
fn allocation_in_the_last_key_destructor_round_leaves_no_heap() {
    use std::sync::atomic::AtomicUsize;
    static BLOCKS: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static KEY: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn destructor(_: *mut libc::c_void) {
        let p = alloc::malloc(100);
        assert!(!p.is_null());
        // SAFETY: a fresh block of 100 bytes.
        unsafe { core::ptr::write_bytes(p, 7, 100) };
        BLOCKS[NEXT.fetch_add(1, Ordering::Relaxed) % 64].store(p as usize, Ordering::Relaxed);
        // Ask for another round (glibc runs at most PTHREAD_DESTRUCTOR_ITERATIONS).
        // SAFETY: the key exists; setspecific in a destructor is allowed.
        unsafe {
            libc::pthread_setspecific(
                KEY.load(Ordering::Relaxed) as _,
                core::ptr::dangling::<libc::c_void>(),
            )
        };
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: valid out-pointer and destructor.
    assert_eq!(
        unsafe { libc::pthread_key_create(&mut key, Some(destructor)) },
        0
    );
    KEY.store(key as usize, Ordering::Relaxed);
    let warm = alloc::malloc(16);
    let threads = crate::support::stats::current(crate::support::stats::Counter::Threads);
    for _ in 0..20 {
        std::thread::spawn(move || {
            api::free(alloc::malloc(32)); // this thread has a heap (and mirs's key)
                                          // SAFETY: the key exists.
            unsafe { libc::pthread_setspecific(key, core::ptr::dangling::<libc::c_void>()) };
        })
        .join()
        .unwrap();
    }
    assert!(
        NEXT.load(Ordering::Relaxed) >= 20 * 3,
        "destructor rounds ran"
    );
    assert_eq!(
        crate::support::stats::current(crate::support::stats::Counter::Threads),
        threads,
        "heaps still owned by exited threads"
    );
    for b in &BLOCKS {
        let p = b.swap(0, Ordering::Relaxed) as *mut u8;
        if !p.is_null() {
            // SAFETY: the destructor filled 100 bytes.
            assert!(unsafe { std::slice::from_raw_parts(p, 100) }
                .iter()
                .all(|&x| x == 7));
            api::free(p);
        }
    }
    api::free(warm);
}

/// In a page that handed out over-aligned (interior) pointers, only those
/// pointers free their block: any other interior pointer is refused, so the
/// block stays live and a later correct free is not a double free.
#[test]
fn interior_pointers_of_aligned_blocks_are_refused() {
    let invalid = || crate::support::stats::total(crate::support::stats::Counter::InvalidFrees);
    let mut blocks = Vec::new();
    // 100 bytes aligned to 64: over-allocated in a size class, most pointers interior.
    for _ in 0..64 {
        let p = alloc::malloc_aligned(100, 64);
        assert!(!p.is_null() && (p as usize).is_multiple_of(64));
        // SAFETY: 100 bytes are ours.
        unsafe { core::ptr::write_bytes(p, 0xA5, 100) };
        blocks.push(p);
    }
    let before = invalid();
    for &p in &blocks {
        api::free(p.wrapping_add(32));
        assert_eq!(api::usable_size(p.wrapping_add(32)), 0);
        assert!(api::usable_size(p) >= 100);
    }
    assert_eq!(
        invalid() - before,
        64,
        "every wrong interior pointer refused"
    );
    // The blocks are still live: new allocations never overlap them.
    let fresh: Vec<*mut u8> = (0..64).map(|_| alloc::malloc_aligned(100, 64)).collect();
    for &p in &blocks {
        // SAFETY: still ours.
        assert!(unsafe { std::slice::from_raw_parts(p, 100) }
            .iter()
            .all(|&b| b == 0xA5));
        assert!(!fresh.contains(&p));
        api::free(p);
    }
    assert_eq!(invalid() - before, 64, "the right pointers free cleanly");
    for p in fresh {
        api::free(p);
    }
    crate::collect(false);
    assert_eq!(crate::thread::check_current(), 0);
}

fn fill_bytes(p: *mut u8, from: usize, to: usize, byte: u8) {
    // SAFETY: the callers pass live blocks of at least `to` bytes.
    unsafe { core::ptr::write_bytes(p.add(from), byte, to - from) };
}

fn bytes_are(p: *const u8, from: usize, to: usize, byte: u8) -> bool {
    // SAFETY: as in `fill_bytes`.
    unsafe { core::slice::from_raw_parts(p.add(from), to - from) }
        .iter()
        .all(|&b| b == byte)
}

/// realloc of a huge block (issue 20): remapped where it lies or its pages
/// moved (mremap), never copied; the chunk map follows the chunk to its new
/// extent (every 4 MiB region of it, the base 4 MiB aligned), and shrinking
/// gives the tail back. (Not with `secure`: the guard page after the
/// header splits the chunk's mapping, which `mremap` cannot resize; those
/// builds copy.)
#[cfg(all(feature = "hosted", not(feature = "secure")))]
#[test]
fn realloc_remaps_huge_blocks() {
    use crate::mem::chunk_map;
    use crate::support::stats::{self, Counter};
    // A chunk mapped first (mmap places later ones below it): often right
    // after the huge block, where growing in place must not take it over.
    let neighbour = alloc::malloc(300 << 10);
    let p = alloc::malloc(8 << 20);
    fill_bytes(p, 0, 8 << 20, 0x3c);
    let remaps = stats::total(Counter::HugeRemaps);
    let reserved = stats::current(Counter::Reserved);
    let q = api::realloc(p, 40 << 20);
    assert!(!q.is_null());
    assert_eq!(
        stats::total(Counter::HugeRemaps),
        remaps + 1,
        "remapped, not copied"
    );
    assert!(bytes_are(q, 0, 8 << 20, 0x3c));
    fill_bytes(q, 8 << 20, 40 << 20, 0xc3);
    assert!(api::usable_size(q) >= 40 << 20);
    assert!(stats::current(Counter::Reserved) >= reserved + (32 << 20));
    let base = q as usize & !CHUNK_MASK;
    assert_eq!(chunk_map::kind_at(base), chunk_map::HUGE);
    // SAFETY: nothing else uses it.
    assert!(
        unsafe { alloc::owns(neighbour) },
        "the neighbouring chunk is still known"
    );
    assert_eq!(
        chunk_map::chunk_containing(q as usize + (39 << 20)),
        Some(base)
    );
    if q != p {
        let old = p as usize & !CHUNK_MASK;
        assert_ne!(
            chunk_map::kind_at(old),
            chunk_map::HUGE,
            "the old extent is forgotten"
        );
    }
    // An interior pointer of the new extent is refused.
    let interior = q.wrapping_add(30 << 20);
    // SAFETY: nothing else uses the block.
    assert!(!unsafe { alloc::owns(interior) });
    api::free(interior);
    assert!(bytes_are(q, (40 << 20) - 4096, 40 << 20, 0xc3));
    // Shrinking to a quarter: in place, the tail unmapped and forgotten.
    let s = api::realloc(q, 10 << 20);
    assert_eq!(s, q, "a huge block shrinks where it lies");
    assert_eq!(stats::total(Counter::HugeRemaps), remaps + 2);
    assert!(api::usable_size(s) >= 10 << 20 && api::usable_size(s) < 12 << 20);
    assert_eq!(chunk_map::chunk_containing(s as usize + (30 << 20)), None);
    assert!(bytes_are(s, 0, 8 << 20, 0x3c) && bytes_are(s, 8 << 20, 10 << 20, 0xc3));
    api::free(s);
    api::free(neighbour);
}

/// realloc of a singleton span's block grows it over the free slices after
/// it, where it lies (issue 20), and the span is freed whole afterwards.
#[test]
fn realloc_grows_singleton_spans_in_place() {
    use crate::support::stats::{self, Counter};
    let p = alloc::malloc(200 << 10);
    fill_bytes(p, 0, 200 << 10, 0x11);
    let grown = stats::total(Counter::SpanGrowths);
    let q = api::realloc(p, 1 << 20);
    assert_eq!(
        q, p,
        "grown where it lies (a fresh chunk has free slices after it)"
    );
    assert_eq!(stats::total(Counter::SpanGrowths), grown + 1);
    assert!(api::usable_size(q) >= 1 << 20);
    assert!(bytes_are(q, 0, 200 << 10, 0x11));
    fill_bytes(q, 200 << 10, 1 << 20, 0x22);
    // A neighbour right after it stops the next growth: realloc moves it.
    let n = alloc::malloc(200 << 10);
    let r = api::realloc(q, 2 << 20);
    assert!(!r.is_null());
    assert!(bytes_are(r, 0, 200 << 10, 0x11) && bytes_are(r, 200 << 10, 1 << 20, 0x22));
    api::free(r);
    api::free(n);
    crate::thread::check_current();
}

/// The owner test of free's fast path: true for the calling thread's id
/// only (hosted x86_64 compares with fs:0 in asm).
#[test]
fn is_current_thread_knows_its_own_id_only() {
    use crate::platform::{is_current_thread, thread_id};
    let me = thread_id();
    assert!(is_current_thread(me));
    assert!(!is_current_thread(me ^ 16) && !is_current_thread(0));
    let other = std::thread::spawn(move || {
        let id = thread_id();
        (id, is_current_thread(id), is_current_thread(me))
    })
    .join()
    .unwrap();
    assert_eq!((other.1, other.2), (true, false));
    assert_ne!(other.0, me);
    assert!(!is_current_thread(other.0));
}
