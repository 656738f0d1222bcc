//! The kernel's own code as the breakpoint table's [`Text`]: the one
//! [`TABLE`], and the checks an address passes before `int3` goes there.
//!
//! The kernel image is identity mapped with writable 2 MiB pages by the
//! boot stub (`boot/entry.rs`; CR0.WP is set, but the pages are writable),
//! so code is patched in place. Cross-modifying code (Intel SDM Vol. 3A
//! §8.1.3): only one byte is written, and only while every other CPU is
//! stopped (they resume through `iretq`, which serialises). Two cases
//! write with other CPUs running, one byte as Linux's `text_poke_bp` does
//! its first step: the debugger's own CPU patching back the breakpoint it
//! stepped off on its way out ([`super::step`]; a stopped CPU steps off
//! with the world held, [`super::lifecycle::resuming`]), and the lift
//! when that CPU hits one on its way out.

use super::breakpoints::{MAX_BREAKPOINTS, Table, Text};

unsafe extern "C" {
    /// Start of the kernel image, its code first (`linker.ld`).
    static __kernel_start: u8;
    /// End of the kernel's code (`linker.ld`).
    static __text_end: u8;
}

/// Every breakpoint gdb set.
pub static TABLE: Table<MAX_BREAKPOINTS> = Table::new();

/// The kernel's code.
pub struct KernelText;

/// The kernel's code range, `[start, end)`.
pub fn text_range() -> (u64, u64) {
    (
        &raw const __kernel_start as u64,
        &raw const __text_end as u64,
    )
}

impl Text for KernelText {
    fn check(&self, addr: u64) -> Result<(), &'static str> {
        if !crate::command::parse::is_canonical(addr) {
            return Err("not a canonical address");
        }
        let (start, end) = text_range();
        if !(start..end).contains(&addr) {
            return Err("not in the kernel's code");
        }
        if crate::command::debug::readable_prefix(addr, 1) != 1 {
            return Err("not mapped");
        }
        Ok(())
    }

    fn read(&mut self, addr: u64) -> u8 {
        // SAFETY: `check` passed: mapped kernel code.
        unsafe { (addr as *const u8).read_volatile() }
    }

    fn write(&mut self, addr: u64, byte: u8) {
        // SAFETY: `check` passed when the breakpoint was inserted: mapped,
        // writable kernel code (see the module docs); one byte, so a CPU
        // fetching it sees the old or the new byte, never a mix.
        unsafe { (addr as *mut u8).write_volatile(byte) }
    }
}

/// Reads one byte of kernel code, if `addr` is in it and mapped (for the
/// step logic's look at the next instruction).
pub fn code_byte(addr: u64) -> Option<u8> {
    KernelText.check(addr).ok()?;
    Some(KernelText.read(addr))
}
