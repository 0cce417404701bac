//! The `mirs_*` C API (always exported; cbindgen writes `include/mirs.h`
//! from these declarations). Semantics follow glibc's unprefixed names.

use crate::entry::alloc;
use crate::platform::{EINVAL, ENOMEM};
use core::ffi::{c_char, c_int, c_long, c_void};

/// Allocate `size` bytes; NULL with errno ENOMEM on failure.
#[no_mangle]
pub extern "C" fn mirs_malloc(size: usize) -> *mut c_void {
    alloc::malloc(size).cast()
}

/// Free a block from any thread. NULL is ignored; a pointer that is not a
/// live block (foreign, interior, already freed) is refused, counted and
/// reported on stderr (`mirs: free(): invalid pointer ...`, rate-limited;
/// `MIRS_VERBOSE=0` silences it, `MIRS_ABORT_ON_ERROR=1` aborts).
///
/// # Safety
/// C's contract: `p` is not used afterwards, and no other thread frees it
/// at the same time.
#[no_mangle]
pub unsafe extern "C" fn mirs_free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { crate::entry::free::free(p.cast()) };
}

/// Allocate `count * size` zeroed bytes; NULL with ENOMEM on overflow or failure.
#[no_mangle]
pub extern "C" fn mirs_calloc(count: usize, size: usize) -> *mut c_void {
    alloc::calloc(count, size).cast()
}

/// Resize a block. `mirs_realloc(NULL, n)` is `mirs_malloc(n)`; `mirs_realloc(p, 0)`
/// frees `p` and returns NULL; on failure returns NULL and `p` stays valid.
/// A pointer that is not a live block gives NULL with EINVAL and is left alone.
///
/// # Safety
/// C's contract: `p` is null or a block the caller may free, which no other
/// thread frees or uses meanwhile.
#[no_mangle]
pub unsafe extern "C" fn mirs_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { realloc_c(p, size) }
}

/// `mirs_realloc`'s body, which libc's `realloc` shares: a call from one
/// exported function to another goes through the GOT (interposable).
///
/// # Safety
/// As [`mirs_realloc`].
#[inline(always)]
pub(super) unsafe fn realloc_c(p: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 && !p.is_null() {
        // SAFETY: forwarded contract.
        unsafe { crate::entry::free::free(p.cast()) };
        return core::ptr::null_mut();
    }
    // SAFETY: forwarded contract.
    unsafe { alloc::realloc(p.cast(), size) }.cast()
}

/// Store a block of `size` bytes aligned to `alignment` in `*out`. Returns
/// EINVAL when `alignment` is not a power of two multiple of `sizeof(void*)`
/// (errno untouched), ENOMEM when out of memory (errno ENOMEM too, as glibc
/// leaves it); `*out` is untouched on error.
///
/// # Safety
/// `out` is valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn mirs_posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { posix_memalign_c(out, alignment, size) }
}

/// `mirs_posix_memalign`'s body, shared with libc's names (see `realloc_c`).
///
/// # Safety
/// As [`mirs_posix_memalign`].
#[inline(always)]
pub(super) unsafe fn posix_memalign_c(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    if !alignment.is_power_of_two()
        || !alignment.is_multiple_of(core::mem::size_of::<*mut c_void>())
    {
        return EINVAL;
    }
    // glibc's posix_memalign reports through its result, yet its internal
    // allocation leaves errno at ENOMEM on failure; programs rely on that
    // (glibc's tst-malloc-thread-fail), so the failure's ENOMEM stays.
    let p = alloc::malloc_aligned(size, alignment);
    if p.is_null() {
        return ENOMEM;
    }
    // SAFETY: the caller passes a writable `out`.
    unsafe { *out = p.cast() };
    0
}

/// `size` bytes aligned to `alignment` (any power of two); NULL with EINVAL
/// for another alignment, ENOMEM when out of memory. Any size is accepted.
#[no_mangle]
pub extern "C" fn mirs_aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    aligned_alloc_c(alignment, size)
}

/// `mirs_aligned_alloc`'s body, shared with libc's name (see `realloc_c`).
#[inline(always)]
pub(super) fn aligned_alloc_c(alignment: usize, size: usize) -> *mut c_void {
    if !alignment.is_power_of_two() {
        crate::platform::set_errno(EINVAL);
        return core::ptr::null_mut();
    }
    alloc::malloc_aligned(size, alignment).cast()
}

/// Usable bytes of a live block; 0 for NULL and anything else (foreign,
/// interior or freed pointers).
///
/// # Safety
/// No other thread frees `p` or writes its block meanwhile.
#[no_mangle]
pub unsafe extern "C" fn mirs_usable_size(p: *const c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { alloc::usable_size(p.cast()) }
}

/// True when `p` is a live block mirs handed out: false once it is freed,
/// and for interior and foreign pointers.
///
/// # Safety
/// No other thread frees `p` or writes its block meanwhile.
#[no_mangle]
pub unsafe extern "C" fn mirs_owns(p: *const c_void) -> bool {
    // SAFETY: forwarded contract.
    unsafe { alloc::owns(p.cast()) }
}

/// Collect the calling thread's heap; `force` also returns all unused memory to the OS.
#[no_mangle]
pub extern "C" fn mirs_collect(force: bool) {
    crate::thread::collect_current(force);
}

/// Print statistics to stderr.
#[no_mangle]
pub extern "C" fn mirs_stats_print() {
    crate::report::print_text();
}

/// The version: major * 10000 + minor * 100 + patch.
#[no_mangle]
pub extern "C" fn mirs_version() -> c_int {
    crate::base::version::VERSION
}

/// The statistics as one JSON object (integers; byte counts in bytes; see
/// mirs(3)) written to `buf`, NUL-terminated and truncated to `len` bytes.
/// Returns the JSON's length without the NUL, as `snprintf` does: a result
/// `>= len` means `buf` was too small (`mirs_stats_json(NULL, 0)` asks the
/// size; leave some room, the figures may grow meanwhile).
///
/// # Safety
/// `buf` is NULL with `len` 0, or valid for writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mirs_stats_json(buf: *mut c_char, len: usize) -> usize {
    if buf.is_null() || len == 0 {
        return crate::report::json_into(&mut []);
    }
    // SAFETY: the caller passes `len` writable bytes at `buf`.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    crate::report::json_into(out)
}

/// The run-time options (mirs(3) and the README list them with their
/// `MIRS_*` environment variables, defaults and ranges).
#[allow(non_camel_case_types)]
#[repr(C)]
pub enum mirs_option_t {
    /// Print the statistics table to stderr at process exit (0 or 1).
    MIRS_OPTION_SHOW_STATS = 0,
    /// Print warnings (invalid and double frees, ...) to stderr (0 or 1).
    MIRS_OPTION_VERBOSE = 1,
    /// Abort on a detected invalid or double free (0 or 1).
    MIRS_OPTION_ABORT_ON_ERROR = 2,
    /// Milliseconds before unused memory goes back to the OS (0 to 10^9).
    MIRS_OPTION_PURGE_DELAY = 3,
    /// Print the statistics as JSON to stderr at process exit (0 or 1).
    MIRS_OPTION_STATS_JSON = 4,
    /// Warnings printed at most (0 to 10^9).
    MIRS_OPTION_MAX_WARNINGS = 5,
    /// Ask for transparent huge pages on the 2 MiB pages that big blocks
    /// cover whole (0 or 1; hosted).
    MIRS_OPTION_HUGE_PAGES = 6,
}

/// The value of `option` (a `mirs_option_t`); -1 for an unknown option.
#[no_mangle]
pub extern "C" fn mirs_option_get(option: c_int) -> c_long {
    match usize::try_from(option)
        .ok()
        .and_then(crate::support::options::from_index)
    {
        Some(o) => c_long::try_from(crate::support::options::get(o)).unwrap_or(c_long::MAX),
        None => -1,
    }
}

/// Set `option` (a `mirs_option_t`) to `value`: 0, or EINVAL (nothing
/// changed) for an unknown option or a value out of its range.
#[no_mangle]
// `long` is 32 bits on some targets, where the conversion is not the identity.
#[allow(clippy::useless_conversion)]
pub extern "C" fn mirs_option_set(option: c_int, value: c_long) -> c_int {
    match usize::try_from(option)
        .ok()
        .and_then(crate::support::options::from_index)
    {
        Some(o) if crate::support::options::set(o, i64::from(value)) => 0,
        _ => EINVAL,
    }
}
