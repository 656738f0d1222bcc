//! The UARTs: COM1 (the console) and COM2 (gdb's remote serial protocol,
//! [`crate::gdb`]), both probed at boot. Most PCs and laptops today have
//! no serial port, and a missing UART's I/O ports read 0xFF (LSR "data
//! ready" and "THR empty" always set), which would feed 0xFF bytes to the
//! console for ever.
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
/// COM2's I/O base.
pub const COM2: u16 = 0x2F8;

/// Register offsets (PC16550D datasheet, Table II).
const DATA: u16 = 0;
const MCR: u16 = 4;
const LSR: u16 = 5;
const MSR: u16 = 6;
const SCRATCH: u16 = 7;
/// LSR bit 0: a received byte is waiting.
const LSR_DATA_READY: u8 = 1 << 0;
/// LSR bit 4: Break Interrupt, a BREAK condition was received (the byte
/// with it is a 0 that was not sent).
const LSR_BREAK: u8 = 1 << 4;
/// IER: received data available, and receiver line status (which a BREAK
/// raises even when the FIFO trigger level is not reached).
const IER: u16 = 1;
const IER_RX_AND_LINE_STATUS: u8 = 0x01 | 0x04;
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

/// One 16550-compatible UART at a fixed I/O base: probed, then sent to and
/// read from without locks and with bounded waits.
pub struct Uart {
    base: u16,
    /// Answered the probe.
    probed: AtomicBool,
    /// Answered the probe and not given up on since.
    present: AtomicBool,
    timeouts: AtomicU32,
}

/// The console's UART.
pub static COM1_UART: Uart = Uart::new(COM1);
/// The second UART, gdb's ([`crate::gdb`]).
pub static COM2_UART: Uart = Uart::new(COM2);

impl Uart {
    const fn new(base: u16) -> Self {
        Self {
            base,
            probed: AtomicBool::new(false),
            present: AtomicBool::new(false),
            timeouts: AtomicU32::new(0),
        }
    }

    fn read(&self, reg: u16) -> u8 {
        // SAFETY: a UART register of a standard COM port; reads have no
        // memory effects (reading DATA consumes a received byte, which only
        // the callers below do).
        unsafe { inb(self.base + reg) }
    }

    fn write(&self, reg: u16, v: u8) {
        // SAFETY: a UART register of a standard COM port; no memory effects.
        unsafe { outb(self.base + reg, v) }
    }

    /// Probes the port and, if a UART answers, initialises it (115200 8N1,
    /// FIFOs, receive interrupt, by `uart_16550`). Returns whether it is
    /// present.
    pub fn init(&self) -> bool {
        let present = self.probe();
        if present {
            // SAFETY: a UART (just probed), owned by its one user (the
            // console for COM1, the debugger for COM2).
            let mut port = unsafe { uart_16550::SerialPort::new(self.base) };
            port.init();
        }
        self.timeouts.store(0, Ordering::Relaxed);
        self.probed.store(present, Ordering::Relaxed);
        self.present.store(present, Ordering::Relaxed);
        present
    }

    /// Linux `autoconfig`'s two tests: the scratch register, then loopback.
    fn probe(&self) -> bool {
        for pattern in [0x55, 0xAA] {
            self.write(SCRATCH, pattern);
            if self.read(SCRATCH) != pattern {
                return false;
            }
        }
        let saved = self.read(MCR);
        self.write(MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
        let status = self.read(MSR) & 0xF0;
        self.write(MCR, saved);
        status == 0x90
    }

    /// True if the port answered its probe (given up on since or not).
    pub fn probed(&self) -> bool {
        self.probed.load(Ordering::Relaxed)
    }

    /// True if the port answered the probe and has not been given up on.
    pub fn present(&self) -> bool {
        self.present.load(Ordering::Relaxed)
    }

    /// Takes a port given up on (its transmitter stayed full) back into
    /// use, if it answered the probe: for a reader that stopped reading
    /// for a while (a suspended gdb) and may read again.
    pub fn revive(&self) {
        if self.probed.load(Ordering::Relaxed) && !self.present() {
            self.timeouts.store(0, Ordering::Relaxed);
            self.present.store(true, Ordering::Relaxed);
        }
    }

    /// Sends one byte; waits a bounded time for the transmitter. Lock-free:
    /// the caller serialises.
    pub fn put(&self, b: u8) {
        if !self.present() {
            return;
        }
        let mut polls = 0;
        while self.read(LSR) & LSR_THR_EMPTY == 0 {
            polls += 1;
            if polls >= THR_POLLS {
                if self.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= STUCK_AFTER {
                    self.present.store(false, Ordering::Relaxed);
                }
                return;
            }
            core::hint::spin_loop();
        }
        self.timeouts.store(0, Ordering::Relaxed);
        self.write(DATA, b);
    }

    /// One received byte, if the UART is present and one is waiting.
    /// Lock-free: the caller serialises. A BREAK's 0 byte is not returned:
    /// on COM1 it asks to break into the debugger (PC16550D LSR bit 4),
    /// unless the debugger or the panic path already runs.
    pub fn try_get(&self) -> Option<u8> {
        // A FIFO's worth of BREAK bytes at most.
        for _ in 0..16 {
            if !self.present() {
                return None;
            }
            let lsr = self.read(LSR);
            if lsr & LSR_DATA_READY == 0 {
                return None;
            }
            let b = self.read(DATA);
            if lsr & LSR_BREAK == 0 {
                return Some(b);
            }
            if self.base == COM1
                && !crate::sched::freeze::frozen()
                && !crate::sync::scheduler_stopped()
            {
                crate::arch::trap::request_break(crate::arch::trap::BREAK_SERIAL);
            }
        }
        None
    }
}

/// Probes COM1 and, if a UART answers, initialises it, with the line
/// status interrupt on too (a BREAK is a break-in). Returns whether it is
/// present.
pub fn init() -> bool {
    let present = COM1_UART.init();
    if present {
        COM1_UART.write(IER, IER_RX_AND_LINE_STATUS);
    }
    present
}

/// True if COM1 answered the probe (and has not been given up on since).
pub fn present() -> bool {
    COM1_UART.present()
}

/// Sends one byte to COM1 (see [`Uart::put`]).
pub fn put(b: u8) {
    COM1_UART.put(b)
}

/// Sends text to COM1, `\n` as CR LF.
pub fn write_str(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

/// One received byte from COM1 (see [`Uart::try_get`]).
pub fn try_get() -> Option<u8> {
    COM1_UART.try_get()
}
