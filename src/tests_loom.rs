//! Model tests of the lock-free protocols with loom: every interleaving (up
//! to a preemption bound) of the real `ThreadFree`, `TaggedStack` and
//! abandoned-state code, with loom's atomics (see `sync.rs`).
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
//! unordered read of them is reported.

use crate::block::Block;
use crate::tagged_stack::{StackNode, TaggedStack};
use crate::thread_free::{DelayedState, Pushed, ThreadFree};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::{boxed::Box, ptr, vec::Vec};

/// Preemption bound: 3 finds every deliberately planted bug we tried (see
/// the report) and keeps the suite around a second.
const PREEMPTIONS: usize = 3;

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

/// A freed block: the first word is the `Block` link.
#[repr(C)]
struct TBlock {
    link: *mut Block,
    /// What the last user wrote; the owner must see it after taking the block.
    payload: UnsafeCell<usize>,
}

fn new_blocks(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            Box::into_raw(Box::new(TBlock {
                link: ptr::null_mut(),
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

/// Walk a list the caller took, check payloads, append to `seen`.
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
        let b = cur as usize;
        let i = blocks
            .iter()
            .position(|&x| x == b)
            .expect("foreign block on a list");
        assert!(!seen.contains(&b), "block seen twice");
        // SAFETY: a live test block, now owned by the caller.
        let v = unsafe { &(*(b as *mut TBlock)).payload }.with(|p| unsafe { *p });
        assert_eq!(v, i + 1, "owner does not see the freeing thread's write");
        seen.push(b);
        // SAFETY: a member of the list the caller owns.
        cur = unsafe { Block::next(cur) };
    }
}

fn assert_each_once(seen: &mut Vec<usize>, blocks: &[usize]) {
    let mut all = blocks.to_vec();
    all.sort_unstable();
    seen.sort_unstable();
    assert_eq!(*seen, all, "a block was lost or duplicated");
}

/// The heap's side of delayed free: its delayed list and its lifetime.
struct TestHeap {
    /// As `Heap::thread_delayed_free`.
    delayed: AtomicPtr<Block>,
    /// The heap's memory: written (freed) by the owner when the thread exits.
    alive: UnsafeCell<bool>,
}

impl TestHeap {
    fn new() -> Self {
        TestHeap {
            delayed: AtomicPtr::new(ptr::null_mut()),
            alive: UnsafeCell::new(true),
        }
    }

    /// A non-owner touches the heap: it must be alive and the owner's
    /// freeing write must not race with this read.
    fn assert_alive(&self) {
        // SAFETY: loom's tracked cell; the read is what the model checks.
        assert!(self.alive.with(|a| unsafe { *a }), "heap used after free");
    }

    /// As `Heap::push_delayed`.
    fn push_delayed(&self, block: *mut Block) {
        self.assert_alive();
        let mut head = self.delayed.load(Ordering::Relaxed);
        loop {
            // SAFETY: we own the block until the CAS publishes it.
            unsafe { Block::set_next(block, head) };
            match self.delayed.compare_exchange_weak(
                head,
                block,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(cur) => head = cur,
            }
        }
        self.assert_alive();
    }

    /// As `Heap::drain_delayed_free` for one page: swap the list, wait out
    /// the pusher (`set_state(NoDelayedFree)`) before using each block.
    fn drain(&self, tf: &ThreadFree, blocks: &[usize], seen: &mut Vec<usize>) {
        let mut cur = self.delayed.swap(ptr::null_mut(), Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: a block on the list we took.
            let next = unsafe { Block::next(cur) };
            tf.set_state(DelayedState::NoDelayedFree, false);
            // SAFETY: unlink it so `take_list` sees just this block.
            unsafe { Block::set_next(cur, ptr::null_mut()) };
            take_list(cur, blocks, seen);
            cur = next;
        }
    }
}

/// A non-owner frees block `i` into the page (as `free_block_mt`).
fn free_mt(tf: &ThreadFree, heap: &TestHeap, blocks: &[usize], i: usize) {
    let b = blocks[i];
    write_payload(b, i + 1);
    // SAFETY: the block is ours (handed out, now being freed).
    if unsafe { tf.push(b as *mut Block, crate::block::ListKey::PLAIN) } == Pushed::Delayed {
        heap.push_delayed(b as *mut Block);
        tf.end_delayed_freeing();
    }
}

// ------------------------------------------------------------------ 1. thread_free

/// Two non-owners free while the owner collects; a final collect finds the
/// rest. Every block exactly once, the state bits survive every swap.
fn push_collect(initial: DelayedState) {
    model(move |y| {
        let tf = Arc::new(ThreadFree::new());
        tf.set_state(initial, false);
        let heap = Arc::new(TestHeap::new());
        let blocks = Arc::new(new_blocks(2));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (tf, heap, blocks) = (tf.clone(), heap.clone(), blocks.clone());
                thread::spawn(move || free_mt(&tf, &heap, &blocks, i))
            })
            .collect();
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
        let tf = Arc::new(ThreadFree::new());
        tf.set_state(DelayedState::UseDelayedFree, false);
        let heap = Arc::new(TestHeap::new());
        let blocks = Arc::new(new_blocks(2));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (tf, heap, blocks) = (tf.clone(), heap.clone(), blocks.clone());
                thread::spawn(move || free_mt(&tf, &heap, &blocks, i))
            })
            .collect();
        let mut seen = Vec::new();
        start(y);
        heap.drain(&tf, &blocks, &mut seen);
        take_stack(tf.take_all(), &blocks, &mut seen);
        tf.set_state(DelayedState::NoDelayedFree, false);
        // Nobody can enter DelayedFreeing from NoDelayedFree, and set_state
        // waited out whoever was in it.
        assert_eq!(tf.state(), DelayedState::NoDelayedFree);
        for h in handles {
            h.join().unwrap();
        }
        heap.drain(&tf, &blocks, &mut seen);
        take_stack(tf.take_all(), &blocks, &mut seen);
        assert_each_once(&mut seen, &blocks);
        assert_eq!(tf.state(), DelayedState::NoDelayedFree);
        free_blocks(&blocks);
    });
}

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
        // The heap goes away: a tracked write that any unordered read races with.
        // SAFETY: loom's tracked cell; an unordered access races with this write.
        heap.alive.with_mut(|a| unsafe { *a = false });
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
    next: *mut Node,
    /// The node's memory is mapped; cleared (a tracked write) when the test
    /// "unmaps" it. Every access through `next_slot` reads it.
    mapped: UnsafeCell<bool>,
}

impl StackNode for Node {
    unsafe fn next_slot(node: *mut Self) -> *mut *mut Self {
        // SAFETY: the node was allocated by the test and is freed only after
        // every thread joined.
        unsafe {
            assert!(
                (*node).mapped.with(|m| *m),
                "stack read a node after it was unmapped"
            );
            ptr::addr_of_mut!((*node).next)
        }
    }
}

fn new_nodes(stack: &TaggedStack<Node>, n: usize) -> Vec<usize> {
    let nodes: Vec<usize> = (0..n)
        .map(|_| {
            Box::into_raw(Box::new(Node {
                next: ptr::null_mut(),
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

/// The page side of `arena::abandon` / `free_abandoned_if_empty` and the
/// abandoned branch of `free_generic`: the owner abandons a page holding
/// two live blocks while two other threads free them. The arena lock is a
/// mutex here; `thread_free` is the real code. The page must be freed at
/// most once by the threads and exactly once after the sweep (the
/// `arena::purge` pass), and never while a block is still live.
const OWNED: usize = 7;
const ABANDONED: usize = 1;
const FREED: usize = 0;

struct AbPage {
    owner: AtomicUsize,
    used: AtomicUsize,
    tf: ThreadFree,
    lock: loom::sync::Mutex<usize>, // pages freed
}

impl AbPage {
    /// `free_abandoned_if_empty`: re-check under the lock.
    fn free_if_empty(&self) {
        let mut freed = self.lock.lock().unwrap();
        if self.owner.load(Ordering::Acquire) == ABANDONED
            && self.tf.count() == self.used.load(Ordering::Relaxed)
        {
            assert_eq!(self.tf.count(), 2, "freed with a live block");
            self.owner.store(FREED, Ordering::Release);
            *freed += 1;
        }
    }
}

#[test]
fn loom_abandoned_page_last_free() {
    model(|y| {
        let page = Arc::new(AbPage {
            owner: AtomicUsize::new(OWNED),
            used: AtomicUsize::new(0),
            tf: ThreadFree::new(),
            lock: loom::sync::Mutex::new(0),
        });
        page.tf.set_state(DelayedState::NeverDelayedFree, false);
        let blocks = Arc::new(new_blocks(2));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (page, blocks) = (page.clone(), blocks.clone());
                thread::spawn(move || {
                    // The abandoned branch of free_generic: read, then push.
                    let owner = page.owner.load(Ordering::Acquire);
                    let used = page.used.load(Ordering::Relaxed);
                    // SAFETY: the block is ours until the push publishes it.
                    let pushed = unsafe {
                        page.tf
                            .push(blocks[i] as *mut Block, crate::block::ListKey::PLAIN)
                    };
                    if let Pushed::Count(n) = pushed {
                        if owner == ABANDONED && n == used {
                            page.free_if_empty();
                        }
                    }
                })
            })
            .collect();
        start(y);
        // arena::abandon
        {
            let _g = page.lock.lock().unwrap();
            page.used.store(2, Ordering::Relaxed);
            page.owner.store(ABANDONED, Ordering::Release);
        }
        loom::sync::atomic::fence(Ordering::SeqCst);
        if page.tf.count() == 2 {
            page.free_if_empty();
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(*page.lock.lock().unwrap() <= 1);
        // The sweep frees a page whose last free raced with the abandonment.
        page.free_if_empty();
        assert_eq!(*page.lock.lock().unwrap(), 1, "freed exactly once");
        free_blocks(&blocks);
    });
}
