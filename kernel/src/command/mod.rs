//! The one command table of both consoles, `shell> ` and `db> `.
//!
//! Every command is one [`Command`] in [`COMMANDS`]: its name, argument
//! synopsis, one-line help, the consoles that offer it, and (in the kernel
//! build) the function that runs it over a `core::fmt::Write`, told which
//! [`Console`] it runs in (the shell takes locks; the panic console takes none
//! and allocates nothing). Parsing, lookup, argument checks and `help` are
//! pure logic and build on the host for tests; the command bodies reach the
//! kernel and build only for it.

#[cfg(target_os = "none")]
pub mod debug;
pub mod parse;
#[cfg(target_os = "none")]
pub mod shared;
#[cfg(target_os = "none")]
pub mod shell;
pub mod table;

pub use parse::{
    ArgError, Args, Command, Console, Offered, Unknown, lookup, parse_num, write_help,
};
pub use table::COMMANDS;
#[cfg(target_os = "none")]
pub use table::execute;
