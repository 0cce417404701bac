//! A heap's delayed-free list: blocks that other threads freed into the
//! heap's full pages, handed to the heap so it learns those pages have room
//! again. Slow path only: a freer gets here once per full page (the page's
//! `thread_free` state is `DelayedFreeing` while it pushes, see
//! [`crate::lockfree::thread_free`]), and the owner drains the list in the malloc slow
//! path and in `collect`.
//!
//! ```text
//! DelayedList.head -> [next|........] -> [next|........] -> null
//!   push:     any thread, one CAS (Release) per block, the link written first
//!   take_all: the owning heap, one swap (Acquire): the whole list, LIFO
//! ```
//!
//! The two halves of a delayed free are here as well, so the loom models
//! run them as the allocator does:
//! - a freer whose `thread_free` push returned `Pushed::Delayed` calls
//!   [`hand_over`]: it reads the owning heap (only now: `DelayedFreeing`
//!   keeps the heap alive), pushes the block, then leaves `DelayedFreeing`;
//! - the owner drains with [`DelayedList::drain`], which for each block
//!   waits out that freer (`set_state(NoDelayedFree)` spins while the page
//!   is in `DelayedFreeing`) before the owner touches the block's page.
//!
//! Invariant: every block on the list was pushed by a thread that owned it
//! and gave it up; nobody but the thread that takes the list reads or
//! writes it afterwards. Links are plain (`ListKey::PLAIN`): the list is the
//! heap's, not a page's, so it cannot use a page's secret key.
//!
//! A type of its own so the loom models (`src/tests/loom.rs`) run this code.

use crate::lockfree::block::Block;
use crate::lockfree::sync::{AtomicPtr, Ordering};
use crate::lockfree::thread_free::{DelayedState, ThreadFree};
use core::ptr;

/// The head of a heap's delayed-free list.
#[repr(transparent)]
pub struct DelayedList {
    head: AtomicPtr<Block>,
}

impl DelayedList {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        DelayedList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }
    #[cfg(loom)]
    pub fn new() -> Self {
        DelayedList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Nothing to drain (a hint: a push may land right after).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Hand `block` to the list's owner (any thread).
    ///
    /// # Safety
    /// `block` is a block the caller owns and gives up: at least one
    /// writable word that nobody else reads or writes until the owner takes
    /// it from the list, and that stays mapped until then.
    pub unsafe fn push(&self, block: *mut Block) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller owns the block until the CAS publishes it.
            unsafe { Block::set_next(block, head) };
            // Release: the link and whatever the freer wrote into the block
            // happen before the owner's Acquire swap in `take_all`.
            match self
                .head
                .compare_exchange_weak(head, block, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(cur) => head = cur,
            }
        }
    }

    /// Owner: take every block pushed so far. The iterator reads each link
    /// before it yields the block, so the caller may reuse a yielded block
    /// at once (link it into a page's list).
    pub fn take_all(&self) -> Drain {
        if self.is_empty() {
            return Drain {
                cur: ptr::null_mut(),
            };
        }
        Drain {
            cur: self.head.swap(ptr::null_mut(), Ordering::Acquire),
        }
    }

    /// The owning heap: take every block pushed so far, and before yielding
    /// each, wait until the thread that pushed it has left its page's
    /// `DelayedFreeing` state (it may still be between its push and
    /// [`ThreadFree::end_delayed_freeing`]), then reset the page to
    /// `NoDelayedFree` (unless `NeverDelayedFree`).
    ///
    /// # Safety
    /// For every block on the list, `thread_free_of(block)` is the
    /// `thread_free` word of the block's page, live until the block is freed.
    pub unsafe fn drain<F: Fn(*mut Block) -> *const ThreadFree>(
        &self,
        thread_free_of: F,
    ) -> DrainPages<F> {
        DrainPages {
            blocks: self.take_all(),
            thread_free_of,
        }
    }
}

/// A freer in `DelayedFreeing` (its [`ThreadFree::push`] into `thread_free`
/// returned `Pushed::Delayed`): push `block` on the owning heap's delayed
/// list, which `list()` reads from the page, then leave `DelayedFreeing`.
/// After that the freer must not touch the heap again.
///
/// # Safety
/// `thread_free` is the block's page's word, in `DelayedFreeing` entered by
/// the caller's push of `block`, which the caller owns and gives up; `list()`
/// returns the delayed list of the heap owning the page (alive while the
/// page is in `DelayedFreeing`).
pub unsafe fn hand_over(
    thread_free: &ThreadFree,
    list: impl FnOnce() -> *const DelayedList,
    block: *mut Block,
) {
    let list = list();
    debug_assert!(!list.is_null());
    #[cfg(all(test, not(loom)))]
    delayed_free_window(DelayedWindow::BeforePush, block);
    // SAFETY: as the caller guarantees: the heap (and its list) is alive
    // until we leave DelayedFreeing below.
    let list = unsafe { &*list };
    // SAFETY: the block is ours to give up, and its page stays mapped (it
    // holds a block only the heap can free now).
    unsafe { list.push(block) };
    #[cfg(all(test, not(loom)))]
    delayed_free_window(DelayedWindow::BeforeEnd, block);
    thread_free.end_delayed_freeing();
}

/// Tests: where in [`hand_over`]'s window the hook is called.
#[cfg(all(test, not(loom)))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DelayedWindow {
    /// In `DelayedFreeing`, the block not yet on the heap's delayed list.
    BeforePush,
    /// The block on the delayed list, `DelayedFreeing` not yet left.
    BeforeEnd,
}

/// Tests: called at both points of the delayed-free window (set once, then
/// read with one atomic load), so a test can park a freeing thread there
/// (`tests::fork_window`). Not compiled outside `cfg(test)`.
#[cfg(all(test, not(loom)))]
pub(crate) static DELAYED_FREE_HOOK: std::sync::OnceLock<fn(DelayedWindow, *mut Block)> =
    std::sync::OnceLock::new();

#[cfg(all(test, not(loom)))]
fn delayed_free_window(at: DelayedWindow, block: *mut Block) {
    if let Some(hook) = DELAYED_FREE_HOOK.get() {
        hook(at, block);
    }
}

/// What [`DelayedList::drain`] returns: the taken blocks, each yielded
/// after its page left `DelayedFreeing`.
pub struct DrainPages<F> {
    blocks: Drain,
    thread_free_of: F,
}

impl<F: Fn(*mut Block) -> *const ThreadFree> Iterator for DrainPages<F> {
    type Item = *mut Block;

    fn next(&mut self) -> Option<*mut Block> {
        let block = self.blocks.next()?;
        let tf = (self.thread_free_of)(block);
        // SAFETY: `drain`'s contract: the word of the block's live page.
        unsafe { (*tf).set_state(DelayedState::NoDelayedFree, false) };
        Some(block)
    }
}

impl Default for DelayedList {
    fn default() -> Self {
        Self::new()
    }
}

/// The blocks of a list taken with [`DelayedList::take_all`], most recently
/// pushed first; each yielded block is the caller's.
pub struct Drain {
    cur: *mut Block,
}

impl Iterator for Drain {
    type Item = *mut Block;

    fn next(&mut self) -> Option<*mut Block> {
        if self.cur.is_null() {
            return None;
        }
        let block = self.cur;
        // SAFETY: `block` was pushed (its pusher gave it up, it stays mapped
        // until taken: `push`'s contract) and the list was taken by the swap
        // that made this iterator, which synchronizes with every push's
        // Release CAS; no other thread can reach it now, and the caller gets
        // the block only after this read.
        self.cur = unsafe { Block::next(block) };
        Some(block)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    extern crate std;
    use std::{boxed::Box, sync::Arc, thread, vec::Vec};

    #[test]
    fn take_all_returns_pushes_newest_first_then_empty() {
        let mut words = [0usize; 3];
        let list = DelayedList::new();
        assert!(list.is_empty());
        assert_eq!(list.take_all().count(), 0);
        for w in words.iter_mut() {
            // SAFETY: the test owns the words and keeps them alive.
            unsafe { list.push((w as *mut usize).cast()) };
        }
        let got: Vec<usize> = list.take_all().map(|b| b as usize).collect();
        let want: Vec<usize> = words
            .iter()
            .rev()
            .map(|w| w as *const usize as usize)
            .collect();
        assert_eq!(got, want);
        assert!(list.is_empty());
        assert_eq!(list.take_all().count(), 0);
    }

    #[test]
    fn concurrent_pushes_arrive_exactly_once() {
        const THREADS: usize = 4;
        const PER: usize = 5000;
        // One word per block, owned through a raw pointer (freed at the end).
        let words: *mut [usize] =
            Box::into_raw(std::vec![0usize; THREADS * PER].into_boxed_slice());
        let base = words as *mut usize as usize;
        let list = Arc::new(DelayedList::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let list = list.clone();
                thread::spawn(move || {
                    for i in t * PER..(t + 1) * PER {
                        // SAFETY: word `i` is this thread's alone until pushed;
                        // the words outlive every thread (freed after the joins).
                        unsafe { list.push((base + i * 8) as *mut Block) };
                    }
                })
            })
            .collect();
        let mut seen = std::vec![0u8; THREADS * PER];
        let mut drain = || {
            for b in list.take_all() {
                seen[(b as usize - base) / 8] += 1;
            }
        };
        for _ in 0..100 {
            drain();
        }
        for h in handles {
            h.join().unwrap();
        }
        drain();
        assert!(seen.iter().all(|&n| n == 1), "a block lost or taken twice");
        // SAFETY: allocated above, every thread is done with it.
        drop(unsafe { Box::from_raw(words) });
    }
}
