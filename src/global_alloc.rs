//! `mirs::Mirs`: use mirs as a Rust program's global allocator.
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: mirs::Mirs = mirs::Mirs;
//! ```
//! (with `default-features = false, features = ["hosted"]`, since a std
//! program brings its own panic handler).

use crate::constants::WORD_SIZE;
use core::alloc::{GlobalAlloc, Layout};

pub struct Mirs;

// SAFETY: every method forwards to mirs's thread-safe entry points, which
// return blocks of at least `layout.size()` bytes aligned to `layout.align()`
// or null, and accept back exactly the pointers they returned.
unsafe impl GlobalAlloc for Mirs {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_SIZE {
            crate::alloc::malloc(layout.size())
        } else {
            crate::alloc::malloc_aligned(layout.size(), layout.align())
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_SIZE {
            return crate::alloc::zalloc(layout.size());
        }
        let p = crate::alloc::malloc_aligned(layout.size(), layout.align());
        if !p.is_null() {
            // SAFETY: `p` has at least `layout.size()` writable bytes.
            unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        crate::free::free(ptr);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD_SIZE {
            return crate::alloc::realloc(ptr, new_size);
        }
        let q = crate::alloc::malloc_aligned(new_size, layout.align());
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct, each holds at least
            // the bytes copied.
            unsafe { core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size)) };
            crate::free::free(ptr);
        }
        q
    }
}
