//! A C-ABI malloc shim over a peer allocator, built as a cdylib for
//! `LD_PRELOAD`. Each exported libc name forwards to the peer's own
//! (prefixed) entry point; exactly one peer feature must be enabled.
#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_char, c_int, c_void};

#[cfg(not(any(feature = "mimalloc", feature = "jemalloc")))]
compile_error!("enable one peer feature: mimalloc, mimalloc-v2 or jemalloc");
#[cfg(all(feature = "mimalloc", feature = "jemalloc"))]
compile_error!("enable only one peer feature");

/// The peer's entry points under one set of names.
#[cfg(feature = "mimalloc")]
mod peer {
    use core::ffi::{c_int, c_void};
    // Keep the sys crate (and so its static C library) linked.
    use libmimalloc_sys as _;
    extern "C" {
        pub fn mi_malloc(size: usize) -> *mut c_void;
        pub fn mi_calloc(n: usize, size: usize) -> *mut c_void;
        pub fn mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
        pub fn mi_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void;
        pub fn mi_free(p: *mut c_void);
        pub fn mi_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int;
        pub fn mi_aligned_alloc(align: usize, size: usize) -> *mut c_void;
        pub fn mi_memalign(align: usize, size: usize) -> *mut c_void;
        pub fn mi_valloc(size: usize) -> *mut c_void;
        pub fn mi_pvalloc(size: usize) -> *mut c_void;
        pub fn mi_malloc_usable_size(p: *const c_void) -> usize;
        pub fn mi_version() -> c_int;
    }
    pub use mi_aligned_alloc as aligned_alloc;
    pub use mi_calloc as calloc;
    pub use mi_free as free;
    pub use mi_malloc as malloc;
    pub use mi_malloc_usable_size as usable_size;
    pub use mi_memalign as memalign;
    pub use mi_posix_memalign as posix_memalign;
    pub use mi_pvalloc as pvalloc;
    pub use mi_realloc as realloc;
    pub use mi_reallocarray as reallocarray;
    pub use mi_valloc as valloc;
    pub unsafe fn version() -> c_int {
        mi_version()
    }
    #[cfg(feature = "mimalloc-v2")]
    pub const NAME: &[u8] = b"mimalloc-v2\0";
    #[cfg(not(feature = "mimalloc-v2"))]
    pub const NAME: &[u8] = b"mimalloc-v3\0";
}

#[cfg(feature = "jemalloc")]
mod peer {
    use core::ffi::{c_int, c_void};
    use tikv_jemalloc_sys as je;
    pub use je::{aligned_alloc, calloc, free, malloc, malloc_usable_size as usable_size,
                 posix_memalign, realloc};
    extern "C" {
        #[link_name = "_rjem_memalign"]
        pub fn memalign(align: usize, size: usize) -> *mut c_void;
        #[link_name = "_rjem_valloc"]
        pub fn valloc(size: usize) -> *mut c_void;
        fn __errno_location() -> *mut c_int;
    }
    /// jemalloc has no pvalloc: page-aligned, size rounded up to pages.
    pub unsafe fn pvalloc(size: usize) -> *mut c_void {
        let page = 4096usize;
        match size.checked_add(page - 1) {
            Some(s) => memalign(page, (s & !(page - 1)).max(page)),
            None => core::ptr::null_mut(),
        }
    }
    /// jemalloc exports no reallocarray under its prefix.
    pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
        match n.checked_mul(size) {
            Some(total) => realloc(p, total),
            None => {
                *__errno_location() = 12; // ENOMEM
                core::ptr::null_mut()
            }
        }
    }
    pub unsafe fn version() -> c_int {
        5
    }
    pub const NAME: &[u8] = b"jemalloc\0";
}

#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    peer::malloc(size)
}
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    peer::calloc(n, size)
}
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    peer::realloc(p, size)
}
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    peer::reallocarray(p, n, size)
}
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    peer::free(p)
}
/// Old SunOS name some programs still call.
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    peer::free(p)
}
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    peer::posix_memalign(out, align, size)
}
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    peer::aligned_alloc(align, size)
}
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    peer::memalign(align, size)
}
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    peer::valloc(size)
}
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    peer::pvalloc(size)
}
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        0
    } else {
        peer::usable_size(p)
    }
}
/// Lets a test confirm which shim is interposed (`dlsym(RTLD_DEFAULT, ...)`).
#[no_mangle]
pub extern "C" fn mirs_bench_peer_name() -> *const c_char {
    peer::NAME.as_ptr().cast()
}
#[no_mangle]
pub extern "C" fn mirs_bench_peer_version() -> c_int {
    unsafe { peer::version() }
}
