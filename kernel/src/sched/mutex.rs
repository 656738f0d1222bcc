//! Sleeping mutex: the same raw spin word, but a contended locker blocks on a
//! wait queue instead of spinning. After the panic stop, its slow path fakes
//! the acquisition like every other lock, and a release never wakes anyone.
//!
//! The owner token is the thread's, and after the stop the panic CPU keeps
//! running the thread that panicked. If that thread held this mutex (it
//! panicked inside the critical section), the faked acquisition finds its own
//! token and, as for the spin lock, replaces it with
//! [`POISONED`] ([`RawSpin::fake_acquisition`]): the
//! release no longer matches, the mutex keeps reading as locked and
//! [`RawSleepMutex::is_poisoned`] reports that its data may be torn.

use core::sync::atomic::{AtomicU32, Ordering};

use super::wait::WaitQueue;
use crate::sync::raw::{Acquired, POISONED, RawSpin, scheduler_stopped};

/// Raw sleeping mutex.
pub struct RawSleepMutex {
    inner: RawSpin,
    waiters: WaitQueue,
    sleepers: AtomicU32,
}

// Every token `thread_token` yields (at most `0x8000_0000 | cpu index`)
// differs from the poisoned word.
const _: () = assert!((0x8000_0000 | (crate::arch::cpu::MAX_CPUS as u32 - 1)) < POISONED);

/// Owner token of the running thread: a sleeping mutex belongs to a thread,
/// which may be preempted and migrate while holding it. Never 0 or
/// [`POISONED`].
#[inline(always)]
fn thread_token() -> u32 {
    let t = super::current_ptr();
    if t.is_null() {
        // Before the scheduler runs: one boot flow per CPU.
        0x8000_0000 | crate::arch::cpu::current_index() as u32
    } else {
        // SAFETY: `current` points at the live running thread.
        (unsafe { (*t).id } as u32 & 0x7fff_ffff) + 1
    }
}

impl RawSleepMutex {
    /// (owner token or 0, registered sleepers, queued waiters), for reports.
    pub fn debug_state(&self) -> (u32, u32, usize) {
        (
            self.inner.owner(),
            self.sleepers.load(Ordering::Relaxed),
            self.waiters.len(),
        )
    }

    /// True once the panicking thread re-entered this mutex while holding it
    /// (see the module docs): its data may be half updated.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self, me: u32) {
        let mut spins = 0u32;
        loop {
            if scheduler_stopped() {
                // Faked; poisons the word if it names this very thread.
                self.inner.fake_acquisition(me);
                return;
            }
            if self.inner.try_acquire_for(me) {
                return;
            }
            spins += 1;
            if spins < 64 || !super::can_block() {
                core::hint::spin_loop();
                continue;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            self.waiters
                .wait_until(|| !self.inner.is_locked() || scheduler_stopped());
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: exclusion comes from `RawSpin`'s owner word.
unsafe impl lock_api::RawMutex for RawSleepMutex {
    #[allow(
        clippy::declare_interior_mutable_const,
        reason = "lock_api's required initialiser"
    )]
    const INIT: Self = Self {
        inner: RawSpin::new(),
        waiters: WaitQueue::new(),
        sleepers: AtomicU32::new(0),
    };
    type GuardMarker = lock_api::GuardNoSend;

    #[inline(always)]
    fn lock(&self) {
        let me = thread_token();
        if !self.inner.try_acquire_for(me) {
            self.lock_contended(me);
        }
    }

    fn try_lock(&self) -> bool {
        self.inner.try_acquire_for(thread_token())
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        if self.inner.release_for(thread_token()) == Acquired::Owned {
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
