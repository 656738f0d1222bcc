//! COM1, probed at boot: most PCs and laptops today have no serial port, and
//! a missing UART's I/O ports read 0xFF (LSR "data ready" and "THR empty"
//! always set), which would feed 0xFF bytes to the console for ever.
//!
//! The probe follows Linux's 8250 `autoconfig` (drivers/tty/serial/8250/
//! 8250_port.c): the scratch register must keep what is written to it, and
//! in loopback mode (MCR bit 4) the modem status must mirror the modem
//! control outputs (MCR RTS|OUT2 -> MSR CTS|DCD, `0x90` in the high nibble).
//! A port that fails either test is absent everywhere: no output is sent to
//! it, no input is read from it.
//!
//! Every access here is raw port I/O without a lock (callers serialise:
//! the console's output lock in normal operation, the only running CPU after
//! a panic) and every wait is bounded: a UART whose transmitter never
//! empties is given up on and treated as absent from then on.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::arch::port::{inb, outb};

/// COM1's I/O base.
pub const COM1: u16 = 0x3F8;

/// Register offsets (PC16550D datasheet, Table II).
const DATA: u16 = 0;
const MCR: u16 = 4;
const LSR: u16 = 5;
const MSR: u16 = 6;
const SCRATCH: u16 = 7;
/// LSR bit 0: a received byte is waiting.
const LSR_DATA_READY: u8 = 1 << 0;
/// LSR bit 5: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 1 << 5;
/// MCR: loopback, and the two outputs the loopback test mirrors.
const MCR_LOOP: u8 = 1 << 4;
const MCR_RTS: u8 = 1 << 1;
const MCR_OUT2: u8 = 1 << 3;

/// Polls of LSR for "THR empty" before a byte is given up on. At 115200
/// baud a byte takes 87 us; an emulated port read takes about 1 us, a real
/// one about 1-2 us: 20,000 polls are far more than one byte time.
const THR_POLLS: u32 = 20_000;
/// Consecutive timed-out bytes after which the port is treated as absent.
const STUCK_AFTER: u32 = 8;

static PRESENT: AtomicBool = AtomicBool::new(false);
static TIMEOUTS: AtomicU32 = AtomicU32::new(0);

fn read(reg: u16) -> u8 {
    // SAFETY: COM1's registers; reads have no memory effects (reading DATA
    // consumes a received byte, which only the callers below do).
    unsafe { inb(COM1 + reg) }
}

fn write(reg: u16, v: u8) {
    // SAFETY: COM1's registers; no memory effects.
    unsafe { outb(COM1 + reg, v) }
}

/// Probes COM1 and, if a UART answers, initialises it (115200 8N1, FIFOs,
/// receive interrupt, by `uart_16550`). Returns whether it is present.
pub fn init() -> bool {
    let present = probe();
    if present {
        // SAFETY: COM1 is a UART (just probed), owned by the console.
        let mut port = unsafe { uart_16550::SerialPort::new(COM1) };
        port.init();
    }
    PRESENT.store(present, Ordering::Relaxed);
    present
}

/// Linux `autoconfig`'s two tests: the scratch register, then loopback.
fn probe() -> bool {
    for pattern in [0x55, 0xAA] {
        write(SCRATCH, pattern);
        if read(SCRATCH) != pattern {
            return false;
        }
    }
    let saved = read(MCR);
    write(MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
    let status = read(MSR) & 0xF0;
    write(MCR, saved);
    status == 0x90
}

/// True if COM1 answered the probe (and has not been given up on since).
pub fn present() -> bool {
    PRESENT.load(Ordering::Relaxed)
}

/// Sends one byte; waits a bounded time for the transmitter. Lock-free: the
/// caller serialises.
pub fn put(b: u8) {
    if !present() {
        return;
    }
    let mut polls = 0;
    while read(LSR) & LSR_THR_EMPTY == 0 {
        polls += 1;
        if polls >= THR_POLLS {
            if TIMEOUTS.fetch_add(1, Ordering::Relaxed) + 1 >= STUCK_AFTER {
                PRESENT.store(false, Ordering::Relaxed);
            }
            return;
        }
        core::hint::spin_loop();
    }
    TIMEOUTS.store(0, Ordering::Relaxed);
    write(DATA, b);
}

/// Sends text, `\n` as CR LF.
pub fn write_str(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

/// One received byte, if the UART is present and one is waiting. Lock-free:
/// the caller serialises.
pub fn try_get() -> Option<u8> {
    if present() && read(LSR) & LSR_DATA_READY != 0 {
        Some(read(DATA))
    } else {
        None
    }
}
