//! gdb's remote serial protocol on COM2 (the `gdbstub` crate, `no_std`, no
//! allocation): `gdb kernel -ex 'target remote SOCKET'` against the
//! runner's `--gdb SOCKET`.
//!
//! gdb sees one thread per CPU (thread n = CPU n-1, the debugger's CPU
//! selected first) with its registers, reads memory through the `mem`
//! command's checks (mapped RAM only; anything else is an error reply,
//! never a fault), and never writes memory. After a panic the stop is
//! SIGTRAP, and `continue` and `stepi` are answered by a new stop at once
//! in the same place: nothing runs again. After a break-in gdb drives the
//! machine: `continue`, `stepi` of one CPU, software breakpoints
//! ([`breakpoints`], `traps`), register writes, Ctrl-C.
//!
//! COM2 is probed at boot (`install`); without one (its ports read 0xFF)
//! the stub is off and says nothing. The debugger's loop drives it by
//! calling `poll` between its key polls, and tells it when it is entered
//! and when it resumes the world (`entered`, `resuming`); while the
//! world runs CPU 0's tick peeks at COM2 (`tick`).

pub mod breakpoints;
#[cfg(target_os = "none")]
pub mod hooks;
#[cfg(target_os = "none")]
pub mod lifecycle;
#[cfg(target_os = "none")]
pub mod session;
#[cfg(target_os = "none")]
pub mod step;
#[cfg(target_os = "none")]
pub mod target;
#[cfg(target_os = "none")]
pub mod text;
#[cfg(target_os = "none")]
pub mod traps;

#[cfg(target_os = "none")]
pub use hooks::{Cause, Debugger};
#[cfg(target_os = "none")]
pub use lifecycle::{entered, install, resuming, start};
#[cfg(target_os = "none")]
pub use session::{poll, tick};
