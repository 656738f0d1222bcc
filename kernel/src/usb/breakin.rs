//! USB for a break-in: every controller to polled mode from a consistent
//! state and back to interrupt mode on `continue`.
//!
//! The debugger stops the other CPUs with a maskable IPI, and each driver
//! runs under an IRQ-safe lock, so no CPU stopped that way is inside a
//! driver method: the debugger *acquires* each controller's lock (a
//! try-lock; it never spins on it) and keeps it for the whole break-in,
//! instead of taking the driver from under the lock as the panic takeover
//! does. A lock that is held (only a CPU stopped by NMI can hold one) is
//! named and its controller left alone. The driver masks its interrupter
//! and keeps its rings ([`Controller::pause_interrupts`]); `continue`
//! re-arms it ([`Controller::resume_interrupt_mode`]) and drops the keys the
//! debugger did not consume. MSI/MSI-X stays enabled at the PCI level
//! throughout: with IMAN.IE and USBCMD.INTE clear the controller sends no
//! message (xHCI 1.2 §4.17.2), so there is nothing to re-enable.
//!
//! Runs on the debugger's CPU alone, interrupts off, no allocation.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use xhci_kbd::{Controller, DecodedKey};

use super::hal::KernelHal;
use super::{CONTROLLERS, IRQ_PENDING, MAX_CONTROLLERS, PciName, WQ, found};

/// Per controller: this break-in holds its lock (acquired in [`pause`]).
static HELD: [AtomicBool; MAX_CONTROLLERS] = [const { AtomicBool::new(false) }; MAX_CONTROLLERS];
/// Per controller: it was in interrupt mode before [`pause`].
static WAS_INTERRUPT: [AtomicBool; MAX_CONTROLLERS] =
    [const { AtomicBool::new(false) }; MAX_CONTROLLERS];
/// Devices attached during the break-in not announced yet.
static ATTACHED: AtomicU32 = AtomicU32::new(0);
/// The controller [`poll_key`] asks first (round robin, as at panic).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The driver of controller `i` if this break-in holds its lock.
fn held(i: usize) -> Option<&'static mut Controller<KernelHal>> {
    if !HELD[i].load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: this break-in acquired the lock (`pause`) and keeps it until
    // `resume`; only the debugger's CPU runs, and only it uses this.
    unsafe { (*CONTROLLERS[i].data_ptr()).as_mut() }
}

/// Takes every controller's lock (try-lock) and switches it to polled
/// mode; one line per controller whose lock is held by a stopped CPU.
/// Returns how many controllers are used.
pub fn pause(w: &mut impl Write) -> usize {
    let mut n = 0;
    for (i, lock) in CONTROLLERS.iter().enumerate() {
        let Some(mut guard) = lock.try_lock() else {
            // SAFETY: only reads the lock word, for the report.
            let owner = unsafe { lock.raw() }.raw().owner();
            if let Some(f) = found(i) {
                let _ = writeln!(
                    w,
                    "usb {}: not used: its driver lock is held by cpu {} (stopped)",
                    PciName(f.dev),
                    owner.wrapping_sub(1)
                );
            }
            continue;
        };
        let Some(c) = guard.as_mut() else { continue };
        WAS_INTERRUPT[i].store(c.pause_interrupts(), Ordering::Relaxed);
        // Kept locked until `resume` (which unlocks it with `force_unlock`).
        core::mem::forget(guard);
        HELD[i].store(true, Ordering::Relaxed);
        n += 1;
    }
    n
}

/// Polls the held controllers once, in turn, for a key.
pub fn poll_key() -> Option<DecodedKey> {
    let first = NEXT.load(Ordering::Relaxed);
    for k in 0..MAX_CONTROLLERS {
        let i = (first + k) % MAX_CONTROLLERS;
        let Some(c) = held(i) else { continue };
        if c.is_dead() {
            continue;
        }
        let key = c.next_key().or_else(|| {
            let s = c.poll();
            ATTACHED.fetch_add(s.attached, Ordering::Relaxed);
            c.next_key()
        });
        // Ctrl+Alt+Esc at db> means nothing more.
        c.take_break_request();
        if key.is_some() {
            NEXT.store((i + 1) % MAX_CONTROLLERS, Ordering::Relaxed);
            return key;
        }
    }
    None
}

/// Devices attached since the last call, with the keyboards ready on the
/// held controllers (`None`: nothing new).
pub fn take_attached() -> Option<(u32, usize)> {
    let n = ATTACHED.swap(0, Ordering::Relaxed);
    (n > 0).then(|| {
        let keyboards = (0..MAX_CONTROLLERS)
            .filter_map(held)
            .map(|c| usize::from(c.keyboard_stats().keyboards))
            .sum();
        (n, keyboards)
    })
}

/// Runs `f` on every held controller; returns how many there were.
pub fn each_controller(f: &mut dyn FnMut(usize, &Controller<KernelHal>)) -> usize {
    let mut n = 0;
    for i in 0..MAX_CONTROLLERS {
        if let Some(c) = held(i) {
            f(i, c);
            n += 1;
        }
    }
    n
}

/// `continue`: every held controller back to interrupt mode (those that
/// had it), the keys typed at `db> ` and not consumed dropped, the lock
/// released, and the `usb` thread woken once for what was posted while the
/// interrupter was masked. Returns the keys dropped.
pub fn resume() -> usize {
    let mut dropped = 0;
    for (i, lock) in CONTROLLERS.iter().enumerate() {
        let Some(c) = held(i) else { continue };
        if WAS_INTERRUPT[i].load(Ordering::Relaxed) {
            dropped += c.resume_interrupt_mode().keys_discarded;
        } else {
            while c.next_key().is_some() {
                dropped += 1;
            }
        }
        HELD[i].store(false, Ordering::Relaxed);
        // SAFETY: `pause` acquired this lock and forgot its guard; this
        // releases that acquisition (and its interrupt-flag push) once.
        unsafe { lock.force_unlock() };
    }
    IRQ_PENDING.store(true, Ordering::Release);
    WQ.wake_one();
    dropped
}
