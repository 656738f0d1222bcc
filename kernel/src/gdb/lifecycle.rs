//! The stub's life around the debugger's: installed at boot, told when the
//! debugger is entered and when it resumes the world.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::hooks::{self, Cause, Debugger};
use super::step::{self, Purpose};
use super::text::{KernelText, TABLE};
use crate::arch::cpu;
use crate::pprintln;
use crate::serial::COM2_UART;

/// Entries of the debugger so far ([`entered`]).
static ENTRIES: AtomicU32 = AtomicU32::new(0);
/// The CPU that last resumed the world ([`resuming`]).
static RESUMER: AtomicU32 = AtomicU32::new(u32::MAX);
/// Breakpoints were lifted because the debugger's own CPU hit one on its
/// way out ([`hit_on_the_way_out`]); said at the next entry.
static LIFTED_ON_EXIT: AtomicBool = AtomicBool::new(false);

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
    let me = cpu::current_index();
    say_others_on_breakpoints(me);
    ENTRIES.fetch_add(1, Ordering::AcqRel);
    if LIFTED_ON_EXIT.swap(false, Ordering::AcqRel) {
        pprintln!(
            "gdb: a breakpoint was hit on the debugger's own way out; breakpoints were lifted until this stop"
        );
    }
    super::session::entered(me, cause);
}

/// Names every other CPU held right on a breakpoint: it hit one too (as
/// this CPU entered) or stopped just before one; it hits it once the world
/// resumes.
fn say_others_on_breakpoints(me: usize) {
    let Some(d) = hooks::debugger() else { return };
    for c in cpu::all().iter().filter(|c| c.index() != me) {
        let Some(f) = (d.frame)(c.index()) else {
            continue;
        };
        // SAFETY: a held CPU's live frame, read while it is held (the
        // world is stopped, contract of `entered`).
        let rip = unsafe { (*f).rip };
        if TABLE.contains(rip) {
            pprintln!(
                "gdb: cpu {} is held on a breakpoint too ({rip:#x})",
                c.index()
            );
        }
    }
}

/// How many times the debugger was entered (for `#BP`: did its `enter`
/// run a session, or return at once?).
pub fn entries() -> u32 {
    ENTRIES.load(Ordering::Acquire)
}

/// A breakpoint hit that the debugger's `enter` did not take, on the CPU
/// that resumed the world last, while that break-in is still active and
/// never asked it to stop (`traps::join_the_stop` timed out): the CPU is on
/// its way out, after the breakpoints were patched in (the debugger's own
/// code, or what it calls, has a breakpoint), and executing it again would
/// loop for ever. Every breakpoint is lifted instead until the next stop,
/// as Linux kgdb does on a recursive entry (`kgdb_reenter_check`). True if
/// it was that case.
pub fn hit_on_the_way_out() -> bool {
    if RESUMER.load(Ordering::Relaxed) == cpu::current_index() as u32 && TABLE.armed() {
        TABLE.lift(&mut KernelText);
        LIFTED_ON_EXIT.store(true, Ordering::Release);
        return true;
    }
    false
}

/// The debugger is about to resume the world (`Some(cpu)`: that CPU
/// steps, its step armed by gdb's target). Every other CPU stopped right
/// on a breakpoint first steps off it with that breakpoint lifted (else it
/// would hit it again at once; gdb does this only for the thread it
/// reported, a `db> continue` not at all), one at a time with the rest of
/// the world still stopped ([`Debugger::step_held`]); then every
/// breakpoint is patched in, with nothing running: Intel SDM Vol. 3A
/// §8.1.3 asks cross-modified code to be serialised on the CPUs that run
/// it, and under TCG a breakpoint patched back by the stepping CPU while
/// another CPU ran it was seen to stay missed for good. Call with every
/// other CPU stopped.
///
/// [`Debugger::step_held`]: super::hooks::Debugger::step_held
pub fn resuming(step_cpu: Option<usize>) {
    let me = cpu::current_index();
    RESUMER.store(me as u32, Ordering::Relaxed);
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
                // This CPU's own step off waits for the release (it runs
                // the debugger): it patches its breakpoint back running.
                if index != me && !(d.step_held)(index) {
                    pprintln!(
                        "gdb: cpu {index} did not step off its breakpoint with the world stopped; it does so running"
                    );
                }
            }
        }
    }
    TABLE.arm(&mut KernelText);
}
