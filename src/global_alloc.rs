//! `mirs::Mirs`: mirs as a Rust program's global allocator.
//!
//! ```toml
//! [dependencies]
//! mirs = "0.1"
//! ```
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: mirs::Mirs = mirs::Mirs;
//! ```
//!
//! With the default features this builds on stable Rust; every `Box`, `Vec`,
//! `String` and collection of the program, in every thread, then comes from
//! mirs's thread-local heaps.
//!
//! | request                           | served by                                          |
//! |-----------------------------------|----------------------------------------------------|
//! | `align <= 16`                     | the malloc fast path (blocks of 16 bytes or more are 16-aligned; smaller sizes are rounded up to the alignment) |
//! | `align > 16`                      | `malloc_aligned` (a size class that is a multiple of the alignment, else an over-allocated block) |
//! | `alloc_zeroed`                    | `zalloc` / `zalloc_aligned`: memory fresh from the OS is not cleared again |
//! | `realloc`, `align <= 16`          | `realloc`: in place while the block fits and is not less than half used |
//! | `realloc`, `align > 16`           | in place under the same rule, else a new aligned block |
//!
//! No call unwinds: mirs is built for `panic = "abort"`, and in a program
//! built with `panic = "unwind"` a panic inside mirs (a failed debug
//! assertion: a bug) aborts the process instead of unwinding out of the
//! allocator, which would be undefined behaviour.

use crate::base::constants::MAX_ALIGN_GUARANTEE;
use core::alloc::{GlobalAlloc, Layout};

/// The global allocator: `#[global_allocator] static GLOBAL: mirs::Mirs = mirs::Mirs;`.
///
/// Statistics of the process: [`crate::stats_print`], or `MIRS_SHOW_STATS=1`
/// in the environment (printed at exit); counters in [`crate::support::stats`].
pub struct Mirs;

/// Aborts the process if dropped: created before a call into mirs and
/// forgotten after it, so it runs only while a panic unwinds out of the
/// allocator. With `panic = "abort"` it compiles to nothing.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    #[cold]
    fn drop(&mut self) {
        crate::platform::abort()
    }
}

/// Run `f` with unwinding out of it turned into an abort.
#[inline(always)]
fn no_unwind<R>(f: impl FnOnce() -> R) -> R {
    let guard = AbortOnUnwind;
    let r = f();
    core::mem::forget(guard);
    r
}

/// The size to ask malloc for so that the block is aligned to `align <= 16`:
/// every block of 16 bytes or more is 16-aligned, and every block is 8-aligned.
#[inline(always)]
fn fast_size(layout: Layout) -> usize {
    // A Layout's size rounded up to its alignment never overflows (isize::MAX bound).
    layout.size().max(layout.align())
}

// SAFETY: every method forwards to mirs's thread-safe entry points, which
// return blocks of at least the requested bytes aligned as requested or null
// (`fast_size` gives a block of at least 16 bytes, hence 16-aligned, whenever
// `align == 16`), and accept back exactly the pointers they returned.
unsafe impl GlobalAlloc for Mirs {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        no_unwind(|| {
            if layout.align() <= MAX_ALIGN_GUARANTEE {
                crate::entry::alloc::malloc(fast_size(layout))
            } else {
                crate::entry::alloc::malloc_aligned(layout.size(), layout.align())
            }
        })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        no_unwind(|| {
            if layout.align() <= MAX_ALIGN_GUARANTEE {
                crate::entry::alloc::zalloc(fast_size(layout))
            } else {
                crate::entry::alloc::zalloc_aligned(layout.size(), layout.align())
            }
        })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the `GlobalAlloc` contract: `ptr` is a live block of ours.
        no_unwind(|| unsafe { crate::entry::free::free(ptr) })
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        no_unwind(|| {
            if layout.align() <= MAX_ALIGN_GUARANTEE {
                // A moved block is a fresh malloc of at least 16 bytes when
                // `align == 16`, so it is aligned as well.
                // SAFETY: the `GlobalAlloc` contract: `ptr` is a live block of ours.
                return unsafe { crate::entry::alloc::realloc(ptr, new_size.max(layout.align())) };
            }
            // In place by `realloc`'s rule: the address, hence the alignment, stays.
            // SAFETY: as above.
            let usable = unsafe { crate::entry::alloc::usable_size(ptr) };
            if crate::entry::alloc::stays_in_place(new_size, usable) {
                return ptr;
            }
            let q = crate::entry::alloc::malloc_aligned(new_size, layout.align());
            if !q.is_null() {
                // SAFETY: both blocks are live and distinct; `ptr` holds
                // `layout.size()` bytes and `q` at least `new_size`.
                unsafe { core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size)) };
                // SAFETY: as above; the contents moved to `q`.
                unsafe { crate::entry::free::free(ptr) };
            }
            q
        })
    }
}
