//! The libc names, exported with the `override` feature so that linking
//! libmirs.a or preloading libmirs.so replaces glibc's malloc. Each follows
//! glibc's documented behaviour (see the table in `c_api`).

use super::prefixed::*;
use super::EINVAL;
use crate::alloc;
use crate::constants::OS_PAGE_SIZE;
use core::ffi::{c_int, c_void};

#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc::malloc(size).cast()
}

#[no_mangle]
pub extern "C" fn free(p: *mut c_void) {
    crate::free::free(p.cast());
}

#[no_mangle]
pub extern "C" fn cfree(p: *mut c_void) {
    crate::free::free(p.cast());
}

#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    mirs_calloc(count, size)
}

#[no_mangle]
pub extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    mirs_realloc(p, size)
}

#[no_mangle]
pub extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(total) => mirs_realloc(p, total),
        None => crate::heap::out_of_memory().cast(),
    }
}

/// # Safety
/// `out` is valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mirs_posix_memalign(out, alignment, size) }
}

#[no_mangle]
pub extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    mirs_aligned_alloc(alignment, size)
}

/// glibc: a non-power-of-two alignment is rounded up to the next power of
/// two; one above `SIZE_MAX / 2 + 1` fails with EINVAL.
#[no_mangle]
pub extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    let Some(alignment) = alignment.checked_next_power_of_two() else {
        crate::platform::set_errno(EINVAL);
        return core::ptr::null_mut();
    };
    alloc::malloc_aligned(size, alignment.max(1)).cast()
}

#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc::malloc_aligned(size, OS_PAGE_SIZE).cast()
}

/// Page aligned, size rounded up to a whole page (at least one).
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match size.max(1).checked_next_multiple_of(OS_PAGE_SIZE) {
        Some(rounded) => alloc::malloc_aligned(rounded, OS_PAGE_SIZE).cast(),
        None => crate::heap::out_of_memory().cast(),
    }
}

#[no_mangle]
pub extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    mirs_usable_size(p)
}

/// Collect and return unused memory to the OS; 1 when something was released.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    let before = crate::stats::current(crate::stats::Counter::Reserved);
    let purged = crate::stats::total(crate::stats::Counter::Purged);
    crate::collect(true);
    let released = crate::stats::current(crate::stats::Counter::Reserved) < before
        || crate::stats::total(crate::stats::Counter::Purged) > purged;
    released as c_int
}

#[no_mangle]
pub extern "C" fn malloc_stats() {
    crate::stats_print();
}

/// glibc's `struct mallinfo2`, filled from mirs's statistics.
#[repr(C)]
pub struct Mallinfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

#[no_mangle]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    use crate::stats::{current, peak, Counter};
    let reserved = current(Counter::Reserved).max(0) as usize;
    let in_use = current(Counter::PageBytes).max(0) as usize;
    Mallinfo2 {
        arena: reserved,
        ordblks: current(Counter::Pages).max(0) as usize,
        smblks: 0,
        hblks: current(Counter::Chunks).max(0) as usize,
        hblkhd: 0,
        usmblks: peak(Counter::PageBytes).max(0) as usize,
        fsmblks: 0,
        uordblks: in_use,
        fordblks: reserved.saturating_sub(in_use),
        keepcost: 0,
    }
}

// glibc's internal aliases, which some programs and libraries call directly.

#[no_mangle]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

#[no_mangle]
pub extern "C" fn __libc_free(p: *mut c_void) {
    free(p)
}

#[no_mangle]
pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    calloc(count, size)
}

#[no_mangle]
pub extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    realloc(p, size)
}

#[no_mangle]
pub extern "C" fn __libc_memalign(alignment: usize, size: usize) -> *mut c_void {
    memalign(alignment, size)
}

#[no_mangle]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    valloc(size)
}

#[no_mangle]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    pvalloc(size)
}

/// # Safety
/// `out` is valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn __posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mirs_posix_memalign(out, alignment, size) }
}
