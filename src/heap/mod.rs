//! The thread-local heap: where a thread allocates from.
//!
//! ```text
//! Heap
//!  pages_direct[wsize]  -> first page of the bin for each word size <= 128
//!  queues[bin]          -> pages of a bin (first = allocating page)
//!  queues[BIN_FULL]     -> pages with no free block (UseDelayedFree set)
//!  thread_delayed_free  -> DelayedList: frees into full pages by other threads
//! ```
//!
//! The heap owns pages, never chunks: it takes them from the arena (an
//! abandoned page of the size class first, else a fresh span) and gives
//! each back when it empties. Blocks above `LARGE_OBJ_SIZE_MAX` are not the
//! heap's at all: they are singletons (`arena::alloc_singleton`).
//!
//! Invariants: `pages_direct[w]` is the first page of `bin_of_wsize(w)`'s
//! queue, or the static empty page when that queue is empty; a page is in
//! exactly one queue, the full queue iff `FLAG_IN_FULL`.
//!
//! A thread that never allocated sees `EMPTY_HEAP`, whose direct pages are
//! all the empty page: the first malloc falls into [`malloc_generic`], which
//! creates the real heap. Heap structs come from the platform in chunks,
//! never from malloc, and are recycled through a lock-free pool.

pub(crate) mod page_queue;

use crate::base::constants::*;
use crate::base::size_class::{
    bin_block_size, bin_of_size, bin_of_wsize, bin_wsizes, BIN_COUNT, BIN_FULL, BIN_HUGE,
};
use crate::heap::page_queue::PageQueue;
use crate::lockfree::block::Block;
use crate::lockfree::delayed::DelayedList;
use crate::lockfree::sync::AtomicUsize;
use crate::lockfree::tagged_stack::StackNode;
use crate::mem::arena;
use crate::mem::page::{DelayedState, OwnedPage, OwnerHeap, Page, FLAG_IN_FULL};
use crate::platform;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::Ordering;

#[repr(C)]
pub struct Heap {
    // --- the malloc fast path reads only this ---
    pub(crate) pages_direct: [*mut Page; PAGES_DIRECT],
    // --- slow path ---
    pub(crate) thread_id: usize,
    pub(crate) queues: [PageQueue; BIN_COUNT],
    /// This heap's delayed list, in its slot next to it (null for the
    /// static heaps, which own no page).
    delayed: *const DelayedList,
    /// Slow-path calls so far (drives periodic work).
    pub(crate) generic_count: u64,
    /// Bins where a page may be retiring.
    pub(crate) retired_min: usize,
    pub(crate) retired_max: usize,
    /// Retiring pages that are not the first of their queue, as of the last
    /// `collect_retired` plus those kept since (reuse is not counted off:
    /// an overestimate keeps fewer).
    retiring: usize,
    /// Next time (ms) purging is worth a look.
    pub(crate) next_purge_at: u64,
    /// State of the heap's random stream (secret page keys).
    random: u64,
}

// ------------------------------------------------------------------ the empty heap

struct SyncCell<T>(UnsafeCell<T>);
// SAFETY: the empty page and heap are never written: their direct entries
// point at a page with no free block, so every path that would write takes
// the slow path first and switches to a real heap.
unsafe impl<T> Sync for SyncCell<T> {}

static EMPTY_PAGE: SyncCell<Page> = SyncCell(UnsafeCell::new(Page::empty()));

const fn empty_queues() -> [PageQueue; BIN_COUNT] {
    let mut q = [const { PageQueue::new(0) }; BIN_COUNT];
    let mut bin = 1;
    while bin < BIN_HUGE {
        q[bin].block_size = bin_block_size(bin);
        bin += 1;
    }
    q[BIN_HUGE].block_size = LARGE_OBJ_SIZE_MAX + 1; // stays empty: singletons are no heap's
    q
}

const fn empty_heap() -> Heap {
    Heap {
        pages_direct: [EMPTY_PAGE.0.get(); PAGES_DIRECT],
        thread_id: 0,
        queues: empty_queues(),
        delayed: ptr::null(),
        generic_count: 0,
        retired_min: BIN_FULL,
        retired_max: 0,
        retiring: 0,
        next_purge_at: 0,
        random: 0,
    }
}

static EMPTY_HEAP: SyncCell<Heap> = SyncCell(UnsafeCell::new(empty_heap()));
static EXITING_HEAP: SyncCell<Heap> = SyncCell(UnsafeCell::new(empty_heap()));

/// The heap of every thread before its first allocation.
pub const EMPTY_HEAP_PTR: *mut Heap = EMPTY_HEAP.0.get();
/// Hosted: the heap slot of a thread whose heap was abandoned by its
/// pthread key destructor. Allocations in later destructors (glibc runs
/// them in up to four rounds, and no destructor follows the last) each get
/// a heap that is abandoned again right after the allocation, so nothing
/// is left owned by a thread that is gone. Embedded with `thread-local`,
/// the same after `mirs_thread_done` (`thread::heap_abandon`).
pub(crate) const EXITING_HEAP_PTR: *mut Heap = EXITING_HEAP.0.get();

/// Is `heap` one of the static heaps (no real heap yet, or exiting)?
#[inline(always)]
pub fn is_empty_heap(heap: *const Heap) -> bool {
    ptr::eq(heap, EMPTY_HEAP_PTR) || ptr::eq(heap, EXITING_HEAP_PTR)
}

fn empty_page() -> *mut Page {
    EMPTY_PAGE.0.get()
}

/// Where a heap lives in platform memory: the `Heap` (the owner's, which it
/// reaches through `&mut`) and, outside it, the words other threads touch:
/// its delayed list and the heap pool's link. A freer in `DelayedFreeing`
/// pushes on the list while the owner may hold `&mut Heap`, and a stale pop
/// of the pool may read the link while the heap is re-initialised: neither
/// word may lie inside the `Heap`.
#[repr(C)]
pub(crate) struct HeapSlot {
    /// First, so a slot's address is its heap's.
    heap: core::mem::MaybeUninit<Heap>,
    delayed: DelayedList,
    pool_next: AtomicUsize,
}

impl StackNode for HeapSlot {
    unsafe fn link<'a>(node: *mut Self) -> &'a AtomicUsize {
        // SAFETY: the caller passes a slot of a heap chunk (never unmapped).
        unsafe { &(*node).pool_next }
    }
}

impl HeapSlot {
    /// The slot of a heap made by [`Heap::init_at`] (pointer arithmetic).
    pub(crate) fn of(heap: *mut Heap) -> *mut HeapSlot {
        heap.cast()
    }
}

impl Heap {
    /// Make the heap of `slot` a fresh heap of thread `thread_id`, with an
    /// empty delayed list; returns it.
    ///
    /// # Safety
    /// `slot` points at an unused heap slot the caller owns; the heap is
    /// initialised by a whole-struct write before any read.
    pub(crate) unsafe fn init_at(slot: *mut HeapSlot, thread_id: usize, seed: u64) -> *mut Heap {
        // SAFETY: as the caller guarantees (a place, nothing is read).
        let delayed = unsafe { ptr::addr_of!((*slot).delayed) };
        // SAFETY: as the caller guarantees: nobody else references the
        // list (the heap's pages are gone, its last drain emptied it).
        unsafe { delayed.cast_mut().write(DelayedList::new()) };
        let heap = slot.cast::<Heap>();
        let fresh = Heap {
            thread_id,
            random: seed,
            delayed,
            ..empty_heap()
        };
        // SAFETY: as the caller guarantees.
        unsafe { heap.write(fresh) };
        heap
    }
}

// ------------------------------------------------------------------ allocation

impl Heap {
    /// The heap's part of the allocation slow path: the deferred work
    /// (delayed frees, retired pages, purging), then a page of `size`'s bin
    /// with a free block. Null when no page can be had (the caller recovers
    /// and tries once more). Takes the heap by its raw pointer: pages keep
    /// that pointer, so it must not come from a `&mut` that a later one
    /// would end (Stacked Borrows; Miri found it).
    ///
    /// # Safety
    /// `heap` is the calling thread's live heap, as its slot holds it.
    pub(crate) unsafe fn malloc_slow(heap: *mut Heap, size: usize, zero: bool) -> *mut u8 {
        // SAFETY: as the caller guarantees; the reference ends below.
        let h = unsafe { &mut *heap };
        h.generic_count += 1;
        h.drain_delayed_free();
        // Retiring pages age by one step every few slow-path calls; emptying a
        // page again restarts its grace, so only idle pages go back.
        if h.generic_count.is_multiple_of(RETIRE_STEP) {
            h.collect_retired(false);
        }
        if h.generic_count.is_multiple_of(PURGE_CHECK_INTERVAL) {
            h.purge(false);
        }
        // SAFETY: as above.
        unsafe { Heap::malloc_from_page(heap, size, zero) }
    }

    /// A block of `size` from a page of this heap (queue, abandoned, fresh);
    /// null when there is none.
    ///
    /// # Safety
    /// As for [`Heap::malloc_slow`].
    pub(crate) unsafe fn malloc_from_page(heap: *mut Heap, size: usize, zero: bool) -> *mut u8 {
        // SAFETY: as the caller guarantees: a fresh reference.
        let h = unsafe { &mut *heap };
        loop {
            let page = h.find_page(heap, size);
            if page.is_null() {
                return ptr::null_mut();
            }
            // SAFETY: `find_page` returns a page of this heap with a free block.
            let block = unsafe { Heap::pop_from(page, size, zero) };
            // Null only when the page's free list was found damaged and
            // dropped: the page has fewer blocks now; look again.
            if !block.is_null() {
                return block;
            }
        }
    }
}

/// Every failed allocation ends here: errno = ENOMEM (as C callers expect;
/// harmless for Rust callers), null.
#[cold]
pub(crate) fn out_of_memory() -> *mut u8 {
    platform::set_errno(platform::ENOMEM);
    ptr::null_mut()
}

impl Heap {
    /// Pop a block from `page` (from `free`, else from `local_free`),
    /// zeroing it when asked; null when the page has none at hand or its
    /// list turned out damaged.
    ///
    /// # Safety
    /// `page` is a page of the calling thread's heap.
    #[inline(always)]
    pub(crate) unsafe fn pop_from(page: *mut Page, size: usize, zero: bool) -> *mut u8 {
        // SAFETY: as the caller guarantees.
        let pg = unsafe { Page::owned(page) };
        let block = pg.pop_free();
        if block.is_null() {
            return block; // none at hand, or a damaged list, dropped (OwnedPage::pop_free)
        }
        if zero {
            // SAFETY: just popped from the page.
            unsafe { Heap::clear_popped(page, block, size) };
        }
        block
    }

    /// Zero the `size` bytes (at most the block) of `block`, just popped
    /// from `page`, unless all but its link word read as zero already.
    ///
    /// # Safety
    /// The calling thread owns `page` and has just popped `block` from it.
    #[inline(always)]
    pub(crate) unsafe fn clear_popped(page: *mut Page, block: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: as the caller guarantees.
        let pg = unsafe { Page::owned(page) };
        // Read after the pop: taking `local_free` as `free` clears it.
        if pg.free_is_zero() {
            // Fresh memory: only the link word was written.
            // SAFETY: a block of at least `min(size, block_size)` bytes, ours.
            unsafe { block.cast::<usize>().write(0) };
        } else {
            // SAFETY: as above.
            unsafe { ptr::write_bytes(block, 0, size.min(pg.block_size())) };
        }
        block
    }

    /// The key a new page of this heap stores its lists with: secret and
    /// per page (block.rs).
    fn page_key(&mut self) -> crate::lockfree::block::ListKey {
        crate::lockfree::block::ListKey::new(self.random_words())
    }

    /// The heap owning `page` (null for abandoned and singleton pages).
    #[inline(always)]
    pub(crate) fn of_page(page: &Page) -> *mut Heap {
        page.heap.load(Ordering::Relaxed).cast()
    }

    /// As [`Heap::of_page`], for a freer in `DelayedFreeing`: the load
    /// pairs with the owner's Release store of `heap` when it adopted the page.
    #[inline(always)]
    pub(crate) fn of_page_acquire(page: &Page) -> *mut Heap {
        page.heap.load(Ordering::Acquire).cast()
    }

    /// `heap` as the pages see it.
    #[inline(always)]
    pub(crate) fn as_owner(heap: *mut Heap) -> *mut OwnerHeap {
        heap.cast()
    }

    /// Two random words (splitmix64): secret keys for a page's free lists.
    fn random_words(&mut self) -> [usize; 2] {
        let mut word = || {
            self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.random;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as usize
        };
        [word(), word()]
    }

    /// A page of `size`'s bin with a free block, or null (out of memory):
    /// a page of the heap's queue, else an abandoned page of the bin, else
    /// a fresh one.
    ///
    /// `me` is this heap's own pointer (what the thread's heap slot holds),
    /// recorded in the pages as their heap: a pointer derived from `&mut
    /// self` would be invalidated by the next `&mut` taken from the slot,
    /// and later frees reach the heap through the page (Miri, Stacked
    /// Borrows).
    fn find_page(&mut self, me: *mut Heap, size: usize) -> *mut Page {
        debug_assert!(ptr::eq(me, self));
        let bin = bin_of_size(size);
        let mut cur = self.queues[bin].first;
        while !cur.is_null() {
            // SAFETY: queue members are live pages of this heap.
            let page = unsafe { Page::owned(cur) };
            let next = page.next();
            page.collect(false);
            // Carve more only when no freed block is waiting: reusing the
            // blocks just freed keeps malloc in warm cache lines (carving
            // ahead walked cold memory: 2.67 L1 misses per op against
            // 1.97) and leaves the rest of the page untouched.
            if !page.has_free() && page.can_extend() {
                page.extend();
            }
            if page.has_free() {
                page.set_retire_expire(0);
                return cur;
            }
            // No room: from now on other threads tell us when they free here.
            page.set_delayed_state(DelayedState::UseDelayedFree, false);
            // A free that raced with the switch is on thread_free: look again.
            page.collect(false);
            if page.has_free() {
                page.set_delayed_state(DelayedState::NoDelayedFree, false);
                page.set_retire_expire(0);
                return cur;
            }
            self.move_to_full(cur);
            cur = next;
        }
        self.find_page_elsewhere(me, bin)
    }

    /// `find_page` when no page of the bin's queue has room: an abandoned
    /// page of the bin, else a fresh one (cold: kept out of the queue walk,
    /// which the slow path takes every time a page's list runs dry).
    #[inline(never)]
    fn find_page_elsewhere(&mut self, me: *mut Heap, bin: usize) -> *mut Page {
        let block_size = bin_block_size(bin);
        loop {
            let page = arena::adopt(Heap::as_owner(me), self.thread_id, block_size);
            if page.is_null() {
                break;
            }
            // SAFETY: the page is ours now, in no queue.
            let pg = unsafe { Page::owned(page) };
            pg.set_delayed_state(DelayedState::NoDelayedFree, true);
            pg.collect(false);
            if pg.all_free() {
                // Every block came back while it was abandoned: a fresh page.
                pg.set_retire_expire(0);
            }
            if !pg.has_free() && pg.can_extend() {
                pg.extend();
            }
            if pg.has_free() {
                // SAFETY: ours, in no queue.
                unsafe { self.queue_push_front(bin, page) };
                return page;
            }
            // Adopted but full: it waits in the full queue like our own.
            pg.set_delayed_state(DelayedState::UseDelayedFree, false);
            pg.set_flag(FLAG_IN_FULL);
            // SAFETY: ours, in no queue.
            unsafe { self.queues[BIN_FULL].push_back(page) };
        }
        let key = self.page_key();
        let page = arena::alloc_page(Heap::as_owner(me), self.thread_id, block_size, key);
        if page.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a fresh page of this heap in no queue.
        unsafe { Page::owned(page) }.extend();
        // SAFETY: as above.
        unsafe { self.queue_push_front(bin, page) };
        page
    }

    // -------------------------------------------------------------- queues

    fn bin_of_page(page: OwnedPage) -> usize {
        if page.is_full_flagged() {
            BIN_FULL
        } else {
            bin_of_size(page.block_size())
        }
    }

    /// Point the direct entries of `bin` at its queue's first page.
    fn update_direct(&mut self, bin: usize) {
        if bin >= BIN_HUGE {
            return;
        }
        let block_size = bin_block_size(bin);
        if block_size > SMALL_SIZE_MAX {
            return;
        }
        let first = self.queues[bin].first;
        let target = if first.is_null() { empty_page() } else { first };
        for w in bin_wsizes(bin) {
            debug_assert!(w == 0 || bin_of_wsize(w) == bin);
            self.pages_direct[w] = target;
        }
    }

    /// # Safety
    /// `page` is a live page of this heap in no queue.
    unsafe fn queue_push_front(&mut self, bin: usize, page: *mut Page) {
        // SAFETY: as the caller guarantees.
        unsafe { self.queues[bin].push_front(page) };
        self.update_direct(bin);
    }

    /// # Safety
    /// `page` is in this heap's queue for `bin`.
    unsafe fn queue_remove(&mut self, bin: usize, page: *mut Page) {
        let was_first = self.queues[bin].first == page;
        // SAFETY: as the caller guarantees.
        unsafe { self.queues[bin].remove(page) };
        if was_first {
            self.update_direct(bin);
        }
    }

    fn move_to_full(&mut self, page: *mut Page) {
        // SAFETY: `page` is in its bin queue of this heap.
        let pg = unsafe { Page::owned(page) };
        let bin = Self::bin_of_page(pg);
        // SAFETY: as above.
        unsafe { self.queue_remove(bin, page) };
        pg.set_flag(FLAG_IN_FULL);
        // SAFETY: ours, in no queue now.
        unsafe { self.queues[BIN_FULL].push_back(page) };
    }

    /// A full page got a free block back: return it to its bin queue (at the
    /// end, so the current allocation page stays first).
    pub(crate) fn page_unfull(&mut self, page: *mut Page) {
        // SAFETY: `page` is in this heap's full queue.
        let pg = unsafe { Page::owned(page) };
        debug_assert!(pg.is_full_flagged());
        // SAFETY: as above.
        unsafe { self.queues[BIN_FULL].remove(page) };
        pg.clear_flag(FLAG_IN_FULL);
        pg.set_delayed_state(DelayedState::NoDelayedFree, false);
        let bin = Self::bin_of_page(pg);
        let was_empty = self.queues[bin].is_empty();
        // SAFETY: ours, in no queue now.
        unsafe { self.queues[bin].push_back(page) };
        if was_empty {
            self.update_direct(bin);
        }
    }

    // -------------------------------------------------------------- freeing

    /// The last block of `page` came back (owner thread): keep the page a
    /// while if malloc is using it, else give it back to the arena.
    #[cold]
    pub(crate) fn page_retire(&mut self, page: *mut Page) {
        // SAFETY: `page` is a live page of this heap with no live blocks.
        let pg = unsafe { Page::owned(page) };
        if pg.retire_expire() != 0 {
            return;
        }
        let bin = Self::bin_of_page(pg);
        // Embedded, pages of blocks over RETIRE_SIZE_MAX would go back at
        // once (an idle big page per thread and class fragments a small
        // region; a dead thread's is held until it is reaped); the
        // embedded size classes end at 32 KiB, so there are none today.
        let small = pg.block_size() <= RETIRE_SIZE_MAX;
        let keep = small || cfg!(feature = "hosted");
        // The first page of its queue, as mimalloc keeps it; and a bounded
        // number of others, for programs that free whole bursts.
        let first = self.queues[bin].first == page;
        let another = cfg!(feature = "hosted") && small && self.retiring < RETIRE_KEEP_MAX;
        if bin < BIN_HUGE && keep && (first || another) {
            self.retiring += usize::from(!first);
            pg.set_retire_expire(RETIRE_CYCLES);
            pg.note_retire_free();
            self.retired_min = self.retired_min.min(bin);
            self.retired_max = self.retired_max.max(bin);
            return;
        }
        // SAFETY: as above.
        unsafe { self.page_free(page) };
    }

    /// Remove an empty page from its queue and give it back to the arena.
    ///
    /// # Safety
    /// `page` is a live page of this heap with no live blocks.
    unsafe fn page_free(&mut self, page: *mut Page) {
        // SAFETY: as the caller guarantees.
        let pg = unsafe { Page::owned(page) };
        let bin = Self::bin_of_page(pg);
        // SAFETY: as above: in its queue.
        unsafe { self.queue_remove(bin, page) };
        pg.set_delayed_state(DelayedState::NoDelayedFree, true);
        // SAFETY: ours, in no queue, with no live block.
        unsafe { arena::free_page(page) };
        // Freeing pages is when memory becomes purgeable: a program that
        // frees a burst and then goes quiet still gives it back.
        self.purge(false);
    }

    /// Free the retiring pages whose grace has run out (all with `force`).
    fn collect_retired(&mut self, force: bool) -> usize {
        if self.retired_min > self.retired_max {
            return 0;
        }
        let mut freed = 0;
        let (lo, hi) = (self.retired_min, self.retired_max);
        self.retired_min = BIN_FULL;
        self.retired_max = 0;
        let mut retiring = 0;
        for bin in lo..=hi {
            let mut next = self.queues[bin].first;
            while !next.is_null() {
                let page = next;
                // SAFETY: a page in a queue of this heap.
                let pg = unsafe { Page::owned(page) };
                next = pg.next();
                let (kept, was_freed) = self.age_retiring(bin, page, force);
                freed += usize::from(was_freed);
                retiring += usize::from(kept && self.queues[bin].first != page);
            }
        }
        self.retiring = retiring;
        freed
    }

    /// One retire step of `page` (of `bin`'s queue): not retiring, or in
    /// use again (the grace ends), or one step older, freed when its grace
    /// has run out (or with `force`). Returns (still retiring, freed).
    fn age_retiring(&mut self, bin: usize, page: *mut Page, force: bool) -> (bool, bool) {
        // SAFETY: a page in a queue of this heap.
        let pg = unsafe { Page::owned(page) };
        if pg.retire_expire() == 0 {
            return (false, false);
        }
        if !pg.all_free() {
            pg.set_retire_expire(0);
            return (false, false);
        }
        if pg.free_changed_since_retire() {
            // Blocks were handed out since the last look: in use,
            // though empty right now. The grace starts over.
            pg.note_retire_free();
            pg.set_retire_expire(RETIRE_CYCLES);
        } else {
            pg.set_retire_expire(pg.retire_expire() - 1);
        }
        if force || pg.retire_expire() == 0 {
            pg.set_retire_expire(0);
            // SAFETY: an empty page of this heap.
            unsafe { self.page_free(page) };
            return (false, true);
        }
        self.retired_min = self.retired_min.min(bin);
        self.retired_max = self.retired_max.max(bin);
        (true, false)
    }

    /// Free the blocks other threads handed over because their page was full.
    pub(crate) fn drain_delayed_free(&mut self) {
        let thread_free_of = |block: *mut Block| {
            // SAFETY: blocks on the delayed list are handed-out block starts
            // of pages of this heap (the pusher checked), live until freed here.
            let page = unsafe { crate::mem::chunk::Chunk::page_of_block(block.cast()) };
            // SAFETY: a page header of a live chunk.
            ptr::addr_of!(unsafe { &*page }.thread_free)
        };
        let list = self.delayed;
        if list.is_null() {
            return;
        }
        // SAFETY: our slot's list (outside the `Heap`, so `&mut self` does
        // not cover it), valid while the heap is.
        let list = unsafe { &*list };
        // SAFETY: as above: each block's page is live while it is listed.
        let blocks = unsafe { list.drain(thread_free_of) };
        // Each block comes after its pusher left DelayedFreeing.
        for block in blocks {
            // SAFETY: as above; the block is ours now.
            let page = unsafe { crate::mem::chunk::Chunk::page_of_block(block.cast()) };
            // SAFETY: as above: a handed-out block of our heap's page.
            unsafe { self.free_local(page, block) };
        }
    }

    /// In the child after `fork`: a thread that was inside a delayed free to
    /// this heap (`free::push_delayed_and_end`) is gone, leaving its page in
    /// `DelayedFreeing`. Such a page is in the full queue (the freer saw
    /// `UseDelayedFree`); it goes back to that state. A block pushed on the
    /// delayed list before the fork is drained as usual; one not yet pushed
    /// stays allocated (lost, like a span in an interrupted arena section).
    pub(crate) fn reset_delayed_freeing_after_fork(&mut self) {
        for page in self.all_pages() {
            // SAFETY: live pages of this heap; no other thread exists.
            let pg = unsafe { Page::owned(page) };
            let state = if pg.is_full_flagged() {
                DelayedState::UseDelayedFree
            } else {
                DelayedState::NoDelayedFree
            };
            pg.thread_free.reset_delayed_freeing_after_fork(state);
        }
    }

    /// Free a block of a page this heap owns.
    ///
    /// # Safety
    /// `block` is a handed-out block start of `page`, a page of this heap.
    #[inline]
    pub(crate) unsafe fn free_local(&mut self, page: *mut Page, block: *mut Block) {
        // SAFETY: as the caller guarantees.
        let pg = unsafe { Page::owned(page) };
        // SAFETY: as the caller guarantees.
        let emptied = unsafe { pg.push_local(block) };
        if pg.is_full_flagged() {
            self.page_unfull(page);
        }
        if emptied {
            self.page_retire(page);
        }
    }

    /// This heap's delayed list, for a freer in `DelayedFreeing`
    /// (`delayed::hand_over`).
    ///
    /// # Safety
    /// `heap` is alive (the freer's page is in `DelayedFreeing`).
    pub(crate) unsafe fn delayed_list(heap: *mut Heap) -> *const DelayedList {
        debug_assert!(!heap.is_null());
        // SAFETY: as the caller guarantees.
        unsafe { ptr::addr_of!((*HeapSlot::of(heap)).delayed) }
    }

    // -------------------------------------------------------------- collection

    fn all_pages(&self) -> impl Iterator<Item = *mut Page> + '_ {
        self.queues.iter().flat_map(|q| q.iter())
    }

    /// Purge unused memory whose delay has passed (all of it with `force`);
    /// whether the pass freed an abandoned page (`arena::purge`).
    fn purge(&mut self, force: bool) -> bool {
        let now = platform::now_ms();
        if !force && now < self.next_purge_at {
            return false;
        }
        self.next_purge_at = now + crate::support::options::purge_delay_ms().max(1);
        arena::purge(force)
    }

    /// Collect everything this heap can: delayed frees, every page's free
    /// lists, empty pages back to the arena; with `force` also purge all
    /// unused memory now and release cached chunks. Returns whether this
    /// call freed a page (its own, or an abandoned one the purge swept).
    pub fn collect(&mut self, force: bool) -> bool {
        self.drain_delayed_free();
        let mut freed = self.collect_retired(true);
        let mut cur = self.first_page_any();
        while let Some(page) = cur {
            cur = self.next_page_any(page);
            // SAFETY: a live page of this heap.
            let pg = unsafe { Page::owned(page) };
            pg.collect(true);
            if pg.all_free() {
                // SAFETY: an empty page of this heap.
                unsafe { self.page_free(page) };
                freed += 1;
            } else if pg.is_full_flagged() && pg.has_free() {
                self.page_unfull(page);
            }
        }
        let swept = self.purge(force);
        if force {
            arena::release_caches();
        }
        freed > 0 || swept
    }

    /// The first page of any queue.
    fn first_page_any(&self) -> Option<*mut Page> {
        self.queues.iter().find(|q| !q.is_empty()).map(|q| q.first)
    }

    /// The page after `page` across all queues (read before `page` moves).
    fn next_page_any(&self, page: *mut Page) -> Option<*mut Page> {
        // SAFETY: `page` is a live page of this heap.
        let pg = unsafe { Page::owned(page) };
        let (next, bin) = (pg.next(), Self::bin_of_page(pg));
        if !next.is_null() {
            return Some(next);
        }
        self.queues[bin + 1..]
            .iter()
            .find(|q| !q.is_empty())
            .map(|q| q.first)
    }

    /// Thread exit: stop delayed frees to this heap, collect, free empty
    /// pages and abandon the rest, page by page.
    pub(crate) fn abandon(&mut self) {
        // 1. No other thread may reach this heap through a page from now on.
        for page in self.all_pages() {
            // SAFETY: live pages of this heap.
            unsafe { (*page).set_delayed_state(DelayedState::NeverDelayedFree, false) };
        }
        // 2. Blocks already handed over.
        self.drain_delayed_free();
        // 3. Free what is empty, abandon what is not.
        for bin in 0..BIN_COUNT {
            for page in self.queues[bin].iter() {
                // SAFETY: a live page of this heap, removed from its queue
                // before it is freed or abandoned.
                let pg = unsafe { Page::owned(page) };
                // Only other threads' frees need counting; the owner's
                // lists stay as they are for whoever adopts the page.
                pg.collect_thread_free();
                // SAFETY: as above.
                unsafe { self.queue_remove(bin, page) };
                pg.set_retire_expire(0);
                pg.clear_flag(FLAG_IN_FULL);
                if pg.all_free() {
                    // SAFETY: ours, in no queue, with no live block.
                    unsafe { arena::free_page(page) };
                } else {
                    // SAFETY: ours, in no queue, NeverDelayedFree (step 1),
                    // `used` counts what is live or on thread_free.
                    unsafe { arena::abandon(page) };
                }
            }
        }
        // Memory freed here stays resident for the next thread (a pool
        // whose threads come and go) within the recent allowance, and goes
        // back at the next purge pass once unused for the delay.
        self.purge(false);
    }

    /// Check every invariant of this heap and its pages (owner thread).
    /// Returns the number of live blocks in the heap's pages.
    #[cfg(any(test, feature = "internals"))]
    pub fn check_invariants(&self) -> usize {
        let mut live = 0;
        for bin in 0..BIN_COUNT {
            let q = &self.queues[bin];
            let mut prev: *mut Page = ptr::null_mut();
            for page in q.iter() {
                // SAFETY: live pages of this heap.
                let p = unsafe { Page::owned(page) };
                assert_eq!(p.prev(), prev, "queue links");
                assert_eq!(Self::bin_of_page(p), bin, "page in the wrong queue");
                assert_eq!(Heap::of_page(&p), self as *const Heap as *mut Heap);
                assert_eq!(p.owner.load(Ordering::Relaxed), self.thread_id);
                live += p.check_invariants();
                prev = page;
            }
            assert_eq!(q.last, prev);
        }
        for w in 0..PAGES_DIRECT {
            let bin = bin_of_wsize(w);
            let first = self.queues[bin].first;
            let expect = if first.is_null() { empty_page() } else { first };
            assert_eq!(self.pages_direct[w], expect, "direct entry for wsize {w}");
        }
        live
    }
}
