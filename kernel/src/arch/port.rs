//! Raw I/O port access (the few ports not covered by a crate driver).

use x86_64::instructions::port::Port;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must be one whose write has no memory-safety effect (device registers
/// like the PIT, CMOS, i8042, isa-debug-exit).
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes a dword to an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// Reads a dword from an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn inl(port: u16) -> u32 {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u32>::new(port).read() }
}

/// Writes a word to an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u16>::new(port).write(value) }
}
