//! mirs as the `malloc` of ArceOS's axlibc (crates 0.3.0-preview.3).
//!
//! A user's change to axlibc becomes a dependency on this crate, a few
//! deletions and two calls in `pthread.rs` (docs/arceos.md, which
//! `c_tests/arceos/switch_axlibc.py` applies by script):
//!
//! - the C allocation functions (`malloc free calloc realloc posix_memalign
//!   aligned_alloc memalign malloc_usable_size`) forwarded to mirs;
//! - mirs's embedder hooks: `mirs_hook_thread_id` (the axtask id) and
//!   `mirs_hook_write` (the console);
//! - feature `page-provider`: segments from axalloc's page allocator, capped
//!   at `MIRS_PROVIDER_MAX_MB` MiB (build time) so mirs cannot take the
//!   kernel's own heap; registered by an `.init_array` constructor, which
//!   axruntime runs after its allocator is up and before `main`;
//! - [`thread_entry`] / [`thread_exiting`]: the pthread trampoline that calls
//!   `mirs_thread_done()` when a C thread ends.
//!
//! Nothing here allocates through mirs: the trampoline's two words come
//! from the kernel heap (axlibc's Rust `alloc`).

#![no_std]

extern crate alloc;

use core::ffi::{c_int, c_void};
use mirs::c_api::prefixed as m;

// ---------------------------------------------------------------- the C names

/// C `malloc`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    m::mirs_malloc(size)
}

/// C `free`.
///
/// # Safety
/// C's contract (see `mirs_free`).
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the caller's contract is mirs_free's.
    unsafe { m::mirs_free(p) }
}

/// C `calloc` (NULL and ENOMEM when `n * size` overflows).
#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    m::mirs_calloc(n, size)
}

/// C `realloc`.
///
/// # Safety
/// C's contract (see `mirs_realloc`).
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract is mirs_realloc's.
    unsafe { m::mirs_realloc(p, size) }
}

/// C `posix_memalign`: EINVAL for an alignment that is not a power of two
/// multiple of `sizeof(void *)`, ENOMEM when out of memory.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: the caller's contract is mirs_posix_memalign's.
    unsafe { m::mirs_posix_memalign(out, align, size) }
}

/// C11 `aligned_alloc`.
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    m::mirs_aligned_alloc(align, size)
}

/// `memalign` (glibc: an alignment that is not a power of two is rounded up).
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.max(8).checked_next_power_of_two() {
        Some(align) => m::mirs_aligned_alloc(align, size),
        // Larger than any address space: as an impossible size.
        None => m::mirs_malloc(usize::MAX),
    }
}

/// `malloc_usable_size`.
///
/// # Safety
/// See `mirs_usable_size`.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: the caller's contract is mirs_usable_size's.
    unsafe { m::mirs_usable_size(p) }
}

// ---------------------------------------------------------------- mirs's hooks

/// mirs's thread identity: the axtask id (non-zero, never reused).
#[no_mangle]
pub extern "C" fn mirs_hook_thread_id() -> usize {
    #[cfg(feature = "multitask")]
    {
        axtask::current().id().as_u64() as usize
    }
    #[cfg(not(feature = "multitask"))]
    {
        1
    }
}

/// mirs's output (statistics, warnings): the console.
///
/// # Safety
/// `bytes..bytes+len` is readable (mirs passes its own buffers).
#[no_mangle]
pub unsafe extern "C" fn mirs_hook_write(bytes: *const u8, len: usize) {
    if bytes.is_null() || len == 0 {
        return;
    }
    // SAFETY: the caller passes `len` readable bytes.
    let s = unsafe { core::slice::from_raw_parts(bytes, len) };
    axhal::console::write_bytes(s);
}

// ---------------------------------------------------------------- page provider

#[cfg(feature = "page-provider")]
mod provider {
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicUsize, Ordering};

    include!(concat!(env!("OUT_DIR"), "/provider_cap.rs"));

    const PAGE: usize = 4096;

    /// Bytes currently held from axalloc, and the most ever held.
    static HELD: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    /// Reserve `size` bytes under the cap; false when they do not fit.
    fn reserve(size: usize) -> bool {
        let mut held = HELD.load(Ordering::Relaxed);
        loop {
            let Some(next) = held.checked_add(size) else {
                return false;
            };
            if PROVIDER_CAP_BYTES != 0 && next > PROVIDER_CAP_BYTES {
                return false;
            }
            match HELD.compare_exchange_weak(held, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    PEAK.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(now) => held = now,
            }
        }
    }

    /// `size` bytes (a multiple of 4 KiB) at `align` (a power of two) from
    /// axalloc's page allocator, or NULL (cap reached, or axalloc is out).
    pub unsafe extern "C" fn pages_alloc(size: usize, align: usize) -> *mut c_void {
        if size == 0 || !size.is_multiple_of(PAGE) || !reserve(size) {
            return core::ptr::null_mut();
        }
        match axalloc::global_allocator().alloc_pages(
            size / PAGE,
            align.max(PAGE),
            axalloc::UsageKind::Global,
        ) {
            Ok(va) => va as *mut c_void,
            Err(_) => {
                HELD.fetch_sub(size, Ordering::Relaxed);
                core::ptr::null_mut()
            }
        }
    }

    /// Give back what [`pages_alloc`] returned.
    pub unsafe extern "C" fn pages_free(p: *mut c_void, size: usize) {
        axalloc::global_allocator().dealloc_pages(
            p as usize,
            size / PAGE,
            axalloc::UsageKind::Global,
        );
        HELD.fetch_sub(size, Ordering::Relaxed);
    }

    /// Bytes held from axalloc now.
    pub fn held() -> usize {
        HELD.load(Ordering::Relaxed)
    }

    /// The most bytes held from axalloc at once.
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }

    extern "C" fn register() {
        mirs::c_api::embedder::mirs_page_provider_set(Some(pages_alloc), Some(pages_free));
    }

    /// axruntime runs `.init_array` (ctor_bare) once its allocator is set
    /// up, before `main` and before any C code can allocate.
    #[used]
    #[link_section = ".init_array"]
    static REGISTER: extern "C" fn() = register;
}

/// Bytes the page provider holds from axalloc now (0 without `page-provider`).
#[no_mangle]
pub extern "C" fn mirs_arceos_provider_held() -> usize {
    #[cfg(feature = "page-provider")]
    {
        provider::held()
    }
    #[cfg(not(feature = "page-provider"))]
    {
        0
    }
}

/// The most bytes the page provider held at once (0 without `page-provider`).
#[no_mangle]
pub extern "C" fn mirs_arceos_provider_peak() -> usize {
    #[cfg(feature = "page-provider")]
    {
        provider::peak()
    }
    #[cfg(not(feature = "page-provider"))]
    {
        0
    }
}

/// The cap on [`mirs_arceos_provider_held`] (`MIRS_PROVIDER_MAX_MB`; 0: none).
#[no_mangle]
pub extern "C" fn mirs_arceos_provider_cap() -> usize {
    #[cfg(feature = "page-provider")]
    {
        provider::PROVIDER_CAP_BYTES
    }
    #[cfg(not(feature = "page-provider"))]
    {
        0
    }
}

// ---------------------------------------------------------------- thread exit

/// A C thread routine.
pub type StartRoutine = extern "C" fn(arg: *mut c_void) -> *mut c_void;

struct Start {
    routine: StartRoutine,
    arg: *mut c_void,
}

extern "C" fn trampoline(start: *mut c_void) -> *mut c_void {
    // SAFETY: `start` is the box `thread_entry` leaked for this thread, and
    // only this thread takes it back.
    let Start { routine, arg } = *unsafe { alloc::boxed::Box::from_raw(start.cast::<Start>()) };
    let ret = routine(arg);
    mirs::c_api::embedder::mirs_thread_done();
    ret
}

/// The entry point and argument to create a C thread with so that it calls
/// `mirs_thread_done()` when `routine` returns (for `pthread_exit`, call
/// [`thread_exiting`]). None when the kernel heap cannot hold the two words
/// (`pthread_create` then fails with EAGAIN). When thread creation fails,
/// give the argument to [`thread_entry_unused`].
pub fn thread_entry(
    routine: StartRoutine,
    arg: *mut c_void,
) -> Option<(StartRoutine, *mut c_void)> {
    let layout = core::alloc::Layout::new::<Start>();
    // SAFETY: the layout is not zero-sized.
    let p = unsafe { alloc::alloc::alloc(layout) }.cast::<Start>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is fresh memory for one `Start`; Box::from_raw in the
    // trampoline frees it with the same global allocator and layout.
    unsafe { p.write(Start { routine, arg }) };
    Some((trampoline, p.cast()))
}

/// Free the argument of a [`thread_entry`] whose thread was never created.
///
/// # Safety
/// `arg` came from `thread_entry` and no thread runs the trampoline with it.
pub unsafe fn thread_entry_unused(arg: *mut c_void) {
    // SAFETY: per the contract, the box is ours again.
    drop(unsafe { alloc::boxed::Box::from_raw(arg.cast::<Start>()) });
}

/// The calling C thread is about to end (`pthread_exit`): hand its heap back.
pub fn thread_exiting() {
    mirs::c_api::embedder::mirs_thread_done();
}
