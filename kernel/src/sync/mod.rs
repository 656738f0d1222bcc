//! Kernel locks. One raw primitive, [`raw::RawSpin`], carries every lock:
//! [`SpinLock`] (IRQ-safe), [`Mutex`] (sleeping) and [`RwLock`] are built on
//! `lock_api` around it. Every contended slow path is a cold, non-inlined
//! function that alone reads the panic's `scheduler_stopped` flag: after a
//! panic has stopped the other CPUs, acquisition is faked (FreeBSD r228424,
//! "stop scheduler on panic").

#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod mutex;
pub mod raw;

#[cfg(target_os = "none")]
pub use irq::{SpinLock, SpinLockGuard};
#[cfg(target_os = "none")]
pub use mutex::{Mutex, MutexGuard};
pub use raw::{RawSpin, scheduler_stopped};

/// A reader-writer spin lock on the same panic-aware raw primitive family.
pub type RwLock<T> = lock_api::RwLock<raw::RawRwSpin, T>;
