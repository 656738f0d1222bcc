//! The panic writer: synchronous output to COM1 (if the boot probe found
//! one; every wait bounded) and the screen that takes no lock and allocates
//! nothing (the other CPUs are parked, or we are the only one still printing).

use core::fmt::{self, Write};

/// Lock-free console writer for the panic path.
pub struct PanicWriter;

impl Write for PanicWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crate::console::write_unlocked(s);
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
