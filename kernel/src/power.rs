//! Power off and QEMU exit codes.

use crate::arch::port::outl;

/// `isa-debug-exit` I/O port (the runner adds `-device isa-debug-exit,iobase=0xf4`).
const DEBUG_EXIT: u16 = 0xf4;
/// Written for success: QEMU exits with `(0x10 << 1) | 1 = 33`.
pub const EXIT_SUCCESS: u32 = 0x10;
/// Written for failure: QEMU exits with 35.
pub const EXIT_FAILURE: u32 = 0x11;

/// Fault injection (`power.fault=stuck`): power-off does nothing but halt,
/// as on a board whose ACPI power-off fails.
pub static FAULT_STUCK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Exits QEMU through `isa-debug-exit` when present, else powers off via
/// ACPI, else halts.
pub fn poweroff(success: bool) -> ! {
    if FAULT_STUCK.load(core::sync::atomic::Ordering::Relaxed) {
        crate::arch::halt_forever();
    }
    // SAFETY: a write to the debug-exit port; without the device it is ignored.
    unsafe {
        outl(
            DEBUG_EXIT,
            if success { EXIT_SUCCESS } else { EXIT_FAILURE },
        )
    };
    crate::acpi::poweroff();
    crate::arch::halt_forever()
}
