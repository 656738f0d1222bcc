//! Intel 6300ESB watchdog (PCI 8086:25ab; Intel 6300ESB I/O Controller Hub
//! datasheet §15 "Watchdog Timer"; the register usage follows Linux
//! `drivers/watchdog/i6300esb.c` and QEMU `hw/watchdog/wdt_i6300esb.c`).
//!
//! Found and programmed at boot (timeout, reboot enabled, interrupts off,
//! disabled); armed at panic time and petted between dump chunks and while
//! the panic console waits for keys. When it runs out (timer 1, then timer
//! 2) the board is reset. Panic-time code touches only the memory-mapped
//! reload register and one configuration byte through raw port I/O: no
//! locks, no allocation.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::arch::port::{inb, outb, outl, outw};

/// PCI vendor and device id.
pub const VENDOR: u16 = 0x8086;
/// PCI device id of the 6300ESB watchdog function.
pub const DEVICE: u16 = 0x25ab;
/// Seconds from arming (or the last pet) to the reset.
pub const TIMEOUT_SECS: u32 = 10;

/// Configuration register (16 bits): bit 5 = 1 disables the reboot output,
/// bit 2 = 1 selects the 1 MHz clock, bits 1:0 = timer 1 interrupt type (3 = none).
const CONFIG_REG: u8 = 0x60;
/// Lock register (8 bits): bit 1 enables the timer, bit 0 locks it.
const LOCK_REG: u8 = 0x68;
const LOCK_ENABLE: u8 = 1 << 1;
/// Memory-mapped registers (BAR 0).
const TIMER1: u64 = 0x00;
const TIMER2: u64 = 0x04;
const RELOAD: u64 = 0x0c;
/// Reload register: bit 8 reloads the timers, bit 9 is the timeout status (RW1C).
const RELOAD_BIT: u16 = 1 << 8;
const TIMEOUT_BIT: u16 = 1 << 9;
/// The two-step unlock sequence written to the reload register before each
/// write to a timer or reload register.
const UNLOCK1: u16 = 0x80;
const UNLOCK2: u16 = 0x86;

/// Physical (= virtual) base of BAR 0, 0 if no watchdog.
static BASE: AtomicU64 = AtomicU64::new(0);
/// `0x8000_0000 | bus/device/function << 8`: the CF8 address of the function.
static CF8: AtomicU32 = AtomicU32::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);

fn write16(off: u64, v: u16) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: BAR 0 of the watchdog, mapped uncached at boot; 16 bytes long.
    unsafe { ((base + off) as *mut u16).write_volatile(v) }
}

fn write32(off: u64, v: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as `write16`.
    unsafe { ((base + off) as *mut u32).write_volatile(v) }
}

fn unlock() {
    write16(RELOAD, UNLOCK1);
    write16(RELOAD, UNLOCK2);
}

/// Writes one configuration byte without the PCI lock (panic time: the
/// other CPUs are parked; at boot nobody else touches this function).
fn config_write8(reg: u8, v: u8) {
    let a = CF8.load(Ordering::Relaxed) | (reg as u32 & 0xfc);
    // SAFETY: PCI configuration mechanism #1, the watchdog's own registers.
    unsafe {
        outl(0xCF8, a);
        outb(0xCFC + (reg as u16 & 3), v);
    }
}

fn config_write16(reg: u8, v: u16) {
    let a = CF8.load(Ordering::Relaxed) | (reg as u32 & 0xfc);
    // SAFETY: as `config_write8`.
    unsafe {
        outl(0xCF8, a);
        outw(0xCFC + (reg as u16 & 2), v);
    }
}

fn config_read8(reg: u8) -> u8 {
    let a = CF8.load(Ordering::Relaxed) | (reg as u32 & 0xfc);
    // SAFETY: as `config_write8`.
    unsafe {
        outl(0xCF8, a);
        inb(0xCFC + (reg as u16 & 3))
    }
}

/// Finds and programs the watchdog (disabled). Boot time. Returns true if present.
pub fn init() -> bool {
    let Some(d) = crate::pci::find(|d| d.vendor == VENDOR && d.device == DEVICE) else {
        return false;
    };
    let Some((bar, size)) = crate::pci::mem_bar(&d, 0) else {
        log::warn!("watchdog: i6300esb without a memory BAR 0");
        return false;
    };
    if bar == 0 {
        log::warn!("watchdog: i6300esb BAR 0 not assigned");
        return false;
    }
    crate::pci::enable(&d);
    let base = crate::mm::paging::map_mmio(bar, size.max(16));
    let a = d.address;
    CF8.store(
        0x8000_0000
            | (a.bus() as u32) << 16
            | (a.device() as u32) << 11
            | (a.function() as u32) << 8,
        Ordering::Relaxed,
    );
    BASE.store(base, Ordering::Relaxed);
    // Reboot output on, 1 kHz clock, no timer-1 interrupt.
    config_write16(CONFIG_REG, 0x0003);
    config_write8(LOCK_REG, 0);
    // Clear a previous timeout, then load both stages: each tick is about
    // 1 ms (2^15 PCI clocks), and the reset comes after timer 1 + timer 2.
    unlock();
    write16(RELOAD, TIMEOUT_BIT | RELOAD_BIT);
    let half_ms = TIMEOUT_SECS * 1000 / 2;
    unlock();
    write32(TIMER1, half_ms);
    unlock();
    write32(TIMER2, half_ms);
    unlock();
    write16(RELOAD, RELOAD_BIT);
    log::info!("watchdog: i6300esb at {bar:#x}, {TIMEOUT_SECS} s once armed at panic time");
    true
}

/// True if a watchdog was found at boot.
pub fn present() -> bool {
    BASE.load(Ordering::Relaxed) != 0
}

/// Reloads the timers and enables the watchdog. Panic time.
pub fn arm() {
    if !present() {
        return;
    }
    reload();
    config_write8(LOCK_REG, LOCK_ENABLE);
    ARMED.store(config_read8(LOCK_REG) & LOCK_ENABLE != 0, Ordering::Relaxed);
}

/// Least time between two reloads: a reload is three register writes, each
/// an exit to the emulator under TCG, and callers pet in tight loops (every
/// dump chunk, every console poll); the timeout is [`TIMEOUT_SECS`].
const PET_INTERVAL_US: u64 = 100_000;
/// TSC before which [`pet`] does nothing.
static NEXT_PET: AtomicU64 = AtomicU64::new(0);

/// Reloads the timers, at most every [`PET_INTERVAL_US`] (no effect when
/// not armed).
#[inline]
pub fn pet() {
    if ARMED.load(Ordering::Relaxed)
        && present()
        && crate::time::passed(NEXT_PET.load(Ordering::Relaxed))
    {
        reload();
    }
}

fn reload() {
    unlock();
    write16(RELOAD, RELOAD_BIT);
    NEXT_PET.store(
        crate::time::deadline_after_us(PET_INTERVAL_US),
        Ordering::Relaxed,
    );
}

/// Disables the watchdog (an explicit `halt`).
pub fn disarm() {
    if present() {
        reload();
        config_write8(LOCK_REG, 0);
        ARMED.store(false, Ordering::Relaxed);
    }
}

/// True while armed.
pub fn armed() -> bool {
    ARMED.load(Ordering::Relaxed)
}
