//! An x86_64 SMP kernel whose USB keyboard still works after it panics.
//!
//! Boot (PVH) -> descriptor tables -> memory -> ACPI -> local APICs -> the
//! scheduler -> application processors -> the shell. A panic stops every
//! other CPU, stops the scheduler, lets locks fake their acquisition and opens
//! the debugger's console (`db>`).
//!
//! The modules form layers that only look down, bottom first: `cmdline`,
//! `lineedit`, `time` (hardware-free); `arch`; `sync`, `mm`; `sched`; the
//! devices (`vga`, `fb`, `serial`, `console`, `acpi`, `pci`, `power`, `watchdog`,
//! `usb`, `dump`); `panic`; `command`, `bench`, `scenarios`; the consoles
//! (`shell`, `debugger`, `gdb`); `boot`, which wires the hooks through which a lower
//! layer calls up (trap table, AP hooks, tick hooks, the panic console).
//! `tests/architecture.rs` in the workspace root checks it; `docs/design.md`
//! ("Layers") explains it.
//!
//! On the host only the hardware-free logic is compiled, for unit tests.

#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

pub mod bootinfo;
pub mod cmdline;
pub mod command;
pub mod fb;
pub mod gdb;
pub mod lineedit;
pub mod pci;
pub mod sched;
pub mod sync;
pub mod vga;

#[cfg(target_os = "none")]
pub mod acpi;
/// On the host, only ACPI's hardware-free AML reader, for its unit tests.
#[cfg(not(target_os = "none"))]
pub mod acpi {
    pub mod aml;
}
#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod debugger;
#[cfg(target_os = "none")]
pub mod dump;
#[cfg(target_os = "none")]
pub mod mm;
#[cfg(target_os = "none")]
pub mod panic;
#[cfg(target_os = "none")]
pub mod power;
#[cfg(target_os = "none")]
pub mod scenarios;
#[cfg(target_os = "none")]
pub mod serial;
#[cfg(target_os = "none")]
pub mod shell;
pub mod time;
#[cfg(target_os = "none")]
pub mod usb;
#[cfg(target_os = "none")]
pub mod watchdog;

#[cfg(target_os = "none")]
pub mod boot;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs under QEMU: use `cargo run` in the workspace root");
}
