//! Thread life: which heap a thread allocates from, and what happens when
//! threads and processes start, end and fork.
//!
//! ```text
//! first malloc of a thread   current_or_init: heap struct from the pool, slot set,
//!                            thread-exit callback armed (hosted: pthread key)
//! thread exit                thread_done: the heap's pages are freed or abandoned
//!                            (page by page, for any thread to adopt), struct pooled
//! allocation in a later      hosted: the slot holds EXITING_HEAP; each allocation
//!   key destructor           gets a heap that is abandoned right after it
//! embedded thread that died  reaped: its slot in the heap table is taken over and
//!   without mirs_thread_done  its heap abandoned (alive hook; table full, OOM)
//! fork (child)               after_fork_in_child: locks and pool readers reset
//! out of memory              recover: collect, sweep, release caches, reap; retry
//! ```
//!
//! The slot: hosted, a thread-local (`#[thread_local]` initial-exec with
//! `thread-local`, else a const `std::thread_local!`: one fs-relative load
//! either way); embedded, a `#[thread_local]` with `thread-local`, else the
//! heap table keyed by the embedder's thread id (`table`). The platform
//! below knows nothing of heaps: it gives thread ids and runs the plain
//! callbacks registered here.

use crate::base::constants::OS_PAGE_SIZE;
use crate::heap::{self, Heap, HeapSlot, EMPTY_HEAP_PTR, EXITING_HEAP_PTR};
use crate::lockfree::tagged_stack::TaggedStack;
use crate::mem::arena;
use crate::platform;
use crate::support::stats::{self, Counter};
use core::ffi::c_void;
use core::ptr;

mod table;

// ------------------------------------------------------------------ the slot

// Before the first allocation the slot holds the static empty heap, so the
// fast path needs no "initialised?" test. The slot has a constant
// initialiser and no destructor: no lazy-init test, no TLS destructor
// registered (that would allocate); thread exit goes through the platform's
// callback instead.

/// `thread-local` (nightly; the C libraries and TLS-capable embedders): a
/// `#[thread_local]`, initial-exec in libmirs.so through `-Z
/// tls-model=initial-exec` (`.cargo/config.toml`), so no `__tls_get_addr`
/// call, which may allocate.
#[cfg(feature = "thread-local")]
#[thread_local]
static mut THREAD_HEAP: *mut Heap = EMPTY_HEAP_PTR;

// Stable Rust (a Rust program's `#[global_allocator]`): std's `thread_local!`
// with a `const` initialiser of a type without drop glue compiles to the same
// native TLS slot; `with` can never fail on it (there is no destroyed state).
#[cfg(all(feature = "hosted", not(feature = "thread-local")))]
std::thread_local! {
    static THREAD_HEAP: core::cell::Cell<*mut Heap> = const { core::cell::Cell::new(EMPTY_HEAP_PTR) };
}

/// The calling thread's heap (the empty heap before its first allocation).
#[inline(always)]
pub(crate) fn heap_get() -> *mut Heap {
    // Embedded x86_64: one fs-relative load at the slot's link-time offset.
    // LLVM folds the thread pointer's load into the access only for glibc,
    // Android and Fuchsia targets; for x86_64-unknown-none it loads fs:0
    // and then the slot (two loads). A static image resolves `@tpoff` at
    // link time (a shared object would refuse it at link time, never
    // silently).
    #[cfg(all(
        feature = "thread-local",
        not(feature = "hosted"),
        target_arch = "x86_64"
    ))]
    {
        let heap: *mut Heap;
        // SAFETY: reads the calling thread's own slot (the local-exec
        // address of THREAD_HEAP); only this thread writes it.
        unsafe {
            core::arch::asm!(
                "mov {heap}, qword ptr fs:[{slot}@tpoff]",
                heap = out(reg) heap,
                slot = sym THREAD_HEAP,
                options(nostack, readonly, preserves_flags)
            )
        };
        heap
    }
    #[cfg(all(
        feature = "thread-local",
        not(all(not(feature = "hosted"), target_arch = "x86_64"))
    ))]
    {
        // SAFETY: the slot is thread-local; only this thread reads or writes it.
        unsafe { THREAD_HEAP }
    }
    #[cfg(all(feature = "hosted", not(feature = "thread-local")))]
    {
        THREAD_HEAP.with(core::cell::Cell::get)
    }
    #[cfg(all(not(feature = "hosted"), not(feature = "thread-local")))]
    {
        table::heap_get()
    }
}

/// The calling thread's heap when its first look finds it: always with a
/// thread-local slot; from the embedded heap table, None when the
/// thread's key is not in its home slot (then [`heap_get`] probes). The
/// malloc fast path uses it so that its miss is a tail call: a call that
/// returns to the fast path would make every malloc save registers.
#[inline(always)]
pub(crate) fn heap_get_home() -> Option<*mut Heap> {
    #[cfg(any(feature = "hosted", feature = "thread-local"))]
    {
        Some(heap_get())
    }
    #[cfg(all(not(feature = "hosted"), not(feature = "thread-local")))]
    {
        table::heap_get_home()
    }
}

/// Point the calling thread's slot at `heap`. False (embedded) when the
/// heap table has no room even after reaping dead threads.
fn heap_set(heap: *mut Heap) -> bool {
    if !table::record(heap, abandon_dead) {
        return false;
    }
    #[cfg(feature = "thread-local")]
    // SAFETY: as in `heap_get`.
    unsafe {
        THREAD_HEAP = heap
    };
    #[cfg(all(feature = "hosted", not(feature = "thread-local")))]
    THREAD_HEAP.with(|slot| slot.set(heap));
    true
}

// ------------------------------------------------------------------ heap pool

static POOL: TaggedStack<HeapSlot> = TaggedStack::new();

const HEAP_CHUNK: usize = 64 * 1024;

/// An unused heap slot: from the pool, or carved from a fresh chunk of
/// platform memory (the surplus goes to the pool). Never unmapped, so the
/// pool's pops may always read a node.
fn heap_slot_alloc() -> *mut HeapSlot {
    if let Some(slot) = POOL.pop() {
        return slot;
    }
    let Some(chunk) = platform::os_alloc_aligned(HEAP_CHUNK, OS_PAGE_SIZE) else {
        return ptr::null_mut();
    };
    let size = core::mem::size_of::<HeapSlot>().next_multiple_of(64);
    let count = HEAP_CHUNK / size;
    for i in 1..count {
        let slot = chunk.base.wrapping_add(i * size).cast::<HeapSlot>();
        // SAFETY: slot `i` lies inside the fresh chunk; pushing hands it to the pool.
        unsafe { POOL.push(slot) };
    }
    chunk.base.cast()
}

/// Give an unused heap back to the pool.
///
/// # Safety
/// `heap` lives in a slot from [`heap_slot_alloc`] and nothing uses it any more.
unsafe fn heap_struct_free(heap: *mut Heap) {
    // SAFETY: as the caller guarantees: a slot of a heap chunk, ours.
    unsafe { POOL.push(HeapSlot::of(heap)) };
}

// ------------------------------------------------------------------ process life

static PROCESS_INIT: spin::Once<()> = spin::Once::new();

/// Once per process: read the options, register the thread-exit and fork
/// callbacks. Runs when the library is loaded (hosted, `.init_array`), else
/// (or if malloc comes first) at the first heap creation.
pub(crate) fn process_init() {
    PROCESS_INIT.call_once(|| {
        crate::support::options::init();
        platform::register_thread_callbacks(thread_exit_callback, fork_child_callback);
    });
}

/// The platform's thread-exit callback (hosted: the pthread key destructor).
extern "C" fn thread_exit_callback(value: *mut c_void) {
    thread_done(value.cast());
}

/// In the child after `fork`: the arena's lock may have been held by a
/// thread that does not exist there, a pop of the heap pool in progress in
/// another thread would leave its reader count set forever, and a page of
/// ours may be left in the middle of another thread's delayed free.
extern "C" fn fork_child_callback() {
    POOL.reset_readers();
    arena::reset_after_fork();
    // A thread that was inside a delayed free to our heap is gone, its page
    // left in DelayedFreeing (which the owner would wait out forever).
    let heap = heap_get();
    if !heap::is_empty_heap(heap) {
        // SAFETY: the calling thread's live heap; it is the only thread.
        unsafe { (*heap).reset_delayed_freeing_after_fork() };
    }
}

// ------------------------------------------------------------------ thread life

/// Create the calling thread's heap (first allocation of the thread).
#[cold]
fn heap_init_thread() -> *mut Heap {
    process_init();
    let slot = heap_slot_alloc();
    if slot.is_null() {
        return ptr::null_mut();
    }
    // Only `secure` needs entropy (secret list keys): no getrandom otherwise.
    let seed = if cfg!(feature = "secure") {
        platform::random_seed() ^ slot as u64
    } else {
        slot as u64
    };
    // SAFETY: `slot` is an unused heap slot we own.
    let heap = unsafe { Heap::init_at(slot, platform::thread_id(), seed) };
    if !heap_set(heap) {
        // Embedded: no room to record the heap (thread table full).
        // SAFETY: the struct is unused and unpublished.
        unsafe { heap_struct_free(heap) };
        return ptr::null_mut();
    }
    platform::set_thread_exit_value(heap.cast());
    stats::add(Counter::Threads, 1);
    heap
}

/// The heap the allocation slow path works with, given what the thread's
/// slot held (`heap`): that heap, or a new one for the thread's first
/// allocation; null when out of memory. For an allocation after the
/// thread's heap was abandoned at exit (hosted key destructors), the new
/// heap's `exiting` flag tells the caller to give it back right after.
pub(crate) fn heap_for_alloc(heap: *mut Heap) -> (*mut Heap, bool) {
    if ptr::eq(heap, EXITING_HEAP_PTR) {
        (heap_init_thread(), true)
    } else if heap::is_empty_heap(heap) {
        (heap_init_thread(), false)
    } else {
        (heap, false)
    }
}

/// The end of an allocation made with an exiting heap: abandon it again.
///
/// # Safety
/// `heap` came from `heap_for_alloc` with `exiting`, on this thread.
pub(crate) unsafe fn exiting_alloc_done(heap: *mut Heap) {
    // SAFETY: the calling thread's live heap, which it no longer uses.
    unsafe { heap_abandon(heap, true) };
}

/// The calling thread ends (the platform's thread-exit callback, or the
/// embedder's `mirs_thread_done`): abandon what is still live, recycle the
/// heap. Any pointer may be passed: only the calling thread's own heap is used.
pub(crate) fn thread_done(heap: *mut Heap) {
    if heap.is_null() || heap::is_empty_heap(heap) || heap != heap_get() {
        return;
    }
    // SAFETY: `heap` is the calling thread's live heap.
    unsafe { heap_abandon(heap, true) };
}

/// The embedder says the calling thread ends (`mirs_thread_done`).
#[cfg(not(feature = "hosted"))]
pub(crate) fn current_thread_done() {
    thread_done(heap_get());
}

/// Abandon what is still live in `heap`, recycle the struct. With `current`
/// the calling thread's slot is reset: hosted to the exiting heap (a later
/// key destructor may still allocate), embedded to the empty heap (a thread
/// that goes on after `mirs_thread_done`, or a task reusing its id, simply
/// gets a new heap), except with `thread-local`: there the exiting heap too,
/// since the owner id is the thread-local's address, which the embedder
/// reuses for a later thread once this one's TLS is freed (ArceOS: a task's
/// exit path allocates after its exit hook); a heap made after
/// `mirs_thread_done` and never given back would leave pages that later
/// thread takes for its own while another thread reaps them.
///
/// # Safety
/// `heap` is a live heap, and either the calling thread's (`current`) or
/// one whose thread has ended for good (embedded: a dead thread's heap
/// found in the table), so that nothing else uses it as its owner.
pub(crate) unsafe fn heap_abandon(heap: *mut Heap, current: bool) {
    // SAFETY: as the caller guarantees.
    unsafe { (*heap).abandon() };
    stats::add(Counter::Threads, -1);
    stats::add(Counter::ThreadsDone, 1);
    if current {
        heap_set(if cfg!(any(feature = "hosted", feature = "thread-local")) {
            EXITING_HEAP_PTR
        } else {
            EMPTY_HEAP_PTR
        });
    }
    // SAFETY: the heap is unreachable now: no page refers to it (all were
    // freed or abandoned with their heap pointer cleared).
    unsafe { heap_struct_free(heap) };
}

/// A dead thread's heap, found by the table (`table::Abandon`).
///
/// # Safety
/// `heap` is a live heap whose thread has ended for good, and the caller
/// is the only one reaping it.
unsafe fn abandon_dead(heap: *mut Heap) {
    // SAFETY: as the caller guarantees.
    unsafe { heap_abandon(heap, false) };
}

/// Reclaim the heaps of threads the alive hook reports dead
/// (`mirs_thread_reap`); how many.
#[cfg(not(feature = "hosted"))]
pub(crate) fn reap_dead() -> usize {
    table::reap_dead(abandon_dead)
}

// ------------------------------------------------------------------ out of memory

/// Out of memory for a request of `size` bytes: [`recover`] when that could
/// serve it. A request larger than the platform could ever give
/// (`platform::memory_limit`: hosted, memory plus swap) fails again however
/// much is reclaimed, so it fails at once: a failing huge request costs a
/// few hundred instructions, not a collection and a sweep.
pub(crate) fn recover_for(heap: *mut Heap, size: usize) -> bool {
    size <= platform::memory_limit() && recover(heap)
}

/// Out of memory: give back everything that is not in use: this thread's
/// empty and retired pages, the arena's cached chunks, and (embedded) the
/// heaps of threads that died without saying so. Returns whether this call
/// released anything (a page freed, a cached chunk or a dead thread's heap
/// given back: counted by the calls themselves, not read off a
/// process-wide counter another thread moves), so a request that could
/// never fit fails at once. The one recovery every allocation slow path
/// runs before its single retry.
#[cold]
pub(crate) fn recover(heap: *mut Heap) -> bool {
    let mut released = false;
    if !heap.is_null() && !heap::is_empty_heap(heap) {
        // SAFETY: the calling thread's live heap.
        released |= unsafe { (*heap).collect(false) };
    }
    // Due purges and the abandoned-page sweep (which frees spans); purging
    // everything would give back physical memory, not the address space or
    // region room a failed request lacks.
    released |= arena::purge(false);
    released |= arena::release_caches();
    released |= table::reap_dead_threads(abandon_dead);
    // After the reaping (which abandons pages), the sweep: pages whose
    // blocks all came back go now, whenever the last sweep ran.
    released |= arena::sweep_abandoned_now();
    released
}

// ------------------------------------------------------------------ the current heap

/// Collect the calling thread's heap (`mirs_collect`).
pub(crate) fn collect_current(force: bool) {
    let heap = heap_get();
    if !heap::is_empty_heap(heap) {
        // SAFETY: the calling thread's live heap.
        unsafe { (*heap).collect(force) };
    } else {
        arena::purge(force);
        if force {
            arena::release_caches();
        }
    }
}

/// Check the calling thread's heap and its pages (tests, fuzzing); returns
/// the number of live blocks in them.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn check_current() -> usize {
    let heap = heap_get();
    if heap::is_empty_heap(heap) {
        return 0;
    }
    // SAFETY: the calling thread's live heap.
    unsafe { (*heap).check_invariants() }
}
