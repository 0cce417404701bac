//! The allocation entry points: `malloc`, `zalloc`, `calloc`, `realloc`,
//! `malloc_aligned`, `usable_size`. Every failure returns null with
//! `errno = ENOMEM` (`heap::out_of_memory`), so the C layer adds nothing to
//! the fast path.
//!
//! The malloc fast path: one thread-local load, one indexed load of the
//! direct page, pop the page's `free` list. Everything else is in
//! `heap::malloc_generic`.

use crate::base::constants::*;
use crate::base::size_class::{bin_block_size, bin_of_size, natural_align, wsize_of};
use crate::entry::free;
use crate::entry::lookup;
use crate::heap::{out_of_memory, Heap};
use crate::lockfree::block::Block;
use crate::mem::arena;
use crate::mem::page::{Page, Pop, FLAG_HAS_ALIGNED};
use crate::platform;
use crate::thread;
use core::ptr;

/// Allocate `size` bytes (null when out of memory or `size` is too large).
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    let Some(heap) = thread::heap_get_home() else {
        return malloc_probed(size);
    };
    malloc_with(heap, size)
}

/// `malloc` when the embedded heap table's home slot misses: a tail call,
/// so the fast path saves no registers.
#[inline(never)]
fn malloc_probed(size: usize) -> *mut u8 {
    malloc_with(thread::heap_get(), size)
}

/// `malloc` from the calling thread's heap `heap`.
#[inline(always)]
fn malloc_with(heap: *mut Heap, size: usize) -> *mut u8 {
    if size <= SMALL_SIZE_MAX {
        // SAFETY: `heap` is the thread's heap or the static empty heap; both
        // have a valid direct entry for every word size up to SMALL_WSIZE_MAX,
        // a page of that heap (or the empty page, whose `free` is null).
        let page = unsafe { (*heap).pages_direct[wsize_of(size)] };
        // SAFETY: as above: the calling thread's heap owns its direct pages.
        match unsafe { Page::owned(page) }.try_pop_free() {
            Pop::Block(block) => return block,
            // SAFETY: `page` is a direct page of the calling thread's heap.
            Pop::Suspect => return unsafe { malloc_suspect(size, heap, page) },
            Pop::Empty => {}
        }
    }
    malloc_generic(size, heap, false)
}

/// `malloc` whose direct page's free-list head failed the fast test: the
/// exact test, then the slow path (a tail call from `malloc_with`, which
/// then saves no registers).
///
/// # Safety
/// `page` is a direct page of `heap`, the calling thread's heap.
#[cold]
#[inline(never)]
unsafe fn malloc_suspect(size: usize, heap: *mut Heap, page: *mut Page) -> *mut u8 {
    // SAFETY: as the caller guarantees: the calling thread's heap owns its
    // direct pages.
    let block = unsafe { Page::owned(page) }.pop_checked();
    if !block.is_null() {
        return block;
    }
    malloc_generic(size, heap, false)
}

/// The slow path of every allocation: creates the thread's heap on its
/// first allocation, lets the heap do its deferred work and find or make a
/// page with a free block. When memory runs out it recovers what it can
/// (`thread::recover_for`, when that could serve the request) and tries
/// once more, so null means memory really is gone. (`size` first: malloc's
/// argument register stays where it is.)
#[inline(never)]
fn malloc_generic(size: usize, heap: *mut Heap, zero: bool) -> *mut u8 {
    if size > LARGE_OBJ_SIZE_MAX {
        return malloc_singleton(heap, size, 0, zero);
    }
    let (heap, exiting) = thread::heap_for_alloc(heap);
    if heap.is_null() {
        return out_of_memory();
    }
    // SAFETY: the calling thread's live heap, as its slot holds it.
    let mut block = unsafe { Heap::malloc_slow(heap, size, zero) };
    if block.is_null() && thread::recover_for(heap, size) {
        // SAFETY: as above (`recover` used the heap: no reference survives).
        block = unsafe { Heap::malloc_from_page(heap, size, zero) };
    }
    if exiting {
        // SAFETY: `heap_for_alloc` made it for this one allocation.
        unsafe { thread::exiting_alloc_done(heap) };
    }
    if block.is_null() {
        return out_of_memory();
    }
    block
}

/// A block above the size classes (a singleton span or huge chunk), aligned
/// to `align` (0: the default); zeroed when asked and not known to be zero.
/// No heap is involved, except to give memory back when none is left.
fn malloc_singleton(heap: *mut Heap, size: usize, align: usize, zero: bool) -> *mut u8 {
    // More than the address space can hold: refused without a mapping or a
    // recovery attempt (glibc's tst-malloc-too-large calls this in a loop).
    if size > MAX_REQUEST_SIZE {
        return out_of_memory();
    }
    let mut got = arena::alloc_singleton(size, align);
    // More than memory plus swap: tried (overcommit may grant it), but not
    // worth a recovery when refused.
    if got.is_none() && thread::recover_for(heap, size) {
        got = arena::alloc_singleton(size, align);
    }
    let Some((block, is_zero)) = got else {
        return out_of_memory();
    };
    if zero && !is_zero {
        // SAFETY: a fresh block of at least `size` bytes.
        unsafe { ptr::write_bytes(block, 0, size) };
    }
    block
}

/// Allocate `size` zeroed bytes. Memory fresh from the OS is not cleared
/// again. Shaped as `malloc`: its misses are tail calls.
#[inline]
pub fn zalloc(size: usize) -> *mut u8 {
    let heap = thread::heap_get();
    if size <= SMALL_SIZE_MAX {
        // SAFETY: as in `malloc`.
        let page = unsafe { (*heap).pages_direct[wsize_of(size)] };
        // SAFETY: as in `malloc`: the calling thread's heap owns its direct
        // pages. Like malloc, it pops the owner's own frees too: a size
        // calloc'd and freed in turn stays off the slow path.
        match unsafe { Page::owned(page) }.try_pop_free() {
            // SAFETY: just popped from our page.
            Pop::Block(block) => return unsafe { Heap::clear_popped(page, block, size) },
            // SAFETY: `page` is a direct page of the calling thread's heap.
            Pop::Suspect => return unsafe { zalloc_suspect(size, heap, page) },
            Pop::Empty => {}
        }
    }
    malloc_generic(size, heap, true)
}

/// `zalloc` whose direct page's free-list head failed the fast test (see
/// `malloc_suspect`).
///
/// # Safety
/// `page` is a direct page of `heap`, the calling thread's heap.
#[cold]
#[inline(never)]
unsafe fn zalloc_suspect(size: usize, heap: *mut Heap, page: *mut Page) -> *mut u8 {
    // SAFETY: as the caller guarantees.
    let block = unsafe { Page::owned(page) }.pop_checked();
    if !block.is_null() {
        // SAFETY: just popped from our page.
        return unsafe { Heap::clear_popped(page, block, size) };
    }
    malloc_generic(size, heap, true)
}

/// Allocate `count * size` zeroed bytes; null on overflow.
pub fn calloc(count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size) {
        Some(total) => zalloc(total),
        None => out_of_memory(),
    }
}

/// Allocate `size` bytes aligned to `align` (a power of two up to
/// `ALIGNMENT_MAX`); null otherwise.
#[inline(always)]
pub fn malloc_aligned(size: usize, align: usize) -> *mut u8 {
    match natural_size(size, align) {
        Some(natural) => malloc(natural),
        None => alloc_aligned(size, align, false),
    }
}

/// `malloc_aligned` with the block zeroed; memory known to be zero (fresh
/// from the OS) is not cleared again.
#[inline(always)]
pub fn zalloc_aligned(size: usize, align: usize) -> *mut u8 {
    match natural_size(size, align) {
        Some(natural) => zalloc(natural),
        None => alloc_aligned(size, align, true),
    }
}

/// The common aligned request, inlined: a size that malloc's direct
/// pages serve, rounded up to `align`, whose class's blocks all have that
/// alignment (`natural_align`: page areas start OS-page aligned). None
/// for everything else, which `alloc_aligned` decides (it accepts the
/// same requests the same way).
#[inline(always)]
fn natural_size(size: usize, align: usize) -> Option<usize> {
    if !align.is_power_of_two() || size > SMALL_SIZE_MAX {
        return None;
    }
    let natural = (size.max(1) + align - 1) & !(align - 1);
    (natural <= SMALL_SIZE_MAX && natural_align(wsize_of(natural)) >= align).then_some(natural)
}

/// `malloc` or `zalloc`.
#[inline(always)]
fn alloc_small(size: usize, zero: bool) -> *mut u8 {
    if zero {
        zalloc(size)
    } else {
        malloc(size)
    }
}

/// Both aligned allocations: the natural-alignment case and huge blocks go
/// through the zeroing paths (which skip memory known to be zero); an
/// over-allocated block (at most `LARGE_OBJ_SIZE_MAX`) is cleared over the
/// `size` bytes handed out.
#[inline(never)]
fn alloc_aligned(size: usize, align: usize, zero: bool) -> *mut u8 {
    if !align.is_power_of_two() || align > ALIGNMENT_MAX || size > MAX_ALLOC_SIZE {
        return out_of_memory();
    }
    if align <= WORD_SIZE {
        return alloc_small(size, zero);
    }
    // Natural alignment: page areas start OS-page aligned, so blocks of a
    // size class that is a multiple of `align` are all aligned.
    let size = size.max(1);
    if align <= OS_PAGE_SIZE && size <= LARGE_OBJ_SIZE_MAX {
        let natural = size.next_multiple_of(align);
        if natural <= LARGE_OBJ_SIZE_MAX
            && bin_block_size(bin_of_size(natural)).is_multiple_of(align)
        {
            let p = alloc_small(natural, zero);
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
                // SAFETY: `block` is a live block we just allocated from our heap.
                let page = unsafe { crate::mem::chunk::Chunk::page_of_block(block) };
                // SAFETY: as above: its page is ours.
                unsafe { Page::owned(page) }.set_flag(FLAG_HAS_ALIGNED);
                // SAFETY: `aligned` lies at least 16 bytes into our block.
                unsafe { lookup::mark_aligned(aligned) };
            }
            if zero {
                // SAFETY: `aligned` has at least `size` writable bytes of our block.
                unsafe { ptr::write_bytes(aligned, 0, size) };
            }
            return aligned;
        }
    }
    // The largest: a span or huge chunk of its own, the block placed at the alignment.
    aligned_huge(size, align, zero)
}

#[cold]
fn aligned_huge(size: usize, align: usize, zero: bool) -> *mut u8 {
    malloc_singleton(thread::heap_get(), size, align, zero)
}

/// realloc's in-place rule (here and in `Mirs::realloc`): a block of
/// `usable` bytes is kept for `new_size` when that fits and is not
/// wastefully smaller (less than half the block).
#[inline(always)]
pub(crate) fn stays_in_place(new_size: usize, usable: usize) -> bool {
    new_size <= usable && new_size >= usable / 2
}

/// Resize a block, in place when the new size fits and is not wastefully
/// smaller (less than half the block); a singleton span's block grows over
/// the free slices after it, and a huge block is remapped, never copied,
/// when the platform can (`arena::grow_span`, `arena::remap_huge`). On
/// failure returns null (ENOMEM) and leaves the old block intact; a
/// pointer that is not a live mirs block (foreign, interior, already
/// freed) gives null with EINVAL and is left alone. `p` null means
/// `malloc(new_size)`.
///
/// `new_size` 0 gives a block as `malloc(0)` does (the smallest) and frees
/// `p`, so a null result always means failure with `p` intact. This differs
/// from the C API: `mirs_realloc(p, 0)` (and `realloc(p, 0)` with
/// `override`) frees `p` and returns NULL, as glibc does.
///
/// # Safety
/// `p` is null or a pointer the caller may free: no other thread frees or
/// uses it meanwhile. (Pointers mirs does not own are detected, not
/// dereferenced.)
pub unsafe fn realloc(p: *mut u8, new_size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(new_size);
    }
    // The common case, a small block of a thread's page, is resolved as
    // free does, and its page serves the free below too; the rest through
    // the chunk map.
    // SAFETY: as the caller guarantees.
    let (old_size, page) = match unsafe { lookup::live_block_fast(p) } {
        Some((page, size)) => (size, Some(page)),
        // SAFETY: as the caller guarantees.
        None => match unsafe { lookup::live_usable_size_slow(p) } {
            Some(size) => (size, None),
            None => {
                crate::support::stats::add(crate::support::stats::Counter::InvalidFrees, 1);
                crate::support::output::warning!(
                    "realloc(): invalid pointer {:p}, not a live block (foreign, interior or already freed)",
                    p
                );
                platform::set_errno(platform::EINVAL);
                return ptr::null_mut();
            }
        },
    };
    if stays_in_place(new_size, old_size) {
        return p;
    }
    if old_size > LARGE_OBJ_SIZE_MAX {
        // SAFETY: as the caller guarantees; `p` is a live block of `old_size`.
        if let Some(q) = unsafe { realloc_in_span(p, old_size, new_size) } {
            return q;
        }
    }
    let q = malloc(new_size);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; `p` holds `old_size`
        // usable bytes and `q` at least `new_size`.
        unsafe { ptr::copy_nonoverlapping(p, q, old_size.min(new_size)) };
        match page {
            // SAFETY: the caller gave `p` up to us; `page` is the page
            // map's for it.
            Some(page) => unsafe { free::free_in_page(p, page) },
            // SAFETY: the caller gave `p` up to us.
            None => unsafe { free::free(p) },
        }
    }
    q
}

/// realloc of a block above the size classes without a copy, when its span
/// can: None when it cannot (the caller copies).
///
/// # Safety
/// `p` is a live block of `old_size` usable bytes (above
/// `LARGE_OBJ_SIZE_MAX`), which the caller gives up to us if this succeeds.
#[inline(never)]
unsafe fn realloc_in_span(p: *mut u8, old_size: usize, new_size: usize) -> Option<*mut u8> {
    // A singleton span's block grows over the free slices after it.
    if old_size < new_size && new_size <= arena::SINGLETON_MAX {
        if let Some(page) = lookup::resolve(p) {
            // SAFETY: `p` is a live block (the caller's), a singleton's (its size),
            // which the caller gives up to us.
            if unsafe { arena::grow_span(p, page, new_size) } {
                return Some(p);
            }
        }
    }
    // A huge block that stays huge: resized (hosted: remapped, or its
    // region units grown or moved) without a copy.
    if old_size >= arena::HUGE_MIN && (arena::HUGE_MIN..=MAX_REQUEST_SIZE).contains(&new_size) {
        if let Some(page) = lookup::resolve(p) {
            // SAFETY: `p` is a live block (the caller's), a huge chunk's (its size),
            // which the caller gives up to us.
            if let Some(q) = unsafe { arena::remap_huge(p, page, new_size) } {
                return Some(q);
            }
        }
    }
    None
}

/// Bytes usable at `p`: 0 for null and for anything that is not a live
/// mirs block (foreign, interior, freed).
///
/// # Safety
/// No other thread frees `p` or writes its block meanwhile.
pub unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: as the caller guarantees.
    match unsafe { lookup::live_block_fast(p) } {
        Some((_, size)) => size,
        // SAFETY: as the caller guarantees.
        None => unsafe { usable_size_slow(p) },
    }
}

/// `usable_size` off the fast path (a tail call: the fast one saves no
/// registers).
///
/// # Safety
/// As [`usable_size`].
#[cold]
#[inline(never)]
unsafe fn usable_size_slow(p: *const u8) -> usize {
    // SAFETY: as the caller guarantees.
    unsafe { lookup::live_usable_size_slow(p) }.unwrap_or(0)
}

/// Is `p` a live block mirs handed out (not freed, not an interior or
/// foreign pointer)?
///
/// # Safety
/// No other thread frees `p` or writes its block meanwhile (the answer
/// reads the block's second word).
pub unsafe fn owns(p: *const u8) -> bool {
    // SAFETY: as the caller guarantees.
    unsafe { lookup::live_usable_size(p) }.is_some()
}

/// Does `p` lie in a page mirs has in use? True for every live block mirs
/// handed out (and for freed blocks of pages still in use), false for
/// memory mirs never had, whatever its contents: exact where [`owns`]
/// reads the block. An embedder that serves some blocks from another
/// allocator (ArceOS's boot heap) tells them apart with it.
///
/// The answer is stable while `p` is a live block (its page stays in use
/// until the block is freed).
///
/// # Safety
/// `p` is a block the caller holds (live, or being handed back by it), or
/// memory mirs never had: the test reads the header of the chunk the map
/// names, which another thread freeing that chunk's last block could
/// unmap meanwhile.
pub unsafe fn in_heap(p: *const u8) -> bool {
    lookup::resolve(p).is_some()
}

const _: () = assert!(core::mem::size_of::<Block>() == WORD_SIZE);
