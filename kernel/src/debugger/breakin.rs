//! Break-in: the debugger on a live system, and `continue`.
//!
//! Every trigger ends in [`enter`] on the CPU that breaks in, with
//! interrupts off and a trap frame: Ctrl+Alt+Esc on a USB keyboard (the
//! driver flags it, the `usb` thread asks once it has released the
//! controller lock) or on PS/2 (its IRQ handler), a serial BREAK on COM1
//! (LSR.BI), and `break` at `shell>`. They ask through
//! [`crate::arch::trap::request_break`], a self-IPI on [`vector::BREAK`]
//! taken only once interrupts are on again, so no trigger enters the
//! debugger inside a critical section. gdb enters from its #BP and #DB
//! handlers. FreeBSD's `kdb_enter` and Linux's `kgdb_handle_exception` are
//! the models: one entry, a reason, the world stopped around it.
//!
//! `enter` freezes the scheduler, stops the other CPUs resumably
//! ([`super::world`]), switches the USB controllers to polled mode
//! ([`crate::usb::breakin`]), runs the same `db> ` loop as after a panic
//! until a resume is requested ([`request_resume`]: `continue`, gdb's `c`
//! and `s`), then undoes each step and returns: the CPU goes on from its
//! frame. A second break-in while one is active is ignored; a panic during
//! one is the panic (the panic path then owns the console, and the held
//! CPUs count as stopped).
//!
//! [`vector::BREAK`]: crate::arch::idt::vector::BREAK

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::arch::cpu;
use crate::arch::trap::{self, TrapFrame};
use crate::console::PanicWriter;
use crate::pprintln;
use crate::sched::freeze;

/// Why the debugger was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Ctrl+Alt+Esc on a USB or PS/2 keyboard.
    Keyboard,
    /// A BREAK condition on the serial console (COM1 LSR.BI).
    SerialBreak,
    /// `break` at `shell>`.
    Command,
    /// A software breakpoint (`int3`, gdb's `Z0`).
    Breakpoint,
    /// A single step finished (RFLAGS.TF, #DB).
    SingleStep,
    /// gdb asked to stop (Ctrl-C, the 0x03 byte).
    GdbInterrupt,
}

impl Why {
    /// The trigger a [`trap::request_break`] reason names (the ones that
    /// come through the break-in vector; gdb enters directly).
    fn from_code(code: u8) -> Option<Self> {
        match code {
            trap::BREAK_KEYBOARD => Some(Self::Keyboard),
            trap::BREAK_SERIAL => Some(Self::SerialBreak),
            trap::BREAK_COMMAND => Some(Self::Command),
            trap::BREAK_GDB => Some(Self::GdbInterrupt),
            _ => None,
        }
    }

    /// The stop gdb is told about (`None`: a break-in of the debugger's
    /// own, reported as SIGTRAP).
    pub const fn gdb_cause(self) -> Option<crate::gdb::Cause> {
        match self {
            Self::Breakpoint => Some(crate::gdb::Cause::Breakpoint),
            Self::SingleStep => Some(crate::gdb::Cause::SingleStep),
            Self::GdbInterrupt => Some(crate::gdb::Cause::Interrupt),
            Self::Keyboard | Self::SerialBreak | Self::Command => None,
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Keyboard => "Ctrl+Alt+Esc",
            Self::SerialBreak => "serial BREAK",
            Self::Command => "`break` command",
            Self::Breakpoint => "breakpoint",
            Self::SingleStep => "single step",
            Self::GdbInterrupt => "gdb interrupt",
        })
    }
}

/// A break-in is active (claimed by [`enter`]).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// True while a break-in holds the world (not after a panic).
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire) && !crate::panic::panicking()
}

/// The break-in vector's handler: the self-IPI of
/// [`trap::request_break`].
pub fn on_break_vector(frame: &mut TrapFrame) {
    crate::arch::apic::eoi();
    if let Some(why) = Why::from_code(trap::take_break_reason()) {
        enter(frame, why);
    }
}

/// THE entry of every break-in, on the CPU that breaks in, interrupts off,
/// `frame` its interrupted context (it resumes from it, as changed by the
/// debugger or gdb). Returns after `continue`; returns at once if a
/// break-in is already active or a panic began. The one exception: the
/// `#DB` of a lone step ([`resume_alone`]) of the debugger's own CPU comes
/// back here with the world still held, and goes straight to the loop.
pub fn enter(frame: &mut TrapFrame, why: Why) {
    if crate::panic::panicking() {
        return;
    }
    let c = cpu::this();
    let me = c.index();
    let lone_step_done = why == Why::SingleStep
        && HELD_FOR_STEP.load(Ordering::Acquire) == me as u32
        && ACTIVE.load(Ordering::Acquire);
    if !lone_step_done && ACTIVE.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: only this CPU writes its `saved`; readers run after this, on
    // this CPU (the debugger loop below).
    unsafe { *c.saved.get() = crate::panic::stop::saved_from_frame(frame) };
    c.break_frame.store(frame, Ordering::Release);
    if lone_step_done {
        HELD_FOR_STEP.store(NOBODY, Ordering::Release);
        pprintln!("\nbreak-in: {why} on cpu {me}; the other cpus stayed held");
        crate::gdb::entered(why.gdb_cause());
    } else {
        freeze::freeze();
        let stopped = super::world::stop_others(me);
        report_stop(me, why, &stopped);
        crate::gdb::entered(why.gdb_cause());
        let controllers = crate::usb::breakin::pause(&mut PanicWriter);
        pprintln!("usb: {controllers} controller(s) polled; type `continue` to resume");
    }
    let step = super::session(true);
    let alone = ALONE_REQUESTED.swap(false, Ordering::AcqRel);
    if let Some(s) = step
        && alone
        && s == me
    {
        // One instruction of this CPU with everything else as it is: the
        // others held, the scheduler frozen, USB polled (Linux kgdb keeps
        // its other CPUs in `kgdb_wait` while `kgdb_single_step`).
        set_trap_flag(me, s, frame);
        crate::gdb::resuming(step);
        c.break_frame
            .store(core::ptr::null_mut(), Ordering::Release);
        // SAFETY: as above.
        unsafe { (*c.saved.get()).valid = false };
        HELD_FOR_STEP.store(me as u32, Ordering::Release);
        return;
    }
    let dropped = crate::usb::breakin::resume();
    crate::panic::ps2::reset_normal();
    if let Some(s) = step {
        set_trap_flag(me, s, frame);
    }
    // Breakpoints back in (and steps off them armed) while every frame is
    // still published.
    crate::gdb::resuming(step);
    c.break_frame
        .store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: as above.
    unsafe { (*c.saved.get()).valid = false };
    let took = freeze::thaw();
    c.last_switch_tsc.fetch_add(took, Ordering::Relaxed);
    let still = super::world::release(took);
    pprintln!(
        "continuing after {} ms stopped ({dropped} key(s) typed at db> dropped)",
        crate::time::cycles_to_us(took) / 1000
    );
    if still != 0 {
        pprintln!("WARNING: cpus {still:#x} did not leave the break-in within 1 s");
    }
    ACTIVE.store(false, Ordering::Release);
}

/// No CPU is stepping with the world held.
const NOBODY: u32 = u32::MAX;
/// The CPU that left the loop for a lone step with the world held; its
/// `#DB` re-enters [`enter`] without stopping anything again.
static HELD_FOR_STEP: AtomicU32 = AtomicU32::new(NOBODY);
/// The pending resume request is a lone step ([`resume_alone`]).
static ALONE_REQUESTED: AtomicBool = AtomicBool::new(false);

/// As [`resume_or_reason`] for a step of CPU `step_cpu` alone (gdb's
/// `vCont;s:N` with no action for the other threads, as it steps off a
/// breakpoint, or under `set scheduler-locking on`): when `step_cpu` is
/// the debugger's own CPU the other CPUs stay held for that instruction.
/// A lone step of another CPU resumes every CPU (a partial release is not
/// done).
pub fn resume_alone(step_cpu: usize) -> Result<(), freeze::Refusal> {
    resume_or_reason(Some(step_cpu))?;
    if step_cpu == cpu::current_index() {
        ALONE_REQUESTED.store(true, Ordering::Release);
    }
    Ok(())
}

fn report_stop(me: usize, why: Why, s: &super::world::Stopped) {
    pprintln!(
        "\nbreak-in: {why} on cpu {me}; {} cpu(s) stopped in {} us",
        (s.by_ipi | s.by_nmi).count_ones(),
        crate::time::cycles_to_us(s.cycles)
    );
    for i in 0..cpu::all().len() {
        if s.by_nmi & (1 << i) != 0 {
            pprintln!(
                "cpu {i}: stopped by NMI: interrupts were off for over {} ms; `continue` will be refused",
                super::world::IPI_BOUND_US / 1000
            );
        }
        if s.missing & (1 << i) != 0 {
            pprintln!("WARNING: cpu {i} did not stop; it is still running");
        }
    }
}

/// Sets RFLAGS.TF in the frame CPU `step` resumes from (this CPU's is
/// `own`). Clearing it when the #DB arrives is the caller's (gdb's).
fn set_trap_flag(me: usize, step: usize, own: &mut TrapFrame) {
    const TF: u64 = 1 << 8;
    if step == me {
        own.rflags |= TF;
        return;
    }
    let f = super::world::frame_of(step);
    if !f.is_null() {
        // SAFETY: a held CPU's frame stays valid (on its stack, it spins
        // on it) until `release`, which has not run yet.
        unsafe { (*f).rflags |= TF };
    }
}

/// Makes the debugger's loop exit and [`enter`] return, resuming the
/// world; callable from inside the loop (a command, gdb's target).
/// `step_cpu`: that CPU resumes with RFLAGS.TF set in its saved frame (one
/// instruction, then #DB); clearing TF is the #DB handler's job. Ignored,
/// with the reason printed, when a resume is refused: after a panic, or
/// when a CPU had to be stopped by NMI ([`freeze::can_resume`]).
pub fn request_resume(step_cpu: Option<usize>) {
    if let Err(e) = resume_or_reason(step_cpu) {
        pprintln!("continue refused: {e}");
    }
}

/// [`request_resume`] with the refusal returned instead of printed.
pub fn resume_or_reason(step_cpu: Option<usize>) -> Result<(), freeze::Refusal> {
    if crate::panic::panicking() {
        return Err(freeze::Refusal::NotBreakIn);
    }
    freeze::request_resume(step_cpu)
}

/// Installs the break-in's handlers: its vector, its stop IPI, the NMI hook.
pub fn install_trap_handlers() {
    use crate::arch::idt::vector;
    trap::set_handler(vector::BREAK, on_break_vector);
    trap::set_handler(vector::BREAK_STOP, super::world::on_stop_ipi);
    trap::set_nmi_hook(super::world::on_nmi);
}
