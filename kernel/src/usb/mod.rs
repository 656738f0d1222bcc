//! USB glue: finds the xHCI controller, runs the driver interrupt-driven in
//! normal operation (the MSI handler acknowledges and wakes the `usb` thread,
//! which calls `poll()` under [`CONTROLLER`]'s lock and feeds decoded keys to
//! the console), and takes it over for the panic console.
//!
//! Panic mode ([`panic_takeover`]): every other CPU is parked, so the lock
//! may be held by a CPU that will never release it. The driver is taken out
//! from under the lock without acquiring it (sound only because nothing else
//! runs), its MSI is masked, and `enter_polled_mode` re-derives its state; the
//! console then calls the same `poll()` in its loop. If the driver was never
//! started (early panic), the controller is brought up from scratch in polled
//! mode with memory from a pool reserved at boot.

pub mod hal;

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use xhci_kbd::{Config, Controller, DecodedKey, KeyCode, Layout};

use crate::pci;
use crate::sched::wait::WaitQueue;
use crate::sync::SpinLock;
use hal::{DmaSource, KernelHal};

/// The driver in normal operation.
pub static CONTROLLER: SpinLock<Option<Controller<KernelHal>>> = SpinLock::new(None);

static DEVICE: SpinLock<Option<pci::Device>> = SpinLock::new(None);
static IRQ_KIND: AtomicU8 = AtomicU8::new(0);
static IRQ_PENDING: AtomicBool = AtomicBool::new(false);
static WQ: WaitQueue = WaitQueue::new();
static LAYOUT: AtomicU32 = AtomicU32::new(0);
/// Longest keyboard polling period in ms (`usb.kbpoll=`), default 1.
static KBPOLL_MS: AtomicU8 = AtomicU8::new(1);
/// Interrupts handled (for `lsusb`).
static IRQS: AtomicU32 = AtomicU32::new(0);

/// xHCI: class 0x0C (serial bus), subclass 0x03 (USB), interface 0x30.
fn is_xhci(d: &pci::Device) -> bool {
    d.class == 0x0c && d.subclass == 0x03 && d.prog_if == 0x30
}

/// Keyboard layout by name (`layout=` on the command line).
pub fn set_layout(name: &str) -> bool {
    match Layout::ALL
        .iter()
        .position(|l| Some(*l) == Layout::from_name(name))
    {
        Some(i) => {
            LAYOUT.store(i as u32, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Longest polling period of USB keyboards, in ms (`usb.kbpoll=` on the
/// command line, 1..=255): the driver polls a keyboard every min(its
/// bInterval, this). Takes effect for keyboards configured afterwards.
pub fn set_kbpoll(ms: u8) {
    KBPOLL_MS.store(ms.max(1), Ordering::Relaxed);
}

fn config(interrupts: bool) -> Config {
    Config {
        layout: Layout::ALL
            .get(LAYOUT.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or(Layout::Us104),
        interrupts,
        keyboard_poll_ms: KBPOLL_MS.load(Ordering::Relaxed),
        ..Config::default()
    }
}

/// The controller's register BAR `(physical address, size)`, mapped at boot
/// by [`prepare`] (0 size: none).
static BAR: SpinLock<(u64, u64)> = SpinLock::new((0, 0));

/// Finds the xHCI controller, enables it, assigns and maps its register BAR
/// (boot, before the early-panic trigger and before the other CPUs start:
/// see `boot::kmain` on PCI changes). Afterwards even a panic that brings
/// the controller up from scratch edits no page table, allocates nothing
/// and touches no PCI BAR: everything it needs is in place.
pub fn prepare() {
    let Some(dev) = pci::scan().into_iter().find(is_xhci) else {
        log::info!("usb: no xHCI controller");
        return;
    };
    pci::enable(&dev);
    let Some((bar, size)) = pci::mem_bar(&dev, 0) else {
        log::error!("usb: xHCI controller without a memory BAR 0");
        return;
    };
    crate::mm::paging::map_mmio(bar, size);
    *DEVICE.lock() = Some(dev);
    *BAR.lock() = (bar, size);
}

/// Starts the driver on the controller [`prepare`] found (boot, before the
/// other CPUs start). Failures are reported; the kernel runs on without USB.
pub fn init() {
    let (Some(dev), (bar, _)) = (*DEVICE.lock(), *BAR.lock()) else {
        return;
    };
    if bar == 0 {
        return;
    }
    let kind = match crate::arch::trap::register_device_handler(irq) {
        Some(v) => pci::setup_interrupt(&dev, v),
        None => pci::IrqKind::None,
    };
    IRQ_KIND.store(kind as u8, Ordering::Relaxed);
    let hal = KernelHal {
        source: DmaSource::Frames,
    };
    // SAFETY: `bar` is the controller's register BAR, which this driver
    // instance alone owns from here on.
    match unsafe { Controller::new(hal, bar, config(kind != pci::IrqKind::None)) } {
        Ok(c) => {
            log::info!(
                "usb: xHCI {:04x}:{:04x} at {:#x}, interrupts {}",
                dev.vendor,
                dev.device,
                bar,
                kind.name()
            );
            *CONTROLLER.lock() = Some(c);
        }
        Err(e) => log::error!("usb: controller start failed: {e}; running without USB"),
    }
}

/// Starts the `usb` thread (boot, once the other CPUs are online). It lives
/// on the last online CPU, away from CPU 0 where the shell and the panic
/// triggers run: a CPU spinning on the driver lock held by a frozen CPU (the
/// `usb-*` triggers) must not be the one that is about to panic.
pub fn start_thread() {
    if CONTROLLER.lock().is_none() {
        return;
    }
    let cpu = crate::arch::cpu::all()
        .iter()
        .rev()
        .find(|c| c.state() == crate::arch::cpu::CpuState::Online)
        .map(|c| c.index());
    crate::sched::spawn_on("usb", cpu, usb_thread);
}

/// Test switch (`panic usb-irq`): panic inside the next xHCI interrupt.
pub static PANIC_IN_IRQ: AtomicBool = AtomicBool::new(false);
static STALL_ENUM: AtomicBool = AtomicBool::new(false);
static ENUM_STALLED: AtomicBool = AtomicBool::new(false);

/// Test switch (`panic usb-enum`): the next enumeration stops for good once
/// the device is addressed, holding the driver lock, as if its CPU froze.
pub fn stall_next_enumeration() {
    STALL_ENUM.store(true, Ordering::SeqCst);
    if let Some(c) = CONTROLLER.lock().as_mut() {
        c.set_enumeration_probe(Some(enumeration_probe));
    }
}

fn enumeration_probe(step: xhci_kbd::EnumerationStep) {
    if step == xhci_kbd::EnumerationStep::Addressed && STALL_ENUM.load(Ordering::SeqCst) {
        ENUM_STALLED.store(true, Ordering::SeqCst);
        // The trigger waits on CPU 0; if enumeration runs there (or there is
        // no other CPU), panic here, in the middle of the enumeration.
        if crate::arch::cpu::current_index() == 0 {
            panic!("test: panic inside the enumeration of a keyboard");
        }
        loop {
            core::hint::spin_loop();
        }
    }
}

/// True once the stalled enumeration is stuck.
pub fn enumeration_stalled() -> bool {
    ENUM_STALLED.load(Ordering::SeqCst)
}

/// MSI/MSI-X/INTx handler: acknowledge and wake the thread.
fn irq(_vector: u8) {
    IRQS.fetch_add(1, Ordering::Relaxed);
    if PANIC_IN_IRQ.swap(false, Ordering::SeqCst) {
        panic!("test: panic inside the xHCI interrupt handler");
    }
    if let Some(mut g) = CONTROLLER.try_lock()
        && let Some(c) = g.as_mut()
    {
        c.ack_interrupt();
    }
    IRQ_PENDING.store(true, Ordering::Release);
    WQ.wake_one();
}

/// Timer hook (CPU 0, every tick): wakes the thread for key repeat and as a
/// safety net against a lost interrupt.
pub fn tick(ticks: u64) {
    static REPEAT: AtomicBool = AtomicBool::new(false);
    let interval = if REPEAT.load(Ordering::Relaxed)
        || IRQ_KIND.load(Ordering::Relaxed) == pci::IrqKind::None as u8
    {
        1
    } else {
        25
    };
    if ticks.is_multiple_of(interval) {
        if let Some(g) = CONTROLLER.try_lock() {
            REPEAT.store(
                g.as_ref().is_some_and(|c| c.repeat_pending()),
                Ordering::Relaxed,
            );
        }
        IRQ_PENDING.store(true, Ordering::Release);
        WQ.wake_one();
    }
}

/// Encodes a decoded key as console input bytes (ANSI sequences for arrows).
pub fn key_bytes(k: DecodedKey, out: &mut [u8; 4]) -> usize {
    let seq: &[u8] = match k {
        DecodedKey::Unicode(c) => return c.encode_utf8(out).len(),
        DecodedKey::RawKey(KeyCode::ArrowUp) => b"\x1b[A",
        DecodedKey::RawKey(KeyCode::ArrowDown) => b"\x1b[B",
        DecodedKey::RawKey(KeyCode::ArrowRight) => b"\x1b[C",
        DecodedKey::RawKey(KeyCode::ArrowLeft) => b"\x1b[D",
        DecodedKey::RawKey(_) => b"",
    };
    out[..seq.len()].copy_from_slice(seq);
    seq.len()
}

fn usb_thread() {
    loop {
        WQ.wait_until(|| IRQ_PENDING.load(Ordering::Acquire));
        IRQ_PENDING.store(false, Ordering::Release);
        let mut buf = [0u8; 64];
        let mut n = 0;
        {
            let mut g = CONTROLLER.lock();
            let Some(c) = g.as_mut() else { return };
            c.poll();
            while n + 4 <= buf.len() {
                let Some(k) = c.next_key() else { break };
                let mut tmp = [0u8; 4];
                let len = key_bytes(k, &mut tmp);
                buf[n..n + len].copy_from_slice(&tmp[..len]);
                n += len;
            }
        }
        if n > 0 {
            crate::console::push_input(&buf[..n]);
        }
    }
}

/// Prints `lsusb`.
pub fn lsusb(w: &mut impl Write, c: &Controller<KernelHal>) {
    let _ = writeln!(w, "{}", c.info());
    let kind = IRQ_KIND.load(Ordering::Relaxed);
    let _ = writeln!(
        w,
        "interrupts: {} ({} handled)",
        irq_name(kind),
        IRQS.load(Ordering::Relaxed)
    );
    let mut any = false;
    for d in c.devices() {
        let _ = writeln!(w, "{d}");
        any = true;
    }
    if !any {
        let _ = writeln!(w, "(no devices)");
    }
}

fn irq_name(k: u8) -> &'static str {
    [
        pci::IrqKind::MsiX,
        pci::IrqKind::Msi,
        pci::IrqKind::IntX,
        pci::IrqKind::None,
    ]
    .into_iter()
    .find(|x| *x as u8 == k)
    .map_or("?", |x| x.name())
}

/// Prints `kbd`.
pub fn kbd(w: &mut impl Write, c: &Controller<KernelHal>) {
    let _ = writeln!(w, "{}", c.keyboard_stats());
}

// ---- panic mode ----

struct PanicSlot(UnsafeCell<Option<Controller<KernelHal>>>);
// SAFETY: only touched by the panic CPU after every other CPU is parked.
unsafe impl Sync for PanicSlot {}
static PANIC_CONTROLLER: PanicSlot = PanicSlot(UnsafeCell::new(None));
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes the driver over for the panic console (once). Prints what was done.
///
/// # Safety
/// Only on the panic CPU after the other CPUs are parked.
pub unsafe fn panic_takeover(w: &mut impl Write) {
    if TAKEN.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: the caller guarantees every other CPU is parked, so nothing
    // else can touch the driver or the device, even though the lock may be
    // held by a parked CPU (it will never release it).
    let normal = unsafe { (*CONTROLLER.data_ptr()).as_mut() };
    // SAFETY: as above; `DEVICE` is written once at boot.
    let dev = unsafe { *DEVICE.data_ptr() };
    if let (Some(c), Some(d)) = (normal, dev) {
        pci::disable_msi(&d);
        // SAFETY: one-way switch, from the panic CPU, others parked.
        let report = unsafe { c.enter_polled_mode() };
        let _ = writeln!(w, "usb: polled mode: {report}");
        settle(c, w, QUIET_AFTER_TAKEOVER_US);
        return;
    }
    // Early panic: bring the controller up from scratch, polled, on what
    // `prepare` set up at boot (nothing is mapped, assigned or allocated now).
    // SAFETY: as above; `BAR` is written once at boot.
    let (bar, size) = unsafe { *BAR.data_ptr() };
    let Some(d) = dev.filter(|_| bar != 0) else {
        let _ = writeln!(
            w,
            "usb: no xHCI controller; keyboard input from serial and PS/2 only"
        );
        return;
    };
    if !crate::mm::paging::is_mapped(bar, size) {
        let _ = writeln!(
            w,
            "usb: xHCI registers at {bar:#x} not mapped at boot; no USB"
        );
        return;
    }
    pci::disable_msi(&d);
    let hal = KernelHal {
        source: DmaSource::PanicPool,
    };
    // SAFETY: nothing else uses the controller (never started, others parked).
    match unsafe { Controller::new(hal, bar, config(false)) } {
        Ok(c) => {
            let _ = writeln!(w, "usb: controller started from scratch in polled mode");
            // SAFETY: panic CPU only.
            let c = unsafe { (*PANIC_CONTROLLER.0.get()).insert(c) };
            settle(c, w, QUIET_FROM_SCRATCH_US);
        }
        Err(e) => {
            let _ = writeln!(
                w,
                "usb: polled bring-up failed: {e}; keyboard input from serial and PS/2 only"
            );
        }
    }
}

/// Devices attached in panic mode that the console has not announced yet.
static ATTACHED_UNANNOUNCED: AtomicU32 = AtomicU32::new(0);

/// Devices attached since the last call, and the keyboards ready now, for
/// the panic console to announce (`None`: nothing new).
///
/// # Safety
/// Only on the panic CPU after [`panic_takeover`].
pub unsafe fn panic_take_attached() -> Option<(u32, usize)> {
    let n = ATTACHED_UNANNOUNCED.swap(0, Ordering::Relaxed);
    if n == 0 {
        return None;
    }
    // SAFETY: forwarded.
    let c = unsafe { panic_controller() }?;
    let keyboards = c
        .devices()
        .filter(|d| d.state == xhci_kbd::DeviceState::Keyboard)
        .count();
    Some((n, keyboards))
}

/// How long the bus must stay quiet after the takeover before the prompt:
/// the takeover's restarted endpoints and a hub's port re-checks post their
/// events within a few milliseconds (a first key typed at once after the
/// prompt was lost without this wait, seen in `tests/panic_usb.rs`).
const QUIET_AFTER_TAKEOVER_US: u64 = 10_000;
/// The same after an early panic's bring-up from scratch, where every device
/// is reset and enumerated from nothing (measured apart, in the bench).
const QUIET_FROM_SCRATCH_US: u64 = 100_000;

/// Polls until the bus is quiet (no event for `quiet_us` and no device being
/// enumerated; at most 2 s), so that the console prompt means "ready for
/// USB input": a keyboard attached or restarted by the takeover is
/// configured before the first key is expected. Devices attached later are
/// announced by the console ([`panic_take_attached`]).
fn settle(c: &mut Controller<KernelHal>, w: &mut impl Write, quiet_us: u64) {
    let start = crate::time::now_us();
    let mut quiet_since = start;
    loop {
        crate::watchdog::pet();
        let s = c.poll();
        let now = crate::time::now_us();
        if s.events > 0
            || c.devices()
                .any(|d| d.state == xhci_kbd::DeviceState::Enumerating)
        {
            quiet_since = now;
        }
        if now - quiet_since >= quiet_us {
            break;
        }
        if now - start >= 2_000_000 {
            let _ = writeln!(w, "usb: bus still busy after 2 s; continuing");
            break;
        }
    }
    let keyboards = c
        .devices()
        .filter(|d| d.state == xhci_kbd::DeviceState::Keyboard)
        .count();
    let _ = writeln!(
        w,
        "usb: {keyboards} keyboard(s) ready ({} ms)",
        (crate::time::now_us() - start) / 1000
    );
}

/// The driver in panic mode, if any.
///
/// # Safety
/// Only on the panic CPU after [`panic_takeover`].
pub unsafe fn panic_controller() -> Option<&'static mut Controller<KernelHal>> {
    // SAFETY: forwarded: nothing else runs.
    unsafe {
        if let Some(c) = (*PANIC_CONTROLLER.0.get()).as_mut() {
            return Some(c);
        }
        (*CONTROLLER.data_ptr()).as_mut()
    }
}

/// Polls the USB keyboard once in panic mode.
///
/// # Safety
/// As [`panic_controller`].
pub unsafe fn panic_poll_key() -> Option<DecodedKey> {
    // SAFETY: forwarded.
    let c = unsafe { panic_controller() }?;
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
