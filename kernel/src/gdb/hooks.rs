//! What the gdb stub needs from the debugger it serves, registered at boot
//! ([`set_debugger`]): the debugger's loop polls this stub, so the stub
//! reaches the debugger only through this table (the module graph stays
//! acyclic; FreeBSD's `kdb` and its `gdb` backend are wired the same way,
//! through a registered `kdb_dbbe`).

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::arch::trap::TrapFrame;
use crate::sched::freeze::Refusal;

/// Why the stub stops the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A CPU hit one of gdb's breakpoints.
    Breakpoint,
    /// A CPU finished the single step gdb asked for.
    SingleStep,
    /// gdb asked for the machine while it ran (Ctrl-C, or a new gdb's
    /// first packet).
    Interrupt,
}

/// The debugger's entry points, as the stub uses them.
pub struct Debugger {
    /// Enters the debugger on this CPU from a trap handler (interrupts
    /// off): stops the other CPUs, runs the debugger's loop and returns
    /// once it resumed the world; the caller returns from its trap with
    /// `frame` (possibly changed).
    pub enter: fn(frame: &mut TrapFrame, cause: Cause),
    /// Asks for a break-in from a context that has no trap frame at hand
    /// (a tick hook); the debugger is entered soon after, on some CPU.
    pub break_in: fn(cause: Cause),
    /// From inside the debugger's loop: leave it and resume the world
    /// (`Some(cpu)`: that CPU single-steps, its step armed by the stub). `Err(reason)` if the world cannot resume (a CPU was
    /// stopped by NMI): it stays stopped.
    pub resume: fn(step_cpu: Option<usize>) -> Result<(), Refusal>,
    /// As `resume` for a step of CPU `cpu` alone (no action for the other
    /// threads): if it is the debugger's own CPU the others stay stopped.
    pub resume_alone: fn(cpu: usize) -> Result<(), Refusal>,
    /// A break-in is active (on some CPU).
    pub active: fn() -> bool,
    /// For a CPU in a trap handler, interrupts off, while a break-in is
    /// active elsewhere: if that break-in asked this CPU to stop, hold it
    /// here, resumably, with `frame`, until the world resumes (true);
    /// false at once if it was not asked (yet).
    pub join: fn(frame: &mut TrapFrame) -> bool,
    /// From inside the debugger's loop: the live trap frame of CPU `cpu`
    /// (the one the world resumes with), if it stopped resumably.
    pub frame: fn(cpu: usize) -> Option<*mut TrapFrame>,
    /// From inside the debugger's loop: lets stopped CPU `cpu` run the one
    /// step armed in its frame while every other CPU stays stopped, and
    /// waits (bounded) until its `#DB` stops it again ([`join`] there).
    /// False if it did not come back in time.
    ///
    /// [`join`]: Self::join
    pub step_held: fn(cpu: usize) -> bool,
}

static DEBUGGER: AtomicPtr<Debugger> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the debugger (once, at boot).
pub fn set_debugger(d: &'static Debugger) {
    DEBUGGER.store(d as *const Debugger as *mut Debugger, Ordering::Release);
}

/// The registered debugger, if any.
pub fn debugger() -> Option<&'static Debugger> {
    let p = DEBUGGER.load(Ordering::Acquire);
    // SAFETY: only `set_debugger` stores here, a `&'static Debugger`.
    (!p.is_null()).then(|| unsafe { &*p })
}
