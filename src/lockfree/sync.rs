//! Atomics used by the lock-free protocols. Under `--cfg loom` they are
//! loom's, so the model tests in `tests/loom.rs` explore every interleaving of
//! the real code.

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// Wait a moment in a spin loop for another thread to make progress (loom
/// needs every spin loop to yield, or it never schedules the other thread).
#[cfg(not(loom))]
#[inline]
pub fn spin_hint() {
    crate::platform::spin_yield();
}
#[cfg(loom)]
pub fn spin_hint() {
    loom::thread::yield_now();
}

/// A lock around `T`, for the arena's slow paths (span, chunk and
/// abandoned-page bookkeeping: once per page, never per block; no system
/// call is made while it is held). A waiter spins briefly, then sleeps
/// (hosted: a futex on the state word) until the holder wakes it, so a
/// crowd of waiters does not take a core each: the state is 0 (free),
/// 1 (held) or 2 (held, and someone may sleep on it: the holder wakes one
/// when it lets go).
/// Fork: the lock is not held across `fork` (`arena::reset_after_fork`
/// says why); a child forked while a thread of the parent held it resets it.
#[cfg(not(loom))]
pub(crate) struct SpinLock<T> {
    state: core::sync::atomic::AtomicU32,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: `value` is reached only through a guard, which exists only while
// `state` is held by its thread; `T: Send` so moving access between threads is fine.
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for SpinLock<T> {}

#[cfg(not(loom))]
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

/// Tries of a waiter before it sleeps (each a CPU pause, then a yield).
#[cfg(not(loom))]
const SPINS: u32 = 100;

#[cfg(not(loom))]
impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            state: core::sync::atomic::AtomicU32::new(0),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        self.acquire();
        SpinGuard { lock: self }
    }

    /// Take the lock (for the guard).
    fn acquire(&self) {
        use core::sync::atomic::Ordering as O;
        if self
            .state
            .compare_exchange(0, 1, O::Acquire, O::Relaxed)
            .is_ok()
        {
            return;
        }
        self.acquire_slow();
    }

    #[cold]
    fn acquire_slow(&self) {
        use core::sync::atomic::Ordering as O;
        // Spin while the holder is likely to let go soon (critical sections
        // are short) and nobody sleeps yet.
        for i in 0..SPINS {
            let s = self.state.load(O::Relaxed);
            if s == 0 {
                if self
                    .state
                    .compare_exchange(0, 1, O::Acquire, O::Relaxed)
                    .is_ok()
                {
                    return;
                }
            } else if s == 2 {
                break;
            }
            if i < SPINS / 2 {
                core::hint::spin_loop();
            } else {
                spin_hint();
            }
        }
        // Mark the lock contended and sleep until it is free; taking it
        // with 2 keeps the wake-up chain going for whoever sleeps behind us.
        while self.state.swap(2, O::Acquire) != 0 {
            crate::platform::lock_wait(&self.state, 2);
        }
    }

    /// Release the lock (the guard's drop).
    ///
    /// # Safety
    /// The calling thread holds the lock, through the guard being dropped.
    unsafe fn release(&self) {
        if self.state.swap(0, core::sync::atomic::Ordering::Release) == 2 {
            crate::platform::lock_wake(&self.state);
        }
    }

    /// Forget any holder and waiter (a fork child, where neither exists).
    ///
    /// # Safety
    /// Only the calling thread exists.
    pub(crate) unsafe fn reset(&self) {
        self.state.store(0, core::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(not(loom))]
impl<T> core::ops::Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

#[cfg(not(loom))]
impl<T> core::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

#[cfg(not(loom))]
impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard holds the lock, taken through `acquire`.
        unsafe { self.lock.release() };
    }
}
