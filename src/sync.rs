//! Atomics used by the lock-free protocols. Under `--cfg loom` they are
//! loom's, so the model tests in `tests_loom` explore every interleaving of
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

/// A spin lock around `T`, for the arena's slow paths (span, chunk and
/// abandoned-page bookkeeping: once per page, never per block). Waiters
/// yield to the scheduler, so a holder that was preempted gets to finish.
/// Fork safety: the hosted platform takes the arena's lock around `fork`.
#[cfg(not(loom))]
pub(crate) struct SpinLock<T> {
    busy: core::sync::atomic::AtomicBool,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: `value` is reached only through a guard, which exists only while
// `busy` is held by its thread; `T: Send` so moving access between threads is fine.
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for SpinLock<T> {}

#[cfg(not(loom))]
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

#[cfg(not(loom))]
impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            busy: core::sync::atomic::AtomicBool::new(false),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        self.acquire();
        SpinGuard { lock: self }
    }

    /// Take the lock without a guard (`fork`'s prepare handler).
    pub(crate) fn acquire(&self) {
        use core::sync::atomic::Ordering as O;
        let mut spins = 0u32;
        while self
            .busy
            .compare_exchange_weak(false, true, O::Acquire, O::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                spin_hint();
            }
        }
    }

    /// Release a lock taken with [`SpinLock::acquire`] (after `fork`, in
    /// parent and child).
    ///
    /// # Safety
    /// The calling thread (or, in a fork child, its parent) holds the lock
    /// through `acquire`, not through a guard.
    pub(crate) unsafe fn release(&self) {
        self.busy
            .store(false, core::sync::atomic::Ordering::Release);
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
        self.lock
            .busy
            .store(false, core::sync::atomic::Ordering::Release);
    }
}
