//! The allocation entry points: `malloc`, `zalloc`, `calloc`, `realloc`,
//! `malloc_aligned`, `usable_size`. Every failure returns null with
//! `errno = ENOMEM` (`heap::out_of_memory`), so the C layer adds nothing to
//! the fast path.
//!
//! The malloc fast path: one thread-local load, one indexed load of the
//! direct page, pop the page's `free` list. Everything else is in
//! `heap::malloc_generic`.

use crate::block::Block;
use crate::constants::*;
use crate::free;
use crate::heap;
use crate::page::FLAG_HAS_ALIGNED;
use crate::platform;
use crate::size_class::{bin_block_size, bin_of_size, wsize_of};
use core::ptr;

/// Allocate `size` bytes (null when out of memory or `size` is too large).
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    let heap = platform::heap_get();
    if size <= SMALL_SIZE_MAX {
        // SAFETY: `heap` is the thread's heap or the static empty heap; both
        // have a valid direct entry for every word size up to SMALL_WSIZE_MAX.
        unsafe {
            let page = (*heap).pages_direct[wsize_of(size)];
            let block = (*page).pop_free();
            if !block.is_null() {
                return block;
            }
        }
    }
    heap::malloc_generic(heap, size, false)
}

/// Allocate `size` zeroed bytes. Memory fresh from the OS is not cleared again.
#[inline]
pub fn zalloc(size: usize) -> *mut u8 {
    let heap = platform::heap_get();
    if size <= SMALL_SIZE_MAX {
        // SAFETY: as in `malloc`; `pop_from` is only reached with a free block.
        unsafe {
            let page = (*heap).pages_direct[wsize_of(size)];
            if (*page).has_free() {
                return (*heap).pop_from(page, size, true);
            }
        }
    }
    heap::malloc_generic(heap, size, true)
}

/// Allocate `count * size` zeroed bytes; null on overflow.
pub fn calloc(count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size) {
        Some(total) => zalloc(total),
        None => heap::out_of_memory(),
    }
}

/// Allocate `size` bytes aligned to `align` (a power of two up to
/// `ALIGNMENT_MAX`); null otherwise.
pub fn malloc_aligned(size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() || align > ALIGNMENT_MAX || size > MAX_ALLOC_SIZE {
        return heap::out_of_memory();
    }
    if align <= WORD_SIZE {
        return malloc(size);
    }
    // Natural alignment: page areas start OS-page aligned, so blocks of a
    // size class that is a multiple of `align` are all aligned.
    let size = size.max(1);
    if align <= OS_PAGE_SIZE && size <= LARGE_OBJ_SIZE_MAX {
        let natural = size.next_multiple_of(align);
        if natural <= LARGE_OBJ_SIZE_MAX
            && bin_block_size(bin_of_size(natural)).is_multiple_of(align)
        {
            let p = malloc(natural);
            debug_assert!((p as usize).is_multiple_of(align));
            return p;
        }
    }
    // Over-allocate in the ordinary size classes and hand out an interior
    // pointer; the page is flagged so free finds the block start.
    if let Some(padded) = size.checked_add(align - 1) {
        if padded <= LARGE_OBJ_SIZE_MAX {
            let block = malloc(padded);
            if block.is_null() {
                return block;
            }
            let aligned = block.map_addr(|a| a.next_multiple_of(align));
            if aligned != block {
                // SAFETY: `block` is a live block we just allocated, and
                // `aligned` lies at least 16 bytes into it.
                unsafe {
                    let page = free::page_of_owned(block);
                    (*page).set_flag(FLAG_HAS_ALIGNED);
                    free::mark_aligned(aligned);
                }
            }
            return aligned;
        }
    }
    // The largest: a span or huge chunk of its own, the block placed at the alignment.
    aligned_huge(size, align)
}

#[cold]
fn aligned_huge(size: usize, align: usize) -> *mut u8 {
    heap::malloc_singleton(platform::heap_get(), size, align, false)
}

/// Resize a block, in place when the new size fits and is not wastefully
/// smaller (less than half the block). On failure returns null (ENOMEM) and
/// leaves the old block intact; a pointer mirs does not own gives null with
/// EINVAL and is left alone. `p` null means `malloc(new_size)`.
// Takes any pointer by design (C's realloc): it is validated through the
// chunk map before the copy reads it.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn realloc(p: *mut u8, new_size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(new_size);
    }
    let Some(old_size) = free::checked_usable_size(p) else {
        crate::output::warning!("realloc of a pointer mirs does not own ignored: {:p}", p);
        crate::stats::add(crate::stats::Counter::InvalidFrees, 1);
        platform::set_errno(crate::c_api::EINVAL);
        return ptr::null_mut();
    };
    #[cfg(feature = "secure")]
    if free::is_freed_block_of_this_thread(p) {
        crate::output::warning!("realloc of a freed block ignored: {:p}", p);
        crate::stats::add(crate::stats::Counter::InvalidFrees, 1);
        platform::set_errno(crate::c_api::EINVAL);
        return ptr::null_mut();
    }
    if new_size <= old_size && new_size >= old_size / 2 {
        return p;
    }
    let q = malloc(new_size);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; `p` holds `old_size`
        // usable bytes and `q` at least `new_size`.
        unsafe { ptr::copy_nonoverlapping(p, q, old_size.min(new_size)) };
        free::free(p);
    }
    q
}

/// Bytes usable at `p` (0 for null or a pointer mirs does not own).
pub fn usable_size(p: *const u8) -> usize {
    free::checked_usable_size(p).unwrap_or(0)
}

/// Does `p` point into memory mirs manages (a carved block of a page in use)?
pub fn owns(p: *const u8) -> bool {
    free::checked_usable_size(p).is_some()
}

const _: () = assert!(core::mem::size_of::<Block>() == WORD_SIZE);

/// `malloc_aligned` with the block zeroed; memory known to be zero (fresh
/// from the OS) is not cleared again. The natural-alignment case and huge
/// blocks go through the zeroing paths; an over-allocated block (at most
/// `LARGE_OBJ_SIZE_MAX`) is cleared over the `size` bytes handed out.
pub fn zalloc_aligned(size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() || align > ALIGNMENT_MAX || size > MAX_ALLOC_SIZE {
        return heap::out_of_memory();
    }
    if align <= WORD_SIZE {
        return zalloc(size);
    }
    // As in `malloc_aligned`.
    let size = size.max(1);
    if align <= OS_PAGE_SIZE && size <= LARGE_OBJ_SIZE_MAX {
        let natural = size.next_multiple_of(align);
        if natural <= LARGE_OBJ_SIZE_MAX
            && bin_block_size(bin_of_size(natural)).is_multiple_of(align)
        {
            return zalloc(natural);
        }
    }
    if size.saturating_add(align - 1) > LARGE_OBJ_SIZE_MAX {
        return zalloc_aligned_huge(size, align);
    }
    let p = malloc_aligned(size, align);
    if !p.is_null() {
        // SAFETY: `p` has at least `size` writable bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// `aligned_huge` for `zalloc_aligned`: a span or huge chunk of its own,
/// cleared only if it is not known to read as zero.
#[cold]
fn zalloc_aligned_huge(size: usize, align: usize) -> *mut u8 {
    heap::malloc_singleton(platform::heap_get(), size, align, true)
}
