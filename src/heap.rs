//! The thread-local heap: where a thread allocates from.
//!
//! ```text
//! Heap
//!  pages_direct[wsize]  -> first page of the bin for each word size <= 128
//!  queues[bin]          -> pages of a bin (first = allocating page)
//!  queues[BIN_FULL]     -> pages with no free block (UseDelayedFree set)
//!  thread_delayed_free  -> atomic list: frees into full pages by other threads
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

use crate::arena;
use crate::block::Block;
use crate::constants::*;
use crate::page::{DelayedState, Page, FLAG_IN_FULL};
use crate::page_queue::PageQueue;
use crate::platform;
use crate::size_class::{
    bin_block_size, bin_of_size, bin_of_wsize, wsize_of, BIN_COUNT, BIN_FULL, BIN_HUGE,
};
use crate::stats::{self, Counter};
use crate::tagged_stack::{StackNode, TaggedStack};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

#[repr(C)]
pub struct Heap {
    // --- the malloc fast path reads only this ---
    pub(crate) pages_direct: [*mut Page; PAGES_DIRECT],
    // --- slow path ---
    pub(crate) thread_id: usize,
    pub(crate) queues: [PageQueue; BIN_COUNT],
    pub(crate) thread_delayed_free: AtomicPtr<Block>,
    /// Slow-path calls so far (drives periodic work).
    pub(crate) generic_count: u64,
    /// Bins whose first page may be retiring.
    pub(crate) retired_min: usize,
    pub(crate) retired_max: usize,
    /// Next time (ms) purging is worth a look.
    pub(crate) next_purge_at: u64,
    /// Link in the pool of unused heap structs.
    pool_next: *mut Heap,
    /// State of the heap's random stream (secret page keys with `secure`).
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
        thread_delayed_free: AtomicPtr::new(ptr::null_mut()),
        generic_count: 0,
        retired_min: BIN_FULL,
        retired_max: 0,
        next_purge_at: 0,
        pool_next: ptr::null_mut(),
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
/// is left owned by a thread that is gone.
const EXITING_HEAP_PTR: *mut Heap = EXITING_HEAP.0.get();

/// Is `heap` one of the static heaps (no real heap yet, or exiting)?
#[inline(always)]
pub fn is_empty_heap(heap: *const Heap) -> bool {
    ptr::eq(heap, EMPTY_HEAP_PTR) || ptr::eq(heap, EXITING_HEAP_PTR)
}

fn empty_page() -> *mut Page {
    EMPTY_PAGE.0.get()
}

// ------------------------------------------------------------------ heap pool

static POOL: TaggedStack<Heap> = TaggedStack::new();

/// In the child after `fork`: threads that were popping a stack are gone.
pub fn after_fork_in_child() {
    POOL.reset_readers();
    arena::reset_after_fork();
}

impl StackNode for Heap {
    unsafe fn next_slot(node: *mut Self) -> *mut *mut Self {
        // SAFETY: the caller passes a live heap struct.
        unsafe { ptr::addr_of_mut!((*node).pool_next) }
    }
}

const HEAP_CHUNK: usize = 64 * 1024;

/// An unused heap struct: from the pool, or carved from a fresh chunk of
/// platform memory (the surplus goes to the pool). Never unmapped, so the
/// pool's pops may always read a node.
fn heap_struct_alloc() -> *mut Heap {
    if let Some(heap) = POOL.pop() {
        return heap;
    }
    let Some(chunk) = platform::os_alloc_aligned(HEAP_CHUNK, OS_PAGE_SIZE) else {
        return ptr::null_mut();
    };
    let size = core::mem::size_of::<Heap>().next_multiple_of(64);
    let count = HEAP_CHUNK / size;
    for i in 1..count {
        // SAFETY: slot `i` lies inside the fresh chunk; pushing hands it to the pool.
        unsafe { POOL.push(chunk.base.add(i * size).cast()) };
    }
    chunk.base.cast()
}

// ------------------------------------------------------------------ thread life

static PROCESS_INIT: spin::Once<()> = spin::Once::new();

/// Once per process: read the options, set up the platform (thread-exit
/// hook). Runs from the platform's load-time initializer when it has one,
/// else (or if malloc comes first) from the first heap creation.
pub fn process_init() {
    PROCESS_INIT.call_once(|| {
        crate::options::init();
        platform::process_init();
    });
}

/// Create the calling thread's heap (first allocation of the thread).
#[cold]
fn heap_init_thread() -> *mut Heap {
    process_init();
    let heap = heap_struct_alloc();
    if heap.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `heap` points at an unused, suitably aligned heap struct we own;
    // we initialise it by a whole-struct write before any read.
    unsafe {
        ptr::write(
            heap,
            Heap {
                thread_id: platform::thread_id(),
                random: platform::random_seed() ^ heap as u64,
                ..empty_heap()
            },
        );
    }
    if !platform::heap_set(heap) {
        // Embedded: no room to record the heap (thread table full).
        // SAFETY: the struct is unused and unpublished.
        unsafe { POOL.push(heap) };
        return ptr::null_mut();
    }
    platform::register_thread_exit(heap);
    stats::add(Counter::Threads, 1);
    heap
}

/// The calling thread's heap, created if this is its first allocation; null
/// when out of memory.
pub fn current_or_init() -> *mut Heap {
    let heap = platform::heap_get();
    if is_empty_heap(heap) {
        heap_init_thread()
    } else {
        heap
    }
}

/// The calling thread ends (pthread key destructor, or the embedder's
/// `mirs_thread_done`): abandon what is still live, recycle the heap.
// Safe to call with any pointer: only the calling thread's own heap is used.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn thread_done(heap: *mut Heap) {
    if heap.is_null() || is_empty_heap(heap) || heap != platform::heap_get() {
        return;
    }
    // SAFETY: `heap` is the calling thread's live heap.
    unsafe { heap_abandon(heap, true) };
}

/// Abandon what is still live in `heap`, recycle the struct. With `current`
/// the calling thread's heap slot is reset to the empty heap.
///
/// # Safety
/// `heap` is a live heap, and either the calling thread's (`current`) or
/// one whose thread has ended for good (embedded: a dead thread's heap
/// found by the platform), so that nothing else uses it as its owner.
pub(crate) unsafe fn heap_abandon(heap: *mut Heap, current: bool) {
    // SAFETY: as the caller guarantees.
    let h = unsafe { &mut *heap };
    h.collect_abandon();
    stats::add(Counter::Threads, -1);
    stats::add(Counter::ThreadsDone, 1);
    if current {
        // Embedded threads may call mirs_thread_done and go on (or a new
        // task may reuse the id): they simply get a new heap next time.
        platform::heap_set(if cfg!(feature = "hosted") {
            EXITING_HEAP_PTR
        } else {
            EMPTY_HEAP_PTR
        });
    }
    // SAFETY: the heap is unreachable now: no page refers to it (all were
    // freed or abandoned with their heap pointer cleared).
    unsafe { POOL.push(heap) };
}

// ------------------------------------------------------------------ allocation

/// The slow path of every allocation: creates the thread's heap, does the
/// deferred work (delayed frees, retired pages, purging), and finds or makes
/// a page with a free block. When memory runs out it recovers what it can
/// (`recover`) and tries once more, so null means memory really is gone.
#[inline(never)]
pub fn malloc_generic(heap: *mut Heap, size: usize, zero: bool) -> *mut u8 {
    if size > LARGE_OBJ_SIZE_MAX {
        return malloc_singleton(heap, size, 0, zero);
    }
    if ptr::eq(heap, EXITING_HEAP_PTR) {
        return malloc_while_exiting(size, zero);
    }
    let heap = if is_empty_heap(heap) {
        heap_init_thread()
    } else {
        heap
    };
    if heap.is_null() {
        return out_of_memory();
    }
    // SAFETY: the calling thread's live heap.
    let h = unsafe { &mut *heap };
    h.generic_count += 1;
    h.drain_delayed_free();
    // Retiring pages age by one step every few slow-path calls; emptying a
    // page again restarts its grace, so only idle pages go back.
    if h.generic_count % RETIRE_STEP == 0 {
        h.collect_retired(false);
    }
    if h.generic_count % PURGE_CHECK_INTERVAL == 0 {
        h.purge(false);
    }
    let mut page = h.find_page(heap, size);
    if page.is_null() && recover(heap) {
        // SAFETY: as above. `recover` reached the heap through `heap`,
        // which ends `h`: the reference is taken afresh.
        page = unsafe { &mut *heap }.find_page(heap, size);
    }
    if page.is_null() {
        return out_of_memory();
    }
    // SAFETY: `find_page` returns a page of this heap with a free block;
    // a fresh reference, as `h` may have ended in `recover`.
    unsafe { (*heap).pop_from(page, size, zero) }
}

/// An allocation after the thread's heap was abandoned (see
/// `EXITING_HEAP_PTR`): a heap for this one block, abandoned again at once.
#[cold]
fn malloc_while_exiting(size: usize, zero: bool) -> *mut u8 {
    let heap = heap_init_thread();
    if heap.is_null() {
        return out_of_memory();
    }
    let block = malloc_generic(heap, size, zero);
    // SAFETY: the calling thread's live heap, which it no longer uses.
    unsafe { heap_abandon(heap, true) };
    block
}

/// A block above the size classes (a singleton span or huge chunk), aligned
/// to `align` (0: the default); zeroed when asked and not known to be zero.
pub(crate) fn malloc_singleton(heap: *mut Heap, size: usize, align: usize, zero: bool) -> *mut u8 {
    // More than the address space can hold: refused without a mapping or a
    // recovery attempt (glibc's tst-malloc-too-large calls this in a loop).
    if size > MAX_REQUEST_SIZE {
        return out_of_memory();
    }
    let mut got = arena::alloc_singleton(size, align);
    if got.is_none() {
        let heap = if is_empty_heap(heap) {
            platform::heap_get()
        } else {
            heap
        };
        if recover(heap) {
            got = arena::alloc_singleton(size, align);
        }
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

/// Out of memory: give back everything that is not in use: this thread's
/// empty and retired pages, the arena's cached chunks, and (embedded) the
/// heaps of threads that died without saying so. Returns whether anything
/// was released, so a request that could never fit fails at once.
#[cold]
fn recover(heap: *mut Heap) -> bool {
    let pages = stats::current(Counter::Pages);
    if !is_empty_heap(heap) && !heap.is_null() {
        // SAFETY: the calling thread's live heap.
        unsafe { (*heap).collect(false) };
    }
    // Due purges and the abandoned-page sweep (which frees spans); purging
    // everything would give back physical memory, not the address space or
    // region room a failed request lacks.
    arena::purge(false);
    let mut released = arena::release_caches();
    released |= platform::reap_dead_threads();
    released || stats::current(Counter::Pages) < pages
}

/// Every failed allocation ends here: errno = ENOMEM (as C callers expect;
/// harmless for Rust callers), null.
#[cold]
pub(crate) fn out_of_memory() -> *mut u8 {
    platform::set_errno(crate::c_api::ENOMEM);
    ptr::null_mut()
}

impl Heap {
    /// Pop a block from `page` (which has one), zeroing it when asked.
    ///
    /// # Safety
    /// `page` belongs to this heap and `page.free` is not empty.
    #[inline(always)]
    pub(crate) unsafe fn pop_from(&mut self, page: *mut Page, size: usize, zero: bool) -> *mut u8 {
        // SAFETY: as the caller guarantees.
        unsafe {
            let is_zero = (*page).free_is_zero;
            let block = (*page).pop_free();
            debug_assert!(!block.is_null());
            if zero {
                if is_zero {
                    // Fresh memory: only the link word was written.
                    block.cast::<usize>().write(0);
                } else {
                    ptr::write_bytes(block, 0, size.min((*page).block_size));
                }
            }
            block
        }
    }

    /// Two random words (splitmix64): secret keys for a page's free lists.
    #[cfg_attr(not(feature = "secure"), allow(dead_code))]
    pub(crate) fn random_words(&mut self) -> [usize; 2] {
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
            let page = unsafe { &mut *cur };
            let next = page.next;
            page.collect(false);
            // Carve more even when frees refilled the list: a page in steady
            // use then cycles through more blocks per slow-path visit.
            if page.can_extend() {
                page.extend();
            }
            if page.has_free() {
                page.retire_expire = 0;
                return cur;
            }
            // No room: from now on other threads tell us when they free here.
            page.set_delayed_state(DelayedState::UseDelayedFree, false);
            // A free that raced with the switch is on thread_free: look again.
            page.collect(false);
            if page.has_free() {
                page.set_delayed_state(DelayedState::NoDelayedFree, false);
                page.retire_expire = 0;
                return cur;
            }
            self.move_to_full(cur);
            cur = next;
        }
        let block_size = bin_block_size(bin);
        loop {
            let page = arena::adopt(me, self.thread_id, block_size);
            if page.is_null() {
                break;
            }
            // SAFETY: the page is ours now, in no queue.
            unsafe {
                (*page).set_delayed_state(DelayedState::NoDelayedFree, true);
                (*page).collect(false);
                if (*page).all_free() {
                    // Every block came back while it was abandoned: a fresh page.
                    (*page).retire_expire = 0;
                }
                if (*page).can_extend() {
                    (*page).extend();
                }
                if (*page).has_free() {
                    self.queue_push_front(bin, page);
                    return page;
                }
                // Adopted but full: it waits in the full queue like our own.
                (*page).set_delayed_state(DelayedState::UseDelayedFree, false);
                (*page).set_flag(FLAG_IN_FULL);
                self.queues[BIN_FULL].push_back(page);
            }
        }
        let page = arena::alloc_page(me, self.thread_id, block_size);
        if page.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a fresh page of this heap in no queue, no block carved.
        unsafe {
            // Set here, not in the arena: reaching the heap through `me`
            // while `&mut self` lives is undefined behaviour (Miri).
            #[cfg(feature = "secure")]
            {
                (*page).key = crate::block::ListKey::new(self.random_words());
            }
            (*page).extend();
            self.queue_push_front(bin, page);
        }
        page
    }

    // -------------------------------------------------------------- queues

    fn bin_of_page(page: &Page) -> usize {
        if page.is_full_flagged() {
            BIN_FULL
        } else {
            bin_of_size(page.block_size)
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
        let hi = wsize_of(block_size);
        let mut lo = hi;
        while lo > 0 && bin_of_wsize(lo - 1) == bin {
            lo -= 1;
        }
        for w in lo..=hi {
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
        unsafe {
            let bin = Self::bin_of_page(&*page);
            self.queue_remove(bin, page);
            (*page).set_flag(FLAG_IN_FULL);
            self.queues[BIN_FULL].push_back(page);
        }
    }

    /// A full page got a free block back: return it to its bin queue (at the
    /// end, so the current allocation page stays first).
    pub(crate) fn page_unfull(&mut self, page: *mut Page) {
        // SAFETY: `page` is in this heap's full queue.
        unsafe {
            debug_assert!((*page).is_full_flagged());
            self.queues[BIN_FULL].remove(page);
            (*page).clear_flag(FLAG_IN_FULL);
            (*page).set_delayed_state(DelayedState::NoDelayedFree, false);
            let bin = Self::bin_of_page(&*page);
            let was_empty = self.queues[bin].is_empty();
            self.queues[bin].push_back(page);
            if was_empty {
                self.update_direct(bin);
            }
        }
    }

    // -------------------------------------------------------------- freeing

    /// The last block of `page` came back (owner thread): keep the page a
    /// while if malloc is using it, else give it back to the arena.
    #[cold]
    pub(crate) fn page_retire(&mut self, page: *mut Page) {
        // SAFETY: `page` is a live page of this heap with no live blocks.
        unsafe {
            if (*page).retire_expire != 0 {
                return;
            }
            let bin = Self::bin_of_page(&*page);
            if bin < BIN_HUGE
                && (*page).block_size <= RETIRE_SIZE_MAX
                && self.queues[bin].first == page
            {
                (*page).retire_expire = RETIRE_CYCLES;
                (*page).retire_free = (*page).free;
                self.retired_min = self.retired_min.min(bin);
                self.retired_max = self.retired_max.max(bin);
                return;
            }
            self.page_free(page);
        }
    }

    /// Remove an empty page from its queue and give it back to the arena.
    ///
    /// # Safety
    /// `page` is a live page of this heap with no live blocks.
    unsafe fn page_free(&mut self, page: *mut Page) {
        // SAFETY: as the caller guarantees.
        unsafe {
            let bin = Self::bin_of_page(&*page);
            self.queue_remove(bin, page);
            (*page).set_delayed_state(DelayedState::NoDelayedFree, true);
            arena::free_page(page);
        }
        // Freeing pages is when memory becomes purgeable: a program that
        // frees a burst and then goes quiet still gives it back.
        self.purge(false);
    }

    /// Free the retiring pages whose grace has run out (all with `force`).
    fn collect_retired(&mut self, force: bool) {
        if self.retired_min > self.retired_max {
            return;
        }
        let (lo, hi) = (self.retired_min, self.retired_max);
        self.retired_min = BIN_FULL;
        self.retired_max = 0;
        for bin in lo..=hi {
            let page = self.queues[bin].first;
            if page.is_null() {
                continue;
            }
            // SAFETY: the first page of a queue of this heap.
            unsafe {
                if (*page).retire_expire == 0 {
                    continue;
                }
                if !(*page).all_free() {
                    (*page).retire_expire = 0;
                    continue;
                }
                if (*page).free != (*page).retire_free {
                    // Blocks were handed out since the last look: in use,
                    // though empty right now. The grace starts over.
                    (*page).retire_free = (*page).free;
                    (*page).retire_expire = RETIRE_CYCLES;
                } else {
                    (*page).retire_expire -= 1;
                }
                if force || (*page).retire_expire == 0 {
                    (*page).retire_expire = 0;
                    self.page_free(page);
                } else {
                    self.retired_min = self.retired_min.min(bin);
                    self.retired_max = self.retired_max.max(bin);
                }
            }
        }
    }

    /// Free the blocks other threads handed over because their page was full.
    pub(crate) fn drain_delayed_free(&mut self) {
        if self.thread_delayed_free.load(Ordering::Relaxed).is_null() {
            return;
        }
        let mut block = self
            .thread_delayed_free
            .swap(ptr::null_mut(), Ordering::Acquire);
        while !block.is_null() {
            // SAFETY: blocks on the delayed list are handed-out block starts
            // of pages of this heap (the pusher checked), published with Release.
            unsafe {
                let next = Block::next(block);
                let page = crate::free::page_of_owned(block.cast());
                // Wait out the pusher's DelayedFreeing before touching the page.
                (*page).set_delayed_state(DelayedState::NoDelayedFree, false);
                self.free_local(page, block);
                block = next;
            }
        }
    }

    /// Free a block of a page this heap owns.
    ///
    /// # Safety
    /// `block` is a handed-out block start of `page`, a page of this heap.
    #[inline]
    pub(crate) unsafe fn free_local(&mut self, page: *mut Page, block: *mut Block) {
        // SAFETY: as the caller guarantees.
        unsafe {
            let emptied = (*page).push_local(block);
            if (*page).is_full_flagged() {
                self.page_unfull(page);
            }
            if emptied {
                self.page_retire(page);
            }
        }
    }

    /// Push a block on this heap's delayed list (any thread).
    ///
    /// # Safety
    /// `block` is a handed-out block start of a page of this heap, owned by
    /// the caller, and this heap is alive (the page is in `DelayedFreeing`).
    pub(crate) unsafe fn push_delayed(heap: *mut Heap, block: *mut Block) {
        // SAFETY: the heap is alive while the page is in DelayedFreeing.
        let list = unsafe { &(*heap).thread_delayed_free };
        let mut head = list.load(Ordering::Relaxed);
        loop {
            // SAFETY: we own the block until the CAS publishes it.
            unsafe { Block::set_next(block, head) };
            match list.compare_exchange_weak(head, block, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(cur) => head = cur,
            }
        }
    }

    // -------------------------------------------------------------- collection

    fn all_pages(&self) -> impl Iterator<Item = *mut Page> + '_ {
        self.queues.iter().flat_map(|q| q.iter())
    }

    /// Purge unused memory whose delay has passed (all of it with `force`).
    fn purge(&mut self, force: bool) {
        let now = platform::now_ms();
        if !force && now < self.next_purge_at {
            return;
        }
        self.next_purge_at = now + crate::options::purge_delay_ms().max(1);
        arena::purge(force);
    }

    /// Collect everything this heap can: delayed frees, every page's free
    /// lists, empty pages back to the arena; with `force` also purge all
    /// unused memory now and release cached chunks.
    pub fn collect(&mut self, force: bool) {
        self.drain_delayed_free();
        self.collect_retired(true);
        let mut cur = self.first_page_any();
        while let Some(page) = cur {
            cur = self.next_page_any(page);
            // SAFETY: a live page of this heap.
            unsafe {
                (*page).collect(true);
                if (*page).all_free() {
                    self.page_free(page);
                } else if (*page).is_full_flagged() && (*page).has_free() {
                    self.page_unfull(page);
                }
            }
        }
        self.purge(force);
        if force {
            arena::release_caches();
        }
    }

    /// The first page of any queue.
    fn first_page_any(&self) -> Option<*mut Page> {
        self.queues.iter().find(|q| !q.is_empty()).map(|q| q.first)
    }

    /// The page after `page` across all queues (read before `page` moves).
    fn next_page_any(&self, page: *mut Page) -> Option<*mut Page> {
        // SAFETY: `page` is a live page of this heap.
        let (next, bin) = unsafe { ((*page).next, Self::bin_of_page(&*page)) };
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
    fn collect_abandon(&mut self) {
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
                unsafe {
                    // Only other threads' frees need counting; the owner's
                    // lists stay as they are for whoever adopts the page.
                    (*page).collect_thread_free();
                    self.queue_remove(bin, page);
                    (*page).retire_expire = 0;
                    (*page).clear_flag(FLAG_IN_FULL);
                    if (*page).all_free() {
                        arena::free_page(page);
                    } else {
                        arena::abandon(page);
                    }
                }
            }
        }
        self.purge(false);
    }

    /// Check every invariant of this heap and its pages (owner thread).
    /// Returns the number of live blocks in the heap's pages.
    pub fn check_invariants(&self) -> usize {
        let mut live = 0;
        for bin in 0..BIN_COUNT {
            let q = &self.queues[bin];
            let mut prev: *mut Page = ptr::null_mut();
            for page in q.iter() {
                // SAFETY: live pages of this heap.
                let p = unsafe { &*page };
                assert_eq!(p.prev, prev, "queue links");
                assert_eq!(Self::bin_of_page(p), bin, "page in the wrong queue");
                assert_eq!(
                    p.heap.load(Ordering::Relaxed),
                    self as *const Heap as *mut Heap
                );
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

/// Collect the calling thread's heap (`mirs_collect`).
pub fn collect_current(force: bool) {
    let heap = platform::heap_get();
    if !is_empty_heap(heap) {
        // SAFETY: the calling thread's live heap.
        unsafe { (*heap).collect(force) };
    } else {
        arena::purge(force);
        if force {
            arena::release_caches();
        }
    }
}

/// Check the calling thread's heap (tests, debug `mirs_collect`).
pub fn check_current() -> usize {
    let heap = platform::heap_get();
    if is_empty_heap(heap) {
        return 0;
    }
    // SAFETY: the calling thread's live heap.
    unsafe { (*heap).check_invariants() }
}
