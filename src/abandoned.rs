//! Abandoned segments: what a thread leaves behind when it exits with live
//! blocks, and how other threads take them over.
//!
//! ```text
//! Segment::state = owner thread id (even, non-zero) | ON_STACK
//!                  0 | ON_STACK       abandoned, waiting on the stack
//!                  owner | ON_STACK   reclaimed by a free, still on the stack
//!                  ZOMBIE | ON_STACK  emptied while still on the stack
//! ```
//!
//! - `abandon`: the owner sets the owner part to 0 and pushes the segment on
//!   a global lock-free stack (tagged against ABA) unless it is still there.
//! - A thread that needs a segment pops one and claims it (CAS owner 0 -> me).
//! - A thread that frees into an abandoned segment claims it in place
//!   (`try_claim`); the segment stays on the stack until popped, and a popper
//!   that finds it owned just drops it.
//! - An owner that empties a segment still on the stack cannot unmap it (a pop
//!   may read it): it marks it ZOMBIE and the popper releases it.
//!
//! Membership (`ON_STACK`) and ownership change in one CAS, so every segment
//! is pushed at most once at a time and released exactly once.

use crate::abandoned_state::{self as state, AbandonNode};
use crate::constants::SEGMENT_SIZE;
use crate::heap::Heap;
use crate::segment::{PageKind, Segment};
use crate::sync::AtomicUsize;
use crate::tagged_stack::{StackNode, TaggedStack};
use core::ptr;

pub use crate::abandoned_state::{owner_of, ON_STACK};

static ABANDONED: TaggedStack<Segment> = TaggedStack::new();

impl StackNode for Segment {
    unsafe fn next_slot(node: *mut Self) -> *mut *mut Self {
        // SAFETY: the caller passes a live segment header.
        unsafe { ptr::addr_of_mut!((*node).abandoned_next) }
    }
}

impl AbandonNode for Segment {
    unsafe fn state<'a>(node: *mut Self) -> &'a AtomicUsize {
        // SAFETY: the caller passes a mapped segment header.
        unsafe { &(*node).state }
    }
}

/// The owner gives `seg` up (all its pages are abandoned).
///
/// # Safety
/// The calling thread owns the live segment `seg`.
pub unsafe fn abandon(seg: *mut Segment) {
    // SAFETY: the caller owns the live segment.
    unsafe { state::abandon(&ABANDONED, seg) }
}

/// Claim an abandoned segment in place (free into an abandoned segment).
///
/// # Safety
/// `seg` is a live segment (listed in the segment map).
pub unsafe fn try_claim(seg: *mut Segment, tid: usize) -> bool {
    // SAFETY: segment headers stay mapped while the segment map lists them.
    unsafe { state::try_claim(seg, tid) }
}

/// The owner emptied `seg`: may it release the memory now? If the segment is
/// still on the stack, it becomes a zombie that the next pop releases.
///
/// # Safety
/// The calling thread owns the live segment `seg`.
pub unsafe fn release_owned(seg: *mut Segment) -> bool {
    // SAFETY: the caller owns the live segment.
    unsafe { state::release_owned(seg) }
}

/// Pop segments until one can be claimed by `tid`; releases zombies and drops
/// segments that were reclaimed in place.
fn pop_and_claim(tid: usize) -> Option<*mut Segment> {
    // SAFETY: segments on the stack are released only by their popper
    // (zombies, here) or by an owner that found them off the stack.
    unsafe {
        state::pop_and_claim(&ABANDONED, tid, |seg| {
            // SAFETY: emptied by its last owner, now off the stack: ours.
            Segment::release(seg)
        })
    }
}

/// The heap needs a segment of `kind`: reclaim abandoned segments (a few at
/// most) until one has a free page slot of that kind.
pub fn try_reclaim(heap: &mut Heap, kind: PageKind) {
    for _ in 0..8 {
        let Some(seg) = pop_and_claim(heap.thread_id) else {
            return;
        };
        // SAFETY: we own `seg` after the claim and `heap` is ours.
        let alive = unsafe { Segment::reclaim(heap, seg) };
        // SAFETY: as above.
        if alive && unsafe { (*seg).kind == kind && (*seg).used < (*seg).page_count } {
            return;
        }
    }
}

/// Out of memory: take over every abandoned segment, so the pages whose
/// blocks were all freed by other threads become free memory again.
pub fn reclaim_all(heap: &mut Heap) {
    while let Some(seg) = pop_and_claim(heap.thread_id) {
        // SAFETY: we own `seg` after the claim and `heap` is ours.
        unsafe { Segment::reclaim(heap, seg) };
    }
}

/// Wait until no pop may still read a segment header (before unmapping).
pub fn await_readers() {
    ABANDONED.await_readers();
}

/// After `fork`, in the child: pops that were running in other threads of
/// the parent will never finish.
pub fn reset_readers() {
    ABANDONED.reset_readers();
}

pub fn is_empty() -> bool {
    ABANDONED.is_empty()
}

/// Visit every abandoned segment by draining the stack into a local list
/// and pushing it back (for invariant checks in tests, quiescent process).
pub fn for_each_quiescent(mut visit: impl FnMut(*mut Segment)) {
    let mut list: *mut Segment = ptr::null_mut();
    while let Some(seg) = ABANDONED.pop() {
        visit(seg);
        // SAFETY: popped, so ours to relink.
        unsafe { (*seg).abandoned_next = list };
        list = seg;
    }
    while !list.is_null() {
        // SAFETY: `list` holds segments we popped above.
        let next = unsafe { (*list).abandoned_next };
        // SAFETY: the segment is off the stack and still marked ON_STACK.
        unsafe { ABANDONED.push(list) };
        list = next;
    }
}

const _: () = assert!(SEGMENT_SIZE > ON_STACK);
