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
//! Who may touch what (the types say it):
//! - `owner` (atomic): the owning thread's id, or one of the `OWNER_*`
//!   values. Any thread reads it (the free fast path compares it with its
//!   own id); it is written by the owner, or under the arena lock when the
//!   page is made, abandoned, adopted or freed, with Release after every
//!   other field.
//! - [`Fixed`] fields (`start`, `block_size`, `div_magic`, `reserved`,
//!   `slice`, `slices`, `key`): written only while the page is unpublished
//!   (the span is the caller's alone: `owner` is `OWNER_NONE`, under the
//!   arena lock), published by that Release; any thread that read `owner`
//!   with Acquire may read them.
//! - atomics (`carved`, `aligned`, `abandoned_used`, `thread_free`, `heap`):
//!   read by threads that free into the page.
//! - [`Owned`] fields (everything else): the owner's alone, reachable only
//!   through an [`OwnedPage`] handle, whose constructor is `unsafe` (the
//!   caller is the thread whose id is in `owner`, or holds the arena lock
//!   while the page has no owning thread). No other thread reads them, and
//!   no thread ever holds a `&mut Page`: every non-atomic field is an
//!   `UnsafeCell`, so a `&Page` on any thread aliases nothing.

use crate::base::constants::{MAX_EXTEND_SIZE, MIN_EXTEND};
use crate::lockfree::block::{Block, ListKey};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::lockfree::thread_free::AbandonWords;
pub use crate::lockfree::thread_free::{DelayedState, Pushed, ThreadFree, OWNER_ABANDONED};

/// Page is in the heap's full queue.
pub const FLAG_IN_FULL: u8 = 1;
/// Some pointer handed out is an over-aligned interior pointer of its block.
pub const FLAG_HAS_ALIGNED: u8 = 2;

/// `owner` of a page header that is not a page (its span is free).
pub const OWNER_NONE: usize = 0;
/// `owner` of a one-block page (singleton span or huge chunk): no heap owns
/// it; whichever thread frees the block frees the span.
pub const OWNER_SINGLETON: usize = usize::MAX;

/// Is `owner` a thread's id (not one of the special owners: none,
/// singleton, abandoned)? One add and one compare.
#[inline(always)]
pub fn is_thread_owner(owner: usize) -> bool {
    const _: () = assert!(
        OWNER_NONE == 0 && OWNER_SINGLETON == usize::MAX && OWNER_ABANDONED == usize::MAX - 1
    );
    owner.wrapping_add(2) > 2
}

/// The heap that owns a page, as the page sees it: an opaque type (the page
/// layer sits below the heap; `heap.rs` converts).
pub enum OwnerHeap {}

/// A field only the page's owner touches; see [`OwnedPage`].
#[repr(transparent)]
pub struct Owned<T>(UnsafeCell<T>);

impl<T> Owned<T> {
    const fn new(v: T) -> Self {
        Owned(UnsafeCell::new(v))
    }
}

/// A field written only while the page is unpublished and read by anyone
/// after (module docs).
#[repr(transparent)]
pub struct Fixed<T>(UnsafeCell<T>);

impl<T: Copy> Fixed<T> {
    const fn new(v: T) -> Self {
        Fixed(UnsafeCell::new(v))
    }

    /// The value (published with the page).
    #[inline(always)]
    pub fn get(&self) -> T {
        // SAFETY: written only while the page is unpublished; readers come
        // after the Release store of `owner` that publishes it.
        unsafe { *self.0.get() }
    }

    /// Only `Page::init` and `Page::resize_singleton` call it (this
    /// module), while the page is unpublished and the caller's alone.
    #[inline(always)]
    fn set(&self, v: T) {
        // SAFETY: as stated: no reader exists while the page is unpublished.
        unsafe { *self.0.get() = v }
    }
}

#[repr(C)]
pub struct Page {
    // --- hot: the malloc and free fast paths read only these ---
    pub(crate) owner: AtomicUsize,
    free: Owned<*mut Block>,
    local_free: Owned<*mut Block>,
    used: Owned<u32>,
    flags: Owned<u8>,
    /// Every block on `free` reads as zero apart from its link word.
    free_is_zero: Owned<bool>,
    /// Slow-path calls left before this empty page is freed (0: not retiring).
    retire_expire: Owned<u8>,
    /// The uncarved part of the page area reads as zero.
    area_is_zero: Owned<bool>,
    /// First block (16-byte aligned).
    start: Fixed<*mut u8>,
    /// `capacity * (div_magic * block_size)` (wrapping) while `flags == 0`,
    /// else 0: the free fast path tests block start, bounds and flags with
    /// one multiply and one comparison (`is_plain_block_start`).
    fast_free_bound: Owned<u64>,
    /// [`block_magic`] of the block size: `off` is a multiple of
    /// `block_size` iff `off * div_magic < div_magic` (wrapping, for `off`
    /// below 2^32; Lemire, Kaser, Kurz 2019, "Faster remainder by direct
    /// computation").
    div_magic: Fixed<u64>,
    /// How the free lists store links (secret per page: block.rs).
    key: Fixed<ListKey>,
    // --- cold ---
    block_size: Fixed<usize>,
    pub(crate) thread_free: ThreadFree,
    pub(crate) heap: AtomicPtr<OwnerHeap>,
    /// Bytes from `start` that hold carved blocks: `capacity * block_size`.
    carved: AtomicUsize,
    /// Page queue links (bin queue or full queue of the owning heap).
    next: Owned<*mut Page>,
    prev: Owned<*mut Page>,
    /// The low half of `free` when the page was last seen empty while
    /// retiring: a different value later means it was used in between (two
    /// blocks of one page differ in their low 32 bits).
    retire_free_low: Owned<u32>,
    /// Live blocks when the page was abandoned: once `thread_free` holds
    /// that many, every block is free and the page can go.
    pub(crate) abandoned_used: AtomicU32,
    /// Blocks carved and blocks the area holds (at most 4,096: a 64 KiB
    /// slice of 16-byte blocks).
    capacity: Owned<u16>,
    reserved: Fixed<u16>,
    /// Mirrors `FLAG_HAS_ALIGNED` for threads other than the owner.
    aligned: AtomicBool,
    /// First slice of the span and its length (0 for a huge chunk's page).
    slice: Fixed<u8>,
    slices: Fixed<u8>,
}

// SAFETY: every field is an atomic or an `UnsafeCell` accessed by the
// protocol in the module docs (owner-only through `OwnedPage`, fixed fields
// only while unpublished), so sharing `&Page` between threads is sound.
unsafe impl Sync for Page {}

// 128 bytes: page headers tile the chunk header in cache-line pairs.
#[cfg(not(feature = "secure"))]
const _: () = assert!(core::mem::size_of::<Page>() == 128);

/// `is_plain_block_start`'s arithmetic (on its own for the tests).
#[inline(always)]
fn below_bound(off: usize, magic: u64, bound: u64) -> bool {
    (off as u64).wrapping_mul(magic) < bound
}

/// The multiplier of the block-start tests for blocks of `size` bytes:
/// `floor(2^64 / size) + 1`, made odd, so that `E = magic * size - 2^64`
/// is never 0 (for a power of two the plain quotient would give 0) and at
/// most `2 * size`.
fn block_magic(size: usize) -> u64 {
    (u64::MAX / size as u64 + 1) | 1
}

/// The owner's handle on a page: the only way to its [`Owned`] fields and
/// to the operations that change its lists. Made by [`Page::owned`].
#[derive(Clone, Copy)]
pub struct OwnedPage(*mut Page);

impl core::ops::Deref for OwnedPage {
    type Target = Page;
    #[inline(always)]
    fn deref(&self) -> &Page {
        // SAFETY: `Page::owned`'s caller promised a live page.
        unsafe { &*self.0 }
    }
}

/// Getters and setters of the owner's fields.
macro_rules! owned_fields {
    ($($field:ident, $set:ident: $t:ty;)*) => {
        impl OwnedPage {
            $(
                #[inline(always)]
                pub fn $field(self) -> $t {
                    // SAFETY: the handle's holder is the page's owner, the
                    // only thread that touches this field.
                    unsafe { *(*self.0).$field.0.get() }
                }

                #[inline(always)]
                pub fn $set(self, value: $t) {
                    // SAFETY: as above.
                    unsafe { *(*self.0).$field.0.get() = value }
                }
            )*
        }
    };
}

owned_fields! {
    free, set_free: *mut Block;
    local_free, set_local_free: *mut Block;
    used, set_used: u32;
    flags, set_flags: u8;
    free_is_zero, set_free_is_zero: bool;
    retire_expire, set_retire_expire: u8;
    area_is_zero, set_area_is_zero: bool;
    fast_free_bound, set_fast_free_bound: u64;
    capacity, set_capacity: u16;
    next, set_next: *mut Page;
    prev, set_prev: *mut Page;
    retire_free_low, set_retire_free_low: u32;
}

impl Page {
    pub const fn empty() -> Page {
        Page {
            owner: AtomicUsize::new(OWNER_NONE),
            free: Owned::new(ptr::null_mut()),
            local_free: Owned::new(ptr::null_mut()),
            used: Owned::new(0),
            flags: Owned::new(0),
            free_is_zero: Owned::new(false),
            retire_expire: Owned::new(0),
            area_is_zero: Owned::new(false),
            start: Fixed::new(ptr::null_mut()),
            fast_free_bound: Owned::new(0),
            div_magic: Fixed::new(0),
            key: Fixed::new(ListKey::PLAIN),
            block_size: Fixed::new(0),
            thread_free: ThreadFree::new(),
            heap: AtomicPtr::new(ptr::null_mut()),
            carved: AtomicUsize::new(0),
            capacity: Owned::new(0),
            reserved: Fixed::new(0),
            next: Owned::new(ptr::null_mut()),
            prev: Owned::new(ptr::null_mut()),
            retire_free_low: Owned::new(0),
            abandoned_used: AtomicU32::new(0),
            aligned: AtomicBool::new(false),
            slice: Fixed::new(0),
            slices: Fixed::new(0),
        }
    }

    /// The owner's handle on `page`.
    ///
    /// # Safety
    /// `page` is a live page header, and the calling thread is its owner:
    /// the thread whose id is in `owner` (through that thread's heap), or
    /// the holder of the arena lock while `owner` names no thread
    /// (`OWNER_NONE`, `OWNER_ABANDONED`, `OWNER_SINGLETON` while the span
    /// is being made or freed). The handle is not used after that ends.
    #[inline(always)]
    pub unsafe fn owned(page: *mut Page) -> OwnedPage {
        OwnedPage(page)
    }

    /// Make this header (of a span nobody else references yet) a page of
    /// blocks of `block_size` over `start..start + area_size`, owned by
    /// `owner` (a thread id, or `OWNER_SINGLETON`) through `heap`, its lists
    /// stored with `key`. Returns the owner's handle.
    ///
    /// # Safety
    /// The page is unpublished (`owner` is `OWNER_NONE`) and the caller's
    /// alone (the arena lock, or a span no one else can reach), and the
    /// area is mapped memory of the span.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn init(
        page: *mut Page,
        owner: usize,
        heap: *mut OwnerHeap,
        block_size: usize,
        start: *mut u8,
        area_size: usize,
        area_is_zero: bool,
        (slice, slices): (usize, usize),
        key: ListKey,
    ) -> OwnedPage {
        debug_assert!(block_size >= crate::base::constants::WORD_SIZE);
        // SAFETY: as the caller guarantees: until the Release store below,
        // nobody else reads this header, so the caller is its owner.
        let pg = unsafe { Page::owned(page) };
        // The fixed fields, written before publication.
        pg.start.set(start);
        pg.block_size.set(block_size);
        pg.div_magic.set(block_magic(block_size));
        let reserved = area_size / block_size;
        debug_assert!(reserved <= u16::MAX as usize);
        pg.reserved.set(reserved as u16);
        pg.slice.set(slice as u8);
        pg.slices.set(slices as u8);
        pg.key.set(key);
        pg.set_free(ptr::null_mut());
        pg.set_local_free(ptr::null_mut());
        pg.set_used(0);
        pg.set_flags(0);
        pg.set_free_is_zero(false);
        pg.set_retire_expire(0);
        pg.set_area_is_zero(area_is_zero);
        pg.set_fast_free_bound(0);
        pg.set_capacity(0);
        pg.set_next(ptr::null_mut());
        pg.set_prev(ptr::null_mut());
        pg.set_retire_free_low(0);
        pg.carved.store(0, Ordering::Relaxed);
        pg.abandoned_used.store(0, Ordering::Relaxed);
        pg.aligned.store(false, Ordering::Relaxed);
        pg.thread_free.reset();
        pg.heap.store(heap, Ordering::Relaxed);
        debug_assert!(pg.reserved() > 0);
        // Last: publishes the fields above to threads that read `owner`.
        pg.owner.store(owner, Ordering::Release);
        pg
    }

    // ------------------------------------------------------------ any thread

    #[inline(always)]
    pub fn start(&self) -> *mut u8 {
        self.start.get()
    }

    #[inline(always)]
    pub fn block_size(&self) -> usize {
        self.block_size.get()
    }

    #[inline(always)]
    pub fn reserved(&self) -> u32 {
        u32::from(self.reserved.get())
    }

    /// Bytes of the page's block area (`reserved * block_size`).
    pub fn area_bytes(&self) -> usize {
        self.reserved() as usize * self.block_size()
    }

    /// First slice of the span and its length (0 for a huge chunk's page).
    #[inline(always)]
    pub fn span(&self) -> (usize, usize) {
        (self.slice.get() as usize, self.slices.get() as usize)
    }

    #[inline(always)]
    pub fn key(&self) -> ListKey {
        self.key.get()
    }

    /// Bytes of carved blocks (any thread).
    #[inline(always)]
    pub fn carved(&self) -> usize {
        self.carved.load(Ordering::Relaxed)
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
        let off = (p as usize).wrapping_sub(self.start() as usize);
        let magic = self.div_magic.get();
        off < self.carved() && (off as u64).wrapping_mul(magic) < magic
    }

    /// The start of the carved block containing `p`, if any.
    pub fn block_containing(&self, p: *const u8) -> Option<*mut Block> {
        let off = (p as usize).wrapping_sub(self.start() as usize);
        (off < self.carved()).then(|| {
            self.start()
                .wrapping_add(off - off % self.block_size())
                .cast()
        })
    }

    /// The word every free block of this page holds in its second word
    /// while it is free (the page header's address: no program data
    /// holds it, since mirs never hands out header memory), cleared when
    /// the block is handed out. Free refuses a block that carries it.
    #[inline(always)]
    pub fn free_mark(&self) -> usize {
        self as *const Page as usize
    }

    /// Does `block` (a carved block start of this page, readable by the
    /// caller) carry the free mark?
    ///
    /// # Safety
    /// `block` is a carved block start of this page, and no other thread
    /// writes it meanwhile (the caller owns it or is freeing it).
    #[inline(always)]
    pub unsafe fn is_marked_free(&self, block: *mut Block) -> bool {
        // SAFETY: as the caller guarantees.
        unsafe { Block::has_free_mark(block, self.free_mark()) }
    }

    /// Free `block` from a thread that does not own the page: push it on
    /// `thread_free` with one CAS, or, when the page is in its heap's full
    /// queue, claim the right to hand it to the heap's delayed list.
    /// Returns `Pushed::Delayed` when the caller must do that (see
    /// `delayed::hand_over`), else the stack's new length.
    ///
    /// # Safety
    /// `block` is a handed-out block start of this page, owned by the caller.
    pub unsafe fn push_thread_free(&self, block: *mut Block) -> Pushed {
        // SAFETY: as the caller guarantees.
        unsafe { self.thread_free.push(block, self.key()) }
    }

    /// The atomics of the abandoned-page protocol (any thread).
    pub(crate) fn abandon_words(&self) -> AbandonWords<'_> {
        AbandonWords {
            owner: &self.owner,
            abandoned_used: &self.abandoned_used,
            thread_free: &self.thread_free,
        }
    }

    /// Owner: switch the delayed-free state, waiting out a non-owner that is
    /// in the middle of a delayed free. `NeverDelayedFree` is sticky unless
    /// `override_never`.
    pub fn set_delayed_state(&self, state: DelayedState, override_never: bool) {
        self.thread_free.set_state(state, override_never);
    }
}

/// What [`OwnedPage::try_pop_free`] found.
pub enum Pop {
    /// A block, handed out.
    Block(*mut u8),
    /// No free block at hand (`free` and `local_free` empty).
    Empty,
    /// `free`'s head failed the fast test: [`OwnedPage::pop_checked`] decides.
    Suspect,
}

impl OwnedPage {
    pub fn set_flag(self, flag: u8) {
        self.set_flags(self.flags() | flag);
        self.set_fast_free_bound(0);
        if flag & FLAG_HAS_ALIGNED != 0 {
            self.aligned.store(true, Ordering::Relaxed);
        }
    }

    pub fn clear_flag(self, flag: u8) {
        self.set_flags(self.flags() & !flag);
        if self.flags() == 0 {
            self.set_fast_free_bound(self.plain_bound());
        }
    }

    /// `fast_free_bound` for the carved blocks: the products `off *
    /// div_magic` of block starts `off = k * block_size` are `k * E`
    /// (wrapping), `E = div_magic * block_size - 2^64` in `1..=2 *
    /// block_size`, so `k < capacity` is one comparison.
    fn plain_bound(self) -> u64 {
        let e = self.div_magic.get().wrapping_mul(self.block_size() as u64);
        self.capacity() as u64 * e
    }

    /// The free fast path's test: `p` is a carved block start and the page
    /// needs no special handling (not full, no aligned blocks).
    ///
    /// `off * div_magic` (wrapping) is below the bound exactly for the
    /// carved block starts while `|off|` stays under 2^24: for `off = q *
    /// bs + r`, it is `q * E + r * div_magic`; with `r > 0` that is at least
    /// 2^64 / bs - 2^25 and does not wrap (blocks of at most 4 MiB): far
    /// above any bound, which is at most twice the page area; with `r = 0`
    /// it is `q * E`, below `capacity * E` only for `0 <= q < capacity`.
    /// Hosted, the page map does not alias, so `p` lies in the page's span
    /// and `|off|` is under the chunk size; embedded, an aliased pointer can
    /// be anywhere, so the offset is bounded first.
    #[inline(always)]
    pub fn is_plain_block_start(self, p: *const u8) -> bool {
        let off = (p as usize).wrapping_sub(self.start() as usize);
        #[cfg(not(feature = "hosted"))]
        if off >= crate::base::constants::CHUNK_SIZE {
            return false;
        }
        below_bound(off, self.div_magic.get(), self.fast_free_bound())
    }

    #[inline(always)]
    pub fn is_full_flagged(self) -> bool {
        self.flags() & FLAG_IN_FULL != 0
    }

    pub fn all_free(self) -> bool {
        self.used() == 0
    }

    /// Free blocks the owner can hand out without carving or collecting.
    pub fn has_free(self) -> bool {
        !self.free().is_null()
    }

    /// Remember `free` as the page is seen empty while retiring.
    pub fn note_retire_free(self) {
        self.set_retire_free_low(self.free() as usize as u32);
    }

    /// Has `free` changed since [`OwnedPage::note_retire_free`]?
    pub fn free_changed_since_retire(self) -> bool {
        self.free() as usize as u32 != self.retire_free_low()
    }

    pub fn can_extend(self) -> bool {
        u32::from(self.capacity()) < self.reserved()
    }

    // ------------------------------------------------------------ allocate

    /// Pop a block from `free`: null when the page has none at hand.
    #[inline(always)]
    pub fn pop_free(self) -> *mut u8 {
        match self.try_pop_free() {
            Pop::Block(block) => block,
            Pop::Empty => ptr::null_mut(),
            Pop::Suspect => self.pop_checked(),
        }
    }

    /// The malloc fast path's pop, which leaves the head that fails the
    /// fast test to its caller (`Pop::Suspect`: then [`OwnedPage::pop_checked`]),
    /// so that the caller can reach that cold path by a tail call and save
    /// no registers on the fast one.
    #[inline(always)]
    pub fn try_pop_free(self) -> Pop {
        let block = self.free();
        // The head must be a block of ours before its link is read. A head
        // that fails the test is null (empty) or a link that was damaged
        // while its block was free (a use after free, an overflow from the
        // block below): it decodes with the page's secret key to a random
        // address (block.rs), far outside the page.
        if !self.may_pop(block) {
            if block.is_null() {
                return self.pop_local_free();
            }
            return Pop::Suspect;
        }
        Pop::Block(self.pop_head(block))
    }

    /// `free` is empty: take the owner's own frees (`local_free`) as the new
    /// `free` and pop from it, without the slow path (a size freed and
    /// allocated in turn would otherwise take it every time). Empty when
    /// there are none: the slow path collects other threads' frees, carves
    /// or finds another page.
    #[inline(always)]
    fn pop_local_free(self) -> Pop {
        let local = self.local_free();
        if local.is_null() {
            return Pop::Empty;
        }
        self.set_local_free(ptr::null_mut());
        self.set_free(local);
        self.set_free_is_zero(false);
        if !self.may_pop(local) {
            return Pop::Suspect;
        }
        Pop::Block(self.pop_head(local))
    }

    /// The fast test of a free-list head. Default build: it lies in the
    /// chunk-sized window that starts at the page header (every block of
    /// the page does: headers come first in their chunk): a subtraction and
    /// a compare, no load. Null fails it (it wraps far above the window;
    /// the static empty page included, wherever it is linked), and a
    /// damaged link passes only if it decodes into that window by chance
    /// (2^-42 or less with the page's random key); a head that fails goes to the
    /// exact test of `pop_checked`. `secure`: the exact test (in the carved
    /// area; the bound is 0 for pages with flags, whose heads `pop_checked`
    /// checks as block starts).
    #[inline(always)]
    fn may_pop(self, block: *mut Block) -> bool {
        #[cfg(not(feature = "secure"))]
        {
            (block as usize).wrapping_sub(self.0 as usize) < crate::base::constants::CHUNK_SIZE
        }
        #[cfg(feature = "secure")]
        {
            (block as usize).wrapping_sub(self.start() as usize) < self.carved()
        }
    }

    /// Unlink `block`, the valid head of `free`, and hand it out.
    #[inline(always)]
    fn pop_head(self, block: *mut Block) -> *mut u8 {
        // SAFETY: `block` is on this page's free list, so it is a free block.
        let next = unsafe { Block::next_with(block, self.key()) };
        self.set_free(next);
        self.set_used(self.used() + 1);
        // SAFETY: the block is ours now; blocks are at least two words.
        unsafe { Block::clear_free_mark(block) };
        // Debug and secure builds: clear the link too, so the block does
        // not show internal pointers.
        #[cfg(any(debug_assertions, feature = "secure"))]
        // SAFETY: as above.
        unsafe {
            block.cast::<usize>().write(0)
        };
        block.cast()
    }

    /// `pop_free` when the head (not null) failed the fast test: the head
    /// when it is a valid block after all (pages with flags); else the list is damaged: reported and dropped (its blocks
    /// are lost to the page until it is freed), and null: the caller's slow
    /// path finds a block elsewhere (`Heap::malloc_from_page`).
    #[cold]
    #[inline(never)]
    pub fn pop_checked(self) -> *mut u8 {
        let block = self.free();
        if self.holds_link(block) {
            return self.pop_head(block);
        }
        self.report_corrupted_list();
        self.set_free(ptr::null_mut());
        ptr::null_mut()
    }

    /// Could `next` be a block of this page's free lists? Default build: it
    /// lies in the carved area; `secure`: it is a carved block start.
    #[inline(always)]
    fn holds_link(self, next: *mut Block) -> bool {
        #[cfg(not(feature = "secure"))]
        {
            (next as usize).wrapping_sub(self.start() as usize) < self.carved()
        }
        #[cfg(feature = "secure")]
        {
            self.is_block_start(next.cast())
        }
    }

    #[cold]
    fn report_corrupted_list(self) {
        crate::support::stats::add(crate::support::stats::Counter::CorruptLists, 1);
        crate::support::output::warning!(
            "corrupted free list in page of {}-byte blocks: rest dropped",
            self.block_size()
        );
    }

    /// The last block of the list at `head` (not null), walked with every
    /// link checked: a link that leaves the page (damaged) ends the list
    /// there, reported, and so does a walk longer than the page's capacity
    /// (a cycle). The dropped blocks are lost to the page until it is freed.
    fn checked_tail(self, head: *mut Block) -> *mut Block {
        let mut cur = head;
        for _ in 0..self.capacity() {
            // SAFETY: `cur` is the head or a link that passed `holds_link`:
            // a free block of this page.
            let next = unsafe { Block::next_with(cur, self.key()) };
            if next.is_null() {
                return cur;
            }
            if !self.holds_link(next) {
                break;
            }
            cur = next;
        }
        self.report_corrupted_list();
        // SAFETY: as above; the list ends here now.
        unsafe { Block::set_next_with(cur, ptr::null_mut(), self.key()) };
        cur
    }

    /// Carve the next run of blocks onto the front of the `free` list.
    pub fn extend(self) {
        debug_assert!(self.can_extend());
        let bs = self.block_size();
        let room = (self.reserved() - u32::from(self.capacity())) as usize;
        let n = room.min((MAX_EXTEND_SIZE / bs).max(MIN_EXTEND));
        let first = self.start().wrapping_add(self.capacity() as usize * bs);
        #[cfg(not(feature = "secure"))]
        {
            // Link the run in address order: touching memory front to back.
            for i in 0..n - 1 {
                let b = first.wrapping_add(i * bs).cast::<Block>();
                // SAFETY: blocks `capacity..capacity+n` lie inside the page area
                // (n <= reserved - capacity) and no one else references them yet.
                unsafe {
                    Block::set_next_with(b, b.cast::<u8>().wrapping_add(bs).cast(), self.key())
                };
            }
            let last = first.wrapping_add((n - 1) * bs).cast::<Block>();
            // SAFETY: as above.
            unsafe { Block::set_next_with(last, self.free(), self.key()) };
            self.set_free_is_zero(self.area_is_zero() && self.free().is_null());
            self.set_free(first.cast());
        }
        #[cfg(feature = "secure")]
        self.extend_shuffled(first, n);
        self.set_capacity(self.capacity() + n as u16);
        let carved = self.capacity() as usize * bs;
        self.carved.store(carved, Ordering::Relaxed);
        if self.flags() == 0 {
            self.set_fast_free_bound(self.plain_bound());
        }
        crate::support::stats::blocks_carved(bs, n);
    }

    /// Secure mode: link the new run in a random order (Fisher-Yates over
    /// the run, seeded from the page's secret key), so the address of the
    /// next block cannot be predicted from the last one.
    #[cfg(feature = "secure")]
    fn extend_shuffled(self, first: *mut u8, n: usize) {
        const MAX_RUN: usize =
            crate::base::constants::MAX_EXTEND_SIZE / crate::base::constants::WORD_SIZE;
        let mut order = [0u16; MAX_RUN];
        let n = n.min(MAX_RUN);
        for (i, slot) in order[..n].iter_mut().enumerate() {
            *slot = i as u16;
        }
        let mut rng = self.key().seed() ^ ((self.capacity() as u64) << 32);
        for i in (1..n).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let bs = self.block_size();
        let mut next = self.free();
        for &i in order[..n].iter().rev() {
            let b = first.wrapping_add(i as usize * bs).cast::<Block>();
            // SAFETY: every index is a block of the run inside the page area,
            // referenced by no one yet.
            unsafe { Block::set_next_with(b, next, self.key()) };
            next = b;
        }
        self.set_free_is_zero(self.area_is_zero() && self.free().is_null());
        self.set_free(next);
        // `extend` accounts for `n` blocks; the run never exceeds MAX_RUN
        // because n <= max(MAX_EXTEND_SIZE / bs, MIN_EXTEND) <= MAX_RUN.
    }

    // ------------------------------------------------------------ free

    /// Push a block the owner frees; returns true when the page became empty.
    ///
    /// # Safety
    /// `block` is a block start of this page that is currently handed out.
    #[inline(always)]
    pub unsafe fn push_local(self, block: *mut Block) -> bool {
        // SAFETY: the caller hands the block back; it is ours to mark.
        unsafe { Block::set_free_mark(block, self.free_mark()) };
        // SAFETY: as above: ours to link.
        unsafe { Block::set_next_with(block, self.local_free(), self.key()) };
        self.set_local_free(block);
        let used = self.used() - 1;
        self.set_used(used);
        used == 0
    }

    /// Move other threads' frees and then the owner's own frees to `free`.
    /// `force` also appends `local_free` when `free` is not empty.
    pub fn collect(self, force: bool) {
        self.collect_thread_free();
        if self.local_free().is_null() {
            return;
        }
        if self.free().is_null() {
            self.set_free(self.local_free());
            self.set_local_free(ptr::null_mut());
            self.set_free_is_zero(false);
        } else if force {
            let tail = self.checked_tail(self.local_free());
            // SAFETY: `tail` is the last block of that list.
            unsafe { Block::set_next_with(tail, self.free(), self.key()) };
            self.set_free(self.local_free());
            self.set_local_free(ptr::null_mut());
            self.set_free_is_zero(false);
        }
    }

    /// Take the whole `thread_free` stack (one CAS; its length comes with
    /// it) onto `free` when that is empty, else onto `local_free`, and
    /// account for it in `used`.
    pub fn collect_thread_free(self) {
        let (head, count) = self.thread_free.take_all();
        if head.is_null() {
            return;
        }
        self.set_used(self.used() - count as u32);
        // The length came with the stack: link it without walking it where
        // we can (its blocks sit in the freeing threads' caches).
        if self.free().is_null() {
            self.set_free(head);
            self.set_free_is_zero(false);
        } else if self.local_free().is_null() {
            self.set_local_free(head);
        } else {
            // Both lists hold blocks: the owner's own frees (`local_free`,
            // warm in this thread's cache) go in front of `free`, walked
            // for their tail, and the stack (blocks other threads freed,
            // cold here: a miss per link) becomes `local_free` unwalked. A
            // heap's exit collects every page this way.
            let local = self.local_free();
            let tail = self.checked_tail(local);
            // SAFETY: `tail` is the last block of the list we own.
            unsafe { Block::set_next_with(tail, self.free(), self.key()) };
            self.set_free(local);
            self.set_free_is_zero(false);
            // The stack was published by other threads with Release and we
            // took it with Acquire; nobody else can reach it now.
            self.set_local_free(head);
        }
    }

    /// Is `block` (a carved block of this page) on the owner's `free` or
    /// `local_free` list? The walk trusts no link: it stops at one that is
    /// not a block start of this page (an overflow from the block below)
    /// and after `capacity` steps (a cycle), so a corrupted list costs a
    /// wrong answer, never a crash or a hang.
    pub fn lists_contain(self, block: *mut Block) -> bool {
        [self.free(), self.local_free()].into_iter().any(|head| {
            let mut cur = head;
            for _ in 0..self.capacity() {
                if cur == block {
                    return true;
                }
                if cur.is_null() || !self.is_block_start(cur.cast()) {
                    return false;
                }
                // SAFETY: a carved block start of this page on its list: free.
                cur = unsafe { Block::next_with(cur, self.key()) };
            }
            false
        })
    }

    // ------------------------------------------------------------ checking

    /// Walk the lists and check the invariants in the module docs. Owner only
    /// (or with the page quiescent). Returns the number of live blocks.
    #[cfg(any(test, feature = "internals"))]
    pub fn check_invariants(self) -> usize {
        assert!(self.owner.load(Ordering::Relaxed) != OWNER_NONE);
        assert!(u32::from(self.capacity()) <= self.reserved());
        assert_eq!(self.carved(), self.capacity() as usize * self.block_size());
        // SAFETY: the owner's lists are well formed (that is what we check;
        // a broken list shows up as a failed membership assertion below).
        let (nfree, _) = unsafe { Block::count_and_tail(self.free(), self.key()) };
        // SAFETY: as above.
        let (nlocal, _) = unsafe { Block::count_and_tail(self.local_free(), self.key()) };
        assert_eq!(
            self.used() as usize + nfree + nlocal,
            self.capacity() as usize,
            "used + |free| + |local_free| == capacity"
        );
        // One load gives a head and a length that belong together: frees
        // by other threads push above it and never change what lies below.
        let (tf_head, tf_count) = self.thread_free.snapshot();
        for head in [self.free(), self.local_free(), tf_head] {
            let mut cur = head;
            while !cur.is_null() {
                assert!(
                    self.is_block_start(cur.cast()),
                    "free list member outside the page"
                );
                // SAFETY: `cur` is a checked member of the list.
                cur = unsafe { Block::next_with(cur, self.key()) };
            }
        }
        // SAFETY: the blocks below the snapshot's head stay on the stack
        // until the owner (the caller) takes them.
        let (nthread, _) = unsafe { Block::count_and_tail(tf_head, self.key()) };
        assert_eq!(nthread, tf_count, "thread_free length word");
        assert!(nthread <= self.used() as usize);
        self.used() as usize - nthread
    }
}

impl Page {
    /// A singleton page after realloc resized its block where it lies, or
    /// moved its huge chunk (`arena::remap_huge`, `arena::grow_span`): the
    /// one block now starts at `start` and spans `area` bytes, over `slices`
    /// slices (a span's; 0 for a huge chunk).
    ///
    /// # Safety
    /// `self` is a singleton page whose block the caller holds (realloc's
    /// caller gave it up). Nobody else reads the fields changed: a huge
    /// chunk is out of the chunk map meanwhile; a span's page is read by
    /// others only through `start` (which stays: they compare a pointer
    /// with it before anything else), its new slices taken off the free
    /// mask under the arena lock first.
    pub(crate) unsafe fn resize_singleton(&self, start: *mut u8, area: usize, slices: usize) {
        debug_assert!(self.owner.load(Ordering::Relaxed) == OWNER_SINGLETON);
        debug_assert!(self.reserved() == 1 && area >= crate::base::constants::WORD_SIZE);
        self.slices.set(slices as u8);
        self.start.set(start);
        self.block_size.set(area);
        self.div_magic.set(block_magic(area));
        self.carved.store(area, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::constants::CHUNK_SIZE;
    use crate::base::size_class::{bin_block_size, BIN_HUGE};

    /// The free fast path's one-compare test accepts exactly the carved
    /// block starts, for every size class and any offset within a chunk
    /// either way (all of them in release builds; edges and a stride in
    /// debug ones).
    #[test]
    fn plain_bound_is_exact_within_a_chunk() {
        let window = CHUNK_SIZE as i64;
        for bin in 1..BIN_HUGE {
            let bs = bin_block_size(bin);
            let magic = block_magic(bs);
            let e = magic.wrapping_mul(bs as u64);
            assert!(e >= 1 && e <= 2 * bs as u64, "bin {bin}: E = {e}");
            for cap in [1, 2, (CHUNK_SIZE / bs / 2).max(1), CHUNK_SIZE / bs] {
                let bound = cap as u64 * e;
                let check = |off: i64| {
                    let exact = off >= 0 && off % bs as i64 == 0 && off / (bs as i64) < cap as i64;
                    assert_eq!(
                        below_bound(off as usize, magic, bound),
                        exact,
                        "block size {bs}, capacity {cap}, offset {off}"
                    );
                };
                let edges = [0, bs as i64, (cap * bs) as i64, window - 1, -window];
                for edge in edges {
                    for d in -2 * bs as i64..=2 * bs as i64 {
                        check((edge + d).clamp(-window, window - 1));
                    }
                }
                let step = if cfg!(debug_assertions) { 4093 } else { 1 };
                if cap == CHUNK_SIZE / bs || cfg!(debug_assertions) {
                    for off in (-window..window).step_by(step) {
                        check(off);
                    }
                }
            }
        }
    }

    /// The multiplier keeps the general block-start test
    /// (`off * magic < magic`) exact over a page.
    #[test]
    fn block_magic_finds_block_starts() {
        for bin in 1..BIN_HUGE {
            let bs = bin_block_size(bin);
            let magic = block_magic(bs);
            for off in 0..CHUNK_SIZE.min(64 * bs) {
                assert_eq!(
                    (off as u64).wrapping_mul(magic) < magic,
                    off % bs == 0,
                    "{bs} {off}"
                );
            }
        }
    }
}
