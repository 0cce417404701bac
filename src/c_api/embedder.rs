//! The embedder's side of the C API (embedded mode only; declared in
//! `include/mirs.h` outside `MIRS_HOSTED`): thread end and reaping here,
//! and from the platform the calls that hand mirs memory (regions, the page
//! provider and its cap) and the liveness hook.

pub use crate::platform::{
    mirs_page_provider_set, mirs_provider_limit, mirs_region_add, mirs_thread_alive_hook_set,
    PageAlloc, PageFree,
};

/// The calling thread (task) is exiting: its heap is collected, pages with
/// live blocks are abandoned for other threads to adopt, and its table slot
/// is freed. Call it last, after the thread's final `free`; a later
/// allocation on the same thread simply creates a new heap (with
/// `thread-local`, one for that allocation alone, given back right after).
#[no_mangle]
pub extern "C" fn mirs_thread_done() {
    crate::thread::current_thread_done();
}

/// Reclaim the heaps of threads the alive hook reports dead (their live
/// blocks stay valid and are adopted by whoever frees or allocates next).
/// Returns how many were reclaimed; 0 without an alive hook.
#[no_mangle]
pub extern "C" fn mirs_thread_reap() -> usize {
    crate::thread::reap_dead()
}
