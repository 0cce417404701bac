//! A page: a run of equal-sized blocks with three free lists.
//!
//! ```text
//!           start                          start + capacity*bs   start + reserved*bs
//!             |<------- carved blocks ------->|<---- not yet carved ---->|
//! free:        blocks malloc pops (owner only, no atomics)
//! local_free:  blocks the owner freed (owner only, no atomics)
//! thread_free: blocks other threads freed (atomic stack; low 2 bits = DelayedState)
//! ```
//!
//! Invariants (checked by [`Page::check_invariants`]):
//! - `used + |free| + |local_free| == capacity`: `used` counts blocks handed
//!   out, including those other threads have pushed on `thread_free` and the
//!   owner has not collected yet. (The live blocks are `used - |thread_free|`.)
//! - `capacity <= reserved`; every list member is a block start below
//!   `start + capacity * block_size`.
//! - `flags == 0` iff the page is in a bin queue (not the full queue) and
//!   holds no over-aligned (interior) pointers: the free fast path tests it.
//!
//! Who may touch what:
//! - `owner`: the owning thread's id, or one of the `OWNER_*` values. Any
//!   thread reads it (the free fast path compares it with its own id); it
//!   is written by the owner, or under the arena lock when the page is made,
//!   abandoned, adopted or freed, with Release after every other field.
//! - `start`, `block_size`, `div_magic`, `reserved`, `slice`, `slices`: fixed
//!   when the page is made, before `owner` publishes it.
//! - `carved`, `aligned`, `abandoned_used`, `thread_free`, `heap`: atomics,
//!   read by threads that free into the page.
//! - everything else: the owner only (the thread whose id is in `owner`, or
//!   the arena lock holder while the page has no owner).

use crate::block::{Block, ListKey};
use crate::constants::{MAX_EXTEND_SIZE, MIN_EXTEND};
use crate::heap::Heap;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::thread_free::AbandonWords;
pub use crate::thread_free::{DelayedState, Pushed, ThreadFree, OWNER_ABANDONED};

/// Page is in the heap's full queue.
pub const FLAG_IN_FULL: u8 = 1;
/// Some pointer handed out is an over-aligned interior pointer of its block.
pub const FLAG_HAS_ALIGNED: u8 = 2;

/// `owner` of a page header that is not a page (its span is free).
pub const OWNER_NONE: usize = 0;
/// `owner` of a one-block page (singleton span or huge chunk): no heap owns
/// it; whichever thread frees the block frees the span.
pub const OWNER_SINGLETON: usize = usize::MAX;

#[repr(C)]
pub struct Page {
    // --- hot: the malloc and free fast paths read only these ---
    pub(crate) owner: AtomicUsize,
    pub(crate) free: *mut Block,
    pub(crate) local_free: *mut Block,
    pub(crate) used: u32,
    pub(crate) flags: u8,
    /// Every block on `free` reads as zero apart from its link word.
    pub(crate) free_is_zero: bool,
    /// Slow-path calls left before this empty page is freed (0: not retiring).
    pub(crate) retire_expire: u8,
    /// The uncarved part of the page area reads as zero.
    pub(crate) area_is_zero: bool,
    /// First block (16-byte aligned).
    pub(crate) start: *mut u8,
    /// `carved` while `flags == 0`, else 0: the free fast path tests flags
    /// and bounds with one comparison.
    pub(crate) fast_free_limit: usize,
    /// `u64::MAX / block_size + 1`: `off` is a multiple of `block_size` iff
    /// `off * div_magic < div_magic` (wrapping, for `off` below 2^32;
    /// Lemire, Kaser, Kurz 2019, "Faster remainder by direct computation").
    pub(crate) div_magic: u64,
    pub(crate) block_size: usize,
    // --- cold ---
    pub(crate) thread_free: ThreadFree,
    pub(crate) heap: AtomicPtr<Heap>,
    /// Bytes from `start` that hold carved blocks: `capacity * block_size`.
    pub(crate) carved: AtomicUsize,
    pub(crate) capacity: u32,
    pub(crate) reserved: u32,
    /// Page queue links (bin queue or full queue of the owning heap).
    pub(crate) next: *mut Page,
    pub(crate) prev: *mut Page,
    /// `free` when the page was last seen empty while retiring: a different
    /// value later means it was used in between.
    pub(crate) retire_free: *mut Block,
    /// Live blocks when the page was abandoned: once `thread_free` holds
    /// that many, every block is free and the page can go.
    pub(crate) abandoned_used: AtomicU32,
    /// Mirrors `FLAG_HAS_ALIGNED` for threads other than the owner.
    pub(crate) aligned: AtomicBool,
    /// First slice of the span and its length (0 for a huge chunk's page).
    pub(crate) slice: u8,
    pub(crate) slices: u8,
    /// How the free lists store links (secret keys with `secure`).
    pub(crate) key: ListKey,
}

// 128 bytes: page headers tile the chunk header in cache-line pairs.
#[cfg(not(feature = "secure"))]
const _: () = assert!(core::mem::size_of::<Page>() == 128);

impl Page {
    pub const fn empty() -> Page {
        Page {
            owner: AtomicUsize::new(OWNER_NONE),
            free: ptr::null_mut(),
            local_free: ptr::null_mut(),
            used: 0,
            flags: 0,
            free_is_zero: false,
            retire_expire: 0,
            area_is_zero: false,
            start: ptr::null_mut(),
            fast_free_limit: 0,
            div_magic: 0,
            block_size: 0,
            thread_free: ThreadFree::new(),
            heap: AtomicPtr::new(ptr::null_mut()),
            carved: AtomicUsize::new(0),
            capacity: 0,
            reserved: 0,
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            retire_free: ptr::null_mut(),
            abandoned_used: AtomicU32::new(0),
            aligned: AtomicBool::new(false),
            slice: 0,
            slices: 0,
            key: ListKey::PLAIN,
        }
    }

    /// Make this header (of a span nobody else references yet) a page of
    /// blocks of `block_size` over `start..start + area_size`, owned by
    /// `owner` (a thread id, or `OWNER_SINGLETON`) through `heap`.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        &mut self,
        owner: usize,
        heap: *mut Heap,
        block_size: usize,
        start: *mut u8,
        area_size: usize,
        area_is_zero: bool,
        slice: usize,
        slices: usize,
    ) {
        debug_assert!(block_size >= crate::constants::WORD_SIZE);
        self.free = ptr::null_mut();
        self.local_free = ptr::null_mut();
        self.used = 0;
        self.flags = 0;
        self.free_is_zero = false;
        self.retire_expire = 0;
        self.area_is_zero = area_is_zero;
        self.start = start;
        self.fast_free_limit = 0;
        self.block_size = block_size;
        self.div_magic = u64::MAX / block_size as u64 + 1;
        self.capacity = 0;
        self.reserved = (area_size / block_size) as u32;
        self.carved.store(0, Ordering::Relaxed);
        self.next = ptr::null_mut();
        self.prev = ptr::null_mut();
        self.retire_free = ptr::null_mut();
        self.abandoned_used.store(0, Ordering::Relaxed);
        self.aligned.store(false, Ordering::Relaxed);
        self.slice = slice as u8;
        self.slices = slices as u8;
        self.thread_free.reset();
        self.heap.store(heap, Ordering::Relaxed);
        debug_assert!(self.reserved > 0);
        // Last: publishes the fields above to threads that read `owner`.
        self.owner.store(owner, Ordering::Release);
    }

    // ------------------------------------------------------------ queries

    pub fn set_flag(&mut self, flag: u8) {
        self.flags |= flag;
        self.fast_free_limit = 0;
        if flag & FLAG_HAS_ALIGNED != 0 {
            self.aligned.store(true, Ordering::Relaxed);
        }
    }

    pub fn clear_flag(&mut self, flag: u8) {
        self.flags &= !flag;
        if self.flags == 0 {
            self.fast_free_limit = self.carved();
        }
    }

    /// Bytes of carved blocks (any thread).
    #[inline(always)]
    pub fn carved(&self) -> usize {
        self.carved.load(Ordering::Relaxed)
    }

    /// The free fast path's test: `p` is a carved block start and the page
    /// needs no special handling (not full, no aligned blocks).
    #[inline(always)]
    pub fn is_plain_block_start(&self, p: *const u8) -> bool {
        let off = (p as usize).wrapping_sub(self.start as usize);
        off < self.fast_free_limit && (off as u64).wrapping_mul(self.div_magic) < self.div_magic
    }

    #[inline(always)]
    pub fn is_full_flagged(&self) -> bool {
        self.flags & FLAG_IN_FULL != 0
    }

    /// Some handed-out pointer is an over-aligned interior pointer (any thread).
    #[inline(always)]
    pub fn has_aligned(&self) -> bool {
        self.aligned.load(Ordering::Relaxed)
    }

    /// Is `p` the start of a carved block of this page? (Three instructions:
    /// a subtraction, an unsigned bound check and a multiply-compare.)
    #[inline(always)]
    pub fn is_block_start(&self, p: *const u8) -> bool {
        let off = (p as usize).wrapping_sub(self.start as usize);
        off < self.carved() && (off as u64).wrapping_mul(self.div_magic) < self.div_magic
    }

    /// The start of the carved block containing `p`, if any.
    pub fn block_containing(&self, p: *const u8) -> Option<*mut Block> {
        let off = (p as usize).wrapping_sub(self.start as usize);
        (off < self.carved()).then(|| self.start.wrapping_add(off - off % self.block_size).cast())
    }

    pub fn all_free(&self) -> bool {
        self.used == 0
    }

    /// Free blocks the owner can hand out without carving or collecting.
    pub fn has_free(&self) -> bool {
        !self.free.is_null()
    }

    pub fn can_extend(&self) -> bool {
        self.capacity < self.reserved
    }

    // ------------------------------------------------------------ owner: allocate

    /// Pop a block from `free`; the malloc fast path.
    #[inline(always)]
    pub fn pop_free(&mut self) -> *mut u8 {
        let block = self.free;
        if !block.is_null() {
            // SAFETY: `block` is on this page's free list, so it is a free block.
            let next = unsafe { Block::next_with(block, self.key) };
            #[cfg(feature = "secure")]
            // Bounds only (no divisibility test): a forged link cannot leave
            // the page's carved blocks, and forging needs the secret key.
            if !next.is_null() && (next as usize).wrapping_sub(self.start as usize) >= self.carved()
            {
                return self.free_list_corrupted(block);
            }
            self.free = next;
            self.used += 1;
            // Debug and secure builds: clear the link so the block does not
            // show internal pointers, and so a block freed untouched is not
            // mistaken for one already on a free list (double-free check).
            #[cfg(any(debug_assertions, feature = "secure"))]
            // SAFETY: the block is ours now; its first word is in bounds.
            unsafe {
                block.cast::<usize>().write(0)
            };
        }
        block.cast()
    }

    /// Secure mode: a link in `free` does not decode to a block of this page
    /// (a use-after-free write). Hand out `block` (its own memory is still
    /// ours) but drop the rest of the list rather than follow the link.
    #[cfg(feature = "secure")]
    #[cold]
    fn free_list_corrupted(&mut self, block: *mut Block) -> *mut u8 {
        crate::stats::add(crate::stats::Counter::CorruptLists, 1);
        crate::output::warning!(
            "corrupted free list in page of {}-byte blocks: rest dropped",
            self.block_size
        );
        self.free = ptr::null_mut();
        self.used += 1;
        // The dropped blocks are lost to this page until it is freed.
        block.cast()
    }

    /// Carve the next run of blocks onto the front of the `free` list.
    pub fn extend(&mut self) {
        debug_assert!(self.can_extend());
        let bs = self.block_size;
        let room = (self.reserved - self.capacity) as usize;
        let n = room.min((MAX_EXTEND_SIZE / bs).max(MIN_EXTEND));
        let first = self.start.wrapping_add(self.capacity as usize * bs);
        #[cfg(not(feature = "secure"))]
        {
            // Link the run in address order: touching memory front to back.
            for i in 0..n - 1 {
                let b = first.wrapping_add(i * bs).cast::<Block>();
                // SAFETY: blocks `capacity..capacity+n` lie inside the page area
                // (n <= reserved - capacity) and no one else references them yet.
                unsafe {
                    Block::set_next_with(b, b.cast::<u8>().wrapping_add(bs).cast(), self.key)
                };
            }
            let last = first.wrapping_add((n - 1) * bs).cast::<Block>();
            // SAFETY: as above.
            unsafe { Block::set_next_with(last, self.free, self.key) };
            self.free_is_zero = self.area_is_zero && self.free.is_null();
            self.free = first.cast();
        }
        #[cfg(feature = "secure")]
        self.extend_shuffled(first, n);
        self.capacity += n as u32;
        let carved = self.capacity as usize * bs;
        self.carved.store(carved, Ordering::Relaxed);
        if self.flags == 0 {
            self.fast_free_limit = carved;
        }
        crate::stats::blocks_carved(bs, n);
    }

    /// Secure mode: link the new run in a random order (Fisher-Yates over
    /// the run, seeded from the page's secret key), so the address of the
    /// next block cannot be predicted from the last one.
    #[cfg(feature = "secure")]
    fn extend_shuffled(&mut self, first: *mut u8, n: usize) {
        const MAX_RUN: usize = crate::constants::MAX_EXTEND_SIZE / crate::constants::WORD_SIZE;
        let mut order = [0u16; MAX_RUN];
        let n = n.min(MAX_RUN);
        for (i, slot) in order[..n].iter_mut().enumerate() {
            *slot = i as u16;
        }
        let mut rng = self.key.seed() ^ ((self.capacity as u64) << 32);
        for i in (1..n).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let bs = self.block_size;
        let mut next = self.free;
        for &i in order[..n].iter().rev() {
            let b = first.wrapping_add(i as usize * bs).cast::<Block>();
            // SAFETY: every index is a block of the run inside the page area,
            // referenced by no one yet.
            unsafe { Block::set_next_with(b, next, self.key) };
            next = b;
        }
        self.free_is_zero = self.area_is_zero && self.free.is_null();
        self.free = next;
        // `extend` accounts for `n` blocks; the run never exceeds MAX_RUN
        // because n <= max(MAX_EXTEND_SIZE / bs, MIN_EXTEND) <= MAX_RUN.
    }

    // ------------------------------------------------------------ owner: free

    /// Push a block the owner frees; returns true when the page became empty.
    ///
    /// # Safety
    /// `block` is a block start of this page that is currently handed out.
    #[inline(always)]
    pub unsafe fn push_local(&mut self, block: *mut Block) -> bool {
        // SAFETY: the caller hands the block back; it is ours to link.
        unsafe { Block::set_next_with(block, self.local_free, self.key) };
        self.local_free = block;
        self.used -= 1;
        self.used == 0
    }

    /// Move other threads' frees and then the owner's own frees to `free`.
    /// `force` also appends `local_free` when `free` is not empty.
    pub fn collect(&mut self, force: bool) {
        self.collect_thread_free();
        if self.local_free.is_null() {
            return;
        }
        if self.free.is_null() {
            self.free = self.local_free;
            self.local_free = ptr::null_mut();
            self.free_is_zero = false;
        } else if force {
            // SAFETY: `local_free` is a well-formed list owned by this thread.
            let (_, tail) = unsafe { Block::count_and_tail(self.local_free, self.key) };
            // SAFETY: `tail` is the last block of that list.
            unsafe { Block::set_next_with(tail, self.free, self.key) };
            self.free = self.local_free;
            self.local_free = ptr::null_mut();
            self.free_is_zero = false;
        }
    }

    /// Take the whole `thread_free` stack (one CAS; its length comes with
    /// it) onto `free` when that is empty, else onto `local_free`, and
    /// account for it in `used`.
    pub fn collect_thread_free(&mut self) {
        let (head, count) = self.thread_free.take_all();
        if head.is_null() {
            return;
        }
        self.used -= count as u32;
        // The length came with the stack: link it without walking it where
        // we can (its blocks sit in the freeing threads' caches).
        if self.free.is_null() {
            self.free = head;
            self.free_is_zero = false;
        } else if self.local_free.is_null() {
            self.local_free = head;
        } else {
            // SAFETY: the stack was published by other threads with Release
            // and we took it with Acquire; nobody else can reach it now.
            let (_, tail) = unsafe { Block::count_and_tail(head, self.key) };
            // SAFETY: `tail` is the last block of the list we own.
            unsafe { Block::set_next_with(tail, self.local_free, self.key) };
            self.local_free = head;
        }
    }

    // ------------------------------------------------------------ any thread

    /// Free `block` from a thread that does not own the page: push it on
    /// `thread_free` with one CAS, or, when the page is in its heap's full
    /// queue, claim the right to hand it to the heap's delayed list.
    /// Returns `Pushed::Delayed` when the caller must do that (see
    /// [`Page::end_delayed_freeing`]), else the stack's new length.
    ///
    /// # Safety
    /// `block` is a handed-out block start of this page, owned by the caller.
    pub unsafe fn push_thread_free(&self, block: *mut Block) -> Pushed {
        // SAFETY: as the caller guarantees.
        unsafe { self.thread_free.push(block, self.key) }
    }

    /// Leave the `DelayedFreeing` state entered by [`Page::push_thread_free`].
    pub fn end_delayed_freeing(&self) {
        self.thread_free.end_delayed_freeing();
    }

    /// Owner: switch the delayed-free state, waiting out a non-owner that is
    /// in the middle of a delayed free. `NeverDelayedFree` is sticky unless
    /// `override_never`.
    pub fn set_delayed_state(&self, state: DelayedState, override_never: bool) {
        self.thread_free.set_state(state, override_never);
    }

    /// The atomics of the abandoned-page protocol (any thread).
    pub(crate) fn abandon_words(&self) -> AbandonWords<'_> {
        AbandonWords {
            owner: &self.owner,
            abandoned_used: &self.abandoned_used,
            thread_free: &self.thread_free,
        }
    }

    // ------------------------------------------------------------ checking

    /// Walk the lists and check the invariants in the module docs. Owner only
    /// (or with the page quiescent). Returns the number of live blocks.
    pub fn check_invariants(&self) -> usize {
        assert!(self.owner.load(Ordering::Relaxed) != OWNER_NONE);
        assert!(self.capacity <= self.reserved);
        assert_eq!(self.carved(), self.capacity as usize * self.block_size);
        // SAFETY: the owner's lists are well formed (that is what we check;
        // a broken list shows up as a failed membership assertion below).
        let (nfree, _) = unsafe { Block::count_and_tail(self.free, self.key) };
        // SAFETY: as above.
        let (nlocal, _) = unsafe { Block::count_and_tail(self.local_free, self.key) };
        assert_eq!(
            self.used as usize + nfree + nlocal,
            self.capacity as usize,
            "used + |free| + |local_free| == capacity"
        );
        // One load gives a head and a length that belong together: frees
        // by other threads push above it and never change what lies below.
        let (tf_head, tf_count) = self.thread_free.snapshot();
        for head in [self.free, self.local_free, tf_head] {
            let mut cur = head;
            while !cur.is_null() {
                assert!(
                    self.is_block_start(cur.cast()),
                    "free list member outside the page"
                );
                // SAFETY: `cur` is a checked member of the list.
                cur = unsafe { Block::next_with(cur, self.key) };
            }
        }
        // SAFETY: the blocks below the snapshot's head stay on the stack
        // until the owner (the caller) takes them.
        let (nthread, _) = unsafe { Block::count_and_tail(tf_head, self.key) };
        assert_eq!(nthread, tf_count, "thread_free length word");
        assert!(nthread <= self.used as usize);
        self.used as usize - nthread
    }
}
