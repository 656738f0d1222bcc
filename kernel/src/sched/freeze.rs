//! The scheduler frozen for a break-in, and the clock that does not see it.
//!
//! A break-in stops every CPU with interrupts off, so nothing is scheduled
//! anyway; [`frozen`] makes it explicit for the one CPU that runs (the
//! debugger's): `schedule` returns at once, nothing blocks (waits busy-wait,
//! bounded), ticks change nothing. Unlike the panic stop
//! ([`crate::sync::scheduler_stopped`]) locks are *not* faked: the world
//! goes on after `continue`, so every lock keeps its meaning.
//!
//! Time spent stopped is not time the scheduler saw pass: sleep deadlines
//! are taken on [`clock`], the TSC minus every stop so far, so a thread that
//! slept 100 ms before a 10 s break-in sleeps its remaining time after
//! `continue` instead of every sleeper waking at once (Linux kgdb leaves
//! this to the clocksource watchdog; FreeBSD's `kdb` does not account for
//! it). The CPU time of the thread each CPU was running is charged the same
//! way (the debugger adds the stop to `last_switch_tsc` on resume).
//!
//! The resume request ([`request_resume`]) lives here too, below both the
//! `continue` command and the debugger's loop that acts on it.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::arch::cpu::{self, CpuState};

static FROZEN: AtomicBool = AtomicBool::new(false);
/// TSC when the current freeze began.
static SINCE: AtomicU64 = AtomicU64::new(0);
/// TSC cycles of every finished freeze.
static STOPPED_CYCLES: AtomicU64 = AtomicU64::new(0);
/// Break-ins so far.
static BREAK_INS: AtomicU32 = AtomicU32::new(0);
/// A resume was asked for (`continue`, gdb's `c`/`s`).
static RESUME: AtomicBool = AtomicBool::new(false);
/// CPU to single-step after the resume (`u32::MAX`: none).
static STEP_CPU: AtomicU32 = AtomicU32::new(u32::MAX);

/// True while a break-in holds the world.
pub fn frozen() -> bool {
    FROZEN.load(Ordering::Acquire)
}

/// Freezes the scheduler (the debugger's CPU, interrupts off, before it
/// stops the others).
pub fn freeze() {
    SINCE.store(crate::time::rdtsc(), Ordering::Relaxed);
    RESUME.store(false, Ordering::Relaxed);
    STEP_CPU.store(u32::MAX, Ordering::Relaxed);
    BREAK_INS.fetch_add(1, Ordering::Relaxed);
    FROZEN.store(true, Ordering::Release);
}

/// Ends the freeze; returns the TSC cycles it lasted (now part of
/// [`stopped_cycles`], so [`clock`] leaves them out).
pub fn thaw() -> u64 {
    let took = crate::time::rdtsc().saturating_sub(SINCE.load(Ordering::Relaxed));
    STOPPED_CYCLES.fetch_add(took, Ordering::Relaxed);
    FROZEN.store(false, Ordering::Release);
    took
}

/// TSC cycles spent in finished break-ins since boot.
pub fn stopped_cycles() -> u64 {
    STOPPED_CYCLES.load(Ordering::Relaxed)
}

/// Break-ins since boot.
pub fn break_ins() -> u32 {
    BREAK_INS.load(Ordering::Relaxed)
}

/// The scheduler's clock: the TSC minus the time spent stopped in
/// break-ins. Sleep deadlines are on this clock.
pub fn clock() -> u64 {
    crate::time::rdtsc().saturating_sub(STOPPED_CYCLES.load(Ordering::Relaxed))
}

/// Why a resume is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No break-in is active.
    NotBreakIn,
    /// This CPU kept interrupts off past the bound and was stopped by NMI:
    /// it may be inside any critical section (a lock held, a device half
    /// programmed), and resuming the others around it is not safe.
    StoppedByNmi(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBreakIn => f.write_str("no break-in to continue from"),
            Self::StoppedByNmi(c) => write!(
                f,
                "cpu {c} kept interrupts off and was stopped by NMI; it may be inside a critical section (use `panic` or `reboot`)"
            ),
        }
    }
}

/// Can the world resume? The first CPU stopped by NMI refuses it.
pub fn can_resume() -> Result<(), Refusal> {
    if !frozen() {
        return Err(Refusal::NotBreakIn);
    }
    match cpu::all()
        .iter()
        .find(|c| c.state() == CpuState::StoppedNmi)
    {
        Some(c) => Err(Refusal::StoppedByNmi(c.index())),
        None => Ok(()),
    }
}

/// Asks the debugger's loop to resume the world (see
/// [`crate::debugger::request_resume`]); `step_cpu` gets RFLAGS.TF.
pub fn request_resume(step_cpu: Option<usize>) -> Result<(), Refusal> {
    can_resume()?;
    STEP_CPU.store(step_cpu.map_or(u32::MAX, |c| c as u32), Ordering::Relaxed);
    RESUME.store(true, Ordering::Release);
    Ok(())
}

/// A pending resume request, taken: `Some(step_cpu)`.
pub fn take_resume() -> Option<Option<usize>> {
    if !RESUME.swap(false, Ordering::AcqRel) {
        return None;
    }
    let s = STEP_CPU.swap(u32::MAX, Ordering::Relaxed);
    Some((s != u32::MAX).then_some(s as usize))
}
