//! What both backends share: the memory a mapping call hands back, the
//! errno values mirs sets, and x86_64's one-instruction thread test.

/// Memory handed out by `os_alloc_aligned` / `os_alloc_chunk`.
#[derive(Clone, Copy)]
pub struct OsMemory {
    pub base: *mut u8,
    /// The memory is known to read as zero (fresh from the OS).
    pub is_zero: bool,
}

/// errno values mirs sets (Linux's numbers, which C libraries for embedded
/// targets such as ArceOS's axlibc share).
pub const ENOMEM: i32 = 12;
pub const EINVAL: i32 = 22;

/// The word at `fs:0`: on x86_64 the thread's TCB self-pointer, the
/// thread id of hosted glibc and of embedded `thread-local` builds.
#[cfg(all(
    target_arch = "x86_64",
    any(feature = "hosted", feature = "thread-local")
))]
#[inline(always)]
pub fn fs0() -> usize {
    let tp: usize;
    // SAFETY: reads the word at fs:0; no side effects.
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:0", out(reg) tp, options(nostack, readonly, preserves_flags, pure))
    };
    tp
}

/// Is `id` the word at `fs:0` ([`fs0`])? One compare with a branch: LLVM
/// cannot fold an asm read of `fs:0` into a compare, which cost free's
/// fast path a load.
#[cfg(all(
    target_arch = "x86_64",
    any(feature = "hosted", feature = "thread-local")
))]
#[inline(always)]
pub fn is_fs0(id: usize) -> bool {
    // SAFETY: compares `id` with the word at fs:0 and branches; no side
    // effects.
    unsafe {
        core::arch::asm!(
            "cmp {id}, qword ptr fs:0",
            "jne {other}",
            id = in(reg) id,
            other = label { return false; },
            options(nostack, readonly)
        )
    };
    true
}
