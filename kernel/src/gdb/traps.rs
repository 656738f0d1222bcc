//! The breakpoint (`#BP`, vector 3) and debug (`#DB`, vector 1) exceptions
//! (Intel SDM Vol. 3A §6.15), installed in `arch`'s trap table at boot
//! over the panic path's handler, which still gets every trap that is not
//! the stub's: an `int3` at an address that is not one of gdb's
//! breakpoints, a debug exception that is not a step gdb asked for, and
//! either after a panic.
//!
//! `int3` is a trap: the saved RIP is the byte after it. A hit sets RIP
//! back onto the breakpoint (gdb's `swbreak` stop: the PC reported is the
//! breakpoint's address) and enters the debugger. Two CPUs hitting
//! breakpoints at once: the debugger's `enter` lets one in and stops the
//! other (it sits at its breakpoint's address, RIP already set back, and
//! hits it again once the world resumes, if the breakpoint is still
//! there); as Linux kgdb's `kgdb_cpu_enter` does for CPUs that trap while
//! another is the master. The debugger's own CPU hitting one on its way
//! out lifts them all instead ([`super::lifecycle::hit_on_the_way_out`]).

use super::hooks::{Cause, Debugger, debugger};
use super::step::{self, Purpose};
use super::text::TABLE;
use crate::arch::trap::{self, TrapFrame};

/// `#DB` (SDM Vol. 3A Table 6-1).
const DEBUG: u8 = 1;
/// `#BP` (SDM Vol. 3A Table 6-1).
const BREAKPOINT: u8 = 3;

/// Installs both handlers (after the panic path's exception handler).
pub fn install() {
    trap::set_handler(BREAKPOINT, on_breakpoint);
    trap::set_handler(DEBUG, on_debug);
}

fn on_breakpoint(frame: &mut TrapFrame) {
    let at = frame.rip.wrapping_sub(1);
    let Some(d) = debugger() else {
        crate::panic::exception(frame)
    };
    if crate::panic::panicking() || !TABLE.contains(at) {
        crate::panic::exception(frame)
    }
    frame.rip = at;
    let before = super::lifecycle::entries();
    (d.enter)(frame, Cause::Breakpoint);
    if super::lifecycle::entries() == before && !join_the_stop(d, frame) {
        super::lifecycle::hit_on_the_way_out();
    }
}

/// How long a CPU that hit a breakpoint while a break-in is active waits
/// to be asked to stop (the breaking CPU's stop IPIs follow within
/// microseconds; generous for TCG).
const JOIN_BOUND_US: u64 = 200_000;

/// This CPU hit a breakpoint while a break-in is active on another: wait
/// (bounded, interrupts off) until that break-in asks this CPU to stop,
/// and be held here, resumably; or until it is over. Either way the CPU
/// then returns onto its breakpoint and hits it again if it is still
/// there. Without this, a breakpoint in code that runs with interrupts off
/// would spin on `int3` until the NMI stopped it, and `continue` would be
/// refused. False if the break-in is still active and never asked: it is
/// this CPU's own, on its way out.
fn join_the_stop(d: &Debugger, frame: &mut TrapFrame) -> bool {
    let deadline = crate::time::deadline_after_us(JOIN_BOUND_US);
    while !crate::time::passed(deadline) {
        if !(d.active)() || (d.join)(frame) {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

fn on_debug(frame: &mut TrapFrame) {
    match step::finish(frame) {
        // Stepped off a breakpoint with the world held (`lifecycle::
        // resuming`): held again here until the world resumes. After the
        // release (a step that came back late) this returns at once.
        Some(Purpose::Continue) => {
            if let Some(d) = debugger() {
                (d.join)(frame);
            }
        }
        Some(Purpose::Report) => match debugger() {
            Some(d) if !crate::panic::panicking() => report_step(d, frame),
            _ => crate::panic::exception(frame),
        },
        None => crate::panic::exception(frame),
    }
}

/// How long a finished step waits for the break-in it was resumed from to
/// be over (its CPU prints a line and returns: milliseconds; generous for
/// a loaded host under TCG). Past it the step is not reported.
const STEP_REPORT_BOUND_US: u64 = 1_000_000;

/// Enters the debugger for a finished step. A CPU other than the one that
/// ran the debugger takes its `#DB` right after the world was released,
/// often while that CPU is still on its way out (the break-in still
/// active, so `enter` returns at once): it waits (bounded) until that
/// break-in is over and enters then, or is held by a new one that asks it
/// to stop (gdb is then told that one's stop instead).
fn report_step(d: &Debugger, frame: &mut TrapFrame) {
    let before = super::lifecycle::entries();
    (d.enter)(frame, Cause::SingleStep);
    let deadline = crate::time::deadline_after_us(STEP_REPORT_BOUND_US);
    while super::lifecycle::entries() == before && !crate::time::passed(deadline) {
        if (d.join)(frame) {
            return;
        }
        if !(d.active)() {
            (d.enter)(frame, Cause::SingleStep);
        }
        core::hint::spin_loop();
    }
}
