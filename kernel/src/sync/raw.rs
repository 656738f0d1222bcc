//! The raw spin lock every kernel lock is built on.
//!
//! Fast path: one `lock cmpxchg` of 0 -> owner (inlined). Slow path:
//! [`RawSpin::lock_contended`], `#[cold]` and `#[inline(never)]`, which spins
//! and, once per iteration, does the single relaxed load of
//! [`SCHEDULER_STOPPED`]. When the flag is set every other CPU is parked
//! forever, so the owner can never release: the acquisition is faked
//! ([`RawSpin::fake_acquisition`]). The lock word records the owner
//! (`cpu index + 1`), so the release of a faked acquisition sees a foreign
//! owner and leaves the word alone.
//!
//! # A faked acquisition of a lock the panic CPU itself holds
//!
//! The owner the faked acquisition finds may be the panic CPU itself: it
//! panicked (or took a fault that panicked) inside the critical section, and
//! the panic path now takes the same lock again. The word then holds the
//! caller's own token, and without care the faked acquisition's release would
//! see that token, take itself for the owner and store 0: the lock would
//! read as free while the data the dead frame was halfway through updating
//! (the frame bitmap, a page table, the heap) stays torn, and every later
//! `try_lock`, `is_locked` or lock report would believe it consistent.
//!
//! So a faked acquisition that finds the caller's own token replaces it with
//! [`POISONED`], a token no CPU or thread ever uses. From then on no release
//! matches the word, neither this one nor the dead frame's (which never runs
//! anyway), so the word is never cleared: `is_locked()` stays true,
//! `try_lock` keeps failing, later acquisitions are faked again, and
//! [`RawSpin::is_poisoned`] tells panic-path code that the data behind the
//! lock may be half updated and must not be trusted. A faked acquisition
//! that finds a parked CPU's token leaves that token (the data may be torn
//! too: `is_locked()` says so, `owner()` names the CPU).

// (`unsafe impl` of the lock_api traits is the only unsafe code here.)

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Set once by the panic path after every other CPU is parked; never cleared.
pub static SCHEDULER_STOPPED: AtomicBool = AtomicBool::new(false);

/// True once the panic path has stopped the other CPUs and the scheduler.
///
/// Host unit tests may also set a flag local to their own test thread
/// (`test_stop::stop_this_thread`), since tests run in parallel and the
/// global flag would stop every test's locks at once; kernel builds read the
/// global flag only.
#[inline(always)]
pub fn scheduler_stopped() -> bool {
    #[cfg(test)]
    if test_stop::stopped_here() {
        return true;
    }
    SCHEDULER_STOPPED.load(Ordering::Relaxed)
}

/// Owner token of a lock whose faked acquisition found the caller's own
/// token (see the module docs): never a CPU token (`1..=MAX_CPUS`), never a
/// sleeping-mutex thread token (at most `0x8000_0000 | cpu`), never 0. No
/// code acquires or releases with it, so a word holding it is never cleared.
pub const POISONED: u32 = u32::MAX;

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

    /// Acquires the lock for owner token `me` (non-zero and not
    /// [`POISONED`]; a CPU for spin locks, a thread for the sleeping mutex,
    /// whose holder may migrate).
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

    /// The contended slow path: spin, reading the panic flag once per round;
    /// after the panic stop, fake the acquisition ([`Self::fake_acquisition`]).
    #[cold]
    #[inline(never)]
    pub fn lock_contended(&self, me: u32) -> Acquired {
        loop {
            if PANIC_AWARE && scheduler_stopped() {
                cold();
                return self.fake_acquisition(me);
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

    /// Fakes an acquisition by `me` after the panic stop (only the panic CPU
    /// runs, so the word cannot change under us).
    ///
    /// - The word names `me`: the panic CPU is re-entering a critical section
    ///   it was inside when it panicked. The word becomes [`POISONED`], so
    ///   neither the matching release nor any later one clears it.
    /// - The word names a parked CPU, or is already [`POISONED`]: left alone;
    ///   the release finds a foreign token and does nothing.
    /// - The word is 0 (it was released between the failed compare-and-swap
    ///   and here): left alone as well; the caller runs alone anyway, and the
    ///   release does nothing.
    ///
    /// Always returns [`Acquired::Bypassed`]: the caller does not own the word.
    #[inline(always)]
    pub fn fake_acquisition(&self, me: u32) -> Acquired {
        let _ = self
            .word
            .compare_exchange(me, POISONED, Ordering::Relaxed, Ordering::Relaxed);
        Acquired::Bypassed
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
    /// foreign owner (a parked CPU) or [`POISONED`] and leaves the word
    /// untouched.
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

    /// True while some CPU holds the lock, and forever once it is
    /// [poisoned](Self::is_poisoned).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    /// True once the panic CPU re-entered this lock while it held it itself
    /// (see the module docs): the data behind it may be half updated by the
    /// frame that panicked, and panic-path code must not trust it.
    pub fn is_poisoned(&self) -> bool {
        self.word.load(Ordering::Relaxed) == POISONED
    }

    /// Owner CPU index + 1, [`POISONED`], or 0 (for the debugger's lock report).
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
///
/// The state has no owner token, so a faked acquisition cannot tell the panic
/// CPU's own hold from a parked CPU's; it does not need to, because a faked
/// acquisition's release never clears what it did not set:
///
/// - A faked write acquisition leaves the state alone and counts itself in
///   `faked_writers`; its release only takes that count back. So the writer
///   bit or reader count of the holder that was stopped (the panic CPU's own
///   dead frame included) stays: the lock keeps reading as held.
/// - A faked read acquisition adds one reader, which its release takes back.
///
/// `faked_writers` is a count, not a flag: with a flag, two nested faked
/// write acquisitions (the panic path re-entering a write-locked structure
/// twice) would clear the flag at the inner release, and the outer release
/// would clear the writer bit of the holder that was stopped mid-update.
pub struct RawRwSpin {
    state: AtomicU32,
    /// Write acquisitions faked and not yet released; while non-zero a write
    /// release only decrements it.
    faked_writers: AtomicU32,
}

impl RawRwSpin {
    #[cold]
    #[inline(never)]
    fn contended(&self, write: bool) -> Acquired {
        loop {
            if scheduler_stopped() {
                cold();
                if write {
                    self.faked_writers.fetch_add(1, Ordering::Relaxed);
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
        faked_writers: AtomicU32::new(0),
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
        // After the panic stop only the panic CPU runs; before it the count
        // is always 0 and this is one load. Releases pair with the most
        // recent acquisitions (guards nest), and a real write acquisition
        // only happens with the state free, so outside any faked one.
        let faked = self.faked_writers.load(Ordering::Relaxed);
        if faked != 0 {
            self.faked_writers.store(faked - 1, Ordering::Relaxed);
            return;
        }
        self.state.fetch_and(!WRITER, Ordering::Release);
    }
}

/// A panic stop local to one host test thread (tests run in parallel, and
/// [`SCHEDULER_STOPPED`] would stop the locks of every test at once).
#[cfg(test)]
pub(crate) mod test_stop {
    use std::cell::Cell;

    std::thread_local!(static STOPPED: Cell<bool> = const { Cell::new(false) });

    /// True while the calling thread holds a [`Stopped`] guard.
    pub(crate) fn stopped_here() -> bool {
        STOPPED.with(Cell::get)
    }

    /// Makes [`super::scheduler_stopped`] true on the calling thread until
    /// the guard drops.
    pub(crate) struct Stopped(());

    impl Drop for Stopped {
        fn drop(&mut self) {
            STOPPED.with(|s| s.set(false));
        }
    }

    /// Stops the world for the calling thread only.
    pub(crate) fn stop_this_thread() -> Stopped {
        STOPPED.with(|s| s.set(true));
        Stopped(())
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
    fn faked_reacquisition_by_the_holder_poisons_the_lock() {
        let l = RawSpin::new();
        // The (future) panic CPU holds the lock: the frame that panics.
        assert_eq!(l.acquire(), Acquired::Owned);
        let me = l.owner();
        let _stop = test_stop::stop_this_thread();
        // The panic path takes it again: faked, and it finds its own token.
        assert_eq!(l.acquire(), Acquired::Bypassed);
        // The faked acquisition's release must not free it...
        assert_eq!(l.release(), Acquired::Bypassed);
        assert!(
            l.is_locked(),
            "faked release freed a lock held by the dead frame"
        );
        assert!(l.is_poisoned(), "own token must become POISONED");
        assert!(!l.try_acquire());
        // ...nor the dead frame's release, nor any later faked pair.
        assert_eq!(l.release_for(me), Acquired::Bypassed);
        assert_eq!(l.acquire(), Acquired::Bypassed);
        assert_eq!(l.release(), Acquired::Bypassed);
        assert_eq!(l.owner(), POISONED);

        // The same through the lock_api guards the kernel uses.
        let m = lock_api::Mutex::<RawSpin, u32>::new(0);
        drop(_stop);
        core::mem::forget(m.lock()); // the dead frame's guard, never dropped
        let _stop = test_stop::stop_this_thread();
        drop(m.lock());
        assert!(m.is_locked());
        assert!(m.try_lock().is_none());
        // SAFETY: (test) only the raw word is read.
        assert!(unsafe { m.raw() }.is_poisoned());
    }

    #[test]
    fn faked_acquisition_of_a_parked_owner_leaves_its_token() {
        let l = Arc::new(RawSpin::new());
        let l2 = l.clone();
        std::thread::spawn(move || assert_eq!(l2.acquire(), Acquired::Owned))
            .join()
            .unwrap();
        let parked = l.owner();
        let _stop = test_stop::stop_this_thread();
        assert_eq!(l.acquire(), Acquired::Bypassed);
        assert_eq!(l.release(), Acquired::Bypassed);
        assert_eq!(l.owner(), parked);
        assert!(!l.is_poisoned());
    }

    #[test]
    fn nested_faked_writers_keep_the_stopped_writer_bit() {
        use lock_api::RawRwLock as _;
        let rw = RawRwSpin::INIT;
        // The frame that panics holds the write lock.
        rw.lock_exclusive();
        let _stop = test_stop::stop_this_thread();
        // The panic path write-locks it twice, nested, and releases both.
        rw.lock_exclusive();
        rw.lock_exclusive();
        // SAFETY: (test) pairs with the inner faked acquisition.
        unsafe { rw.unlock_exclusive() };
        // SAFETY: (test) pairs with the outer faked acquisition.
        unsafe { rw.unlock_exclusive() };
        assert_eq!(
            rw.state.load(Ordering::Relaxed) & WRITER,
            WRITER,
            "a faked writer's release cleared the stopped writer's bit"
        );
        assert!(rw.is_locked());
        // A faked reader inside is balanced too.
        rw.lock_shared();
        // SAFETY: (test) pairs with lock_shared.
        unsafe { rw.unlock_shared() };
        assert_eq!(rw.state.load(Ordering::Relaxed), WRITER);
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
