//! The unsafe entry points as the tests call them. Every test frees only
//! blocks it owns, and each deliberate misuse (double or invalid frees) is
//! one mirs promises to detect; that is what these tests check.

pub fn free(p: *mut u8) {
    // SAFETY: see the module comment.
    unsafe { crate::entry::free::free(p) }
}

pub fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: see the module comment.
    unsafe { crate::entry::alloc::realloc(p, size) }
}

pub fn usable_size(p: *const u8) -> usize {
    // SAFETY: see the module comment.
    unsafe { crate::entry::alloc::usable_size(p) }
}

pub fn owns(p: *const u8) -> bool {
    // SAFETY: see the module comment.
    unsafe { crate::entry::alloc::owns(p) }
}

/// Allocate `n` blocks of mixed small sizes, free every third, collect,
/// free the rest, collect with force: the calling thread's heap must pass
/// its invariant check at each step and hold exactly the live blocks.
pub fn invariants_hold_through_collect(n: usize) {
    let blocks: std::vec::Vec<*mut u8> = (0..n)
        .map(|i| crate::entry::alloc::malloc(8 + i % 300))
        .collect();
    assert_eq!(crate::thread::check_current(), blocks.len());
    for (i, &p) in blocks.iter().enumerate() {
        if i % 3 == 0 {
            free(p);
        }
    }
    crate::collect(false);
    let kept = blocks.len() - blocks.len().div_ceil(3);
    assert_eq!(crate::thread::check_current(), kept);
    for (i, &p) in blocks.iter().enumerate() {
        if i % 3 != 0 {
            free(p);
        }
    }
    crate::collect(true);
    assert_eq!(crate::thread::check_current(), 0);
}

/// Free pointers mirs must refuse (stack, static, interior, uncarved,
/// inside a singleton): each is counted and ignored, the blocks around
/// them stay intact and free cleanly afterwards.
pub fn invalid_frees_are_refused() {
    use crate::support::stats::{total, Counter};
    let before = total(Counter::InvalidFrees);
    let mut on_stack = [0u8; 64];
    free(on_stack.as_mut_ptr());
    static mut STATIC_BYTES: [u8; 64] = [0; 64];
    free(core::ptr::addr_of_mut!(STATIC_BYTES).cast());
    let p = crate::entry::alloc::malloc(64);
    free(p.wrapping_add(8)); // interior pointer
    let q = crate::entry::alloc::malloc(64);
    free(q.wrapping_add(16 * 1024)); // not yet carved part of the page
    let huge = crate::entry::alloc::malloc(5 << 20);
    free(huge.wrapping_add(16)); // inside a singleton: not its start
    assert_eq!(total(Counter::InvalidFrees) - before, 5);
    assert!(owns(p) && !owns(on_stack.as_ptr()) && !owns(p.wrapping_add(8)));
    // The page is intact: the next blocks are distinct and usable.
    let r = crate::entry::alloc::malloc(64);
    assert!(r != p && r != q);
    for x in [p, q, r, huge] {
        free(x);
    }
    assert_eq!(
        total(Counter::InvalidFrees) - before,
        5,
        "the right pointers free cleanly"
    );
    crate::thread::check_current();
}
