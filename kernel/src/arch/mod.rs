//! x86_64 architecture support: descriptor tables, traps, APIC, per-CPU
//! data, SMP start, saved registers, TSC calibration.
//!
//! The bottom layer: it names nothing in the kernel but the hardware-free
//! `time`. Where it must call up (a trap into the panic path, the timer into
//! the scheduler, an AP into the scheduler), it calls what the layers above
//! registered at boot: [`trap::set_handler`], [`trap::set_irq_exit`],
//! [`smp::ApHooks`]. `tests/architecture.rs` checks this.

pub mod apic;
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod pat;
pub mod port;
pub mod regs;
pub mod smp;
pub mod trap;
pub mod tsc;

/// Disables interrupts and halts forever (the end state of a parked CPU).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
