//! The raw spin lock every kernel lock is built on.
//!
//! Fast path: one `lock cmpxchg` of 0 -> owner (inlined). Slow path:
//! [`RawSpin::lock_contended`], `#[cold]` and `#[inline(never)]`, which spins
//! and, once per iteration, does the single relaxed load of
//! [`SCHEDULER_STOPPED`]. When the flag is set every other CPU is parked
//! forever, so the owner can never release: the acquisition is faked. The
//! lock word records the owner (`cpu index + 1`), so the release of a faked
//! acquisition sees a foreign owner and leaves the word alone.

// (`unsafe impl` of the lock_api traits is the only unsafe code here.)

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Set once by the panic path after every other CPU is parked; never cleared.
pub static SCHEDULER_STOPPED: AtomicBool = AtomicBool::new(false);

/// True once the panic path has stopped the other CPUs and the scheduler.
#[inline(always)]
pub fn scheduler_stopped() -> bool {
    SCHEDULER_STOPPED.load(Ordering::Relaxed)
}

/// Index of the running CPU (GS-relative on the kernel, a thread id on the host).
#[inline(always)]
fn owner_id() -> u32 {
    #[cfg(target_os = "none")]
    {
        crate::arch::cpu::current_index() as u32 + 1
    }
    #[cfg(not(target_os = "none"))]
    {
        host_owner_id()
    }
}

#[cfg(not(target_os = "none"))]
fn host_owner_id() -> u32 {
    use core::sync::atomic::AtomicU32;
    static NEXT: AtomicU32 = AtomicU32::new(1);
    std::thread_local!(static ID: u32 = NEXT.fetch_add(1, Ordering::Relaxed));
    ID.with(|id| *id)
}

/// Cold-path hint: a call to a `#[cold]` function marks the branch unlikely
/// on stable Rust (`core::intrinsics::unlikely` is unstable).
#[cold]
#[inline(always)]
fn cold() {}

/// How an acquisition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The lock word now names this CPU.
    Owned,
    /// The panic stopped the owner; the acquisition was faked.
    Bypassed,
}

/// The raw spin lock. `PANIC_AWARE = false` builds the same lock without the
/// after-panic check, for the fast-path benchmark only.
pub struct RawSpinImpl<const PANIC_AWARE: bool> {
    word: AtomicU32,
}

/// The kernel's raw lock.
pub type RawSpin = RawSpinImpl<true>;

impl<const PANIC_AWARE: bool> RawSpinImpl<PANIC_AWARE> {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
        }
    }

    /// Acquires the lock for this CPU; the uncontended path is a single
    /// compare-and-swap.
    #[inline(always)]
    pub fn acquire(&self) -> Acquired {
        self.acquire_for(owner_id())
    }

    /// Acquires the lock for owner token `me` (non-zero; a CPU for spin
    /// locks, a thread for the sleeping mutex, whose holder may migrate).
    #[inline(always)]
    pub fn acquire_for(&self, me: u32) -> Acquired {
        if self
            .word
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Acquired::Owned;
        }
        self.lock_contended(me)
    }

    /// The contended slow path: spin, reading the panic flag once per round.
    #[cold]
    #[inline(never)]
    pub fn lock_contended(&self, me: u32) -> Acquired {
        loop {
            if PANIC_AWARE && scheduler_stopped() {
                cold();
                return Acquired::Bypassed;
            }
            core::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == 0
                && self
                    .word
                    .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Acquired::Owned;
            }
        }
    }

    /// One attempt, no waiting.
    #[inline(always)]
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_for(owner_id())
    }

    /// One attempt for owner token `me`.
    #[inline(always)]
    pub fn try_acquire_for(&self, me: u32) -> bool {
        self.word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the lock if this CPU owns it. A faked acquisition finds a
    /// foreign owner (a parked CPU) and leaves the word untouched.
    #[inline(always)]
    pub fn release(&self) -> Acquired {
        self.release_for(owner_id())
    }

    /// Releases the lock if owner token `me` holds it.
    #[inline(always)]
    pub fn release_for(&self, me: u32) -> Acquired {
        if self.word.load(Ordering::Relaxed) == me {
            self.word.store(0, Ordering::Release);
            Acquired::Owned
        } else {
            Acquired::Bypassed
        }
    }

    /// True while some CPU holds the lock.
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    /// Owner CPU index + 1, or 0 (for the debugger's lock report).
    pub fn owner(&self) -> u32 {
        self.word.load(Ordering::Relaxed)
    }
}

impl<const P: bool> Default for RawSpinImpl<P> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `lock` returns only with the word naming this CPU (exclusive) or
// after the panic stopped every other CPU (so no one else can run inside the
// critical section); `unlock` ends the section.
unsafe impl<const P: bool> lock_api::RawMutex for RawSpinImpl<P> {
    #[allow(
        clippy::declare_interior_mutable_const,
        reason = "lock_api's required initialiser"
    )]
    const INIT: Self = Self::new();
    type GuardMarker = lock_api::GuardNoSend;

    #[inline(always)]
    fn lock(&self) {
        self.acquire();
    }

    #[inline(always)]
    fn try_lock(&self) -> bool {
        self.try_acquire()
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        self.release();
    }

    fn is_locked(&self) -> bool {
        RawSpinImpl::is_locked(self)
    }
}

/// Writer bit of [`RawRwSpin`]; the low bits count readers.
const WRITER: u32 = 1 << 31;

/// Reader-writer spin lock with the same fast/slow split and after-panic bypass.
pub struct RawRwSpin {
    state: AtomicU32,
    /// Set while a writer's acquisition was faked, so its release is a no-op.
    writer_bypassed: AtomicBool,
}

impl RawRwSpin {
    #[cold]
    #[inline(never)]
    fn contended(&self, write: bool) -> Acquired {
        loop {
            if scheduler_stopped() {
                cold();
                if write {
                    self.writer_bypassed.store(true, Ordering::Relaxed);
                }
                return Acquired::Bypassed;
            }
            core::hint::spin_loop();
            let ok = if write {
                self.try_write()
            } else {
                self.try_read()
            };
            if ok {
                return Acquired::Owned;
            }
        }
    }

    fn try_write(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn try_read(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & WRITER == 0
            && self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }
}

// SAFETY: writers hold WRITER exclusively, readers hold a count that excludes
// writers; after the panic stop only one CPU runs, so faked acquisitions
// cannot overlap with a running holder.
unsafe impl lock_api::RawRwLock for RawRwSpin {
    #[allow(
        clippy::declare_interior_mutable_const,
        reason = "lock_api's required initialiser"
    )]
    const INIT: Self = Self {
        state: AtomicU32::new(0),
        writer_bypassed: AtomicBool::new(false),
    };
    type GuardMarker = lock_api::GuardNoSend;

    #[inline(always)]
    fn lock_shared(&self) {
        let s = self.state.load(Ordering::Relaxed);
        if s & WRITER == 0
            && self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        if self.contended(false) == Acquired::Bypassed {
            // A faked read acquisition still counts, so the matching
            // release's decrement stays balanced.
            self.state.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn try_lock_shared(&self) -> bool {
        self.try_read()
    }

    #[inline(always)]
    unsafe fn unlock_shared(&self) {
        self.state.fetch_sub(1, Ordering::Release);
    }

    #[inline(always)]
    fn lock_exclusive(&self) {
        if self.try_write() {
            return;
        }
        self.contended(true);
    }

    fn try_lock_exclusive(&self) -> bool {
        self.try_write()
    }

    #[inline(always)]
    unsafe fn unlock_exclusive(&self) {
        if self.writer_bypassed.swap(false, Ordering::Relaxed) {
            return;
        }
        self.state.fetch_and(!WRITER, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lock_api::RawMutex as _;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    // The flag is global: tests that set it run in one test to stay ordered.
    #[test]
    fn slow_path_waits_before_the_flag_and_bypasses_after() {
        // Before: many threads, exact totals.
        let lock = Arc::new(RawSpin::new());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, counter) = (lock.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        lock.lock();
                        // Non-atomic read-modify-write under the lock.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        // SAFETY: (test) we hold the lock.
                        unsafe { lock.unlock() };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 80_000);

        // A holder that never releases: a waiter spins until the flag is set.
        let held = Arc::new(RawSpin::new());
        assert_eq!(held.acquire(), Acquired::Owned);
        let owner = held.owner();
        let waiter = {
            let held = held.clone();
            std::thread::spawn(move || held.acquire())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "waiter must block while the flag is clear"
        );
        SCHEDULER_STOPPED.store(true, Ordering::Relaxed);
        let how = waiter.join().unwrap();
        assert_eq!(how, Acquired::Bypassed);
        // The faked acquisition's release leaves the real owner's word alone.
        let h2 = held.clone();
        let released = std::thread::spawn(move || h2.release()).join().unwrap();
        assert_eq!(released, Acquired::Bypassed);
        assert_eq!(held.owner(), owner);

        // Rw lock: a writer held forever; readers and writers get through.
        let rw = Arc::new(RawRwSpin::INIT);
        use lock_api::RawRwLock as _;
        rw.lock_exclusive();
        let rw2 = rw.clone();
        std::thread::spawn(move || {
            rw2.lock_exclusive();
            // SAFETY: (test) pairs with the faked acquisition above.
            unsafe { rw2.unlock_exclusive() };
            rw2.lock_shared();
            // SAFETY: (test) pairs with lock_shared.
            unsafe { rw2.unlock_shared() };
        })
        .join()
        .unwrap();
        assert_eq!(
            rw.state.load(Ordering::Relaxed) & WRITER,
            WRITER,
            "real writer still holds it"
        );
        SCHEDULER_STOPPED.store(false, Ordering::Relaxed);
    }

    #[test]
    fn uncontended_acquire_owns_and_release_clears() {
        let l = RawSpinImpl::<false>::new();
        assert_eq!(l.acquire(), Acquired::Owned);
        assert!(!l.try_acquire());
        assert_eq!(l.release(), Acquired::Owned);
        assert!(!l.is_locked());
    }
}
