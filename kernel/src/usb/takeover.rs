//! Panic mode ([`panic_takeover`]): every other CPU is parked, so a
//! controller's lock may be held by a CPU that will never release it. Each
//! driver is taken out from under its lock without acquiring it (sound only
//! because nothing else runs), its MSI is masked, and `enter_polled_mode`
//! keeps its state when the lock was free (no CPU was inside the driver) or
//! re-derives it when it was held; the console then calls the same `poll()`
//! on each controller in turn ([`panic_poll_key`]). A controller whose
//! driver was never started (early panic) is brought up from scratch in
//! polled mode with memory from the pool reserved at boot; when the pool is
//! used up, the controllers after it are left alone, and the report says so.
//!
//! Everything here is bounded and lock-free: a fixed table of
//! [`MAX_CONTROLLERS`] slots, no allocation.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use xhci_kbd::{Controller, DecodedKey, DeviceState, Left};

use super::hal::{self, DmaSource, KernelHal};
use super::{CONTROLLERS, Found, MAX_CONTROLLERS, PciName, config, found};
use crate::pci;

struct PanicSlots([UnsafeCell<Option<Controller<KernelHal>>>; MAX_CONTROLLERS]);
// SAFETY: only touched by the panic CPU after every other CPU is parked.
unsafe impl Sync for PanicSlots {}
/// Controllers brought up from scratch at panic time.
static PANIC_CONTROLLERS: PanicSlots =
    PanicSlots([const { UnsafeCell::new(None) }; MAX_CONTROLLERS]);
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes every controller over for the panic console (once), then polls
/// until every keyboard is armed ([`settle`]). Prints one line per
/// controller, naming its PCI function, and one line for the keyboards
/// ready.
///
/// # Safety
/// Only on the panic CPU after the other CPUs are parked.
pub unsafe fn panic_takeover(w: &mut impl Write) {
    if TAKEN.swap(true, Ordering::Relaxed) {
        return;
    }
    if (0..MAX_CONTROLLERS).all(|i| found(i).is_none()) {
        let _ = writeln!(
            w,
            "usb: no xHCI controller; keyboard input from serial and PS/2 only"
        );
        return;
    }
    let mut pool_full = false;
    for (i, lock) in CONTROLLERS.iter().enumerate() {
        let Some(f) = found(i) else { continue };
        // SAFETY: the caller guarantees every other CPU is parked, so
        // nothing else can touch this driver or its device, even though
        // the lock may be held by a parked CPU (it will never release it).
        if let Some(c) = unsafe { (*lock.data_ptr()).as_mut() } {
            pci::disable_msi(&f.dev, f.irq_caps);
            // The lock is free only if no CPU was inside the driver when
            // the others stopped (the panic CPU itself included: a panic
            // inside the driver leaves its own token, or POISONED, there).
            let left = if lock.is_locked() {
                Left::Torn
            } else {
                Left::Whole
            };
            let start = crate::time::now_us();
            // SAFETY: one-way switch, from the panic CPU, others parked.
            let report = unsafe { c.enter_polled_mode(left) };
            let us = crate::time::now_us() - start;
            let _ = writeln!(w, "usb {}: polled mode: {report} ({us} us)", PciName(f.dev));
            continue;
        }
        if pool_full {
            let _ = writeln!(
                w,
                "usb {}: not driven: the panic DMA pool ({} KiB) is used up",
                PciName(f.dev),
                hal::PANIC_POOL_SIZE / 1024
            );
            continue;
        }
        // SAFETY: forwarded.
        pool_full = !unsafe { bring_up(i, f, w) };
    }
    // SAFETY: forwarded.
    unsafe { settle(w) };
}

/// Early panic: brings controller `i` up from scratch, polled, on what
/// `prepare` set up at boot (nothing is mapped, assigned or allocated now).
/// Returns false if the panic DMA pool ran out.
///
/// # Safety
/// As [`panic_takeover`].
unsafe fn bring_up(i: usize, f: Found, w: &mut impl Write) -> bool {
    let name = PciName(f.dev);
    if !crate::mm::paging::is_mapped(f.bar, f.size) {
        let _ = writeln!(
            w,
            "usb {name}: xHCI registers at {:#x} not mapped at boot; not driven",
            f.bar
        );
        return true;
    }
    pci::disable_msi(&f.dev, f.irq_caps);
    let hal = KernelHal {
        source: DmaSource::PanicPool,
    };
    let before = hal::panic_pool_used();
    // SAFETY: nothing else uses the controller (never started, others parked).
    match unsafe { Controller::new(hal, f.bar, config(false, &f.dev)) } {
        Ok(c) => {
            let _ = writeln!(
                w,
                "usb {name}: controller started from scratch in polled mode ({} of {} KiB of the panic DMA pool)",
                (hal::panic_pool_used() - before) / 1024,
                hal::PANIC_POOL_SIZE / 1024
            );
            // SAFETY: panic CPU only.
            unsafe { *PANIC_CONTROLLERS.0[i].get() = Some(c) };
            true
        }
        Err(xhci_kbd::Error::NoMemory) => {
            let _ = writeln!(
                w,
                "usb {name}: not driven: the panic DMA pool ({} KiB) is used up",
                hal::PANIC_POOL_SIZE / 1024
            );
            false
        }
        Err(e) => {
            let _ = writeln!(w, "usb {name}: polled bring-up failed: {e}; not driven");
            true
        }
    }
}

/// Devices attached in panic mode that the console has not announced yet.
static ATTACHED_UNANNOUNCED: AtomicU32 = AtomicU32::new(0);

/// Devices attached since the last call, and the keyboards ready now on
/// every controller, for the panic console to announce (`None`: nothing
/// new). Nothing is announced while a device is still being attached on
/// some controller, so one announcement covers what arrived together (a
/// hub and the keyboard behind it) and means the bus has settled.
///
/// # Safety
/// Only on the panic CPU after [`panic_takeover`].
pub unsafe fn panic_take_attached() -> Option<(u32, usize)> {
    if ATTACHED_UNANNOUNCED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let pending = (0..MAX_CONTROLLERS)
        // SAFETY: forwarded.
        .filter_map(|i| unsafe { panic_controller(i) })
        .any(|c| c.attach_pending());
    if pending {
        return None;
    }
    let n = ATTACHED_UNANNOUNCED.swap(0, Ordering::Relaxed);
    // SAFETY: forwarded.
    Some((n, unsafe { keyboards() }))
}

/// Keyboards ready on every controller.
///
/// # Safety
/// As [`panic_take_attached`].
unsafe fn keyboards() -> usize {
    (0..MAX_CONTROLLERS)
        // SAFETY: forwarded.
        .filter_map(|i| unsafe { panic_controller(i) })
        .map(|c| {
            c.devices()
                .filter(|d| d.state == DeviceState::Keyboard)
                .count()
        })
        .sum()
}

/// Bound of [`settle`]: a controller whose keyboards are still not armed
/// after this long is left to the console loop's polls.
const SETTLE_MAX_US: u64 = 2_000_000;

/// Polls every controller until each keyboard attached is armed (its
/// interrupt transfer queued: [`Controller::keyboards_armed`]), at most
/// [`SETTLE_MAX_US`], so that the prompt means "every attached keyboard is
/// armed and its first key echoes". After a takeover that kept the state
/// whole, or one that restarted the endpoints (each restart queues the
/// transfer again before it returns), that holds after the first round of
/// polls: the prompt does not wait for the bus to be quiet. A device still
/// being attached (its debounce, reset or SET_ADDRESS recovery are stages
/// of the driver's `poll()`, none waited out here) is not waited for: the
/// console loop's polls finish it and the console announces it
/// ([`panic_take_attached`]); the line printed here says so.
///
/// # Safety
/// As [`panic_take_attached`].
unsafe fn settle(w: &mut impl Write) {
    let start = crate::time::now_us();
    loop {
        crate::watchdog::pet();
        let mut armed = true;
        for i in 0..MAX_CONTROLLERS {
            // SAFETY: forwarded.
            let Some(c) = (unsafe { panic_controller(i) }) else {
                continue;
            };
            if !c.is_dead() {
                // (a device attached here is counted in the ready line)
                c.poll();
                armed &= c.keyboards_armed();
            }
        }
        if armed {
            break;
        }
        if crate::time::now_us() - start >= SETTLE_MAX_US {
            let _ = writeln!(
                w,
                "usb: a keyboard is still not armed after 2 s; continuing"
            );
            break;
        }
    }
    let pending = (0..MAX_CONTROLLERS)
        // SAFETY: forwarded.
        .filter_map(|i| unsafe { panic_controller(i) })
        .any(|c| c.attach_pending());
    let _ = write!(
        w,
        "usb: {} keyboard(s) ready ({} ms)",
        // SAFETY: forwarded.
        unsafe { keyboards() },
        (crate::time::now_us() - start) / 1000
    );
    if pending {
        let _ = write!(w, "; a device is being attached, announced when ready");
    }
    let _ = writeln!(w);
}

/// The driver of controller `i` in panic mode, if any.
///
/// # Safety
/// Only on the panic CPU after [`panic_takeover`].
pub unsafe fn panic_controller(i: usize) -> Option<&'static mut Controller<KernelHal>> {
    let slot = PANIC_CONTROLLERS.0.get(i)?;
    // SAFETY: forwarded: nothing else runs.
    unsafe {
        if let Some(c) = (*slot.get()).as_mut() {
            return Some(c);
        }
        (*CONTROLLERS[i].data_ptr()).as_mut()
    }
}

/// The controller [`panic_poll_key`] asks first next time: after a key from
/// controller `i`, `i + 1`, so a keyboard with a full queue (or key repeat)
/// cannot starve the others.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Polls the USB keyboards once in panic mode: each controller in turn,
/// starting after the one that gave the last key.
///
/// # Safety
/// As [`panic_controller`].
pub unsafe fn panic_poll_key() -> Option<DecodedKey> {
    let first = NEXT.load(Ordering::Relaxed);
    for n in 0..MAX_CONTROLLERS {
        let i = (first + n) % MAX_CONTROLLERS;
        // SAFETY: forwarded.
        let Some(c) = (unsafe { panic_controller(i) }) else {
            continue;
        };
        if let Some(k) = poll_one(c) {
            NEXT.store((i + 1) % MAX_CONTROLLERS, Ordering::Relaxed);
            return Some(k);
        }
    }
    None
}

fn poll_one(c: &mut Controller<KernelHal>) -> Option<DecodedKey> {
    if c.is_dead() {
        return None;
    }
    if let Some(k) = c.next_key() {
        return Some(k);
    }
    let s = c.poll();
    if s.attached > 0 {
        ATTACHED_UNANNOUNCED.fetch_add(s.attached, Ordering::Relaxed);
    }
    c.next_key()
}

/// Runs `f` on every controller driven in panic mode; returns how many
/// there were.
///
/// # Safety
/// As [`panic_controller`].
pub unsafe fn panic_each_controller(f: &mut dyn FnMut(usize, &Controller<KernelHal>)) -> usize {
    let mut n = 0;
    for i in 0..MAX_CONTROLLERS {
        // SAFETY: forwarded.
        if let Some(c) = unsafe { panic_controller(i) } {
            f(i, c);
            n += 1;
        }
    }
    n
}
