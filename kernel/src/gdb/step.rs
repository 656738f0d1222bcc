//! Single-stepping one CPU with RFLAGS.TF (Intel SDM Vol. 3A §18.3.1.4
//! "Single-Step Exception Condition": with TF set the processor raises a
//! debug exception, vector 1, after the next instruction, with DR6.BS set).
//!
//! A step is *armed* on a stopped CPU's trap frame before the world
//! resumes ([`arm`]) and *finished* by that CPU's `#DB` ([`finish`]). It is
//! for one of two things ([`Purpose`]): gdb's `stepi` (the CPU enters the
//! debugger again, reported as a step), or stepping off a breakpoint the
//! CPU stopped on before it runs on (the breakpoint stays lifted for that
//! one instruction, [`super::breakpoints::Table::hold`], then is patched
//! again; a CPU other than the debugger's takes that step while the world
//! is still stopped and is held again at its `#DB`).
//!
//! Interrupts are masked in the stepped frame (an interrupt taken between
//! would run its handler, and maybe the scheduler, inside the step) and
//! restored after, as Linux kprobes' `setup_singlestep` /
//! `resume_singlestep` (arch/x86/kernel/kprobes/core.c) do, including its
//! fix-up after `pushf` (the pushed flags carry TF and the masked IF:
//! they are corrected on the stack). `cli`, `sti`, `popf`, `iretq` and
//! `hlt` change or need IF themselves: they are stepped with IF as it was.
//!
//! One step per CPU at a time; the state is per CPU, written by the
//! debugger CPU with the world stopped and read by the stepping CPU's
//! `#DB`, all atomics.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use super::text::{KernelText, TABLE, code_byte};
use crate::arch::cpu::{self, MAX_CPUS};
use crate::arch::trap::TrapFrame;

/// RFLAGS.TF, the trap flag (SDM Vol. 1 §3.4.3.3).
const TF: u64 = 1 << 8;
/// RFLAGS.IF, interrupts enabled.
const IF: u64 = 1 << 9;
/// DR6.BS: the debug exception was a single step (SDM Vol. 3A §18.2.3).
const DR6_BS: u64 = 1 << 14;
/// DR6's value with no condition recorded (its reserved bits read 1).
const DR6_CLEAR: u64 = 0xFFFF_0FF0;

/// Opcodes stepped with IF untouched (`cli`, `sti`, `popf`, `iret`, `hlt`).
const KEEPS_IF: [u8; 5] = [0xFA, 0xFB, 0x9D, 0xCF, 0xF4];
/// `pushf`: its pushed flags get fixed up after the step.
const PUSHF: u8 = 0x9C;

/// What a CPU's step is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// gdb's `stepi`: enter the debugger after it.
    Report = 1,
    /// Off a breakpoint the CPU stopped on: run on after it.
    Continue = 2,
}

/// No step armed.
const NONE: u8 = 0;

struct Step {
    purpose: AtomicU8,
    /// The breakpoint held lifted for this step (0: none).
    over: AtomicU64,
    /// IF was cleared in the stepped frame; `saved_if` is what it was.
    masked: AtomicBool,
    saved_if: AtomicBool,
    /// The stepped instruction is `pushf`.
    pushf: AtomicBool,
}

static STEPS: [Step; MAX_CPUS] = [const {
    Step {
        purpose: AtomicU8::new(NONE),
        over: AtomicU64::new(0),
        masked: AtomicBool::new(false),
        saved_if: AtomicBool::new(false),
        pushf: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// The opcode at `rip`, past one REX prefix (0x40-0x4F): what decides
/// how IF is treated. `None` if `rip` is not readable kernel code.
fn opcode(rip: u64) -> Option<u8> {
    let first = code_byte(rip)?;
    if first & 0xF0 == 0x40 {
        code_byte(rip + 1)
    } else {
        Some(first)
    }
}

/// True if a step is armed on CPU `cpu`.
pub fn pending(cpu: usize) -> bool {
    STEPS[cpu].purpose.load(Ordering::Acquire) != NONE
}

/// Arms a step of CPU `cpu`, stopped with `frame`, for `purpose`; a
/// breakpoint at its RIP is held lifted for the step. Call with the
/// debugger active (breakpoints lifted) and the world stopped.
pub fn arm(cpu: usize, frame: &mut TrapFrame, purpose: Purpose) {
    let s = &STEPS[cpu];
    if pending(cpu) {
        return;
    }
    let rip = frame.rip;
    let over = if TABLE.hold(rip) { rip } else { 0 };
    let op = opcode(rip);
    let mask = !op.is_some_and(|o| KEEPS_IF.contains(&o));
    s.over.store(over, Ordering::Relaxed);
    s.saved_if.store(frame.rflags & IF != 0, Ordering::Relaxed);
    s.masked.store(mask, Ordering::Relaxed);
    s.pushf.store(op == Some(PUSHF), Ordering::Relaxed);
    if mask {
        frame.rflags &= !IF;
    }
    frame.rflags |= TF;
    s.purpose.store(purpose as u8, Ordering::Release);
}

/// Undoes [`arm`] on a CPU whose step will not happen (the resume was
/// refused): its flags back, a held breakpoint no longer held.
pub fn cancel(cpu: usize, frame: &mut TrapFrame) {
    let s = &STEPS[cpu];
    if s.purpose.swap(NONE, Ordering::AcqRel) == NONE {
        return;
    }
    frame.rflags &= !TF;
    if s.masked.load(Ordering::Relaxed) && s.saved_if.load(Ordering::Relaxed) {
        frame.rflags |= IF;
    }
    let over = s.over.swap(0, Ordering::AcqRel);
    if over != 0 {
        TABLE.release(&mut KernelText, over);
    }
}

/// For the stepping CPU's `#DB`: if this CPU has a step armed and the
/// exception is a single step, undoes what [`arm`] did to its flags (and
/// to `pushf`'s pushed copy), patches a held breakpoint again and returns
/// what the step was for. `None`: not our step (the caller treats it as
/// any other debug exception).
pub fn finish(frame: &mut TrapFrame) -> Option<Purpose> {
    let dr6 = read_dr6();
    let s = &STEPS[cpu::current_index()];
    if dr6 & DR6_BS == 0 || s.purpose.load(Ordering::Acquire) == NONE {
        return None;
    }
    let purpose = match s.purpose.swap(NONE, Ordering::AcqRel) {
        1 => Purpose::Report,
        _ => Purpose::Continue,
    };
    write_dr6(DR6_CLEAR);
    let restored_if = if s.saved_if.load(Ordering::Relaxed) {
        IF
    } else {
        0
    };
    frame.rflags &= !TF;
    if s.masked.load(Ordering::Relaxed) {
        frame.rflags = (frame.rflags & !IF) | restored_if;
    }
    if s.pushf.load(Ordering::Relaxed) {
        let top = frame.rsp as *mut u64;
        // SAFETY: the stepped instruction was `pushf`, which just wrote
        // these 8 bytes at the interrupted context's RSP (same privilege
        // level: the trap frame's RSP is that context's). Only the copy of
        // the flags is changed, as kprobes' `resume_singlestep` does.
        unsafe {
            let pushed = top.read();
            top.write((pushed & !(TF | IF)) | restored_if);
        }
    }
    let over = s.over.swap(0, Ordering::AcqRel);
    if over != 0 {
        TABLE.release(&mut KernelText, over);
    }
    Some(purpose)
}

fn read_dr6() -> u64 {
    let v: u64;
    // SAFETY: reading DR6 at CPL 0 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, dr6", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

fn write_dr6(v: u64) {
    // SAFETY: writing DR6 at CPL 0 only clears recorded debug conditions
    // (SDM Vol. 3A §18.2.3: the processor never clears them itself).
    unsafe { core::arch::asm!("mov dr6, {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
}
