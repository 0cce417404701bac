//! A lock-free LIFO of intrusive nodes (Treiber stack) with an ABA tag.
//!
//! ```text
//! head word:  63 ..... 48 | 47 .................... 0
//!             tag (16 bit) | node address (top bits restored on decode:
//!                          |  address.rs)
//! ```
//!
//! Every successful push or pop bumps the tag, so a pop that read `head` and
//! `head.next` before another thread popped and re-pushed the same node fails
//! its CAS instead of installing a stale `next` (the ABA problem).
//!
//! A pop reads the `next` link of a node another thread may be popping and
//! re-pushing at the same moment, so links are atomics ([`StackNode::link`]),
//! written only through the stack: no plain access to a link can race. The
//! value a stale pop reads is thrown away by its failing CAS.
//!
//! Nodes are never unmapped while a pop may still read them: callers either
//! never unmap nodes (heap metadata) or wait with [`TaggedStack::await_readers`]
//! before unmapping.

use crate::base::address::{self, ADDR_BITS, ADDR_MASK};
use crate::lockfree::sync::{AtomicUsize, Ordering};

/// A node links to the next through an atomic word of its own, which only
/// the stack reads or writes (while the node is on the stack, or may still
/// be read by a pop that loaded it: until [`TaggedStack::await_readers`]).
pub trait StackNode {
    /// # Safety
    /// `node` is a live node (mapped, and valid for the returned reference's use).
    unsafe fn link<'a>(node: *mut Self) -> &'a AtomicUsize;
}

pub struct TaggedStack<T> {
    head: AtomicUsize,
    /// Pops in progress; they may read a node another thread just popped.
    readers: AtomicUsize,
    _marker: core::marker::PhantomData<*mut T>,
}

// SAFETY: the stack only moves raw node pointers between threads through
// atomics; ownership of a node passes with a successful push or pop.
unsafe impl<T> Sync for TaggedStack<T> {}
// SAFETY: as above.
unsafe impl<T> Send for TaggedStack<T> {}

fn pack(node: usize, tag: usize) -> usize {
    (node & ADDR_MASK) | (tag << ADDR_BITS)
}

fn unpack_node(word: usize) -> usize {
    address::unpack(word)
}

fn unpack_tag(word: usize) -> usize {
    word >> ADDR_BITS
}

impl<T: StackNode> Default for TaggedStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: StackNode> TaggedStack<T> {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        TaggedStack {
            head: AtomicUsize::new(0),
            readers: AtomicUsize::new(0),
            _marker: core::marker::PhantomData,
        }
    }
    #[cfg(loom)]
    pub fn new() -> Self {
        TaggedStack {
            head: AtomicUsize::new(0),
            readers: AtomicUsize::new(0),
            _marker: core::marker::PhantomData,
        }
    }

    /// # Safety
    /// `node` is live, not on this stack, and owned by the caller.
    pub unsafe fn push(&self, node: *mut T) {
        debug_assert!(unpack_node(pack(node as usize, 0)) == node as usize);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller passes a live node it owns.
            let link = unsafe { T::link(node) };
            // Relaxed: the Release CAS below publishes it.
            link.store(unpack_node(head), Ordering::Relaxed);
            let new = pack(node as usize, unpack_tag(head).wrapping_add(1));
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(cur) => head = cur,
            }
        }
    }

    /// Take the most recently pushed node; the caller owns it afterwards.
    pub fn pop(&self) -> Option<*mut T> {
        // SeqCst on the reader count and the head (here and in
        // `await_readers`): a pop that loads a node must be visible to an
        // unmapper that removed the node before reading the count.
        self.readers.fetch_add(1, Ordering::SeqCst);
        let mut head = self.head.load(Ordering::SeqCst);
        let result = loop {
            let node = unpack_node(head) as *mut T;
            if node.is_null() {
                break None;
            }
            // SAFETY: `node` was on the stack when we loaded `head`; it may
            // have been popped since, but it stays mapped while `readers` is
            // non-zero, and its link is an atomic. A stale `next` is
            // rejected by the tag in the CAS.
            let next = unsafe { T::link(node) }.load(Ordering::Relaxed);
            let new = pack(next, unpack_tag(head).wrapping_add(1));
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break Some(node),
                Err(cur) => head = cur,
            }
        };
        self.readers.fetch_sub(1, Ordering::AcqRel);
        result
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        unpack_node(self.head.load(Ordering::Acquire)) == 0
    }

    /// Forget pops in progress: only valid in a fork child, where the threads
    /// that ran them do not exist.
    pub fn reset_readers(&self) {
        self.readers.store(0, Ordering::Release);
    }

    /// Wait until no pop started before this call still runs, so a node
    /// popped earlier can be unmapped.
    #[cfg(loom)]
    pub fn await_readers(&self) {
        while self.readers.load(Ordering::SeqCst) != 0 {
            crate::lockfree::sync::spin_hint();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    extern crate std;
    use std::{boxed::Box, sync::Arc, thread, vec::Vec};

    struct Node {
        next: AtomicUsize,
        value: usize,
    }
    impl StackNode for Node {
        unsafe fn link<'a>(node: *mut Self) -> &'a AtomicUsize {
            // SAFETY: the caller passes a live node.
            unsafe { &(*node).next }
        }
    }

    #[test]
    fn lifo_order() {
        let s = TaggedStack::<Node>::new();
        let nodes: Vec<*mut Node> = (0..3)
            .map(|v| {
                Box::into_raw(Box::new(Node {
                    next: AtomicUsize::new(0),
                    value: v,
                }))
            })
            .collect();
        for &n in &nodes {
            // SAFETY: fresh nodes, owned by the test.
            unsafe { s.push(n) };
        }
        for v in (0..3).rev() {
            let n = s.pop().unwrap();
            // SAFETY: popped nodes are ours again.
            assert_eq!(unsafe { (*n).value }, v);
            drop(unsafe { Box::from_raw(n) });
        }
        assert!(s.pop().is_none() && s.is_empty());
    }

    #[test]
    fn tag_and_addresses_round_trip() {
        // Addresses in the half of the address space this code runs in (the
        // only ones mirs packs: address.rs); the tag never leaks into them.
        let here = &0u8 as *const u8 as usize & !0xfff;
        for addr in [here, here & !0xffff_ffff | 0x1000, here | 0x7ff0] {
            assert_eq!(unpack_node(pack(addr, 0xbeef)), addr);
            assert_eq!(unpack_tag(pack(addr, 0xbeef)), 0xbeef);
        }
    }

    #[test]
    fn concurrent_push_pop_loses_nothing() {
        let s = Arc::new(TaggedStack::<Node>::new());
        const PER: usize = 2000;
        for v in 0..4 * PER {
            let n = Box::into_raw(Box::new(Node {
                next: AtomicUsize::new(0),
                value: v,
            }));
            // SAFETY: fresh node.
            unsafe { s.push(n) };
        }
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    // Pop and re-push repeatedly to provoke ABA, then keep PER nodes.
                    for _ in 0..20_000 {
                        if let Some(n) = s.pop() {
                            // SAFETY: popped node is ours.
                            unsafe { s.push(n) };
                        }
                    }
                    let mut mine = Vec::new();
                    while mine.len() < PER {
                        if let Some(n) = s.pop() {
                            mine.push(n as usize);
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<usize> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert!(s.is_empty());
        // SAFETY: every node was popped exactly once and is still allocated.
        let mut values: Vec<usize> = all
            .iter()
            .map(|&n| unsafe { (*(n as *mut Node)).value })
            .collect();
        values.sort_unstable();
        assert_eq!(values, (0..4 * PER).collect::<Vec<_>>());
        for n in all.drain(..) {
            // SAFETY: every node was popped exactly once.
            drop(unsafe { Box::from_raw(n as *mut Node) });
        }
    }
}
