//! The stub's life around the debugger's: installed at boot, told when the
//! debugger is entered and when it resumes the world.

use super::hooks::{self, Cause, Debugger};
use super::step::{self, Purpose};
use super::text::{KernelText, TABLE};
use crate::arch::cpu;
use crate::pprintln;
use crate::serial::COM2_UART;

/// At boot: the `#BP`/`#DB` handlers (after the panic path's exception
/// handler, which they fall back to), the debugger the stub serves, and
/// COM2's probe (so gdb can break in while the kernel runs).
pub fn install(debugger: &'static Debugger) {
    hooks::set_debugger(debugger);
    super::traps::install();
    COM2_UART.init();
}

/// The debugger starts its loop (a panic or a break-in): breakpoints are
/// lifted (after a panic for good, so the code gdb reads is the real
/// one), and the stub is announced if COM2 answered.
pub fn start() {
    TABLE.lift(&mut KernelText);
    if !COM2_UART.probed() {
        COM2_UART.init();
    }
    if COM2_UART.present() {
        pprintln!("gdb: remote serial protocol on COM2 (gdb kernel -ex 'target remote ...')");
    }
}

/// The debugger was entered on this CPU for `cause` (`None`: a break-in of
/// its own): breakpoints lifted, and gdb, if it waits for a stop, is told
/// at the next poll. Call with every other CPU stopped.
pub fn entered(cause: Option<Cause>) {
    TABLE.lift(&mut KernelText);
    super::session::entered(cpu::current_index(), cause);
}

/// The debugger is about to resume the world (`Some(cpu)`: that CPU
/// steps, its step armed by gdb's target). Every other CPU stopped right
/// on a breakpoint first steps off it with that breakpoint lifted (else it
/// would hit it again at once; gdb does this itself, a `db> continue`
/// does not); then every breakpoint is patched in. Call with every other
/// CPU stopped.
pub fn resuming(step_cpu: Option<usize>) {
    if let Some(d) = hooks::debugger() {
        for c in cpu::all() {
            let index = c.index();
            if Some(index) == step_cpu || step::pending(index) {
                continue;
            }
            let Some(f) = (d.frame)(index) else { continue };
            // SAFETY: the debugger's live frame of a stopped CPU, used by
            // this CPU alone until the world resumes (contract above).
            let f = unsafe { &mut *f };
            if TABLE.contains(f.rip) {
                step::arm(index, f, Purpose::Continue);
            }
        }
    }
    TABLE.arm(&mut KernelText);
}
