//! USB glue: finds every xHCI controller (up to [`MAX_CONTROLLERS`] PCI
//! functions), runs one driver instance per controller interrupt-driven in
//! normal operation (each controller has its own MSI-X/MSI vector and its
//! own lock in [`CONTROLLERS`]; the handler acknowledges and wakes the `usb`
//! thread, which calls `poll()` on each controller in turn and feeds decoded
//! keys to the console), and takes them all over for the panic console
//! ([`takeover`]).

pub mod breakin;
pub mod hal;
mod takeover;

pub use takeover::{
    panic_controller, panic_each_controller, panic_poll_key, panic_take_attached, panic_takeover,
};

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use xhci_kbd::{Config, Controller, DecodedKey, InterruptAck, KeyCode, KeyboardStats, Layout};

use crate::pci;
use crate::sched::wait::WaitQueue;
use crate::sync::SpinLock;
use hal::{DmaSource, KernelHal};

/// Most xHCI PCI functions driven (AMD boards have 2-4, Intel boards add
/// ASMedia or Thunderbolt ones); further ones are reported and left alone.
pub const MAX_CONTROLLERS: usize = 4;

/// The driver of each controller in normal operation, each under its own
/// lock; index `i` is the `i`-th controller [`prepare`] found.
pub static CONTROLLERS: [SpinLock<Option<Controller<KernelHal>>>; MAX_CONTROLLERS] =
    [const { SpinLock::new(None) }; MAX_CONTROLLERS];

/// A controller [`prepare`] found: its PCI function and its mapped register
/// BAR.
#[derive(Clone, Copy, Debug)]
struct Found {
    dev: pci::Device,
    bar: u64,
    size: u64,
    /// Its MSI and MSI-X capabilities, for the panic's masking.
    irq_caps: pci::caps::IrqCaps,
}

/// Written once by [`prepare`] while only the boot CPU runs, before anything
/// reads it; read without the lock afterwards ([`found`]).
static FOUND: SpinLock<[Option<Found>; MAX_CONTROLLERS]> = SpinLock::new([None; MAX_CONTROLLERS]);

/// Per controller: its interrupt kind (`pci::IrqKind as u8`), vector (0:
/// none) and interrupts handled (for `lsusb`).
static IRQ_KIND: [AtomicU8; MAX_CONTROLLERS] =
    [const { AtomicU8::new(pci::IrqKind::None as u8) }; MAX_CONTROLLERS];
static VECTOR: [AtomicU8; MAX_CONTROLLERS] = [const { AtomicU8::new(0) }; MAX_CONTROLLERS];
static IRQS: [AtomicU32; MAX_CONTROLLERS] = [const { AtomicU32::new(0) }; MAX_CONTROLLERS];
/// Per controller: its INTx route (`lsusb`), set by [`start`].
static ROUTE: [spin::Once<pci::intx::Route>; MAX_CONTROLLERS] =
    [const { spin::Once::new() }; MAX_CONTROLLERS];
/// Per controller: the lock-free acknowledge handle the interrupt handler
/// uses whoever holds the driver lock (an INTx line stays asserted until
/// IMAN.IP is cleared, xHCI 1.2 §4.17.2). Set by [`start`] with interrupts
/// still off at boot, so no interrupt of this controller finds it unset.
static ACK: [spin::Once<InterruptAck>; MAX_CONTROLLERS] =
    [const { spin::Once::new() }; MAX_CONTROLLERS];

static IRQ_PENDING: AtomicBool = AtomicBool::new(false);
static WQ: WaitQueue = WaitQueue::new();
static LAYOUT: AtomicU32 = AtomicU32::new(0);
/// Longest keyboard polling period in ms (`usb.kbpoll=`), default 1.
static KBPOLL_MS: AtomicU8 = AtomicU8::new(1);

/// The `i`-th controller found at boot. Lock-free (the panic path reads it).
fn found(i: usize) -> Option<Found> {
    // SAFETY: `FOUND` is written once, by `prepare` on the only running CPU
    // at boot, before any reader (init, the shell, a panic) runs.
    unsafe { (*FOUND.data_ptr()).get(i).copied().flatten() }
}

/// A PCI function's bus:device.function, as `lsusb` and the reports print it.
#[derive(Clone, Copy, Debug)]
pub struct PciName(pci::Device);

impl fmt::Display for PciName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0.address;
        write!(f, "{:02x}:{:02x}.{}", a.bus(), a.device(), a.function())
    }
}

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

fn config(interrupts: bool, dev: &pci::Device) -> Config {
    Config {
        pci_id: Some((dev.vendor, dev.device)),
        layout: Layout::ALL
            .get(LAYOUT.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or(Layout::Us104),
        interrupts,
        keyboard_poll_ms: KBPOLL_MS.load(Ordering::Relaxed),
        force_32bit_dma: hal::force_32bit_dma(),
        ..Config::default()
    }
}

/// Finds every xHCI controller (up to [`MAX_CONTROLLERS`]), enables it,
/// assigns and maps its register BAR (boot, before the early-panic trigger
/// and before the other CPUs start: see `boot::kmain` on PCI changes).
/// Afterwards even a panic that brings the controllers up from scratch
/// edits no page table, allocates nothing and touches no PCI BAR.
pub fn prepare() {
    let mut table = [None; MAX_CONTROLLERS];
    let (mut n, mut skipped) = (0, 0);
    for dev in pci::scan().into_iter().filter(is_xhci) {
        if n == MAX_CONTROLLERS {
            skipped += 1;
            continue;
        }
        // BAR 0 is sized (and assigned, if the firmware did not) before
        // memory decoding is on, as `pci::mem_bar` requires and Linux's
        // `__pci_read_base` does: sizing writes all-ones to the BAR.
        let Some((bar, size)) = pci::mem_bar(&dev, 0) else {
            log::error!(
                "usb {}: xHCI controller without a memory BAR 0",
                PciName(dev)
            );
            continue;
        };
        pci::enable(&dev);
        pci::switch_intel_ports(&dev);
        crate::mm::paging::map_mmio(bar, size);
        let irq_caps = pci::irq_caps(&dev);
        table[n] = Some(Found {
            dev,
            bar,
            size,
            irq_caps,
        });
        n += 1;
    }
    if n == 0 {
        log::info!("usb: no xHCI controller");
    }
    if skipped > 0 {
        log::warn!("usb: {skipped} more xHCI controller(s) not driven (at most {MAX_CONTROLLERS})");
    }
    *FOUND.lock() = table;
}

/// Sets up each controller's interrupt (vector; MSI-X, MSI or INTx): PCI
/// configuration writes, so at boot before the other CPUs start (see
/// `boot::devices`).
pub fn route_interrupts() {
    for i in 0..MAX_CONTROLLERS {
        if let Some(f) = found(i) {
            route(i, f);
        }
    }
}

/// Starts a driver on each controller [`prepare`] found, on the interrupt
/// [`route_interrupts`] set up (boot, interrupts off). Only the
/// controllers' registers and DMA memory are touched, so it may overlap the
/// other CPUs' start-up. Failures are reported; the kernel runs on without
/// that controller.
pub fn init() {
    let mut failed = [false; MAX_CONTROLLERS];
    for (i, failed) in failed.iter_mut().enumerate() {
        if let Some(f) = found(i) {
            *failed = !start(i, f);
        }
    }
    // Nothing acknowledges a failed controller's interrupt: a
    // level-triggered line left asserted would fire for good, unless a
    // running controller shares it.
    for (i, _) in failed.iter().enumerate().filter(|(_, f)| **f) {
        let Some(r) = ROUTE[i].get() else { continue };
        let shared = (0..MAX_CONTROLLERS).any(|j| {
            CONTROLLERS[j].lock().is_some() && ROUTE[j].get().is_some_and(|o| o.gsi == r.gsi)
        });
        if !shared {
            crate::arch::apic::mask_gsi(r.gsi);
        }
    }
}

fn route(i: usize, f: Found) {
    let msi = !pci::quirks::msi_broken(f.dev.vendor, f.dev.device);
    if !msi {
        log::info!(
            "usb {}: MSI is broken on this controller (Linux XHCI_BROKEN_MSI): INTx",
            PciName(f.dev)
        );
    }
    let irq = match crate::arch::trap::register_device_handler(irq) {
        Some(v) => {
            VECTOR[i].store(v, Ordering::Relaxed);
            pci::setup_interrupt(&f.dev, v, msi)
        }
        None => pci::Interrupt {
            kind: pci::IrqKind::None,
            route: None,
        },
    };
    IRQ_KIND[i].store(irq.kind as u8, Ordering::Relaxed);
    if let Some(r) = irq.route {
        ROUTE[i].call_once(|| r);
    }
}

/// Starts controller `i`; false if it failed (reported).
fn start(i: usize, f: Found) -> bool {
    let kind = irq_kind(IRQ_KIND[i].load(Ordering::Relaxed));
    let hal = KernelHal {
        source: DmaSource::Frames,
    };
    let config = config(kind != pci::IrqKind::None, &f.dev);
    // SAFETY: `f.bar` is this controller's register BAR, which this driver
    // instance alone owns from here on.
    match unsafe { Controller::new(hal, f.bar, config) } {
        Ok(c) => {
            // SAFETY: the BAR was mapped by `prepare` and is never unmapped.
            ACK[i].call_once(|| unsafe { c.interrupt_ack() });
            log::info!(
                "usb: xHCI {:04x}:{:04x} at {:#x}, interrupts {}, PCI {}",
                f.dev.vendor,
                f.dev.device,
                f.bar,
                IrqName(kind, ROUTE[i].get().copied()),
                PciName(f.dev)
            );
            *CONTROLLERS[i].lock() = Some(c);
            true
        }
        Err(e) => {
            log::error!(
                "usb {}: controller start failed: {e}; running without it",
                PciName(f.dev)
            );
            false
        }
    }
}

/// An interrupt mode as the boot line and `lsusb` print it: `MSI-X`, `MSI`,
/// `INTx pin N, level, active-low, <how found>` or `none`.
struct IrqName(pci::IrqKind, Option<pci::intx::Route>);

impl fmt::Display for IrqName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(r) if self.0 == pci::IrqKind::IntX => write!(f, "INTx {r}"),
            _ => f.write_str(self.0.name()),
        }
    }
}

/// Starts the `usb` thread (boot, once the other CPUs are online). It lives
/// on the last online CPU, away from CPU 0 where the shell and the panic
/// triggers run: a CPU spinning on a driver lock held by a frozen CPU (the
/// `usb-*` triggers) must not be the one that is about to panic.
pub fn start_thread() {
    if CONTROLLERS.iter().all(|c| c.lock().is_none()) {
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

/// Sleeps until no controller has raised an interrupt for `quiet_us`
/// (the keyboards' keys all up and reported), at most `bound_us`.
pub fn wait_quiet(quiet_us: u64, bound_us: u64) {
    let total = || IRQS.iter().map(|n| n.load(Ordering::Relaxed)).sum::<u32>();
    let end = crate::time::deadline_after_us(bound_us);
    let mut last = total();
    let mut since = crate::time::deadline_after_us(quiet_us);
    while !crate::time::passed(end) && !crate::time::passed(since) {
        crate::sched::sleep_us(10_000);
        let now = total();
        if now != last {
            last = now;
            since = crate::time::deadline_after_us(quiet_us);
        }
    }
}
static STALL_ENUM: AtomicBool = AtomicBool::new(false);
static ENUM_STALLED: AtomicBool = AtomicBool::new(false);

/// Test switch (`panic usb-enum`): the next enumeration (on any controller)
/// stops for good once the device is addressed, holding that controller's
/// driver lock, as if its CPU froze.
pub fn stall_next_enumeration() {
    STALL_ENUM.store(true, Ordering::SeqCst);
    for c in &CONTROLLERS {
        if let Some(c) = c.lock().as_mut() {
            c.set_enumeration_probe(Some(enumeration_probe));
        }
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

/// MSI/MSI-X/INTx handler: acknowledge the controller(s) behind `vector`
/// and wake the thread. INTx lines may be shared, so an INTx interrupt
/// acknowledges every controller on INTx (the handle only clears what is
/// set) and counts for each of them.
///
/// The acknowledgement goes through the lock-free [`InterruptAck`], never
/// the driver lock, which the `usb` thread holds while it polls (and a
/// frozen CPU may hold for good): with a level-triggered INTx an
/// unacknowledged IMAN.IP keeps the line asserted and the interrupt fires
/// again right after the EOI (xHCI 1.2 §4.17.2; with MSI/MSI-X the
/// controller has cleared IP itself, §4.17.5, and this is harmless).
/// `trap_dispatch` sends the EOI after this returns, so the device is
/// acknowledged first, as a level-triggered IOAPIC input requires.
fn irq(vector: u8) {
    if PANIC_IN_IRQ.swap(false, Ordering::SeqCst) {
        panic!("test: panic inside the xHCI interrupt handler");
    }
    let intx = pci::IrqKind::IntX as u8;
    for i in 0..MAX_CONTROLLERS {
        let kind = IRQ_KIND[i].load(Ordering::Relaxed);
        if VECTOR[i].load(Ordering::Relaxed) != vector && kind != intx {
            continue;
        }
        // Every delivery counts, as /proc/interrupts counts a line: an
        // interrupt storm shows, whether or not this controller raised it.
        IRQS[i].fetch_add(1, Ordering::Relaxed);
        if let Some(ack) = ACK[i].get() {
            ack.acknowledge();
        }
    }
    IRQ_PENDING.store(true, Ordering::Release);
    WQ.wake_one();
}

/// Timer hook (CPU 0, every tick): wakes the thread for key repeat and as a
/// safety net against a lost interrupt (every tick if some controller has no
/// interrupt at all).
pub fn tick(ticks: u64) {
    static REPEAT: AtomicBool = AtomicBool::new(false);
    let no_irq = (0..MAX_CONTROLLERS).any(|i| {
        found(i).is_some() && IRQ_KIND[i].load(Ordering::Relaxed) == pci::IrqKind::None as u8
    });
    let interval = if REPEAT.load(Ordering::Relaxed) || no_irq {
        1
    } else {
        25
    };
    if ticks.is_multiple_of(interval) {
        let mut repeat = false;
        for c in &CONTROLLERS {
            if let Some(g) = c.try_lock() {
                repeat |= g.as_ref().is_some_and(|c| c.timer_pending());
            }
        }
        REPEAT.store(repeat, Ordering::Relaxed);
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
        for lock in &CONTROLLERS {
            let mut buf = [0u8; 64];
            let mut n = 0;
            let brk;
            {
                let mut g = lock.lock();
                let Some(c) = g.as_mut() else { continue };
                c.poll();
                brk = c.take_break_request();
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
            // Ctrl+Alt+Esc: break in now that the driver lock is released
            // (the debugger takes that lock itself).
            if brk {
                crate::arch::trap::request_break(crate::arch::trap::BREAK_KEYBOARD);
            }
        }
    }
}

/// Runs `f` on every driven controller in normal mode, each under its own
/// lock in turn; returns how many there were.
pub fn each_controller(f: &mut dyn FnMut(usize, &Controller<KernelHal>)) -> usize {
    let mut n = 0;
    for (i, lock) in CONTROLLERS.iter().enumerate() {
        if let Some(c) = lock.lock().as_ref() {
            f(i, c);
            n += 1;
        }
    }
    n
}

/// Prints `lsusb` for controller `i`: a header line naming its PCI function,
/// its interrupts, then its devices.
pub fn lsusb(w: &mut impl Write, i: usize, c: &Controller<KernelHal>) {
    if let Some(f) = found(i) {
        let _ = writeln!(
            w,
            "controller {} ({:04x}:{:04x} at {:#x}):",
            PciName(f.dev),
            f.dev.vendor,
            f.dev.device,
            f.bar
        );
    }
    let _ = writeln!(w, "{}", c.info());
    let _ = writeln!(
        w,
        "interrupts: {} ({} handled)",
        IrqName(
            irq_kind(IRQ_KIND[i].load(Ordering::Relaxed)),
            ROUTE[i].get().copied()
        ),
        IRQS[i].load(Ordering::Relaxed)
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

fn irq_kind(k: u8) -> pci::IrqKind {
    [pci::IrqKind::MsiX, pci::IrqKind::Msi, pci::IrqKind::IntX]
        .into_iter()
        .find(|x| *x as u8 == k)
        .unwrap_or(pci::IrqKind::None)
}

/// Prints `kbd`: the keyboards of every controller summed up (layout,
/// repeat and LEDs of the first), then, with several controllers, one line
/// per controller.
pub fn kbd(w: &mut impl Write, stats: &[Option<KeyboardStats>; MAX_CONTROLLERS]) {
    let mut each = stats
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, (*s)?)));
    let Some((_, mut total)) = each.next() else {
        return;
    };
    for (_, s) in each {
        total.keyboards = total.keyboards.saturating_add(s.keyboards);
        total.reports = total.reports.wrapping_add(s.reports);
        total.rollover_reports = total.rollover_reports.wrapping_add(s.rollover_reports);
        total.transfer_errors = total.transfer_errors.wrapping_add(s.transfer_errors);
        total.keys_queued = total.keys_queued.wrapping_add(s.keys_queued);
        total.keys_dropped = total.keys_dropped.wrapping_add(s.keys_dropped);
        total.keys_pending = total.keys_pending.wrapping_add(s.keys_pending);
    }
    let _ = writeln!(w, "{total}");
    if stats.iter().flatten().count() < 2 {
        return;
    }
    for (i, s) in stats.iter().enumerate() {
        if let (Some(s), Some(f)) = (s, found(i)) {
            let _ = writeln!(
                w,
                "  controller {}: {} keyboard(s), {} reports, {} keys",
                PciName(f.dev),
                s.keyboards,
                s.reports,
                s.keys_queued
            );
        }
    }
}
