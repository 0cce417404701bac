//! C mimalloc as the `malloc` of ArceOS's axlibc (crates 0.3.0-preview.3):
//! the reference peer of mirs in `make test-arceos` / `make bench-arceos`
//! (docs/arceos.md, "C mimalloc as a variant").
//!
//! The same shape as `arceos-glue/` (crate `mirs-arceos`), so
//! `c_tests/arceos/switch_axlibc.py` switches axlibc to either:
//!
//! - `malloc` and the other C names are mimalloc's own (aliases in
//!   `c/mimalloc_arceos.c`, compiled by build.rs from mimalloc's sources);
//!   [`malloc`] and [`free`] are declared here for axlibc's re-export;
//! - mimalloc's OS primitives take memory from axalloc's page allocator
//!   through [`provider`], capped at `MIMALLOC_ARCEOS_PROVIDER_MAX_MB` MiB
//!   (build time; [`mimalloc_arceos_provider_limit`] at run time), as
//!   mirs-arceos's provider is;
//! - `pthread_mutex_trylock` and `pthread_mutex_destroy`, which mimalloc's
//!   locks need and axlibc lacks;
//! - [`thread_entry`] / [`thread_exiting`]: the pthread trampoline, which
//!   calls `mi_thread_done()` when a C thread ends.
//!
//! mimalloc keeps its heap pointer in a `__thread` variable and uses the
//! thread pointer as its thread id, so axlibc's `tls` feature must be on.

#![no_std]

#[cfg(not(feature = "thread-local"))]
compile_error!(
    "mimalloc-arceos needs TLS: turn on axlibc's `tls` feature (it enables `thread-local` here)"
);

extern crate alloc;

use core::ffi::{c_int, c_void};

unsafe extern "C" {
    /// C `malloc` (mimalloc's `mi_malloc`).
    pub fn malloc(size: usize) -> *mut c_void;
    /// C `free` (mimalloc's `mi_free`).
    pub fn free(p: *mut c_void);
    fn mi_thread_done();
}

/// mimalloc's output (errors, statistics): the console.
///
/// # Safety
/// `bytes..bytes+len` is readable.
#[no_mangle]
pub unsafe extern "C" fn mimalloc_arceos_write(bytes: *const u8, len: usize) {
    if bytes.is_null() || len == 0 {
        return;
    }
    // SAFETY: the caller passes `len` readable bytes.
    axhal::console::write_bytes(unsafe { core::slice::from_raw_parts(bytes, len) });
}

/// `pthread_mutex_trylock` over axlibc's mutex (arceos_posix_api's
/// `PthreadMutex`, a lone `axsync::Mutex<()>`): 0 when taken, EBUSY when
/// another thread holds it. `pthread_mutex_unlock` releases it as usual.
///
/// # Safety
/// `mutex` is an initialised `pthread_mutex_t` of axlibc.
#[no_mangle]
pub unsafe extern "C" fn pthread_mutex_trylock(mutex: *mut c_void) -> c_int {
    const EBUSY: c_int = 16;
    // SAFETY: axlibc's pthread_mutex_t holds exactly one axsync::Mutex<()>
    // (arceos_posix_api asserts the sizes match).
    let m = unsafe { &*mutex.cast::<axsync::Mutex<()>>() };
    match m.try_lock() {
        Some(guard) => {
            core::mem::forget(guard); // held until pthread_mutex_unlock
            0
        }
        None => EBUSY,
    }
}

/// Give the CPU to another task (v3's `_mi_prim_thread_yield`; axlibc has
/// no `sched_yield`).
#[no_mangle]
pub extern "C" fn mimalloc_arceos_yield() {
    arceos_posix_api::sys_sched_yield();
}

/// `pthread_mutex_destroy`: an axsync mutex holds no resources, so nothing to do.
#[no_mangle]
pub extern "C" fn pthread_mutex_destroy(_mutex: *mut c_void) -> c_int {
    0
}

// ---------------------------------------------------------------- page provider

/// axalloc pages for mimalloc's OS primitives, under a cap.
pub mod provider {
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicUsize, Ordering};

    include!(concat!(env!("OUT_DIR"), "/provider_cap.rs"));

    const PAGE: usize = 4096;

    static HELD: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    /// The cap in force (0: none); starts at the build-time value.
    pub(crate) static CAP: AtomicUsize = AtomicUsize::new(PROVIDER_CAP_BYTES);

    fn reserve(size: usize) -> bool {
        let cap = CAP.load(Ordering::Relaxed);
        let mut held = HELD.load(Ordering::Relaxed);
        loop {
            let Some(next) = held.checked_add(size) else {
                return false;
            };
            if cap != 0 && next > cap {
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

    /// `size` bytes (a multiple of 4 KiB) at `align` (a power of two), or NULL.
    #[no_mangle]
    pub unsafe extern "C" fn mimalloc_arceos_pages_alloc(size: usize, align: usize) -> *mut c_void {
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

    /// Give back what [`mimalloc_arceos_pages_alloc`] returned.
    ///
    /// # Safety
    /// `p` and `size` are those of one earlier allocation.
    #[no_mangle]
    pub unsafe extern "C" fn mimalloc_arceos_pages_free(p: *mut c_void, size: usize) {
        axalloc::global_allocator().dealloc_pages(
            p as usize,
            size / PAGE,
            axalloc::UsageKind::Global,
        );
        HELD.fetch_sub(size, Ordering::Relaxed);
    }

    pub fn held() -> usize {
        HELD.load(Ordering::Relaxed)
    }

    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}

/// Bytes the page provider holds from axalloc now.
#[no_mangle]
pub extern "C" fn mimalloc_arceos_provider_held() -> usize {
    provider::held()
}

/// The most bytes the page provider held at once.
#[no_mangle]
pub extern "C" fn mimalloc_arceos_provider_peak() -> usize {
    provider::peak()
}

/// The cap on [`mimalloc_arceos_provider_held`] (0: none).
#[no_mangle]
pub extern "C" fn mimalloc_arceos_provider_cap() -> usize {
    provider::CAP.load(core::sync::atomic::Ordering::Relaxed)
}

/// Set the cap (bytes, 0: none) for later allocations.
#[no_mangle]
pub extern "C" fn mimalloc_arceos_provider_limit(bytes: usize) {
    provider::CAP.store(bytes, core::sync::atomic::Ordering::Relaxed);
}

// ---------------------------------------------------------------- thread exit

/// A C thread routine.
pub type StartRoutine = extern "C" fn(arg: *mut c_void) -> *mut c_void;

struct Start {
    routine: StartRoutine,
    arg: *mut c_void,
}

extern "C" fn trampoline(start: *mut c_void) -> *mut c_void {
    // SAFETY: `start` is the box `thread_entry` leaked for this thread.
    let Start { routine, arg } = *unsafe { alloc::boxed::Box::from_raw(start.cast::<Start>()) };
    let ret = routine(arg);
    // SAFETY: called on the ending thread, as mimalloc expects.
    unsafe { mi_thread_done() };
    ret
}

/// The entry point and argument to create a C thread with so that it calls
/// `mi_thread_done()` when `routine` returns (see mirs-arceos's
/// `thread_entry`, whose contract this is).
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
    // SAFETY: fresh memory for one `Start`, freed by Box::from_raw.
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

/// The calling C thread is about to end (`pthread_exit`).
pub fn thread_exiting() {
    // SAFETY: called on the ending thread.
    unsafe { mi_thread_done() };
}
