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
//! - feature `global`: mirs as the kernel's global allocator too (module
//!   [`global`]), over axalloc, axtask and axruntime switched by
//!   `c_tests/arceos/switch_axalloc.py`.
//!
//! Nothing here allocates through mirs on mirs's own paths: the
//! trampoline's two words come from the kernel heap (axlibc's Rust `alloc`,
//! which is mirs itself only with `global`, outside any mirs call).

#![no_std]

extern crate alloc;

use core::ffi::{c_int, c_void};
use mirs::c_api::prefixed as m;

// ---------------------------------------------------------------- the C names

/// With `global`, interrupt handlers allocate through mirs too (the kernel's
/// Rust heap), on the heap of the task they interrupt: every entry into mirs
/// masks interrupts (as axalloc's `SpinNoIrq` did), so a handler never finds
/// that heap half updated, and a task is never preempted inside mirs.
#[cfg(all(feature = "global", not(mirs_arceos_no_irq_mask)))]
#[inline(always)]
fn irq_guard() -> kernel_guard::IrqSave {
    kernel_guard::IrqSave::new()
}

/// Without `global` only tasks call mirs (C code), and mirs is safe to
/// preempt: nothing to mask.
/// (Also `global` built with `MIRS_ARCEOS_IRQ_MASK=0`, only to measure what
/// the masking costs: unsound once an interrupt handler allocates.)
#[cfg(any(not(feature = "global"), mirs_arceos_no_irq_mask))]
#[inline(always)]
fn irq_guard() -> NoGuard {
    NoGuard
}

#[cfg(any(not(feature = "global"), mirs_arceos_no_irq_mask))]
struct NoGuard;

/// C `malloc`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let _irq = irq_guard();
    // mirs's Rust entry points, not the `mirs_*` C symbols: those are
    // exported, so even under LTO each call stays a jump through the GOT;
    // these inline their fast paths here.
    mirs::malloc(size).cast()
}

/// C `free`.
///
/// # Safety
/// C's contract (see `mirs_free`).
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    let _irq = irq_guard();
    // SAFETY: the caller's contract is mirs_free's.
    unsafe { mirs::free(p.cast()) }
}

/// C `calloc` (NULL and ENOMEM when `n * size` overflows).
#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let _irq = irq_guard();
    m::mirs_calloc(n, size)
}

/// C `realloc`.
///
/// # Safety
/// C's contract (see `mirs_realloc`).
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    let _irq = irq_guard();
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
    let _irq = irq_guard();
    // SAFETY: the caller's contract is mirs_posix_memalign's.
    unsafe { m::mirs_posix_memalign(out, align, size) }
}

/// C11 `aligned_alloc`.
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    let _irq = irq_guard();
    m::mirs_aligned_alloc(align, size)
}

/// `memalign` (glibc: an alignment that is not a power of two is rounded up).
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    let _irq = irq_guard();
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
    let _irq = irq_guard();
    // SAFETY: the caller's contract is mirs_usable_size's.
    unsafe { m::mirs_usable_size(p) }
}

// ---------------------------------------------------------------- mirs's hooks

/// mirs's thread identity: the axtask id (non-zero, never reused).
#[no_mangle]
pub extern "C" fn mirs_hook_thread_id() -> usize {
    #[cfg(feature = "global")]
    {
        global::thread_id()
    }
    #[cfg(all(feature = "multitask", not(feature = "global")))]
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
        register_now();
    }

    /// Install the provider (the constructor below, or `global::enable`).
    pub fn register_now() {
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
    // With `global`, interrupt handlers allocate on this task's heap: not
    // while it is being handed back.
    let _irq = irq_guard();
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
    let _irq = irq_guard();
    mirs::c_api::embedder::mirs_thread_done();
}

// ---------------------------------------------------------------- global allocator

/// mirs as the kernel's global allocator (feature `global`): the hooks that
/// `c_tests/arceos/switch_axalloc.py` adds to axalloc, axtask and axruntime
/// call in here (docs/arceos.md, section 9).
///
/// - [`enable`] (axruntime, once every CPU is initialised, with its init or
///   idle task current, and interrupts are set up; after the constructors,
///   before `main`) installs the page provider,
///   axalloc's byte hooks and axtask's exit hook. Allocations before it
///   (early boot) come from axalloc's own byte allocator, and so do any
///   that mirs cannot serve (out of memory: counted, see [`stats`]); a
///   free goes to mirs exactly when the block lies in a page mirs has in
///   use ([`mirs::in_heap`]), else to axalloc's allocator.
/// - Every call masks interrupts (`kernel_guard::IrqSave`, what axalloc's
///   `SpinNoIrq` did, without the lock): an interrupt handler that
///   allocates uses the heap of the task it interrupted, which is then
///   never inside mirs, and no task is preempted inside mirs.
/// - Thread identity is the axtask id; a CPU with no current task (boot)
///   and a task past its exit hook use the CPU's own heap (id
///   `CPU_HEAP_ID + cpu`), so the exit path's last allocations and frees do
///   not make the exiting task a new heap. With `thread-local` (and axstd's
///   `tls`) the heap pointer is in the task's TLS instead and the id is
///   asked on mirs's slow path only (its heap table); after the exit hook
///   each allocation gets a heap given back at once (mirs's exiting heap).
///   That needs a thread pointer on every CPU that enters mirs, hence
///   [`enable`] after every CPU's initialisation.
/// - A task's exit (axtask's `exit_current`, interrupts and preemption
///   off) calls `mirs_thread_done()`: its heap slot is freed, its pages
///   with live blocks are abandoned for other tasks to adopt.
#[cfg(feature = "global")]
pub mod global {
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Ids of the per-CPU heaps: far above any axtask id (a counter from 1).
    const CPU_HEAP_ID: usize = 1 << 40;
    /// CPUs with a slot in [`EXITED`] (more are folded onto the last slot's
    /// id, which stays correct: the slot is only a hint, see `thread_id`).
    const MAX_CPUS: usize = 64;

    /// Per CPU: the id of the task whose exit hook ran last on it. From then
    /// on that task (still current until it switches away for good) uses
    /// the CPU's heap.
    static EXITED: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

    static ENABLED: AtomicBool = AtomicBool::new(false);
    /// Allocations mirs could not serve, handed to axalloc's own allocator.
    static FALLBACK_ALLOCS: AtomicUsize = AtomicUsize::new(0);
    /// Frees of blocks from axalloc's own allocator after [`enable`].
    static FOREIGN_FREES: AtomicUsize = AtomicUsize::new(0);
    /// The test hook run from the timer interrupt (0: none).
    static TIMER_HOOK: AtomicUsize = AtomicUsize::new(0);

    #[inline(always)]
    fn cpu() -> usize {
        axhal::percpu::this_cpu_id().min(MAX_CPUS - 1)
    }

    /// mirs's thread id (`mirs_hook_thread_id`). Called inside mirs only,
    /// with interrupts masked: the CPU and its current task cannot change
    /// under it.
    #[inline(always)]
    pub(crate) fn thread_id() -> usize {
        let cpu = cpu();
        if let Some(task) = axtask::current_may_uninit() {
            let id = task.id().as_u64() as usize;
            if id != EXITED[cpu].load(Ordering::Relaxed) {
                return id;
            }
        }
        CPU_HEAP_ID + cpu
    }

    /// Whether axalloc is switched to mirs ([`enable`] ran).
    pub fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    /// Counters of the switch.
    #[derive(Clone, Copy, Debug)]
    pub struct Stats {
        /// Allocations mirs returned NULL for (out of memory or past the
        /// provider's cap), served by axalloc's own allocator instead.
        pub fallback_allocs: usize,
        /// Frees, after [`enable`], of blocks axalloc's allocator served
        /// (boot-time blocks and fallbacks).
        pub foreign_frees: usize,
    }

    /// The switch's counters.
    pub fn stats() -> Stats {
        Stats {
            fallback_allocs: FALLBACK_ALLOCS.load(Ordering::Relaxed),
            foreign_frees: FOREIGN_FREES.load(Ordering::Relaxed),
        }
    }

    /// axalloc's `alloc`: a mirs block, or NULL (axalloc then serves it).
    ///
    /// # Safety
    /// `GlobalAlloc::alloc`'s contract.
    unsafe fn alloc(layout: Layout) -> *mut u8 {
        let _irq = super::irq_guard();
        // SAFETY: forwarded contract; mirs::Mirs serves any layout.
        let p = unsafe { mirs::Mirs.alloc(layout) };
        if p.is_null() {
            FALLBACK_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// axalloc's `dealloc`: true when the block was mirs's (and is freed).
    ///
    /// # Safety
    /// `GlobalAlloc::dealloc`'s contract.
    unsafe fn dealloc(p: *mut u8, layout: Layout) -> bool {
        let _irq = super::irq_guard();
        // SAFETY: the caller's block (GlobalAlloc::dealloc), mirs's or axalloc's.
        if !unsafe { mirs::in_heap(p) } {
            FOREIGN_FREES.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // SAFETY: a live block of mirs (it lies in a mirs page), the caller's.
        unsafe { mirs::Mirs.dealloc(p, layout) };
        true
    }

    /// axalloc's `realloc`: Some(new block or NULL) when the block was
    /// mirs's, None when it is axalloc's own (axalloc then moves it).
    ///
    /// # Safety
    /// `GlobalAlloc::realloc`'s contract.
    unsafe fn realloc(p: *mut u8, layout: Layout, new_size: usize) -> Option<*mut u8> {
        let _irq = super::irq_guard();
        // SAFETY: the caller's block (GlobalAlloc::realloc), mirs's or axalloc's.
        if !unsafe { mirs::in_heap(p) } {
            return None;
        }
        // SAFETY: a live block of mirs, the caller's; forwarded contract.
        Some(unsafe { mirs::Mirs.realloc(p, layout, new_size) })
    }

    static HOOKS: axalloc::ByteHooks = axalloc::ByteHooks {
        alloc,
        dealloc,
        realloc,
    };

    /// axtask's exit hook: the exiting task (interrupts and preemption off,
    /// on the CPU it exits on) hands its heap back.
    fn task_exit() {
        let _irq = super::irq_guard();
        mirs::c_api::embedder::mirs_thread_done();
        if let Some(task) = axtask::current_may_uninit() {
            EXITED[cpu()].store(task.id().as_u64() as usize, Ordering::Relaxed);
        }
    }

    /// Switch axalloc's byte allocations to mirs. Called by the switched
    /// axruntime once the scheduler, the secondary CPUs and interrupts are
    /// up; idempotent.
    pub fn enable() {
        if ENABLED.swap(true, Ordering::AcqRel) {
            return;
        }
        super::provider::register_now();
        axtask::set_task_exit_hook(task_exit);
        axalloc::set_byte_hooks(&HOOKS);
    }

    /// mirs sets `errno` on failure (C semantics); an image without a libc
    /// (a Rust app on axstd) has no `__errno_location`, so here is one: a
    /// word per CPU, written only inside mirs with interrupts masked.
    #[cfg(not(feature = "libc"))]
    mod errno {
        use core::cell::UnsafeCell;
        use core::ffi::c_int;

        struct PerCpu([UnsafeCell<c_int>; super::MAX_CPUS]);
        // SAFETY: each word is written by its own CPU only, with interrupts
        // masked (inside mirs), and nothing reads it for synchronisation.
        unsafe impl Sync for PerCpu {}
        static ERRNO: PerCpu = PerCpu([const { UnsafeCell::new(0) }; super::MAX_CPUS]);

        /// The calling CPU's errno word.
        #[no_mangle]
        pub extern "C" fn __errno_location() -> *mut c_int {
            ERRNO.0[super::cpu()].get()
        }
    }

    /// `mirs::collect(true)` for the calling task, interrupts masked: its
    /// free lists collected and memory mirs no longer uses given back to
    /// axalloc's page allocator.
    pub fn collect() {
        let _irq = super::irq_guard();
        mirs::collect(true);
    }

    /// mirs's statistics (`mirs::stats_print`: chunks, reserved, committed,
    /// live, per size class, abandoned pages) to the console, interrupts
    /// masked.
    pub fn print_stats() {
        let _irq = super::irq_guard();
        mirs::stats_print();
    }

    /// Called by the switched axruntime on every timer interrupt: runs the
    /// hook set by [`set_timer_hook`] (the interrupt-context test).
    pub fn timer_tick() {
        let f = TIMER_HOOK.load(Ordering::Acquire);
        if f != 0 {
            // SAFETY: only `set_timer_hook` stores here, a `fn()` cast to usize.
            let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(f) };
            f();
        }
    }

    /// Run `f` in every timer interrupt from now on (None: stop). `f` runs
    /// in interrupt context: it must not block.
    pub fn set_timer_hook(f: Option<fn()>) {
        TIMER_HOOK.store(f.map_or(0, |f| f as usize), Ordering::Release);
    }
}
