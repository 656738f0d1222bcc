//! IRQ-safe spin lock: interrupts stay disabled while it is held, so an
//! interrupt handler on the same CPU can never spin on a lock its own CPU holds.
//! Nesting is counted per CPU (push/pop of the interrupt flag).

use core::sync::atomic::Ordering;

use super::raw::RawSpin;
use crate::arch::cpu;

/// Disables interrupts, remembering whether they were enabled (nests).
#[inline(always)]
pub fn push_irq_off() {
    let was = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    let c = cpu::this();
    if c.irq_nest.fetch_add(1, Ordering::Relaxed) == 0 {
        c.irq_saved.store(was, Ordering::Relaxed);
    }
}

/// Undoes one [`push_irq_off`]; re-enables interrupts at the outermost level
/// if they were enabled before.
#[inline(always)]
pub fn pop_irq_off() {
    let c = cpu::this();
    let prev = c.irq_nest.fetch_sub(1, Ordering::Relaxed);
    if prev == 1 && c.irq_saved.load(Ordering::Relaxed) {
        x86_64::instructions::interrupts::enable();
    } else if prev == 0 {
        // Unbalanced pop (only after a faked acquisition on the panic path).
        c.irq_nest.store(0, Ordering::Relaxed);
    }
}

/// [`RawSpin`] that keeps interrupts off while held.
pub struct RawIrqSpin {
    inner: RawSpin,
}

// SAFETY: exclusion comes from `RawSpin` (see its impl); the interrupt flag
// handling does not weaken it.
unsafe impl lock_api::RawMutex for RawIrqSpin {
    #[allow(
        clippy::declare_interior_mutable_const,
        reason = "lock_api's required initialiser"
    )]
    const INIT: Self = Self {
        inner: RawSpin::new(),
    };
    type GuardMarker = lock_api::GuardNoSend;

    #[inline(always)]
    fn lock(&self) {
        push_irq_off();
        self.inner.acquire();
    }

    #[inline(always)]
    fn try_lock(&self) -> bool {
        push_irq_off();
        let ok = self.inner.try_acquire();
        if !ok {
            pop_irq_off();
        }
        ok
    }

    #[inline(always)]
    unsafe fn unlock(&self) {
        self.inner.release();
        pop_irq_off();
    }

    fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }
}

impl RawIrqSpin {
    /// The underlying raw lock (for owner reports).
    pub fn raw(&self) -> &RawSpin {
        &self.inner
    }
}

/// An IRQ-safe spin lock.
pub type SpinLock<T> = lock_api::Mutex<RawIrqSpin, T>;
/// Guard of a [`SpinLock`].
pub type SpinLockGuard<'a, T> = lock_api::MutexGuard<'a, RawIrqSpin, T>;
