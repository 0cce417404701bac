//! A page's `thread_free` word: the atomic stack of blocks other threads
//! freed, with the delayed-free state in its low two bits.
//!
//! ```text
//! thread_free:  63 ..... 48 | 47 ...................... 2 | 1 0
//!               length      | head block (8-aligned, bit   | DelayedState
//!               of the stack| 47 ..: address.rs)          |
//! ```
//!
//! The protocol (every transition is one CAS on the whole word, so the block
//! pointer and the state never tear):
//! - a non-owner frees with [`ThreadFree::push`]: in `NoDelayedFree` and
//!   `NeverDelayedFree` (and `DelayedFreeing`, which another non-owner holds)
//!   the block is pushed and the state kept; in `UseDelayedFree` nothing is
//!   pushed and the state becomes `DelayedFreeing`: the caller now may read
//!   the page's heap, pushes the block on that heap's delayed list, and calls
//!   [`ThreadFree::end_delayed_freeing`] (back to `NoDelayedFree`: one
//!   notification per full page is enough);
//! - the owner collects with [`ThreadFree::take_all`], which swaps the pointer
//!   part to null and keeps the state bits;
//! - the owner switches the state with [`ThreadFree::set_state`], which waits
//!   while a non-owner is in `DelayedFreeing`: once it returns, no thread is
//!   between reading the heap and leaving `DelayedFreeing`, so after setting
//!   `NeverDelayedFree` the heap may go away.
//!
//! The abandoned-page rule (the last free into an abandoned page frees it)
//! lives here too, in [`AbandonWords`]: it is a rule about this word's
//! length and two other atomics of the page, and needs nothing else of it.
//!
//! A type of its own so the loom model tests (`src/tests/loom.rs`) run this code.

use crate::base::address;
use crate::lockfree::block::{Block, ListKey};
use crate::lockfree::sync::{fence, AtomicU32, AtomicUsize, Ordering};

/// What a non-owner does with a block it frees into this page, kept in the
/// low two bits of `thread_free`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum DelayedState {
    /// Push on `thread_free` (the default).
    NoDelayedFree = 0,
    /// The page sits in the full queue: hand the block to the owning heap's
    /// delayed list so the owner notices the page has room again.
    UseDelayedFree = 1,
    /// A non-owner is reading `heap` to push on its delayed list; the owner
    /// waits for it to finish before changing `heap`.
    DelayedFreeing = 2,
    /// The page is abandoned or its heap is going away: never use the heap.
    NeverDelayedFree = 3,
}

const STATE_MASK: usize = 3;

#[inline(always)]
fn state_of(tf: usize) -> DelayedState {
    match tf & STATE_MASK {
        0 => DelayedState::NoDelayedFree,
        1 => DelayedState::UseDelayedFree,
        2 => DelayedState::DelayedFreeing,
        _ => DelayedState::NeverDelayedFree,
    }
}

/// The stack's length lives in the top 16 bits, so the owner collects it
/// without walking the blocks (they are in other cores' caches).
const COUNT_SHIFT: u32 = 48;
const ADDR_BITS_MASK: usize = address::ADDR_MASK;
const _: () = assert!(COUNT_SHIFT == address::ADDR_BITS);

#[inline(always)]
fn block_of(tf: usize) -> *mut Block {
    // The top bits come back from address.rs (user and kernel halves both).
    address::unpack(tf & ADDR_BITS_MASK & !STATE_MASK) as *mut Block
}

#[inline(always)]
fn count_of(tf: usize) -> usize {
    tf >> COUNT_SHIFT
}

/// What [`ThreadFree::push`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pushed {
    /// The block was pushed; the stack now holds this many blocks.
    Count(usize),
    /// Nothing was pushed: the caller is in `DelayedFreeing` and hands the
    /// block to the owning heap.
    Delayed,
}

/// The `thread_free` word of a page.
#[repr(transparent)]
pub struct ThreadFree(AtomicUsize);

impl ThreadFree {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        ThreadFree(AtomicUsize::new(0))
    }
    #[cfg(loom)]
    pub fn new() -> Self {
        ThreadFree(AtomicUsize::new(0))
    }

    /// Owner, page not yet visible to other threads: empty, `NoDelayedFree`.
    pub fn reset(&self) {
        self.0
            .store(DelayedState::NoDelayedFree as usize, Ordering::Relaxed);
    }

    /// Free `block` from a thread that does not own the page: push it with
    /// one CAS, or, in `UseDelayedFree`, enter `DelayedFreeing` instead.
    /// Returns `Pushed::Delayed` when the caller must hand the block to the
    /// heap's delayed list and then call [`ThreadFree::end_delayed_freeing`];
    /// otherwise the stack's length after the push (a freeing thread learns
    /// from it that an abandoned page has become empty, without reading the
    /// page again).
    ///
    /// # Safety
    /// `block` is a handed-out block of this page, owned by the caller, and
    /// `key` is the page's list key.
    pub unsafe fn push(&self, block: *mut Block, key: ListKey) -> Pushed {
        let mut tf = self.0.load(Ordering::Relaxed);
        loop {
            let use_delayed = state_of(tf) == DelayedState::UseDelayedFree;
            let new = if use_delayed {
                (tf & !STATE_MASK) | DelayedState::DelayedFreeing as usize
            } else {
                // SAFETY: we own the block until the CAS publishes it.
                unsafe { Block::set_next_with(block, block_of(tf), key) };
                debug_assert!(count_of(tf) < (1 << (64 - COUNT_SHIFT)) - 1);
                ((count_of(tf) + 1) << COUNT_SHIFT)
                    | (block as usize & ADDR_BITS_MASK)
                    | (tf & STATE_MASK)
            };
            match self
                .0
                .compare_exchange_weak(tf, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if use_delayed => return Pushed::Delayed,
                Ok(_) => return Pushed::Count(count_of(tf) + 1),
                Err(cur) => tf = cur,
            }
        }
    }

    /// Leave the `DelayedFreeing` state entered by [`ThreadFree::push`].
    pub fn end_delayed_freeing(&self) {
        let mut tf = self.0.load(Ordering::Relaxed);
        loop {
            if cfg!(any(debug_assertions, loom)) {
                assert_eq!(state_of(tf), DelayedState::DelayedFreeing);
            }
            let new = (tf & !STATE_MASK) | DelayedState::NoDelayedFree as usize;
            match self
                .0
                .compare_exchange_weak(tf, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(cur) => tf = cur,
            }
        }
    }

    /// In the child after `fork`, owner: a `DelayedFreeing` here was entered
    /// by a thread that does not exist in the child and will never leave it
    /// (the owner would wait for it forever in [`ThreadFree::set_state`]):
    /// switch it to `state`. Any other state is kept.
    pub fn reset_delayed_freeing_after_fork(&self, state: DelayedState) {
        let mut tf = self.0.load(Ordering::Acquire);
        while state_of(tf) == DelayedState::DelayedFreeing {
            let new = (tf & !STATE_MASK) | state as usize;
            match self
                .0
                .compare_exchange_weak(tf, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(cur) => tf = cur,
            }
        }
    }

    /// Owner: take the whole stack and its length ((null, 0) if empty),
    /// keeping the state bits.
    pub fn take_all(&self) -> (*mut Block, usize) {
        let mut tf = self.0.load(Ordering::Relaxed);
        loop {
            if block_of(tf).is_null() {
                return (core::ptr::null_mut(), 0);
            }
            match self.0.compare_exchange_weak(
                tf,
                tf & STATE_MASK,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (block_of(tf), count_of(tf)),
                Err(cur) => tf = cur,
            }
        }
    }

    /// The top of the stack and its length from one load: the owner may walk
    /// that many blocks from it while other threads keep pushing above it.
    #[cfg(any(test, feature = "internals"))]
    pub fn snapshot(&self) -> (*mut Block, usize) {
        let tf = self.0.load(Ordering::Acquire);
        (block_of(tf), count_of(tf))
    }

    /// The stack's length (invariant checks with no concurrent frees; the
    /// statistics report, for which a moment's value is enough).
    pub fn count(&self) -> usize {
        count_of(self.0.load(Ordering::Acquire))
    }

    /// The top of the stack, for invariant checks with no concurrent frees.
    #[cfg(loom)]
    pub fn head(&self) -> *mut Block {
        block_of(self.0.load(Ordering::Acquire))
    }

    #[cfg(loom)]
    pub fn state(&self) -> DelayedState {
        state_of(self.0.load(Ordering::Acquire))
    }

    /// Owner: switch the delayed-free state, waiting out a non-owner that is
    /// in the middle of a delayed free. `NeverDelayedFree` is sticky unless
    /// `override_never`.
    pub fn set_state(&self, state: DelayedState, override_never: bool) {
        let mut tf = self.0.load(Ordering::Acquire);
        loop {
            let old = state_of(tf);
            if old == DelayedState::DelayedFreeing {
                crate::lockfree::sync::spin_hint();
                tf = self.0.load(Ordering::Acquire);
                continue;
            }
            if old == state || (old == DelayedState::NeverDelayedFree && !override_never) {
                return;
            }
            let new = (tf & !STATE_MASK) | state as usize;
            match self
                .0
                .compare_exchange_weak(tf, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(cur) => tf = cur,
            }
        }
    }
}

impl Default for ThreadFree {
    fn default() -> Self {
        Self::new()
    }
}

// ------------------------------------------------------------------ abandoned pages

/// `owner` of a page whose thread exited while it held live blocks; any
/// thread needing its size class may adopt it (`arena::adopt`).
pub const OWNER_ABANDONED: usize = usize::MAX - 1;

/// The three atomics of a page that the abandoned-page protocol uses, and
/// the protocol's steps. Every caller (`arena::abandon`, `arena::adopt`,
/// `arena::free_abandoned_if_empty`, the sweep in `arena::purge`, and the
/// abandoned branch of `free::free_generic`) goes through these methods, and
/// so do the loom models.
///
/// ```text
/// owner exits:   lock { publish(live) }  then  emptied_meanwhile(live)?  -> free the page
/// a freer:       owner == OWNER_ABANDONED?  free_into(block) == Last     -> free the page
/// free the page: lock { may_free()? -> release the span }
/// adopter:       lock { may_adopt()? -> adopt(owner) }, then collect thread_free
/// sweep:         lock { may_free()? -> release the span } for every abandoned page
/// ```
///
/// Invariant: while `owner == OWNER_ABANDONED`, the page's live blocks are
/// `abandoned_used - |thread_free|`; no block is added to the page, so the
/// length word only grows, and it equals `abandoned_used` exactly when every
/// block is back. A freer's push that makes the two equal is the last free,
/// but it frees the page only after the re-check under the arena lock, since
/// an adopter may have taken the page in between. A free that raced with
/// the abandonment itself (it saw the old owner, so it does not check, and
/// pushed after the abandoner's check) leaves the page for the sweep.
pub struct AbandonWords<'a> {
    pub owner: &'a AtomicUsize,
    pub abandoned_used: &'a AtomicU32,
    pub thread_free: &'a ThreadFree,
}

/// What [`AbandonWords::free_into`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AbandonedFree {
    /// Pushed on `thread_free`; blocks are still out.
    Pushed,
    /// Pushed, and it was the last live block: the caller tries to free the
    /// page (`arena::free_abandoned_if_empty`, which re-checks).
    Last,
    /// The page was adopted meanwhile by a heap that found it full: as
    /// [`Pushed::Delayed`], the caller hands the block to that heap.
    Delayed,
}

impl AbandonWords<'_> {
    /// Owner, its heap going away, arena lock held: the page has `live`
    /// blocks out (counting those on `thread_free`) and its delayed state
    /// is `NeverDelayedFree`. Records the count, then publishes the owner
    /// word with Release, so a freer that sees `OWNER_ABANDONED` (Acquire)
    /// sees the count.
    pub fn publish(&self, live: u32) {
        self.abandoned_used.store(live, Ordering::Relaxed);
        self.owner.store(OWNER_ABANDONED, Ordering::Release);
    }

    /// The abandoner, after [`AbandonWords::publish`] and out of the lock:
    /// have all `live` blocks come back already (frees that saw the old
    /// owner do not check)? The SeqCst fence keeps the length load after
    /// the publication on weakly ordered machines.
    pub fn emptied_meanwhile(&self, live: u32) -> bool {
        fence(Ordering::SeqCst);
        self.thread_free.count() == live as usize
    }

    /// Free `block` into a page the caller saw abandoned (its `owner` load,
    /// Acquire, read `OWNER_ABANDONED`). The live count is read before the
    /// push: after it, the page may be gone.
    ///
    /// # Safety
    /// `block` is a handed-out block of this page, owned by the caller, and
    /// `key` is the page's list key.
    pub unsafe fn free_into(&self, block: *mut Block, key: ListKey) -> AbandonedFree {
        let live = self.abandoned_used.load(Ordering::Relaxed) as usize;
        // SAFETY: as the caller guarantees.
        match unsafe { self.thread_free.push(block, key) } {
            Pushed::Count(n) if n == live => AbandonedFree::Last,
            Pushed::Count(_) => AbandonedFree::Pushed,
            Pushed::Delayed => AbandonedFree::Delayed,
        }
    }

    /// Arena lock held: is the page still abandoned with every block back,
    /// so the lock holder may free it? (The lock holder frees it before
    /// releasing the lock, which makes every later call answer false.)
    pub fn may_free(&self) -> bool {
        self.owner.load(Ordering::Acquire) == OWNER_ABANDONED
            && self.thread_free.count() == self.abandoned_used.load(Ordering::Relaxed) as usize
    }

    /// Arena lock held: is the page abandoned (so it may be adopted)?
    pub fn may_adopt(&self) -> bool {
        self.owner.load(Ordering::Acquire) == OWNER_ABANDONED
    }

    /// Arena lock held, [`AbandonWords::may_adopt`] true: the page is
    /// `new_owner`'s from now on (the page's `heap` is set before this
    /// Release store). The adopter then collects `thread_free` and switches
    /// the delayed state back with `set_state(_, true)`.
    pub fn adopt(&self, new_owner: usize) {
        debug_assert!(self.may_adopt());
        self.owner.store(new_owner, Ordering::Release);
    }
}
