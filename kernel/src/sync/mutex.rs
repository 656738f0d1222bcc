//! Sleeping mutex: the same raw spin word, but a contended locker blocks on a
//! wait queue instead of spinning. After the panic stop, its slow path fakes
//! the acquisition like every other lock, and a release never wakes anyone.

use core::sync::atomic::{AtomicU32, Ordering};

use super::raw::{Acquired, RawSpin, scheduler_stopped};
use crate::sched::wait::WaitQueue;

/// Raw sleeping mutex.
pub struct RawSleepMutex {
    inner: RawSpin,
    waiters: WaitQueue,
    sleepers: AtomicU32,
}

impl RawSleepMutex {
    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            if scheduler_stopped() {
                return;
            }
            if self.inner.try_acquire() {
                return;
            }
            spins += 1;
            if spins < 64 || !crate::sched::can_block() {
                core::hint::spin_loop();
                continue;
            }
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            self.waiters.wait_until(|| !self.inner.is_locked() || scheduler_stopped());
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: exclusion comes from `RawSpin`'s owner word.
unsafe impl lock_api::RawMutex for RawSleepMutex {
    #[allow(clippy::declare_interior_mutable_const, reason = "lock_api's required initialiser")]
    const INIT: Self =
        Self { inner: RawSpin::new(), waiters: WaitQueue::new(), sleepers: AtomicU32::new(0) };
    type GuardMarker = lock_api::GuardNoSend;

    #[inline(always)]
    fn lock(&self) {
        if !self.inner.try_acquire() {
            self.lock_contended();
        }
    }

    fn try_lock(&self) -> bool {
        self.inner.try_acquire()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        if self.inner.release() == Acquired::Owned {
            // Order the release store before the waiter check (x86 may
            // reorder a store with a later load): a locker that registered
            // as a sleeper either sees the lock free or is seen here.
            core::sync::atomic::fence(Ordering::SeqCst);
            if self.sleepers.load(Ordering::Relaxed) != 0 {
                self.waiters.wake_one();
            }
        }
    }

    fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }
}

/// A sleeping mutex (thread context only).
pub type Mutex<T> = lock_api::Mutex<RawSleepMutex, T>;
/// Guard of a [`Mutex`].
pub type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawSleepMutex, T>;
