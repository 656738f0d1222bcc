//! gdb's remote serial protocol on COM2 while the debugger is active (the
//! `gdbstub` crate, `no_std`, no allocation): `gdb kernel -ex 'target remote
//! SOCKET'` against the runner's `--gdb SOCKET`.
//!
//! After a panic gdb sees one thread per CPU (thread n = CPU n-1, the panic
//! CPU selected first) with the registers each CPU's stop saved, reads
//! memory through the `mem` command's checks (mapped RAM only; anything
//! else is an error reply, never a fault), and writes nothing. The stop is
//! reported as SIGTRAP. `continue` and `stepi` are answered by a new stop
//! at once in the same place: after a panic nothing runs again.
//!
//! COM2 is probed when the debugger starts ([`start`]); without one (its
//! ports read 0xFF) the stub is off and says nothing. The debugger's loop
//! drives it by calling [`poll`] between its key polls.

pub mod session;
pub mod target;

pub use session::poll;

use crate::pprintln;

/// Probes COM2; if a UART answers, announces the stub. Called by the
/// debugger before its first prompt.
pub fn start() {
    if crate::serial::COM2_UART.init() {
        pprintln!("gdb: remote serial protocol on COM2 (gdb kernel -ex 'target remote ...')");
    }
}
