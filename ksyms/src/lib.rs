//! The kernel's embedded symbol table, so backtraces have names however the
//! kernel was loaded (PVH `-kernel`, a boot loader, anything that loads the
//! `PT_LOAD` segments and nothing else).
//!
//! The kernel's linker script reserves a loaded, file-backed section
//! `.ksyms` holding [`MAGIC`] and zeros. After the kernel is linked, the
//! workspace's `build.rs` reads the ELF's `.symtab` ([`elf::functions`]),
//! encodes the function symbols ([`encode()`]) and writes the table over the
//! section's bytes in the file ([`elf::embed`]): no address in the image
//! moves. The kernel reads the section in place with [`Table`], which
//! bounds-checks every offset, allocates nothing and takes no lock, so the
//! panic path can use it; a corrupt table gives no name, never a fault.
//!
//! [`format`] is the one definition of the layout, shared by both sides.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(feature = "std")]
pub mod elf;
#[cfg(feature = "std")]
mod encode;
pub mod format;
mod table;

#[cfg(feature = "std")]
pub use encode::{EncodeError, Symbol, encode};
pub use format::{HEADER_LEN, MAGIC, RECORD_LEN, VERSION};
pub use table::{ParseError, Table};

#[cfg(all(test, feature = "std"))]
mod tests;
