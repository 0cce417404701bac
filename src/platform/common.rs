//! What both backends share: the memory a mapping call hands back, and the
//! errno values mirs sets.

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
