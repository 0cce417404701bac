//! Single-thread behaviour of the core entry points.

use crate::constants::*;
use crate::{alloc, free, heap, platform};
use std::vec::Vec;

fn generic_count() -> u64 {
    // SAFETY: the test thread's own heap.
    unsafe { (*platform::heap_get()).generic_count }
}

#[test]
fn malloc_free_reuses_the_block_on_the_fast_path() {
    let p = alloc::malloc(16);
    assert!(!p.is_null());
    free::free(p);
    let before = generic_count();
    for _ in 0..1000 {
        let q = alloc::malloc(16);
        free::free(q);
    }
    assert!(
        generic_count() - before <= 8,
        "slow path taken {} times",
        generic_count() - before
    );
    heap::check_current();
}

#[test]
fn cycling_sizes_stay_on_the_fast_path() {
    for i in 0..2000usize {
        free::free(alloc::malloc(16 + (i * 8) % 497));
    }
    let before = generic_count();
    for i in 0..100_000usize {
        free::free(alloc::malloc(16 + (i * 8) % 497));
    }
    let slow = generic_count() - before;
    assert!(slow < 1000, "slow path taken {slow} times in 100000 pairs");
    heap::check_current();
}
