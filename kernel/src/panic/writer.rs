//! The panic writer: synchronous output to COM1 and the VGA text screen that
//! takes no lock and allocates nothing (the other CPUs are parked, or we are
//! the only one still printing).

use core::fmt::{self, Write};

use crate::arch::port::{inb, outb};
use crate::console::COM1;

/// Lock-free console writer for the panic path.
pub struct PanicWriter;

impl PanicWriter {
    fn put(b: u8) {
        // SAFETY: COM1 line status / data registers; polling THR empty with a
        // bound, so a missing UART cannot hang the panic path.
        unsafe {
            let mut spins = 0u32;
            while inb(COM1 + 5) & 0x20 == 0 && spins < 100_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            outb(COM1, b);
        }
    }
}

impl Write for PanicWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                Self::put(b'\r');
            }
            Self::put(b);
        }
        crate::vga::write_str(s);
        Ok(())
    }
}

/// Prints on the panic writer.
#[macro_export]
macro_rules! pprint {
    ($($arg:tt)*) => ({ let _ = core::fmt::Write::write_fmt(&mut $crate::panic::writer::PanicWriter, format_args!($($arg)*)); });
}

/// Prints a line on the panic writer.
#[macro_export]
macro_rules! pprintln {
    () => ($crate::pprint!("\n"));
    ($($arg:tt)*) => ($crate::pprint!("{}\n", format_args!($($arg)*)));
}
