//! The single-threaded core on a fake embedder: the embedded platform (no
//! `hosted`) driven through its own hooks, as ArceOS drives it, with
//!
//! - memory: one chunk-aligned allocation from std's `System` allocator,
//!   handed over once with `mirs_region_add` (nothing else is asked for);
//! - thread identity: `mirs_hook_thread_id` numbers threads from 1;
//! - the clock: `platform::TEST_CLOCK_MS`, moved by hand;
//! - output: `mirs_hook_write` to std's stderr; errno: the host libc's.
//!
//! This is what `make test-miri` runs under Miri (`cargo miri test
//! --no-default-features --lib embedded`): every path here is
//! single-threaded, so Miri checks the core's pointer handling, the
//! free-list and span bookkeeping, and the page and chunk headers it casts
//! out of plain memory. Natively (`cargo test --no-default-features --lib`)
//! each test runs in a process of its own (`panic-abort-tests`), like the
//! hosted suite.

use super::api;
use crate::base::constants::*;
use crate::base::size_class::{bin_block_size, bin_of_size, BIN_HUGE};
use crate::support::stats::{current, total, Counter};
use crate::{entry::alloc, platform};
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::Once;
use std::vec::Vec;

/// Chunk-sized units in the region (48 MiB): room for the arena's spare
/// chunks, a few huge blocks and the aligned-allocation test's 8 MiB
/// alignment.
const REGION_UNITS: usize = (48 << 20) / CHUNK_SIZE;
/// Slack after the last unit, where mirs carves heap structs.
const REGION_SLACK: usize = 256 * 1024;

// ---------------------------------------------------------------- the fake embedder

#[no_mangle]
extern "C" fn mirs_hook_thread_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    std::thread_local!(static ID: usize = NEXT.fetch_add(1, Ordering::Relaxed));
    ID.with(|id| *id)
}

/// # Safety
/// `bytes..bytes+len` is readable (mirs passes a live slice).
#[no_mangle]
unsafe extern "C" fn mirs_hook_write(bytes: *const u8, len: usize) {
    // SAFETY: as the hook's contract says.
    let text = unsafe { std::slice::from_raw_parts(bytes, len) };
    let _ = std::io::stderr().write_all(text);
}

/// The fake embedder, set up for one test thread: on first use in the
/// process it hands mirs its memory (`REGION_UNITS` chunks, chunk-aligned,
/// plus slack for metadata, never freed: mirs keeps it for the rest of the
/// program, as `mirs_region_add` asks); when dropped, at the end of the
/// test, it tells mirs the thread is done (`mirs_thread_done`), as an
/// embedder does at task exit.
struct Embedder;

/// The region's memory, which mirs keeps for the rest of the program.
static REGION: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

fn embedder() -> Embedder {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let size = REGION_UNITS * CHUNK_SIZE + REGION_SLACK;
        let layout = Layout::from_size_align(size, CHUNK_SIZE).expect("a valid layout");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { System.alloc(layout) };
        assert!(
            !base.is_null(),
            "the host has no {size} bytes for the region"
        );
        // Kept where a leak check sees it (Miri's): mirs holds it as addresses.
        REGION.store(base, Ordering::Relaxed);
        // SAFETY: `base..base+size` is ours alone, for the rest of the program.
        assert!(unsafe { platform::mirs_region_add(base.cast::<c_void>(), size) });
        assert_eq!(platform::region_bytes(), REGION_UNITS * CHUNK_SIZE);
    });
    Embedder
}

impl Drop for Embedder {
    fn drop(&mut self) {
        crate::c_api::embedder::mirs_thread_done();
        if !std::thread::panicking() {
            assert_eq!(
                crate::thread::check_current(),
                0,
                "the thread has no heap any more"
            );
        }
    }
}

fn advance_clock(ms: u64) {
    platform::TEST_CLOCK_MS.fetch_add(ms, Ordering::Relaxed);
}

fn invalid_frees() -> i64 {
    total(Counter::InvalidFrees)
}

/// Write `byte` over `p[..size]` and read it back at both ends.
fn fill(p: *mut u8, size: usize, byte: u8) {
    assert!(!p.is_null(), "allocation of {size} bytes failed");
    // SAFETY: `p` is a live block of at least `size` bytes.
    unsafe {
        core::ptr::write_bytes(p, byte, size);
        assert_eq!((*p, *p.add(size - 1)), (byte, byte));
    }
}

/// Does `p[..size]` hold `byte` everywhere? (A slice compare: one memcmp,
/// which Miri runs natively, instead of a loop it would interpret.)
fn holds(p: *const u8, size: usize, byte: u8) -> bool {
    // SAFETY: `p` is a live block of at least `size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(p, size) };
    bytes == std::vec![byte; size].as_slice()
}

// ---------------------------------------------------------------- the tests

#[test]
fn embedded_every_size_class_round_trips() {
    let _embedder = embedder();
    let live = crate::thread::check_current();
    let mut blocks = Vec::new();
    for bin in 1..BIN_HUGE {
        let size = bin_block_size(bin);
        if bin_of_size(size) != bin {
            continue; // a bin no size maps to
        }
        for (i, request) in [size - size / 8, size].into_iter().enumerate() {
            let p = alloc::malloc(request);
            let byte = (bin * 2 + i) as u8;
            fill(p, request, byte);
            let align = if request > 8 { 16 } else { 8 };
            assert_eq!(p as usize % align, 0, "malloc({request}) = {p:p}");
            assert!(api::owns(p));
            assert!(
                api::usable_size(p) >= request
                    && api::usable_size(p) <= size.max(MIN_BLOCK_WSIZE * WORD_SIZE),
                "malloc({request}): usable {} outside {request}..={size}",
                api::usable_size(p)
            );
            blocks.push((p, request, byte));
        }
    }
    assert_eq!(crate::thread::check_current(), live + blocks.len());
    for &(p, request, byte) in &blocks {
        assert!(holds(p, request, byte), "block of {request} overwritten");
        api::free(p);
    }
    assert_eq!(crate::thread::check_current(), live);
    let (a, b) = (alloc::malloc(0), alloc::malloc(0));
    assert!(!a.is_null() && !b.is_null() && a != b);
    api::free(a);
    api::free(b);
}

#[test]
fn embedded_calloc_zeroes_reused_and_fresh_memory() {
    let _embedder = embedder();
    for size in [1usize, 24, 1000, 5000, 100_000, 3 << 20] {
        let dirty = alloc::malloc(size);
        fill(dirty, size, 0xAB);
        api::free(dirty);
        let p = alloc::calloc(1, size);
        assert!(
            !p.is_null() && holds(p, size, 0),
            "calloc({size}) not zeroed"
        );
        api::free(p);
    }
    // Fresh region memory is not known to be zero (`mirs_region_add`): cleared too.
    let p = alloc::calloc(1000, 100);
    assert!(holds(p, 100_000, 0));
    api::free(p);
    assert!(alloc::calloc(usize::MAX / 2, 3).is_null());
    assert_eq!(platform::errno(), crate::platform::ENOMEM);
}

#[test]
fn embedded_realloc_grows_and_shrinks_keeping_contents() {
    let _embedder = embedder();
    let p = alloc::malloc(100);
    // SAFETY: 100 writable bytes.
    unsafe { (0..100).for_each(|i| *p.add(i) = i as u8) };
    let usable = api::usable_size(p);
    assert_eq!(api::realloc(p, usable), p, "grow within the block");
    assert_eq!(api::realloc(p, usable / 2 + 1), p, "a slight shrink");
    // Small -> large -> huge -> small, the first 100 bytes carried along.
    let mut q = p;
    for size in [10_000usize, 200_000, 5 << 20, 50] {
        let r = api::realloc(q, size);
        assert!(!r.is_null() && r != q, "realloc to {size} moves");
        assert!(api::usable_size(r) >= size);
        // SAFETY: at least 50 bytes were copied.
        unsafe { (0..50).for_each(|i| assert_eq!(*r.add(i), i as u8, "to {size}")) };
        q = r;
    }
    assert!(api::realloc(q, usize::MAX).is_null(), "a failed realloc");
    // SAFETY: the old block is intact after the failure.
    unsafe { (0..50).for_each(|i| assert_eq!(*q.add(i), i as u8)) };
    api::free(q);
    // realloc(NULL, n) allocates; realloc to 0 keeps a unique block.
    let r = api::realloc(core::ptr::null_mut(), 64);
    fill(r, 64, 1);
    let z = api::realloc(r, 0);
    assert!(!z.is_null());
    api::free(z);
    assert_eq!(crate::thread::check_current(), 0);
}

#[test]
fn embedded_aligned_blocks_and_their_interior_pointers() {
    let _embedder = embedder();
    let before = invalid_frees();
    let mut align = 8;
    while align <= 2 * CHUNK_SIZE {
        for size in [1usize, align / 2 + 1, align + 5] {
            let size = size.min(1 << 20);
            let p = alloc::malloc_aligned(size, align);
            assert!(!p.is_null(), "align {align} size {size}");
            assert_eq!(p as usize % align, 0, "align {align} size {size}");
            assert!(api::usable_size(p) >= size);
            fill(p, size, 0x5A);
            api::free(p);
        }
        align *= 2;
    }
    assert!(
        alloc::malloc_aligned(10, 24).is_null(),
        "not a power of two"
    );
    // Over-aligned blocks in a size class: only the handed-out pointer frees.
    let blocks: Vec<*mut u8> = (0..16).map(|_| alloc::malloc_aligned(100, 64)).collect();
    for &p in &blocks {
        fill(p, 100, 0xA5);
        api::free(p.wrapping_add(32));
        assert_eq!(api::usable_size(p.wrapping_add(32)), 0);
    }
    assert_eq!(
        invalid_frees() - before,
        16,
        "wrong interior pointers refused"
    );
    for &p in &blocks {
        assert!(holds(p, 100, 0xA5), "a refused free changed nothing");
        api::free(p);
    }
    assert_eq!(invalid_frees() - before, 16);
    crate::collect(false);
    assert_eq!(crate::thread::check_current(), 0);
}

#[test]
fn embedded_huge_blocks_round_trip_and_are_cached() {
    let _embedder = embedder();
    for size in [LARGE_OBJ_SIZE_MAX + 1, 5 << 20, 12 << 20] {
        let p = alloc::malloc(size);
        assert!(
            !p.is_null() && api::usable_size(p) >= size,
            "malloc({size})"
        );
        // SAFETY: the block has `size` bytes.
        unsafe {
            *p = 7;
            *p.add(size - 1) = 9;
        }
        api::free(p);
        if size > CHUNK_SIZE / 2 {
            // A huge chunk of its own, given back to the region when freed
            // (embedded mode caches none): first fit finds it again.
            let q = alloc::malloc(size);
            assert_eq!(q, p, "malloc({size}) again");
            api::free(q);
        }
    }
    // More than the region holds, and no page provider: null, ENOMEM, and
    // the memory is still usable afterwards.
    assert!(alloc::malloc((REGION_UNITS + 1) * CHUNK_SIZE).is_null());
    assert_eq!(platform::errno(), crate::platform::ENOMEM);
    assert!(alloc::malloc(usize::MAX / 2 + 1).is_null());
    let p = alloc::malloc(8 << 20);
    fill(p, 8 << 20, 3);
    api::free(p);
    crate::collect(true);
}

#[test]
fn embedded_free_lists_hold_their_invariants_through_collect() {
    let _embedder = embedder();
    let pages_before = current(Counter::Pages);
    api::invariants_hold_through_collect(1200);
    assert_eq!(
        current(Counter::Pages),
        pages_before,
        "every page went back to the arena"
    );
}

/// Free spans are purged once the purge delay has passed, not before;
/// `collect(true)` purges at once.
#[test]
fn embedded_purge_waits_for_the_delay() {
    let _embedder = embedder();
    let size = SLICE_SIZE; // a size class of pages of a few slices
                           // Pins the chunk: an empty chunk would go back whole (no spares
                           // embedded) instead of keeping its free slices to purge.
    let keep = alloc::malloc(16);
    let blocks: Vec<*mut u8> = (0..20).map(|_| alloc::malloc(size)).collect();
    blocks.iter().for_each(|&p| fill(p, size, 1));
    let purged = total(Counter::Purged);
    blocks.into_iter().for_each(api::free);
    crate::collect(false);
    assert_eq!(
        total(Counter::Purged),
        purged,
        "nothing purged before the delay"
    );
    advance_clock(crate::support::options::purge_delay_ms() + 1);
    crate::collect(false);
    let after_delay = total(Counter::Purged) - purged;
    assert!(
        after_delay >= 20 * size as i64 / 2,
        "purged {after_delay} bytes after the delay"
    );
    // Dirty again, then forced: purged without waiting.
    let p = alloc::malloc(size);
    fill(p, size, 2);
    api::free(p);
    let before = total(Counter::Purged);
    crate::collect(true);
    assert!(
        total(Counter::Purged) > before,
        "collect(true) purges at once"
    );
    api::free(keep);
}

/// A page emptied by `free` is retired, then handed back to the arena and
/// its slices serve another size class.
#[test]
fn embedded_emptied_pages_are_retired_and_reused() {
    let _embedder = embedder();
    let pages_before = current(Counter::Pages);
    // 96-byte blocks: two pages' worth (a 64 KiB page holds 682).
    let small: Vec<*mut u8> = (0..800).map(|_| alloc::malloc(96)).collect();
    let chunks_before = current(Counter::Chunks);
    let pages_small = current(Counter::Pages) - pages_before;
    assert!(
        pages_small >= 2,
        "{pages_small} pages for 800 blocks of 96 bytes"
    );
    small.iter().for_each(|&p| fill(p, 96, 4));
    let chunk_of = |p: *mut u8| p as usize & !CHUNK_MASK;
    let chunk = chunk_of(small[0]);
    small.into_iter().for_each(api::free);
    // Retired pages wait RETIRE_CYCLES allocations' worth of slow paths;
    // collect hands every empty page back at once.
    crate::collect(false);
    assert_eq!(
        current(Counter::Pages),
        pages_before,
        "empty pages went back"
    );
    let large: Vec<*mut u8> = (0..20).map(|_| alloc::malloc(2000)).collect();
    assert!(
        large.iter().any(|&p| chunk_of(p) == chunk),
        "the freed slices serve 2000 bytes"
    );
    assert_eq!(current(Counter::Chunks), chunks_before, "no new chunk");
    large.into_iter().for_each(api::free);
    crate::collect(false);
}

#[test]
fn embedded_invalid_frees_are_refused() {
    let _embedder = embedder();
    api::invalid_frees_are_refused();
}

#[cfg(any(debug_assertions, feature = "secure"))]
#[test]
fn embedded_double_frees_are_refused() {
    let _embedder = embedder();
    for size in [48usize, 5000, 100_000] {
        let p = alloc::malloc(size);
        let keep = alloc::malloc(size);
        api::free(p);
        let before = invalid_frees();
        api::free(p);
        assert_eq!(invalid_frees() - before, 1, "double free of {size} bytes");
        let a = alloc::malloc(size);
        let b = alloc::malloc(size);
        assert_ne!(
            a, b,
            "{size}: a double free must not hand a block out twice"
        );
        for x in [a, b, keep] {
            api::free(x);
        }
    }
    // A huge block: its chunk is cached after the first free.
    let p = alloc::malloc(5 << 20);
    api::free(p);
    let before = invalid_frees();
    api::free(p);
    assert_eq!(invalid_frees() - before, 1, "double free of a huge block");
    crate::collect(false);
    assert_eq!(crate::thread::check_current(), 0);
}

/// With the region full, a small allocation that needs a new page fails
/// (after `recover` found nothing to give back) and leaves the heap sound;
/// once a block is freed the same request succeeds.
#[test]
fn embedded_out_of_memory_recovers() {
    let _embedder = embedder();
    crate::collect(true);
    let retired: Vec<*mut u8> = (0..2).map(|_| alloc::malloc(8000)).collect();
    retired.iter().for_each(|&p| fill(p, 8000, 5));
    let mut huge = Vec::new();
    loop {
        let p = alloc::malloc(CHUNK_SIZE - 64 * 1024);
        if p.is_null() {
            break;
        }
        huge.push(p);
        assert!(
            huge.len() <= REGION_UNITS,
            "more chunks than the region holds"
        );
    }
    assert!(
        huge.len() >= REGION_UNITS - 2,
        "only {} chunks fitted",
        huge.len()
    );
    // A size class whose pages are full or absent: needs a fresh page.
    let mut small = Vec::new();
    let failed = loop {
        let p = alloc::malloc(3000);
        if p.is_null() {
            break small.len();
        }
        small.push(p);
        assert!(small.len() < 100_000);
    };
    assert_eq!(platform::errno(), crate::platform::ENOMEM);
    crate::thread::check_current();
    // Pages emptied by free stay with the heap for a while (retired):
    // out of memory, `recover` hands them back and the request is served.
    retired.into_iter().for_each(api::free);
    let p = alloc::malloc(3000);
    assert!(
        !p.is_null(),
        "malloc(3000) from the emptied pages ({failed} fitted before)"
    );
    small.push(p);
    api::free(huge.pop().expect("at least one chunk"));
    let p = alloc::malloc(3000);
    assert!(
        !p.is_null(),
        "malloc(3000) after a chunk came back ({failed} fitted before)"
    );
    fill(p, 3000, 6);
    small.push(p);
    small.into_iter().chain(huge).for_each(api::free);
    crate::collect(true);
    assert_eq!(crate::thread::check_current(), 0);
}

/// realloc of a huge block grows it over the free 4 MiB units after it in
/// its region (issue 20), where it lies, and shrinks it there too; the
/// chunk map follows its extent.
#[test]
fn embedded_huge_blocks_grow_where_they_lie() {
    let _e = embedder();
    let p = alloc::malloc(5 << 20);
    assert!(!p.is_null());
    fill(p, 5 << 20, 0x5e);
    let remaps = total(Counter::HugeRemaps);
    let q = api::realloc(p, 11 << 20);
    assert_eq!(q, p, "grown over the free units after it");
    assert_eq!(total(Counter::HugeRemaps), remaps + 1);
    assert!(holds(q, 5 << 20, 0x5e));
    assert!(api::usable_size(q) >= 11 << 20);
    let base = q as usize & !CHUNK_MASK;
    assert_eq!(
        crate::mem::chunk_map::chunk_containing(q as usize + (10 << 20)),
        Some(base)
    );
    let s = api::realloc(q, 5 << 20);
    assert_eq!(s, q, "shrunk where it lies");
    assert_eq!(
        crate::mem::chunk_map::chunk_containing(s as usize + (10 << 20)),
        None
    );
    assert!(holds(s, 5 << 20, 0x5e));
    api::free(s);
}

/// A thread that allocates after `mirs_thread_done` (an ArceOS task's exit
/// path after its exit hook): without `thread-local` it gets a new heap
/// under its hook id (a later `mirs_thread_done`, or the alive hook, ends
/// it); with `thread-local` each such allocation gets a heap given back
/// right after it, so no heap is left owned by the thread-local's address,
/// which the embedder reuses for a later thread.
#[test]
fn embedded_allocations_after_thread_done() {
    let _e = embedder();
    let early = alloc::malloc(64);
    fill(early, 64, 0x11);
    crate::c_api::embedder::mirs_thread_done();
    assert!(crate::heap::is_empty_heap(crate::thread::heap_get()));
    let threads = current(Counter::Threads);
    let late = alloc::malloc(200);
    fill(late, 200, 0x22);
    assert!(holds(early, 64, 0x11), "the abandoned page keeps its block");
    let has_heap = !crate::heap::is_empty_heap(crate::thread::heap_get());
    assert_eq!(has_heap, cfg!(not(feature = "thread-local")));
    assert_eq!(
        current(Counter::Threads),
        threads + i64::from(has_heap),
        "heaps alive"
    );
    let invalid = invalid_frees();
    api::free(late);
    api::free(early);
    assert_eq!(invalid_frees(), invalid, "both frees accepted");
    let again = alloc::malloc(200);
    fill(again, 200, 0x33);
    api::free(again);
}
