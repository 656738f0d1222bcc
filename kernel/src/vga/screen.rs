//! The kernel's VGA text console: one [`TextConsole`] (a static, with its
//! 32 KiB shadow of the text window, in `.bss`) over the real window and
//! CRTC.
//!
//! The CRT Controller of a colour VGA (Miscellaneous Output bit 0 set, as
//! in mode 3 with its window at 0xB8000) has its index register at port
//! 0x3D4 and its data register at 0x3D5 (IBM VGA Technical Reference, "CRT
//! Controller Registers"; FreeVGA `crtcreg.htm`). Registers 0Ch/0Dh hold
//! the Start Address and 0Eh/0Fh the Cursor Location, high byte first, both
//! in cells of the window. One 16-bit `out` to 0x3D4 writes the index and
//! then the data byte, as Linux's `write_vga` (vgacon.c, without
//! `SLOW_VGA`) does; QEMU splits it into the two byte writes.

use core::cell::UnsafeCell;

use super::text::{TextConsole, TextDevice, WINDOW_CELLS};

/// The colour text window (identity mapped by the boot stub).
const WINDOW: usize = 0xB8000;
/// The CRTC index register; the data register follows it.
const CRTC_INDEX: u16 = 0x3D4;

/// The window and the CRTC.
struct Vga;

impl TextDevice for Vga {
    fn write_cell(&mut self, cell: usize, value: u16) {
        if cell >= WINDOW_CELLS {
            return;
        }
        // SAFETY: the cell lies in 0xB8000-0xBFFFF, identity mapped and no
        // Rust object (VGA memory, or nothing on a machine without VGA).
        unsafe { ((WINDOW + cell * 2) as *mut u16).write_volatile(value) };
    }

    fn write_crtc(&mut self, index: u8, value: u8) {
        // SAFETY: the CRTC's display registers have no memory-safety effect;
        // on a machine without a VGA the ports are unused and the write is
        // dropped.
        unsafe { crate::arch::port::outw(CRTC_INDEX, u16::from(value) << 8 | u16::from(index)) };
    }
}

struct Slot(UnsafeCell<TextConsole>);

// SAFETY: only `clear` and `write_str` touch the console, and their callers
// serialise them (module docs of `vga`).
unsafe impl Sync for Slot {}

static CONSOLE: Slot = Slot(UnsafeCell::new(TextConsole::new()));

/// Blanks the screen and puts the cursor at the top left (at boot: the
/// firmware's own lines would otherwise show through). Writes the 2000
/// cells of the screen, not the 32 KiB window.
pub fn clear() {
    // SAFETY: callers serialise (module docs): the only reference.
    unsafe { (*CONSOLE.0.get()).clear(&mut Vga) };
}

/// Writes text at the cursor (handles `\n`, `\r` and backspace).
pub fn write_str(s: &str) {
    // SAFETY: callers serialise (module docs): the only reference. A CPU
    // parked by the panic mid-write leaves the cursor anywhere:
    // `TextConsole` clamps it.
    unsafe { (*CONSOLE.0.get()).write_str(&mut Vga, s) };
}
