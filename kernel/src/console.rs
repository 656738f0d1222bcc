//! The kernel console: output to COM1 (when the probe found one) and the
//! screen behind one IRQ-safe lock, a line-input queue fed by the serial port
//! and the USB keyboard, and the `log` backend (which also keeps the last
//! lines in a ring buffer for the panic console).
//!
//! A machine without a serial port has the console on the screen alone
//! ([`crate::serial`] is absent there: nothing waits on it, nothing is read
//! from it). Once the panic path has stopped the other CPUs, console output
//! and log records take no lock at all ([`write_unlocked`]).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::serial;
use crate::sync::SpinLock;
use crate::sync::raw::scheduler_stopped;

/// Serialises console output (serial and screen) in normal operation.
static OUTPUT: SpinLock<()> = SpinLock::new(());
/// Serialises draining the UART into the input queue (the receive
/// interrupt and the reader): held from the first byte read to the last
/// byte queued, so two drains on two CPUs cannot reorder the bytes (seen:
/// `poweroff` arrived as `oweroff` then `p`).
static RX: SpinLock<()> = SpinLock::new(());

/// Probes and initialises COM1 (see [`crate::serial`]).
pub fn init() {
    serial::init();
}

/// Writes to serial and the screen without any lock: for the panic path,
/// where exactly one CPU runs. Bounded (see [`serial::put`]). The screen is
/// the VGA text buffer and, once one was set up, the framebuffer console
/// ([`crate::fb`]; on a UEFI machine the VGA text buffer is not shown).
pub fn write_unlocked(s: &str) {
    serial::write_str(s);
    crate::vga::write_str(s);
    crate::fb::write_str(s);
}

/// Runs `f` with console output serialised (the output lock held; none
/// after a panic): for code that draws on one of the screens directly.
pub fn serialised<R>(f: impl FnOnce() -> R) -> R {
    if scheduler_stopped() {
        return f();
    }
    let _g = OUTPUT.lock();
    f()
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if scheduler_stopped() {
            write_unlocked(s);
            return Ok(());
        }
        let _g = OUTPUT.lock();
        write_unlocked(s);
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _ = Console.write_fmt(args);
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

// ---- input queue ----

/// Capacity of the console input queue.
const INPUT_CAP: usize = 256;

struct InputRing {
    buf: [u8; INPUT_CAP],
    head: usize,
    len: usize,
}

static INPUT: SpinLock<InputRing> = SpinLock::new(InputRing {
    buf: [0; INPUT_CAP],
    head: 0,
    len: 0,
});
static INPUT_WQ: crate::sched::wait::WaitQueue = crate::sched::wait::WaitQueue::new();

/// Queues input bytes (from the serial interrupt or the USB keyboard thread).
pub fn push_input(bytes: &[u8]) {
    {
        let mut r = INPUT.lock();
        for &b in bytes {
            if r.len < INPUT_CAP {
                let i = (r.head + r.len) % INPUT_CAP;
                r.buf[i] = b;
                r.len += 1;
            }
        }
    }
    INPUT_WQ.wake_all();
}

fn pop_input() -> Option<u8> {
    let mut r = INPUT.lock();
    if r.len == 0 {
        return None;
    }
    let b = r.buf[r.head];
    r.head = (r.head + 1) % INPUT_CAP;
    r.len -= 1;
    Some(b)
}

fn input_ready() -> bool {
    INPUT.lock().len != 0
}

/// Blocks until an input byte arrives (serial or USB keyboard).
pub fn read_byte() -> u8 {
    loop {
        drain_serial();
        if let Some(b) = pop_input() {
            return b;
        }
        INPUT_WQ.wait_until(input_ready);
    }
}

/// Bytes moved from the UART per [`drain_serial`] call at most (the FIFO
/// holds 16; the rest waits for the next interrupt or read).
const DRAIN_MAX: usize = 64;

/// Moves bytes waiting in the UART into the input queue (bounded), in
/// order.
pub fn drain_serial() {
    if !serial::present() {
        return;
    }
    let _g = RX.lock();
    let mut tmp = [0u8; 16];
    for _ in 0..DRAIN_MAX / tmp.len() {
        let mut n = 0;
        while n < tmp.len() {
            match serial::try_get() {
                Some(b) => {
                    tmp[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            return;
        }
        push_input(&tmp[..n]);
    }
}

/// Serial receive interrupt handler (IOAPIC IRQ 4).
pub fn serial_irq(_vector: u8) {
    drain_serial();
}

// ---- log backend and ring ----

/// Bytes of recent log output kept for the panic console's `log`.
const LOG_RING: usize = 16 * 1024;

/// Ring of the most recent log text.
pub struct LogRing {
    buf: [u8; LOG_RING],
    /// Total bytes ever written (the write position is `written % LOG_RING`).
    written: usize,
}

impl Write for LogRing {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.buf[self.written % LOG_RING] = b;
            self.written += 1;
        }
        Ok(())
    }
}

impl LogRing {
    /// The retained text in two parts (older, newer).
    pub fn parts(&self) -> (&[u8], &[u8]) {
        if self.written <= LOG_RING {
            (&self.buf[..self.written], &[])
        } else {
            let pos = self.written % LOG_RING;
            (&self.buf[pos..], &self.buf[..pos])
        }
    }
}

/// Recent log lines.
pub static LOG: SpinLock<LogRing> = SpinLock::new(LogRing {
    buf: [0; LOG_RING],
    written: 0,
});

static QUIET: AtomicBool = AtomicBool::new(false);

/// Stops echoing `info`/`debug` log records to the console (kept in the ring).
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let t = crate::time::now_us();
        let cpu = crate::arch::cpu::current_index();
        let echo = !QUIET.load(Ordering::Relaxed) || r.level() <= log::Level::Warn;
        if scheduler_stopped() {
            // The panic path: no lock, no wait (one CPU runs).
            // SAFETY: every other CPU is stopped for good; nothing else
            // touches the ring.
            record(unsafe { &mut *LOG.data_ptr() }, t, cpu, r);
            if echo {
                print_record(&mut Unlocked, t, r);
            }
            return;
        }
        record(&mut LOG.lock(), t, cpu, r);
        if echo {
            print_record(&mut Console, t, r);
        }
    }

    fn flush(&self) {}
}

/// A log record as the ring keeps it (with the CPU).
fn record(ring: &mut LogRing, t: u64, cpu: usize, r: &log::Record) {
    let (s, us) = (t / 1_000_000, t % 1_000_000);
    let _ = writeln!(
        ring,
        "[{s:>5}.{us:06}] cpu{cpu} {:<5} {}",
        r.level(),
        r.args()
    );
}

/// A log record as the console shows it.
fn print_record(w: &mut impl Write, t: u64, r: &log::Record) {
    let (s, us) = (t / 1_000_000, t % 1_000_000);
    let _ = writeln!(w, "[{s:>5}.{us:06}] {:<5} {}", r.level(), r.args());
}

/// [`write_unlocked`] as a `fmt::Write`.
struct Unlocked;

impl Write for Unlocked {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_unlocked(s);
        Ok(())
    }
}

static LOGGER: Logger = Logger;

/// Installs the `log` backend.
pub fn init_log() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Lock-free console writer for the panic path: synchronous output to COM1
/// (if the boot probe found one; every wait bounded) and the screen, taking
/// no lock and allocating nothing (the other CPUs are parked, or this is the
/// only one still printing).
pub struct PanicWriter;

impl Write for PanicWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_unlocked(s);
        Ok(())
    }
}

/// Prints on the panic writer.
#[macro_export]
macro_rules! pprint {
    ($($arg:tt)*) => ({ let _ = core::fmt::Write::write_fmt(&mut $crate::console::PanicWriter, format_args!($($arg)*)); });
}

/// Prints a line on the panic writer.
#[macro_export]
macro_rules! pprintln {
    () => ($crate::pprint!("\n"));
    ($($arg:tt)*) => ($crate::pprint!("{}\n", format_args!($($arg)*)));
}
