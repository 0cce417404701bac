//! The state machine of abandoned segments, apart from segments themselves so
//! the loom model tests (`tests_loom`) run it on test nodes.
//! [`crate::abandoned`] has the picture; it calls these with `Segment`.
//!
//! ```text
//! state = owner (even, non-zero) | ON_STACK
//!   abandon:        owner          -> 0 | ON_STACK        (push unless ON_STACK was set)
//!   try_claim:      0 | s          -> tid | s
//!   release_owned:  owner          -> released now        (ON_STACK clear)
//!                   owner | ON     -> ZOMBIE | ON          (the popper releases)
//!   pop:            0 | ON         -> tid                  (claimed by the popper)
//!                   ZOMBIE | ON    -> 0, released by the popper
//!                   owner | ON     -> owner                (dropped from the stack)
//! ```

use crate::sync::{AtomicUsize, Ordering};
use crate::tagged_stack::{StackNode, TaggedStack};

/// The node is linked in the abandoned stack.
pub const ON_STACK: usize = 1;
/// Owner id of a node emptied while on the stack.
pub const ZOMBIE: usize = usize::MAX & !ON_STACK;

/// A node of the abandoned stack with its state word.
pub trait AbandonNode: StackNode {
    /// # Safety
    /// `node` is a node header that stays mapped for `'a`.
    unsafe fn state<'a>(node: *mut Self) -> &'a AtomicUsize;
}

#[inline(always)]
pub fn owner_of(state: usize) -> usize {
    state & !ON_STACK
}

/// The owner gives `node` up: push it unless it is still on the stack.
///
/// # Safety
/// The caller owns the live `node`.
pub unsafe fn abandon<T: AbandonNode>(stack: &TaggedStack<T>, node: *mut T) {
    // SAFETY: the caller owns the live node.
    let old = unsafe { T::state(node) }.swap(ON_STACK, Ordering::AcqRel);
    debug_assert!(owner_of(old) != 0 && owner_of(old) != ZOMBIE);
    if old & ON_STACK == 0 {
        // SAFETY: the node is live, ours until published, and (ON_STACK was
        // clear) not on the stack.
        unsafe { stack.push(node) };
    }
}

/// Claim an abandoned node in place for `tid`.
///
/// # Safety
/// `node`'s header is mapped.
pub unsafe fn try_claim<T: AbandonNode>(node: *mut T, tid: usize) -> bool {
    // SAFETY: as the caller guarantees.
    let state = unsafe { T::state(node) };
    let mut cur = state.load(Ordering::Acquire);
    loop {
        if owner_of(cur) != 0 {
            return false;
        }
        match state.compare_exchange_weak(
            cur,
            tid | (cur & ON_STACK),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
}

/// The owner emptied `node`: may it release it now? If the node is still on
/// the stack it becomes a zombie that the popper releases.
///
/// # Safety
/// The caller owns the live `node`.
pub unsafe fn release_owned<T: AbandonNode>(node: *mut T) -> bool {
    // SAFETY: as the caller guarantees.
    let state = unsafe { T::state(node) };
    let mut cur = state.load(Ordering::Acquire);
    loop {
        if cur & ON_STACK == 0 {
            return true;
        }
        match state.compare_exchange_weak(
            cur,
            ZOMBIE | ON_STACK,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return false,
            Err(now) => cur = now,
        }
    }
}

/// Pop nodes until one can be claimed by `tid`; hands zombies to `release`
/// and drops nodes that were reclaimed in place.
///
/// # Safety
/// Nodes on `stack` stay mapped until released (a popped node is released
/// only through `release` or by an owner that finds it off the stack).
pub unsafe fn pop_and_claim<T: AbandonNode>(
    stack: &TaggedStack<T>,
    tid: usize,
    mut release: impl FnMut(*mut T),
) -> Option<*mut T> {
    while let Some(node) = stack.pop() {
        // SAFETY: a popped node is live: it is released only by the popper.
        let state = unsafe { T::state(node) };
        let mut cur = state.load(Ordering::Acquire);
        loop {
            debug_assert!(cur & ON_STACK != 0);
            let owner = owner_of(cur);
            let new = if owner == 0 {
                tid
            } else if owner == ZOMBIE {
                0
            } else {
                cur & !ON_STACK
            };
            match state.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if owner == 0 {
                        return Some(node);
                    }
                    if owner == ZOMBIE {
                        release(node);
                    }
                    break;
                }
                Err(now) => cur = now,
            }
        }
    }
    None
}
