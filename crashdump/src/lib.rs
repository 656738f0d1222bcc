//! Crash dump format, shared by the kernel (writer) and `savecore` (reader).
//!
//! A dump disk holds a 512-byte [`Header`] in sector 0 and, from byte
//! [`CORE_OFFSET`], an ELF64 core file (`ET_CORE`) that `gdb` opens together
//! with the kernel ELF. The header is written as [`Status::InProgress`] before
//! the first byte of the core and rewritten as [`Status::Complete`] (with the
//! core's checksum) or [`Status::Aborted`] at the end, so a dump cut short by
//! a reset or a hang is recognisable as torn.
//!
//! Everything here is pure: no allocation, no `unsafe`, no I/O.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod elf;
pub mod header;
pub mod segments;

pub use elf::{CpuRegs, Regs};
pub use header::{Checksum, Header, HeaderError, Status};
pub use segments::{Segment, Segments};

/// Disk sector size in bytes.
pub const SECTOR: usize = 512;
/// Byte offset of the ELF core on the dump disk (page aligned).
pub const CORE_OFFSET: u64 = 4096;
/// Page size: `PT_LOAD` segments and their file offsets are page aligned.
pub const PAGE: u64 = 4096;

#[cfg(test)]
extern crate std;
