//! Model tests of the lock-free protocols with loom: every interleaving (up
//! to a preemption bound) of the real code, with loom's atomics (see
//! `sync.rs`): `ThreadFree` (push, collect, delayed states), the heap's
//! `DelayedList` with `delayed::hand_over` and `DelayedList::drain`, the
//! abandoned-page rule (`AbandonWords`), and `TaggedStack`. What a model
//! writes itself is only what the allocator's callers do between those
//! calls (dispatch on the owner word, taking the arena lock, which a loom
//! mutex stands in for), each next to the function it stands for.
//!
//! ```text
//! RUSTFLAGS="--cfg loom -Z tls-model=initial-exec" cargo test --release --lib loom
//! ```
//!
//! Test blocks carry a payload in a `loom::cell::UnsafeCell` that the freeing
//! thread writes before handing the block over and the owner reads after
//! taking it: loom reports a causality violation if the protocol's orderings
//! do not make the handover a happens-before edge. Likewise the modelled heap
//! and stack nodes are "unmapped" with a tracked write, so any later or
//! unordered read of them is reported. Every model checks that each block
//! arrives exactly once.

use crate::lockfree::block::{Block, ListKey};
use crate::lockfree::delayed::{hand_over, DelayedList};
use crate::lockfree::tagged_stack::{StackNode, TaggedStack};
use crate::lockfree::thread_free::{
    AbandonWords, AbandonedFree, DelayedState, Pushed, ThreadFree, OWNER_ABANDONED,
};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::{boxed::Box, vec::Vec};

/// Preemption bound. 3 already finds every bug we planted (a relaxed CAS or
/// swap in `ThreadFree` or `DelayedList`, no wait in the drain, leaving
/// `DelayedFreeing` before the push, no owner test in `may_free`, no ABA
/// tag, no `await_readers`); 4 explores about four times as many
/// interleavings and keeps the models near ten seconds (5: a minute).
const PREEMPTIONS: usize = 4;

/// How often each outcome of a model happened over all its interleavings:
/// each must happen at least once, or the model no longer reaches the case
/// it was written for.
struct Outcomes<const N: usize>([std::sync::atomic::AtomicUsize; N]);

impl<const N: usize> Outcomes<N> {
    const fn new() -> Self {
        Outcomes([const { std::sync::atomic::AtomicUsize::new(0) }; N])
    }

    fn hit(&self, i: usize) {
        self.0[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn assert_all(&self, names: [&str; N]) {
        for (n, name) in self.0.iter().zip(names) {
            let n = n.load(std::sync::atomic::Ordering::Relaxed);
            std::eprintln!("  outcome {name}: {n}");
            assert!(n > 0, "no interleaving reached: {name}");
        }
    }
}

/// Check `f` twice: once as written, once with the main thread yielding
/// where its concurrent part starts (`f` gets the flag and passes it to
/// [`start`]). Loom's DPOR keeps one "last access" per atomic, so when the
/// main thread's plain load is followed by another thread's load and CAS, it
/// never schedules that CAS before the load; starting the other threads
/// first covers those interleavings.
fn model(f: impl Fn(bool) + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize as StdAtomic, Ordering::Relaxed};
    let f = std::sync::Arc::new(f);
    for main_yields in [false, true] {
        let iterations = std::sync::Arc::new(StdAtomic::new(0));
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(PREEMPTIONS);
        let (count, f) = (iterations.clone(), f.clone());
        b.check(move || {
            count.fetch_add(1, Relaxed);
            f(main_yields)
        });
        // Shown with `-- --nocapture`.
        std::eprintln!(
            "{} (main yields: {}): {} interleavings",
            std::thread::current().name().unwrap_or("?"),
            main_yields,
            iterations.load(Relaxed)
        );
    }
}

/// The main thread's concurrent part starts here (see [`model`]).
fn start(main_yields: bool) {
    if main_yields {
        thread::yield_now();
    }
}

// ------------------------------------------------------------------ blocks

/// A freed block: the first word is the `Block` link (a loom cell under
/// `--cfg loom`, so every link access of the real lists is checked too).
#[repr(C)]
struct TBlock {
    link: Block,
    /// What the last user wrote; the owner must see it after taking the block.
    payload: UnsafeCell<usize>,
}

fn new_blocks(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            Box::into_raw(Box::new(TBlock {
                link: Block::for_model(),
                payload: UnsafeCell::new(0),
            })) as usize
        })
        .collect()
}

fn free_blocks(blocks: &[usize]) {
    for &b in blocks {
        // SAFETY: allocated by `new_blocks`, every thread is done with it.
        drop(unsafe { Box::from_raw(b as *mut TBlock) });
    }
}

/// The user's last write into the block before freeing it.
fn write_payload(b: usize, v: usize) {
    // SAFETY: a live test block owned by the caller.
    unsafe { &(*(b as *mut TBlock)).payload }.with_mut(|p| unsafe { *p = v });
}

/// Walk a stack taken with `ThreadFree::take_all`; its length word must
/// match the blocks on it.
fn take_stack((head, len): (*mut Block, usize), blocks: &[usize], seen: &mut Vec<usize>) {
    let before = seen.len();
    take_list(head, blocks, seen);
    assert_eq!(
        seen.len() - before,
        len,
        "length word disagrees with the stack"
    );
}

fn take_list(mut cur: *mut Block, blocks: &[usize], seen: &mut Vec<usize>) {
    while !cur.is_null() {
        // SAFETY: a member of the list the caller owns; read before `take_one`.
        let next = unsafe { Block::next(cur) };
        take_one(cur, blocks, seen);
        cur = next;
    }
}

/// The owner takes block `b`: one of ours, not seen before, carrying its
/// freeing thread's write.
fn take_one(b: *mut Block, blocks: &[usize], seen: &mut Vec<usize>) {
    let b = b as usize;
    let i = blocks
        .iter()
        .position(|&x| x == b)
        .expect("foreign block on a list");
    assert!(!seen.contains(&b), "block seen twice");
    // SAFETY: a live test block, now owned by the caller.
    let v = unsafe { &(*(b as *mut TBlock)).payload }.with(|p| unsafe { *p });
    assert_eq!(v, i + 1, "owner does not see the freeing thread's write");
    seen.push(b);
}

fn assert_each_once(seen: &mut Vec<usize>, blocks: &[usize]) {
    let mut all = blocks.to_vec();
    all.sort_unstable();
    seen.sort_unstable();
    assert_eq!(*seen, all, "a block was lost or duplicated");
}

/// The heap's side of delayed free: its real delayed list, and its lifetime.
struct TestHeap {
    /// As `Heap::thread_delayed_free`.
    delayed: DelayedList,
    /// The heap's memory: written (freed) by the owner when the thread exits.
    alive: UnsafeCell<bool>,
}

impl TestHeap {
    fn new() -> Self {
        TestHeap {
            delayed: DelayedList::new(),
            alive: UnsafeCell::new(true),
        }
    }

    /// A non-owner reads the heap (`page.heap` in `push_delayed_and_end`):
    /// it must be alive and the owner's freeing write must not race with
    /// this read.
    fn list(&self) -> *const DelayedList {
        // SAFETY: loom's tracked cell; the read is what the model checks.
        assert!(self.alive.with(|a| unsafe { *a }), "heap used after free");
        &self.delayed
    }

    /// `Heap::drain_delayed_free` for blocks of the page whose word is `tf`.
    fn drain(&self, tf: &ThreadFree, blocks: &[usize], seen: &mut Vec<usize>) {
        // SAFETY: every block of the model lies in the one page `tf` belongs to.
        for b in unsafe { self.delayed.drain(|_| tf as *const ThreadFree) } {
            // `drain` reset the state after the pusher left DelayedFreeing.
            assert_ne!(tf.state(), DelayedState::DelayedFreeing);
            take_one(b, blocks, seen);
        }
    }

    /// The thread exits: the heap's memory goes away (a tracked write that
    /// any unordered read races with).
    fn free(&self) {
        // SAFETY: loom's tracked cell.
        self.alive.with_mut(|a| unsafe { *a = false });
    }
}

/// A non-owner frees block `i` into the page whose word is `tf`, as
/// `free::free_block_mt`: push, or hand over to the heap's delayed list.
fn free_mt(tf: &ThreadFree, heap: &TestHeap, blocks: &[usize], i: usize) {
    let b = blocks[i] as *mut Block;
    write_payload(blocks[i], i + 1);
    // SAFETY: the block is ours (handed out, now being freed).
    if unsafe { tf.push(b, ListKey::PLAIN) } == Pushed::Delayed {
        // SAFETY: our push entered DelayedFreeing; the heap lives until we leave it.
        unsafe { hand_over(tf, || heap.list(), b) };
    }
}

// ------------------------------------------------------------------ 1. thread_free

/// A page word in state `initial`, its heap, two blocks, and two non-owner
/// threads freeing one block each (`free_mt`), already spawned.
#[allow(clippy::type_complexity)]
fn two_freers(
    initial: DelayedState,
) -> (
    Arc<ThreadFree>,
    Arc<TestHeap>,
    Arc<Vec<usize>>,
    Vec<thread::JoinHandle<()>>,
) {
    let tf = Arc::new(ThreadFree::new());
    tf.set_state(initial, false);
    let heap = Arc::new(TestHeap::new());
    let blocks = Arc::new(new_blocks(2));
    let handles = (0..2)
        .map(|i| {
            let (tf, heap, blocks) = (tf.clone(), heap.clone(), blocks.clone());
            thread::spawn(move || free_mt(&tf, &heap, &blocks, i))
        })
        .collect();
    (tf, heap, blocks, handles)
}

/// Two non-owners free while the owner collects; a final collect finds the
/// rest. Every block exactly once, the state bits survive every swap.
fn push_collect(initial: DelayedState) {
    model(move |y| {
        let (tf, _heap, blocks, handles) = two_freers(initial);
        let mut seen = Vec::new();
        start(y);
        take_stack(tf.take_all(), &blocks, &mut seen);
        assert_eq!(tf.state(), initial, "take_all changed the state");
        for h in handles {
            h.join().unwrap();
        }
        take_stack(tf.take_all(), &blocks, &mut seen);
        assert!(tf.head().is_null());
        assert_eq!(tf.state(), initial, "take_all changed the state");
        assert_each_once(&mut seen, &blocks);
        free_blocks(&blocks);
    });
}

#[test]
fn loom_thread_free_push_collect() {
    push_collect(DelayedState::NoDelayedFree);
}

/// An abandoned page (`NeverDelayedFree`): the state must survive collection.
#[test]
fn loom_thread_free_push_collect_keeps_state() {
    push_collect(DelayedState::NeverDelayedFree);
}

// ------------------------------------------------------------------ 2. delayed free

/// The page is in the full queue (`UseDelayedFree`). Two non-owners free:
/// one takes the delayed path, the other pushes on `thread_free` while the
/// first is in `DelayedFreeing`. Concurrently the owner drains its delayed
/// list, collects and switches the page back to `NoDelayedFree` (as
/// `page_unfull` after a delayed free).
#[test]
fn loom_delayed_free() {
    model(|y| {
        let (tf, heap, blocks, handles) = two_freers(DelayedState::UseDelayedFree);
        let mut seen = Vec::new();
        start(y);
        heap.drain(&tf, &blocks, &mut seen);
        let delayed_early = seen.len();
        take_stack(tf.take_all(), &blocks, &mut seen);
        tf.set_state(DelayedState::NoDelayedFree, false);
        // Nobody can enter DelayedFreeing from NoDelayedFree, and set_state
        // waited out whoever was in it.
        assert_eq!(tf.state(), DelayedState::NoDelayedFree);
        for h in handles {
            h.join().unwrap();
        }
        let before = seen.len();
        heap.drain(&tf, &blocks, &mut seen);
        // At most one free took the delayed path (the first push from
        // UseDelayedFree; none if the owner reset the state first).
        let delayed_late = seen.len() - before;
        assert!(
            delayed_early + delayed_late <= 1,
            "one delayed free at most"
        );
        take_stack(tf.take_all(), &blocks, &mut seen);
        assert_each_once(&mut seen, &blocks);
        assert_eq!(tf.state(), DelayedState::NoDelayedFree);
        DELAYED.hit(delayed_early + 2 * delayed_late);
        free_blocks(&blocks);
    });
    DELAYED.assert_all([
        "no delayed free (state reset first)",
        "delayed free drained while the freers ran",
        "delayed free drained after the join",
    ]);
}

static DELAYED: Outcomes<3> = Outcomes::new();

// ------------------------------------------------------------------ 3. NeverDelayedFree

/// Thread exit (`Heap::collect_abandon`): the owner sets `NeverDelayedFree`
/// on a full page while a non-owner frees into it, drains the delayed list
/// and frees the heap. The non-owner must never touch the heap after (or
/// unordered with) that free, and the block must arrive exactly once.
#[test]
fn loom_never_delayed_free_heap_lifetime() {
    model(|y| {
        let tf = Arc::new(ThreadFree::new());
        tf.set_state(DelayedState::UseDelayedFree, false);
        let heap = Arc::new(TestHeap::new());
        let blocks = Arc::new(new_blocks(1));
        let h = {
            let (tf, heap, blocks) = (tf.clone(), heap.clone(), blocks.clone());
            thread::spawn(move || free_mt(&tf, &heap, &blocks, 0))
        };
        let mut seen = Vec::new();
        start(y);
        tf.set_state(DelayedState::NeverDelayedFree, false);
        assert_eq!(tf.state(), DelayedState::NeverDelayedFree);
        heap.drain(&tf, &blocks, &mut seen);
        heap.free();
        h.join().unwrap();
        // The abandoned page is collected later by whoever reclaims it.
        take_stack(tf.take_all(), &blocks, &mut seen);
        assert_each_once(&mut seen, &blocks);
        assert_eq!(
            tf.state(),
            DelayedState::NeverDelayedFree,
            "Never is sticky"
        );
        free_blocks(&blocks);
    });
}

/// `NeverDelayedFree` is sticky against a non-owner's `end_delayed_freeing`
/// and a later `set_state` without override; the override (reclaim) works.
#[test]
fn loom_never_delayed_free_override() {
    model(|y| {
        let tf = Arc::new(ThreadFree::new());
        tf.set_state(DelayedState::UseDelayedFree, false);
        let heap = Arc::new(TestHeap::new());
        let blocks = Arc::new(new_blocks(1));
        let h = {
            let (tf, heap, blocks) = (tf.clone(), heap.clone(), blocks.clone());
            thread::spawn(move || free_mt(&tf, &heap, &blocks, 0))
        };
        start(y);
        tf.set_state(DelayedState::NeverDelayedFree, false);
        tf.set_state(DelayedState::NoDelayedFree, false);
        assert_eq!(tf.state(), DelayedState::NeverDelayedFree);
        h.join().unwrap();
        tf.set_state(DelayedState::NoDelayedFree, true);
        assert_eq!(tf.state(), DelayedState::NoDelayedFree);
        let mut seen = Vec::new();
        heap.drain(&tf, &blocks, &mut seen);
        take_stack(tf.take_all(), &blocks, &mut seen);
        assert_each_once(&mut seen, &blocks);
        free_blocks(&blocks);
    });
}

// ------------------------------------------------------------------ 4. TaggedStack

struct Node {
    next: AtomicUsize,
    /// The node's memory is mapped; cleared (a tracked write) when the test
    /// "unmaps" it. Every access through `link` reads it.
    mapped: UnsafeCell<bool>,
}

impl StackNode for Node {
    unsafe fn link<'a>(node: *mut Self) -> &'a AtomicUsize {
        // SAFETY: the node was allocated by the test and is freed only after
        // every thread joined.
        unsafe {
            assert!(
                (*node).mapped.with(|m| *m),
                "stack read a node after it was unmapped"
            );
            &(*node).next
        }
    }
}

fn new_nodes(stack: &TaggedStack<Node>, n: usize) -> Vec<usize> {
    let nodes: Vec<usize> = (0..n)
        .map(|_| {
            Box::into_raw(Box::new(Node {
                next: AtomicUsize::new(0),
                mapped: UnsafeCell::new(true),
            })) as usize
        })
        .collect();
    for &n in &nodes {
        // SAFETY: a fresh node owned by the test.
        unsafe { stack.push(n as *mut Node) };
    }
    nodes
}

fn drain_stack(stack: &TaggedStack<Node>, got: &mut Vec<usize>) {
    while let Some(n) = stack.pop() {
        got.push(n as usize);
    }
}

fn check_and_free_nodes(got: &mut Vec<usize>, nodes: &[usize]) {
    let mut all = nodes.to_vec();
    all.sort_unstable();
    got.sort_unstable();
    assert_eq!(*got, all, "a node was lost or duplicated");
    for &n in nodes {
        // SAFETY: allocated by `new_nodes`, every thread is done with it.
        drop(unsafe { Box::from_raw(n as *mut Node) });
    }
}

/// Stack [A, B]. One thread pops and re-pushes (the ABA pattern: a pop that
/// read `A.next == B` before must fail), two others pop and keep.
#[test]
fn loom_tagged_stack_aba() {
    model(|y| {
        let stack = Arc::new(TaggedStack::<Node>::new());
        let nodes = new_nodes(&stack, 2);
        let t1 = {
            let stack = stack.clone();
            thread::spawn(move || {
                if let Some(n) = stack.pop() {
                    // SAFETY: popped, so ours.
                    unsafe { stack.push(n) };
                }
            })
        };
        let t2 = {
            let stack = stack.clone();
            thread::spawn(move || stack.pop().map(|n| n as usize))
        };
        let mut got = Vec::new();
        start(y);
        got.extend(stack.pop().map(|n| n as usize));
        t1.join().unwrap();
        got.extend(t2.join().unwrap());
        drain_stack(&stack, &mut got);
        stack.await_readers();
        check_and_free_nodes(&mut got, &nodes);
    });
}

/// A popper waits with `await_readers` and then unmaps its node while
/// another thread pops: no pop may read the unmapped node.
#[test]
fn loom_tagged_stack_await_readers() {
    model(|y| {
        let stack = Arc::new(TaggedStack::<Node>::new());
        let nodes = new_nodes(&stack, 2);
        let t = {
            let stack = stack.clone();
            thread::spawn(move || stack.pop().map(|n| n as usize))
        };
        let mut got = Vec::new();
        start(y);
        if let Some(n) = stack.pop() {
            stack.await_readers();
            // SAFETY: popped, so ours; "unmap" it.
            unsafe { &(*n).mapped }.with_mut(|m| unsafe { *m = false });
            got.push(n as usize);
        }
        got.extend(t.join().unwrap());
        drain_stack(&stack, &mut got);
        check_and_free_nodes(&mut got, &nodes);
    });
}

// ------------------------------------------------------------------ 5. abandoned pages

/// The three atomics of a page header that the abandoned-page rule uses,
/// and the arena lock (a loom mutex counting the pages it freed).
struct AbPage {
    owner: AtomicUsize,
    abandoned_used: AtomicU32,
    tf: ThreadFree,
    /// How many blocks the model hands out: the page may be freed only
    /// once all of them are on `thread_free` (the model's own count, not
    /// the page's).
    handed_out: usize,
    /// `arena::ARENA`: held around `publish`, `adopt` and freeing a page.
    arena: loom::sync::Mutex<usize>,
}

/// The exiting owner's thread id (others' ids are never stored).
const OWNER: usize = 7;
/// The adopter's thread id.
const ADOPTER: usize = 9;
const OWNER_NONE: usize = 0;

impl AbPage {
    fn new(owner: usize, state: DelayedState, handed_out: usize) -> Self {
        let page = AbPage {
            owner: AtomicUsize::new(owner),
            abandoned_used: AtomicU32::new(0),
            tf: ThreadFree::new(),
            handed_out,
            arena: loom::sync::Mutex::new(0),
        };
        page.tf.set_state(state, true);
        page
    }

    fn words(&self) -> AbandonWords<'_> {
        AbandonWords {
            owner: &self.owner,
            abandoned_used: &self.abandoned_used,
            thread_free: &self.tf,
        }
    }

    /// `arena::abandon` (lock, publish, unlock, then the abandoner's check).
    /// Returns whether this call freed the page.
    fn abandon(&self, live: u32) -> bool {
        {
            let _arena = self.arena.lock().unwrap();
            self.words().publish(live);
        }
        self.words().emptied_meanwhile(live) && self.free_if_empty()
    }

    /// `arena::free_abandoned_if_empty` and the sweep in `arena::purge`:
    /// re-check under the lock, then free the span (`release_span` sets
    /// `OWNER_NONE`). Returns whether this call freed the page.
    fn free_if_empty(&self) -> bool {
        let mut freed = self.arena.lock().unwrap();
        if !self.words().may_free() {
            return false;
        }
        assert_eq!(self.tf.count(), self.handed_out, "freed with a live block");
        self.owner.store(OWNER_NONE, Ordering::Release);
        *freed += 1;
        true
    }

    /// `arena::adopt` for one page: true if `new_owner` got it.
    fn adopt(&self, new_owner: usize) -> bool {
        let _arena = self.arena.lock().unwrap();
        if !self.words().may_adopt() {
            return false;
        }
        self.words().adopt(new_owner);
        true
    }

    fn pages_freed(&self) -> usize {
        *self.arena.lock().unwrap()
    }

    /// `free::free_generic` for a thread that does not own the page:
    /// dispatch on the owner word (Acquire), then the real free path.
    /// `heap` is the adopter's heap (`page.heap` once adopted).
    /// Returns whether this call freed the page.
    fn free(&self, heap: &TestHeap, blocks: &[usize], i: usize) -> bool {
        let b = blocks[i] as *mut Block;
        write_payload(blocks[i], i + 1);
        let owner = self.owner.load(Ordering::Acquire);
        assert_ne!(owner, OWNER_NONE, "page freed while a block was live");
        if owner != OWNER_ABANDONED {
            free_mt(&self.tf, heap, blocks, i);
            return false;
        }
        // SAFETY: the block is ours, the page seen abandoned.
        match unsafe { self.words().free_into(b, ListKey::PLAIN) } {
            AbandonedFree::Last => self.free_if_empty(),
            AbandonedFree::Pushed => false,
            AbandonedFree::Delayed => {
                // SAFETY: our push entered DelayedFreeing.
                unsafe { hand_over(&self.tf, || heap.list(), b) };
                false
            }
        }
    }
}

/// The owner abandons a page holding two live blocks while two other
/// threads free them (each sees the owner live or abandoned). The real
/// `publish` / `emptied_meanwhile` / `free_into` / `may_free` decide; the
/// page must be freed at most once by the threads, never with a block still
/// out, exactly once after the sweep (`arena::purge`, which catches a free
/// that raced with the abandonment), and each block must be on its
/// `thread_free` exactly once.
#[test]
fn loom_abandoned_page_last_free() {
    model(|y| {
        // collect_abandon set NeverDelayedFree before abandoning.
        let page = Arc::new(AbPage::new(OWNER, DelayedState::NeverDelayedFree, 2));
        let heap = Arc::new(TestHeap::new());
        let blocks = Arc::new(new_blocks(2));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (page, heap, blocks) = (page.clone(), heap.clone(), blocks.clone());
                thread::spawn(move || page.free(&heap, &blocks, i))
            })
            .collect();
        start(y);
        let by_abandoner = page.abandon(2);
        let by_freer = handles.into_iter().any(|h| h.join().unwrap());
        assert!(page.pages_freed() <= 1);
        let by_sweep = page.free_if_empty();
        assert_eq!(page.pages_freed(), 1, "freed exactly once");
        LAST_FREE.hit(if by_abandoner {
            0
        } else if by_freer {
            1
        } else {
            assert!(by_sweep);
            2
        });
        assert!(!page.free_if_empty(), "a freed page is not freed again");
        let mut seen = Vec::new();
        take_stack(page.tf.take_all(), &blocks, &mut seen);
        assert_each_once(&mut seen, &blocks);
        free_blocks(&blocks);
    });
    LAST_FREE.assert_all([
        "freed by the abandoner",
        "by the last freer",
        "by the sweep",
    ]);
}

static LAST_FREE: Outcomes<3> = Outcomes::new();

/// An abandoned page with one live block: a thread frees that block while
/// another adopts the page (as `Heap::find_page`: adopt, re-enable delayed
/// frees with the override, collect; found full, it goes to the full queue
/// with `UseDelayedFree`). Either the free is the last one and frees the
/// page, or the adopter gets it and the block reaches the adopter (on
/// `thread_free` or through its delayed list), never both, never neither.
#[test]
fn loom_abandoned_page_adopt_vs_last_free() {
    model(|y| {
        let page = Arc::new(AbPage::new(OWNER, DelayedState::NeverDelayedFree, 1));
        page.abandon(1);
        let heap = Arc::new(TestHeap::new());
        let blocks = Arc::new(new_blocks(1));
        let h = {
            let (page, heap, blocks) = (page.clone(), heap.clone(), blocks.clone());
            thread::spawn(move || page.free(&heap, &blocks, 0))
        };
        let mut seen = Vec::new();
        start(y);
        let adopted = page.adopt(ADOPTER);
        if adopted {
            page.tf.set_state(DelayedState::NoDelayedFree, true);
            take_stack(page.tf.take_all(), &blocks, &mut seen);
            if seen.is_empty() {
                page.tf.set_state(DelayedState::UseDelayedFree, false);
            }
        }
        let collected = seen.len();
        let freed_by_freer = h.join().unwrap();
        assert_eq!(freed_by_freer, page.pages_freed() == 1);
        assert_eq!(
            page.pages_freed() + adopted as usize,
            1,
            "the page is freed or adopted, exactly one of them"
        );
        if adopted {
            // The adopter's next slow path: delayed frees, then its page.
            heap.drain(&page.tf, &blocks, &mut seen);
            let delayed = seen.len() - collected;
            take_stack(page.tf.take_all(), &blocks, &mut seen);
            ADOPT.hit(if collected == 1 {
                1
            } else if delayed == 1 {
                2
            } else {
                3
            });
        } else {
            assert_eq!(page.owner.load(Ordering::Relaxed), OWNER_NONE);
            take_stack(page.tf.take_all(), &blocks, &mut seen);
            ADOPT.hit(0);
        }
        assert_each_once(&mut seen, &blocks);
        free_blocks(&blocks);
    });
    ADOPT.assert_all([
        "freed by the last free",
        "adopted, block collected at adoption",
        "adopted, block through the delayed list",
        "adopted, block on thread_free later",
    ]);
}

static ADOPT: Outcomes<4> = Outcomes::new();
