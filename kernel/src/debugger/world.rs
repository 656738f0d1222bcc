//! Stopping the world resumably for a break-in (the panic's stop,
//! `panic::stop`, parks CPUs for ever; this one holds them and lets them
//! go). A maskable stop IPI first ([`vector::BREAK_STOP`]), so a CPU stops
//! only with interrupts on: outside every IRQ-safe lock, the USB driver's
//! included. A CPU that keeps interrupts off past [`IPI_BOUND_US`] is
//! stopped by NMI (through the NMI hook, [`on_nmi`]); it may be inside a
//! critical section, so `continue` is then refused
//! ([`crate::sched::freeze::can_resume`]). FreeBSD's `stop_cpus_hard` and
//! Linux kgdb's `kgdb_roundup_cpus` do the same two steps.
//!
//! A held CPU publishes its live trap frame ([`PerCpu::break_frame`]) and
//! its registers (`saved`), then spins with interrupts off until
//! [`release`] bumps the generation; it returns from its trap through the
//! frame, as the debugger or gdb may have changed it. [`step_held`] lets
//! one held CPU out for a single armed step while the others stay held
//! (a CPU stopped on a breakpoint steps off it before anything runs).
//!
//! [`PerCpu::break_frame`]: crate::arch::cpu::PerCpu::break_frame

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::cpu::{self, CpuState};
use crate::arch::idt::vector;
use crate::arch::trap::TrapFrame;

/// Bit n: CPU n was asked to stop and is not held yet.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Bit n: CPU n is held.
static HELD: AtomicU64 = AtomicU64::new(0);
/// Bumped by [`release`]: a held CPU goes on when it changes.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Bit n: held CPU n leaves its hold for one armed step and is held again
/// at that step's `#DB` ([`step_held`]).
static STEP_ONE: AtomicU64 = AtomicU64::new(0);
/// TSC cycles the last break-in lasted, for each CPU's accounting.
static LAST_STOP_CYCLES: AtomicU64 = AtomicU64::new(0);

/// How long the stop IPI may take before the NMI. Generous: under TCG a
/// vCPU the host has not scheduled takes milliseconds, and a CPU that only
/// holds a spin lock briefly answers once it lets go.
pub const IPI_BOUND_US: u64 = 500_000;
/// How long the NMI may take (as long again: a CPU the host does not run
/// answers the NMI late too).
const NMI_BOUND_US: u64 = 500_000;
/// How long [`release`] waits for every held CPU to leave.
const LEAVE_BOUND_US: u64 = 1_000_000;
/// How long [`step_held`] waits for its CPU to be held again after one
/// instruction (generous for a vCPU the host does not run at once).
const STEP_BOUND_US: u64 = 200_000;

/// How the other CPUs stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stopped {
    /// Held with interrupts on (after the stop IPI, or after the NMI when
    /// it was only late).
    pub by_ipi: u64,
    /// Held after the NMI with interrupts off (past the bound).
    pub by_nmi: u64,
    /// Answered neither (still running).
    pub missing: u64,
    /// From the first IPI to the last CPU held, in TSC cycles.
    pub cycles: u64,
}

/// Stops every other online CPU: the stop IPI, then the NMI for those that
/// did not answer within [`IPI_BOUND_US`]. Bounded.
pub fn stop_others(me: usize) -> Stopped {
    let start = crate::time::rdtsc();
    core::sync::atomic::fence(Ordering::SeqCst);
    let mut mask = 0u64;
    for c in cpu::all() {
        if c.index() != me && c.state() == CpuState::Online {
            mask |= 1 << c.index();
        }
    }
    PENDING.fetch_or(mask, Ordering::SeqCst);
    for_each_bit(mask, |i| crate::arch::apic::send_ipi(i, vector::BREAK_STOP));
    wait(mask, IPI_BOUND_US);
    let late = PENDING.load(Ordering::SeqCst) & mask;
    if late != 0 {
        for_each_bit(late, crate::arch::apic::send_nmi);
        wait(late, NMI_BOUND_US);
    }
    let missing = PENDING.load(Ordering::SeqCst) & mask;
    let mut by_nmi = 0;
    for_each_bit(late & !missing, |i| {
        if cpu::cpu(i).state() == CpuState::StoppedNmi {
            by_nmi |= 1 << i;
        }
    });
    Stopped {
        by_ipi: mask & !by_nmi & !missing,
        by_nmi,
        missing,
        cycles: crate::time::rdtsc() - start,
    }
}

fn for_each_bit(mask: u64, mut f: impl FnMut(usize)) {
    for i in 0..cpu::all().len() {
        if mask & (1 << i) != 0 {
            f(i);
        }
    }
}

fn wait(mask: u64, us: u64) {
    let deadline = crate::time::deadline_after_us(us);
    while PENDING.load(Ordering::SeqCst) & mask != 0 && !crate::time::passed(deadline) {
        crate::watchdog::pet();
        core::hint::spin_loop();
    }
}

/// Holds this CPU until [`release`] (the generation, read by the caller
/// before it saw its `PENDING` bit, changes): publishes `frame` and the
/// registers, spins with interrupts off, then returns (through `frame`)
/// as it was. Also returns, still counted as stopped, when [`step_held`]
/// lets it out for one step: its `PENDING` bit is set again, so the
/// step's `#DB` holds it again ([`answer_stop_in_trap`]).
fn hold(frame: &mut TrapFrame, how: CpuState, generation: u64) {
    let c = cpu::this();
    let bit = 1u64 << c.index();
    // SAFETY: only this CPU writes its `saved`; the debugger reads it after
    // the release store of the state below.
    unsafe { *c.saved.get() = crate::panic::stop::saved_from_frame(frame) };
    c.break_frame.store(frame, Ordering::Release);
    c.set_state(how);
    HELD.fetch_or(bit, Ordering::SeqCst);
    PENDING.fetch_and(!bit, Ordering::SeqCst);
    let stepping = loop {
        if GENERATION.load(Ordering::Acquire) != generation {
            break false;
        }
        if STEP_ONE.load(Ordering::Acquire) & bit != 0 {
            break true;
        }
        core::hint::spin_loop();
    };
    c.break_frame
        .store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: as above; the debugger no longer reads it.
    unsafe { (*c.saved.get()).valid = false };
    if stepping {
        // Asked to stop again before the bit that lets it out is cleared:
        // `step_held` waits for both bits to clear.
        PENDING.fetch_or(bit, Ordering::SeqCst);
        HELD.fetch_and(!bit, Ordering::SeqCst);
        STEP_ONE.fetch_and(!bit, Ordering::SeqCst);
        return;
    }
    // The thread this CPU runs is not charged the stop.
    c.last_switch_tsc
        .fetch_add(LAST_STOP_CYCLES.load(Ordering::Relaxed), Ordering::Relaxed);
    c.set_state(CpuState::Online);
    HELD.fetch_and(!bit, Ordering::SeqCst);
}

/// Lets held CPU `c` out for the one instruction its frame has armed
/// (RFLAGS.TF, `gdb::step`) while every other CPU stays held, and waits,
/// bounded by [`STEP_BOUND_US`], until that step's `#DB` holds it again.
/// So a CPU stopped on a breakpoint steps off it with the world still
/// stopped, and the breakpoint is patched back with nothing running (a
/// patch while another CPU runs can be missed by that CPU: seen under TCG,
/// a breakpoint patched back in memory and never hit again). True once it
/// is held again; false if it was not held, or did not come back in time
/// (it is then in its step or past it; the world's release lets it go).
pub fn step_held(c: usize) -> bool {
    let bit = 1u64 << c;
    if HELD.load(Ordering::SeqCst) & bit == 0 {
        return false;
    }
    STEP_ONE.fetch_or(bit, Ordering::SeqCst);
    let deadline = crate::time::deadline_after_us(STEP_BOUND_US);
    let back =
        || STEP_ONE.load(Ordering::SeqCst) & bit == 0 && PENDING.load(Ordering::SeqCst) & bit == 0;
    while !back() && !crate::time::passed(deadline) {
        crate::watchdog::pet();
        core::hint::spin_loop();
    }
    back()
}

/// For a CPU inside a trap handler with interrupts off (gdb's `#BP`) that
/// finds a break-in starting: its stop IPI cannot be taken there, so it
/// answers the stop where it is, held resumably with `frame` as if by the
/// IPI (the IPI, still pending, finds nothing to do later). False at once
/// if this CPU was not asked to stop.
pub fn answer_stop_in_trap(frame: &mut TrapFrame) -> bool {
    let generation = GENERATION.load(Ordering::SeqCst);
    if PENDING.load(Ordering::SeqCst) & (1 << cpu::current_index()) == 0 {
        return false;
    }
    hold(frame, CpuState::StoppedIpi, generation);
    true
}

/// The break-in stop IPI's handler.
pub fn on_stop_ipi(frame: &mut TrapFrame) {
    crate::arch::apic::eoi();
    let generation = GENERATION.load(Ordering::SeqCst);
    if PENDING.load(Ordering::SeqCst) & (1 << cpu::current_index()) != 0 {
        hold(frame, CpuState::StoppedIpi, generation);
    }
}

/// The NMI hook (run first by the NMI handler): a CPU asked to stop by a
/// break-in that did not take the IPI is held here. False: not ours.
///
/// Only a CPU the NMI found with interrupts off (RFLAGS.IF clear in the
/// interrupted frame) counts as stopped by NMI: with IF set it was outside
/// every IRQ-safe lock and handler and merely late (a vCPU the host did not
/// run for the IPI bound: seen under TCG on a loaded host, 1.2 s), so it is
/// held as if it had taken the IPI, which stays pending and is ignored
/// after the release.
pub fn on_nmi(frame: &mut TrapFrame) -> bool {
    const IF: u64 = 1 << 9;
    let generation = GENERATION.load(Ordering::SeqCst);
    if PENDING.load(Ordering::SeqCst) & (1 << cpu::current_index()) == 0 {
        return false;
    }
    let how = if frame.rflags & IF != 0 {
        CpuState::StoppedIpi
    } else {
        CpuState::StoppedNmi
    };
    hold(frame, how, generation);
    true
}

/// Lets every held CPU go on (after `stop_cycles` stopped) and waits,
/// bounded, until each has left its hold; returns those still held.
pub fn release(stop_cycles: u64) -> u64 {
    PENDING.store(0, Ordering::SeqCst);
    STEP_ONE.store(0, Ordering::SeqCst);
    LAST_STOP_CYCLES.store(stop_cycles, Ordering::Relaxed);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    let deadline = crate::time::deadline_after_us(LEAVE_BOUND_US);
    while HELD.load(Ordering::SeqCst) != 0 && !crate::time::passed(deadline) {
        core::hint::spin_loop();
    }
    HELD.load(Ordering::SeqCst)
}

/// The live trap frame CPU `c` published while held (null: none).
pub fn frame_of(c: usize) -> *mut TrapFrame {
    cpu::cpu(c).break_frame.load(Ordering::Acquire)
}
