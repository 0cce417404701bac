//! Embedded mode (no `hosted` feature): the embedder supplies memory,
//! thread identity and output through plain C-ABI hooks, so a Rust (ArceOS
//! axlibc) or C embedder can provide them and the linker binds them.
//!
//! | hook                                   | purpose                               |
//! |----------------------------------------|---------------------------------------|
//! | `mirs_region_add(base, size)` (ours)   | hand mirs a memory region             |
//! | `mirs_hook_thread_id() -> usize`       | non-zero id unique among live threads |
//! | `mirs_hook_write(ptr, len)`            | statistics and warnings output        |
//! | `__errno_location()`                   | C errno (axlibc defines it)           |

use super::OsMemory;
use crate::constants::SEGMENT_SIZE;
use crate::heap::Heap;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Address bits the segment map covers in embedded mode.
pub const ADDRESS_BITS: usize = 48;

extern "C" {
    fn mirs_hook_thread_id() -> usize;
    fn mirs_hook_write(bytes: *const u8, len: usize);
    fn __errno_location() -> *mut i32;
}

/// One region handed over by the embedder, carved front to back.
static REGION_NEXT: AtomicUsize = AtomicUsize::new(0);
static REGION_END: AtomicUsize = AtomicUsize::new(0);

/// Hand mirs a memory region to carve segments from.
///
/// # Safety
/// `base..base+size` is memory nobody else uses, for the rest of the program.
#[no_mangle]
pub unsafe extern "C" fn mirs_region_add(base: *mut u8, size: usize) {
    let start = (base as usize).next_multiple_of(SEGMENT_SIZE);
    REGION_END.store(base as usize + size, Ordering::Release);
    REGION_NEXT.store(start, Ordering::Release);
}

pub fn os_alloc_aligned(size: usize, align: usize) -> Option<OsMemory> {
    let mut cur = REGION_NEXT.load(Ordering::Acquire);
    loop {
        let start = cur.checked_next_multiple_of(align)?;
        let end = start.checked_add(size)?;
        if cur == 0 || end > REGION_END.load(Ordering::Acquire) {
            return None;
        }
        match REGION_NEXT.compare_exchange_weak(cur, end, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                return Some(OsMemory {
                    base: start as *mut u8,
                    is_zero: false,
                })
            }
            Err(now) => cur = now,
        }
    }
}

/// # Safety
/// The range came from [`os_alloc_aligned`] and is unused.
pub unsafe fn os_free(_base: *mut u8, _size: usize) {}

/// # Safety
/// The range is unused.
pub unsafe fn os_purge(_base: *mut u8, _size: usize) -> bool {
    false
}

#[inline(always)]
pub fn thread_id() -> usize {
    // SAFETY: the embedder's hook has no preconditions. Shifted so bit 0 stays
    // free for the segment state's flag.
    unsafe { mirs_hook_thread_id() << 1 }
}

#[thread_local]
static mut THREAD_HEAP: *mut Heap = crate::heap::EMPTY_HEAP_PTR;

#[inline(always)]
pub fn heap_get() -> *mut Heap {
    // SAFETY: thread-local slot.
    unsafe { THREAD_HEAP }
}

pub fn heap_set(heap: *mut Heap) {
    // SAFETY: thread-local slot.
    unsafe { THREAD_HEAP = heap };
}

pub fn process_init() {}

pub fn register_thread_exit(_heap: *mut Heap) {}

/// The embedder calls this when a thread (task) exits.
#[no_mangle]
pub extern "C" fn mirs_thread_done() {
    crate::heap::thread_done(heap_get());
}

pub fn spin_yield() {
    core::hint::spin_loop();
}

static TICKS: AtomicUsize = AtomicUsize::new(0);

pub fn now_ms() -> u64 {
    TICKS.fetch_add(1, Ordering::Relaxed) as u64
}

pub fn write_stderr(bytes: &[u8]) {
    // SAFETY: the pointer and length describe a live slice.
    unsafe { mirs_hook_write(bytes.as_ptr(), bytes.len()) };
}

pub fn env_var(_name: &[u8]) -> Option<&'static [u8]> {
    None
}

pub fn abort() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

pub fn set_errno(value: i32) {
    // SAFETY: the embedder's libc defines errno for the calling thread.
    unsafe { *__errno_location() = value };
}

pub fn errno() -> i32 {
    // SAFETY: as in `set_errno`.
    unsafe { *__errno_location() }
}
