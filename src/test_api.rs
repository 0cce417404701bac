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
