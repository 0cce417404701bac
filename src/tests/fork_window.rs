//! `fork()` while another thread is inside a delayed free to the forking
//! thread's heap (`free::push_delayed_and_end`: its push found the page full,
//! it entered `DelayedFreeing`, and it has not yet left it). That thread does
//! not exist in the child, so nothing there will ever leave the state; the
//! child must still free into the page, allocate (draining the delayed list),
//! collect and exit, within a timeout. The freeing thread is parked in the
//! window through `free::DELAYED_FREE_HOOK`, before and after its push on the
//! heap's delayed list, so the race is forced, not hoped for.
//!
//! The child reports through its exit status (it prints nothing: another
//! test thread of the parent may have held stdout's lock at the fork).

use super::api;
use crate::entry::alloc;
use crate::lockfree::block::Block;
use crate::lockfree::delayed::{DelayedWindow, DELAYED_FREE_HOOK};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// The block whose delayed free parks, and where.
static TARGET: AtomicPtr<Block> = AtomicPtr::new(core::ptr::null_mut());
static PARK_AT: AtomicU8 = AtomicU8::new(0);
static PARKED: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);
/// The two tests share the statics above.
static SERIAL: Mutex<()> = Mutex::new(());

fn window_code(at: DelayedWindow) -> u8 {
    match at {
        DelayedWindow::BeforePush => 1,
        DelayedWindow::BeforeEnd => 2,
    }
}

/// The hook: parks the freeing thread of the target block at the chosen
/// point until the test releases it (at most 30 s, so a failing test ends).
fn park(at: DelayedWindow, block: *mut Block) {
    if block != TARGET.load(Ordering::Acquire) || window_code(at) != PARK_AT.load(Ordering::Acquire)
    {
        return;
    }
    PARKED.store(true, Ordering::Release);
    let start = Instant::now();
    while !RELEASE.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

const SIZE: usize = 1024;
/// The child's seconds to finish; SIGALRM (default action) kills it after.
const CHILD_TIMEOUT_S: u32 = 10;

/// The child's work; returns its exit status (0: everything finished).
fn child(blocks: &[*mut u8]) -> i32 {
    // 1. Free the page's other blocks: the page leaves the full queue
    //    (`page_unfull` sets its delayed state, waiting out DelayedFreeing).
    for &b in &blocks[1..] {
        api::free(b);
    }
    // 2. Allocate through the slow path (drains the delayed list; with the
    //    parked block on it, `drain_delayed_free` waits out the page's state).
    for round in 0..4 {
        let mut ps = [core::ptr::null_mut::<u8>(); 200];
        for p in ps.iter_mut() {
            *p = alloc::malloc(SIZE);
            if p.is_null() {
                return 3;
            }
        }
        for (i, &p) in ps.iter().enumerate() {
            // SAFETY: a live block of SIZE bytes this thread just allocated.
            unsafe { p.write_bytes((round * 7 + i) as u8, SIZE) };
        }
        for &p in &ps {
            api::free(p);
        }
    }
    // 3. Collect everything, check the heap, then end as a thread does.
    crate::thread::collect_current(true);
    crate::thread::check_current();
    crate::thread::thread_done(crate::thread::heap_get());
    0
}

fn fork_in_delayed_free_window(at: DelayedWindow) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    DELAYED_FREE_HOOK.get_or_init(|| park);
    PARKED.store(false, Ordering::Release);
    RELEASE.store(false, Ordering::Release);

    // A page of this thread's heap in the full queue (UseDelayedFree): fill
    // the first block's page, then one more malloc moves it there.
    let first = alloc::malloc(SIZE);
    assert!(!first.is_null());
    // SAFETY: a size-class block this thread's heap just returned.
    let page = unsafe { crate::mem::chunk::Chunk::page_of_block(first) };
    let mut blocks: Vec<*mut u8> = std::vec![first];
    // SAFETY: a page of this thread's heap, read by its owner.
    while !unsafe { crate::mem::page::Page::owned(page) }.is_full_flagged() && blocks.len() < 10_000
    {
        let b = alloc::malloc(SIZE);
        assert!(!b.is_null());
        blocks.push(b);
    }
    // SAFETY: as above.
    assert!(
        unsafe { crate::mem::page::Page::owned(page) }.is_full_flagged(),
        "no full page after {} blocks",
        blocks.len()
    );

    // Another thread frees `first` and is parked inside the window.
    TARGET.store(first.cast(), Ordering::Release);
    PARK_AT.store(window_code(at), Ordering::Release);
    let first_addr = first as usize;
    let freer = std::thread::spawn(move || api::free(first_addr as *mut u8));
    let start = Instant::now();
    while !PARKED.load(Ordering::Acquire) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the freeing thread never reached the window"
        );
        std::thread::sleep(Duration::from_millis(1));
    }

    // SAFETY: fork has no preconditions; the child only runs `child` (mirs
    // and atomics, no locks another thread could have held) and `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe and always succeed.
        unsafe { libc::alarm(CHILD_TIMEOUT_S) };
        let code = std::panic::catch_unwind(|| child(&blocks)).unwrap_or(2);
        // SAFETY: as above; the child must not return into the test harness.
        unsafe { libc::_exit(code) };
    }

    RELEASE.store(true, Ordering::Release);
    freer.join().unwrap();
    TARGET.store(core::ptr::null_mut(), Ordering::Release);
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    let hung = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM;
    assert!(
        !hung,
        "{at:?}: the forked child hung (no exit within {CHILD_TIMEOUT_S} s)"
    );
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{at:?}: the forked child failed: status {status:#x} (exit 2: a panic, 3: malloc returned null)"
    );

    // The parent is intact too: its blocks come back, the heap is consistent.
    for &b in &blocks[1..] {
        api::free(b);
    }
    crate::thread::collect_current(false);
    crate::thread::check_current();
}

#[test]
fn fork_before_the_push_on_the_delayed_list() {
    fork_in_delayed_free_window(DelayedWindow::BeforePush);
}

#[test]
fn fork_before_delayed_freeing_ends() {
    fork_in_delayed_free_window(DelayedWindow::BeforeEnd);
}
