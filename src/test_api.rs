//! The unsafe entry points as the tests call them. Every test frees only
//! blocks it owns, and each deliberate misuse (double or invalid frees) is
//! one mirs promises to detect; that is what these tests check.

pub fn free(p: *mut u8) {
    // SAFETY: see the module comment.
    unsafe { crate::free::free(p) }
}

pub fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: see the module comment.
    unsafe { crate::alloc::realloc(p, size) }
}

pub fn usable_size(p: *const u8) -> usize {
    // SAFETY: see the module comment.
    unsafe { crate::alloc::usable_size(p) }
}

pub fn owns(p: *const u8) -> bool {
    // SAFETY: see the module comment.
    unsafe { crate::alloc::owns(p) }
}

/// Allocate `n` blocks of mixed small sizes, free every third, collect,
/// free the rest, collect with force: the calling thread's heap must pass
/// its invariant check at each step and hold exactly the live blocks.
pub fn invariants_hold_through_collect(n: usize) {
    let blocks: std::vec::Vec<*mut u8> =
        (0..n).map(|i| crate::alloc::malloc(8 + i % 300)).collect();
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
