//! Linux through the `libc` crate only: nothing here can reach a system or
//! Rust global allocator.

use super::common::OsMemory;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

// ---------------------------------------------------------------- memory

/// Memory for a chunk: as [`os_alloc_aligned`]. (`placeable` says where
/// the caller can use a chunk; any user-space address suits it hosted.)
pub fn os_alloc_chunk(
    size: usize,
    align: usize,
    _placeable: fn(usize, usize) -> bool,
) -> Option<OsMemory> {
    os_alloc_aligned(size, align)
}

/// Map `size` bytes aligned to `align` (a power of two, at least the OS page).
/// Over-maps by `align` and unmaps the slack on both sides.
pub fn os_alloc_aligned(size: usize, align: usize) -> Option<OsMemory> {
    debug_assert!(
        align.is_power_of_two() && size.is_multiple_of(crate::base::constants::OS_PAGE_SIZE)
    );
    // No MAP_NORESERVE: the kernel's overcommit policy judges each request
    // as it judges glibc's, so an absurd size fails here at once (ENOMEM)
    // instead of succeeding as a reservation.
    map_aligned(size, align, 0)
}

/// An anonymous private read-write mapping of `size` bytes aligned to
/// `align` (with `extra_flags`): over-maps by `align` and unmaps the slack
/// on both sides.
fn map_aligned(size: usize, align: usize, extra_flags: libc::c_int) -> Option<OsMemory> {
    #[cfg(any(test, feature = "fault-injection"))]
    if !fault::allow_request() {
        return None;
    }
    let map_size = size.checked_add(align)?;
    // SAFETY: an anonymous private mapping has no preconditions; failure is
    // reported as MAP_FAILED.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            map_size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = map_size - head - size;
    if head > 0 {
        // SAFETY: the range lies inside the mapping just made, before the
        // aligned part we keep.
        unsafe { libc::munmap(raw, head) };
    }
    if tail > 0 {
        // SAFETY: the range lies inside the mapping just made, after the
        // aligned part we keep.
        unsafe { libc::munmap((aligned + size) as *mut libc::c_void, tail) };
    }
    Some(OsMemory {
        base: aligned as *mut u8,
        is_zero: true,
    })
}

/// The most one request could ever be given, even after mirs handed back
/// everything it holds: physical memory plus swap (read once). The kernel's
/// default overcommit heuristic refuses a larger private mapping outright
/// and the strict mode's commit limit lies below it, so a larger request
/// that failed fails again whatever is reclaimed: it is refused without a
/// recovery attempt (`thread::recover_for`). (With overcommit always on it
/// may still succeed the first time: the mapping is tried.)
pub fn memory_limit() -> usize {
    static LIMIT: AtomicUsize = AtomicUsize::new(0);
    let known = LIMIT.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    // SAFETY: `sysinfo` is a struct of integers: all zeros is a valid value.
    let mut info: libc::sysinfo = unsafe { core::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer; the call only fills it.
    let limit = if unsafe { libc::sysinfo(&mut info) } == 0 {
        let unit = (info.mem_unit as usize).max(1);
        (info.totalram as usize)
            .saturating_add(info.totalswap as usize)
            .saturating_mul(unit)
            .max(1)
    } else {
        usize::MAX
    };
    LIMIT.store(limit, Ordering::Relaxed);
    limit
}

/// Out-of-memory injection (tests, and the `fault-injection` feature; absent
/// otherwise, so the memory path pays nothing): the platform refuses every
/// memory request once a budget of successful requests is spent.
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault {
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// Requests still granted; `usize::MAX` means no limit.
    static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// Requests refused so far.
    static REFUSED: AtomicUsize = AtomicUsize::new(0);

    /// Grant `n` more memory requests, then refuse every later one.
    pub fn fail_after(n: usize) {
        BUDGET.store(n, Ordering::SeqCst);
    }

    /// Grant every request again.
    pub fn disable() {
        BUDGET.store(usize::MAX, Ordering::SeqCst);
    }

    /// How many requests were refused since the process started.
    pub fn refused() -> usize {
        REFUSED.load(Ordering::SeqCst)
    }

    /// Spend one request of the budget; false when it is used up.
    pub(crate) fn allow_request() -> bool {
        let granted = BUDGET
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| match b {
                usize::MAX => Some(b),
                0 => None,
                _ => Some(b - 1),
            })
            .is_ok();
        if !granted {
            REFUSED.fetch_add(1, Ordering::SeqCst);
        }
        granted
    }
}

/// Resize the mapping `base..base + old` to `new` bytes where it lies
/// (`mremap` without `MREMAP_MAYMOVE`): growing takes the address space
/// right after it, which must be free; its pages stay where they are.
/// False when that space is taken (nothing changed).
///
/// # Safety
/// `base..base + old` is a whole mapping of ours (a chunk).
pub unsafe fn os_remap_in_place(base: *mut u8, old: usize, new: usize) -> bool {
    #[cfg(any(test, feature = "fault-injection"))]
    if new > old && !fault::allow_request() {
        return false;
    }
    // SAFETY: as the caller guarantees; without MREMAP_MAYMOVE the mapping
    // either keeps its address or nothing changes.
    let got = unsafe { libc::mremap(base.cast(), old, new, 0) };
    got != libc::MAP_FAILED
}

/// Move the mapping `base..base + old` to a fresh address aligned to
/// `align`, `new` bytes long: an aligned hole is reserved (an inaccessible
/// mapping, over-sized by `align` and trimmed), `prepare(address, new)` is
/// asked whether the caller can use it there, and `mremap` with
/// `MREMAP_MAYMOVE | MREMAP_FIXED` moves the page tables into it: the
/// contents move without being copied. The old range is unmapped. None
/// (nothing changed) when there is no room or `prepare` says no.
///
/// # Safety
/// `base..base + old` is a whole mapping of ours (a chunk) that nobody
/// uses during the move.
pub unsafe fn os_remap_move(
    base: *mut u8,
    old: usize,
    new: usize,
    align: usize,
    prepare: fn(usize, usize) -> bool,
) -> Option<*mut u8> {
    #[cfg(any(test, feature = "fault-injection"))]
    if !fault::allow_request() {
        return None;
    }
    let map_size = new.checked_add(align)?;
    // SAFETY: a fresh anonymous reservation, no preconditions; it commits
    // nothing (PROT_NONE, MAP_NORESERVE) and only holds the address range.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            map_size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    if !prepare(aligned, new) {
        // SAFETY: the reservation just made, unused.
        unsafe { libc::munmap(raw, map_size) };
        return None;
    }
    // SAFETY: as the caller guarantees for the source; the target lies in
    // our reservation, which MREMAP_FIXED replaces.
    let got = unsafe {
        libc::mremap(
            base.cast(),
            old,
            new,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            aligned as *mut c_void,
        )
    };
    let head = aligned - start;
    let tail = map_size - head - new;
    if got == libc::MAP_FAILED {
        // SAFETY: the reservation, still whole and unused.
        unsafe { libc::munmap(raw, map_size) };
        return None;
    }
    if head > 0 {
        // SAFETY: the part of our reservation before the moved mapping.
        unsafe { libc::munmap(raw, head) };
    }
    if tail > 0 {
        // SAFETY: the part of our reservation after the moved mapping.
        unsafe { libc::munmap((aligned + new) as *mut c_void, tail) };
    }
    Some(aligned as *mut u8)
}

/// Reserve `size` bytes of address space aligned to `align`, readable and
/// writable but committing nothing (`MAP_NORESERVE`): a region the arena
/// carves huge blocks from; only the pages written become memory.
pub fn os_reserve(size: usize, align: usize) -> Option<OsMemory> {
    map_aligned(size, align, libc::MAP_NORESERVE)
}

/// Ask for transparent huge pages in `base..base + size` (`on`), or for
/// none there: where the system grants them on request (`madvise` mode), a
/// range written in full then faults once per 2 MiB, not per 4 KiB (C
/// mimalloc v3 asks the same for its arenas). Advice only: a failure is
/// harmless.
///
/// # Safety
/// The range is page aligned and inside a reservation of ours.
pub unsafe fn os_huge_pages(base: *mut u8, size: usize, on: bool) {
    let advice = if on {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    // SAFETY: as the caller guarantees; advice changes no contents.
    unsafe { libc::madvise(base.cast(), size, advice) };
}

/// Move the pages of `from..from + old` to `to` (`new` bytes there, the
/// growth reading as zero) without copying, inside reservations of ours
/// (`os_reserve`), and map the vacated range again, empty, so the
/// reservation has no hole. False (nothing changed) when the kernel
/// refuses.
///
/// # Safety
/// Both ranges are page aligned, disjoint, inside live reservations of
/// ours, and nobody else uses them meanwhile.
pub unsafe fn os_move_pages(from: *mut u8, old: usize, to: *mut u8, new: usize) -> bool {
    #[cfg(any(test, feature = "fault-injection"))]
    if !fault::allow_request() {
        return false;
    }
    // SAFETY: as the caller guarantees; MREMAP_FIXED replaces the target.
    let got = unsafe {
        libc::mremap(
            from.cast(),
            old,
            new,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to.cast::<c_void>(),
        )
    };
    if got == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: the range just vacated, ours; MAP_FIXED fills the hole.
    let refilled = unsafe {
        libc::mmap(
            from.cast(),
            old,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    // A hole left in a reservation would fault on the next block there:
    // nothing sane remains to be done.
    if refilled == libc::MAP_FAILED {
        abort();
    }
    true
}

/// Give a mapping back.
///
/// # Safety
/// `base..base+size` was returned by [`os_alloc_aligned`] and nobody uses it.
pub unsafe fn os_free(base: *mut u8, size: usize) {
    // SAFETY: the caller hands over a range we mapped.
    unsafe { libc::munmap(base.cast(), size) };
}

/// Return the physical memory behind a range to the OS; it reads as zero
/// afterwards. Returns whether that zeroing is guaranteed.
///
/// # Safety
/// The range is page aligned, inside a live mapping of ours and unused.
pub unsafe fn os_purge(base: *mut u8, size: usize) -> bool {
    // SAFETY: as the caller guarantees; MADV_DONTNEED on a private anonymous
    // mapping drops the pages and refills them with zeros on the next touch.
    unsafe { libc::madvise(base.cast(), size, libc::MADV_DONTNEED) == 0 }
}

// ---------------------------------------------------------------- threads

/// Other architectures: a thread-local whose address is the thread's id.
#[cfg(all(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    feature = "thread-local"
))]
#[thread_local]
static THREAD_ANCHOR: u8 = 0;
#[cfg(all(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    not(feature = "thread-local")
))]
std::thread_local! {
    static THREAD_ANCHOR: u8 = const { 0 };
}

/// A non-zero id, unique among live threads: the thread pointer (the TCB
/// address glibc keeps in `fs:0` / `tpidr_el0`), one instruction.
#[inline(always)]
pub fn thread_id() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        // The TCB self-pointer glibc stores at fs:0.
        super::common::fs0()
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: usize;
        // SAFETY: reads the thread pointer register; no side effects.
        unsafe {
            core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags, pure))
        };
        tp
    }
    #[cfg(all(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        feature = "thread-local"
    ))]
    {
        ptr::addr_of!(THREAD_ANCHOR) as usize
    }
    #[cfg(all(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        not(feature = "thread-local")
    ))]
    {
        THREAD_ANCHOR.with(|anchor| ptr::from_ref(anchor) as usize)
    }
}

static THREAD_KEY: AtomicUsize = AtomicUsize::new(0);
static THREAD_KEY_READY: AtomicBool = AtomicBool::new(false);

/// Is `id` the calling thread's id? On x86_64 one compare with fs:0 and
/// a branch (an asm label: the compiler cannot fold `thread_id`'s asm read
/// into the compare, which cost free's fast path a load of its own).
#[inline(always)]
pub fn is_current_thread(id: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::common::is_fs0(id)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        id == thread_id()
    }
}

/// The calling thread's key in mirs's table of heaps: its id (the thread
/// pointer is 16-byte aligned, so bit 0, which the table uses, is clear).
#[inline(always)]
pub fn thread_key() -> usize {
    thread_id()
}

/// Hosted threads have no liveness hook: their exits are noticed.
pub fn thread_alive(_id: usize) -> Option<bool> {
    None
}

/// Once per process: `exit` runs at the end of every thread that set a
/// value with [`set_thread_exit_value`] (a pthread key destructor), and
/// `fork_child` in the child after every `fork`.
pub fn register_thread_callbacks(exit: extern "C" fn(*mut c_void), fork_child: extern "C" fn()) {
    // SAFETY: a valid handler; glibc keeps the first registrations in static
    // storage (no allocation).
    unsafe { libc::pthread_atfork(None, None, Some(fork_child)) };
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer and `exit` has the destructor
    // signature. glibc's pthread_key_create does not allocate.
    if unsafe { libc::pthread_key_create(&mut key, Some(exit)) } == 0 {
        THREAD_KEY.store(key as usize, Ordering::Relaxed);
        THREAD_KEY_READY.store(true, Ordering::Release);
    }
}

/// The value the thread-exit callback gets for the calling thread (null:
/// no callback).
pub fn set_thread_exit_value(value: *mut c_void) {
    if THREAD_KEY_READY.load(Ordering::Acquire) {
        // SAFETY: the key was created by `register_thread_callbacks`; keys
        // below 32 (the first a process creates) live inside the thread
        // descriptor, so this does not allocate.
        unsafe { libc::pthread_setspecific(THREAD_KEY.load(Ordering::Relaxed) as _, value) };
    }
}

/// Make a range inaccessible (secure mode's guard pages).
///
/// # Safety
/// The range is page aligned, inside a mapping of ours, and unused.
pub unsafe fn os_protect_none(base: *mut u8, size: usize) {
    // SAFETY: as the caller guarantees.
    unsafe { libc::mprotect(base.cast(), size, libc::PROT_NONE) };
}

/// Entropy for secret keys: the kernel's random bytes, or, if that fails,
/// the clock mixed with an address (ASLR).
pub fn random_seed() -> u64 {
    let mut seed = 0u64;
    // SAFETY: writes at most 8 bytes into `seed`; GRND_NONBLOCK never waits.
    let n = unsafe { libc::getrandom(ptr::addr_of_mut!(seed).cast(), 8, libc::GRND_NONBLOCK) };
    if n != 8 {
        seed = now_ms().rotate_left(32) ^ (ptr::addr_of!(seed) as u64);
    }
    seed
}

/// Let another thread run while we wait on a short critical section.
pub fn spin_yield() {
    // SAFETY: no preconditions.
    unsafe { libc::sched_yield() };
}

/// Sleep while `word` holds `expected` (or until woken, or spuriously): a
/// lock waiter that spun long enough stops taking a core.
pub fn lock_wait(word: &core::sync::atomic::AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned u32 for the call's duration; a
    // private futex with no timeout has no other precondition.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        )
    };
}

/// Wake one thread sleeping in [`lock_wait`] on `word`.
pub fn lock_wake(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: as in `lock_wait`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
}

// ---------------------------------------------------------------- time, output, options

/// A coarse monotonic clock in milliseconds (vDSO, no system call).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

extern "C" {
    // Not in the `libc` crate for Linux; glibc's since 2.0.
    fn pthread_setcancelstate(state: libc::c_int, oldstate: *mut libc::c_int) -> libc::c_int;
}
/// glibc's `PTHREAD_CANCEL_DISABLE` (`PTHREAD_CANCEL_ENABLE` is 0).
const PTHREAD_CANCEL_DISABLE: libc::c_int = 1;

/// Write all of `bytes` to standard error. Not a cancellation point (like
/// glibc's `malloc_stats`): `write(2)` is one, so cancellation is disabled
/// around it and a pending cancel acts at the caller's next cancellation point.
/// errno is kept (a warning printed from `free` must not change it).
pub fn write_stderr(mut bytes: &[u8]) {
    let saved_errno = errno();
    let mut old_state: libc::c_int = 0;
    // SAFETY: `old_state` is a valid out-pointer; the call only swaps the
    // calling thread's cancel state (no allocation, not a cancellation point).
    unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old_state) };
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        bytes = &bytes[n as usize..];
    }
    // SAFETY: restores the state saved above.
    unsafe { pthread_setcancelstate(old_state, ptr::null_mut()) };
    set_errno(saved_errno);
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// The value of environment variable `name`, read from `environ` without
/// calling `getenv` (which may be interposed) or allocating.
pub fn env_var(name: &[u8]) -> Option<&'static [u8]> {
    // SAFETY: `environ` is a NULL-terminated array of NUL-terminated strings
    // that the C runtime keeps alive; we only read it (and only at start-up,
    // before the program could change it from another thread).
    let mut entry = unsafe { environ };
    if entry.is_null() {
        return None;
    }
    loop {
        // SAFETY: `entry` points into the array, at most at its NULL end.
        let var = unsafe { *entry };
        if var.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string the runtime keeps alive.
        let s = unsafe { core::ffi::CStr::from_ptr(var) }.to_bytes();
        if s.len() > name.len() && s.starts_with(name) && s[name.len()] == b'=' {
            return Some(&s[name.len() + 1..]);
        }
        entry = entry.wrapping_add(1);
    }
}

/// The address of the definition of `name` that comes after this library's
/// in the dynamic linker's search order (`dlsym(RTLD_NEXT)`), or 0 (none,
/// or a static executable). For an export that hands a case it cannot serve
/// to the definition it replaces (C++ `operator new`'s failure path). The
/// lookup may allocate through mirs's malloc: never call it under a lock.
#[cfg(all(feature = "override", target_arch = "x86_64"))]
pub fn next_symbol(name: &core::ffi::CStr) -> usize {
    // SAFETY: a NUL-terminated name; RTLD_NEXT asks about the objects loaded
    // after the caller's, and a missing name is a null answer.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
}

/// Stop the process after a fatal error.
pub fn abort() -> ! {
    // SAFETY: no preconditions.
    unsafe { libc::abort() }
}

/// Set the C `errno` of the calling thread.
pub fn set_errno(value: i32) {
    // SAFETY: glibc's errno location has no preconditions and is valid for
    // the calling thread.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    unsafe { *errno = value };
}

/// The C `errno` of the calling thread.
pub fn errno() -> i32 {
    // SAFETY: as in `set_errno`.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    unsafe { *errno }
}
