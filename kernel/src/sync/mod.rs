//! Kernel locks. One raw primitive, [`raw::RawSpin`], carries every lock:
//! `SpinLock` (IRQ-safe) and [`RwLock`] are built on `lock_api` around it
//! here, the sleeping `Mutex` in the scheduler (it blocks on a wait queue).
//! Every contended slow path is a cold, non-inlined function that alone reads the panic's `scheduler_stopped` flag: after a
//! panic has stopped the other CPUs, acquisition is faked (FreeBSD r228424,
//! "stop scheduler on panic").

#[cfg(target_os = "none")]
pub mod irq;
pub mod raw;

#[cfg(target_os = "none")]
pub use irq::{SpinLock, SpinLockGuard};
pub use raw::{RawSpin, scheduler_stopped};

/// A reader-writer spin lock on the same panic-aware raw primitive family.
pub type RwLock<T> = lock_api::RwLock<raw::RawRwSpin, T>;
