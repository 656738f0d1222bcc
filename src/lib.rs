//! Host side of the project: the QEMU command line shared by the runner and
//! the tests, a small QMP client, and the test harness that types on the USB
//! keyboard and watches the serial console.

pub mod bench;
pub mod bochs;
pub mod bochs_cli;
pub mod harness;
pub mod image;
pub mod matrix;
pub mod matrix_cli;
pub mod ocr;
pub mod qemu;
pub mod qmp;
pub mod report;
pub mod savecore;

/// Path of the kernel ELF built by `build.rs`.
pub const KERNEL_ELF: &str = env!("KERNEL_ELF");
