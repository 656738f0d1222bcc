//! What gdb sees of the stopped machine: one thread per CPU (thread id =
//! CPU index + 1, the CPU running the debugger listed first so gdb selects
//! it), each with the registers its stop saved; memory read through the
//! `mem` command's own checks; memory never written (breakpoints are the
//! stub's own `Z0`, [`super::breakpoints`]).
//!
//! After a panic nothing runs again: `continue` and `stepi` are accepted
//! and answered at once with a new stop at the same place (see
//! [`super::session`]), breakpoints and register writes are refused, so
//! gdb stays usable and the world stays stopped. After a break-in
//! `continue` resumes every CPU, `stepi` steps the selected thread's CPU
//! one instruction (the debugger resumes the others too, gdb's all-stop
//! `vCont;s:N;c`; the step's `#DB` stops them again), registers of a CPU
//! that stopped resumably can be written (its live trap frame), and
//! `Z0`/`z0` insert and remove breakpoints.

use core::num::NonZeroUsize;

use gdbstub::common::{Signal, Tid};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;
use gdbstub_arch::x86::reg::X86_64CoreRegs;

use super::breakpoints::Error as BreakpointError;
use super::hooks::debugger;
use super::step::{self, Purpose};
use super::text::{KernelText, TABLE};
use crate::arch::cpu;
use crate::arch::regs::SavedRegs;
use crate::arch::trap::TrapFrame;
use crate::pprintln;

/// `EFAULT`: the reply to a read of memory that is not mapped RAM.
const EFAULT: u8 = 14;
/// `EPERM`: the reply to a memory write, and to a register write after a
/// panic (the world is stopped for good).
const EPERM: u8 = 1;
/// `ESRCH`: the reply for registers of a CPU that saved none (it did not
/// stop) or does not exist.
const ESRCH: u8 = 3;

/// The stopped machine, as a gdbstub target. Holds only gdb's pending
/// resume request: the registers are the per-CPU saved ones (or live
/// trap frames), memory is memory.
pub struct Machine {
    /// The thread gdb asked to single-step in its current resume request.
    step: Option<Tid>,
    /// gdb gave no action for the other threads (scheduler locking).
    alone: bool,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    /// No resume request pending.
    pub const fn new() -> Self {
        Self {
            step: None,
            alone: false,
        }
    }

    /// gdb detached: after a break-in the world resumes (gdb's meaning
    /// of `detach`); after a panic it stays stopped.
    pub fn detached(&mut self) {
        self.step = None;
        if let Some(d) = debugger().filter(|_| !crate::panic::panicking()) {
            super::session::clear_stop();
            if let Err(why) = (d.resume)(None) {
                pprintln!("gdb: detached; the machine stays stopped: {why}");
            }
        }
    }
}

/// The live trap frame of stopped CPU `index`, after a break-in.
fn live_frame(index: usize) -> Option<&'static mut TrapFrame> {
    if crate::panic::panicking() {
        return None;
    }
    let p = (debugger()?.frame)(index)?;
    // SAFETY: the debugger hands out the frame of a CPU stopped inside
    // its trap handler, valid until the world resumes; only the debugger
    // CPU (this one, in its loop) uses it meanwhile.
    Some(unsafe { &mut *p })
}

/// Thread id of CPU `index`.
pub fn tid_of(index: usize) -> Tid {
    NonZeroUsize::MIN.saturating_add(index)
}

/// CPU index of thread `tid`, if such a CPU exists.
fn cpu_of(tid: Tid) -> Option<usize> {
    let index = tid.get() - 1;
    (index < cpu::all().len()).then_some(index)
}

/// The thread gdb is told the stop happened in: the CPU running the
/// debugger (the panic CPU).
pub fn stop_thread() -> Tid {
    tid_of(cpu::current_index())
}

/// Writes gdb's register set into a live trap frame: the general
/// registers, RIP and the arithmetic flags; CS, SS and the system flags
/// (TF, IF, IOPL and above) stay as they are, so a write cannot wreck the
/// frame `iretq` returns through.
fn store(f: &mut TrapFrame, regs: &X86_64CoreRegs) {
    let r = &regs.regs;
    [
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11, f.r12,
        f.r13, f.r14, f.r15,
    ] = *r;
    f.rip = regs.rip;
    /// CF PF AF ZF SF DF OF: what a register write may change.
    const ARITHMETIC: u64 = 0xCD5;
    f.rflags = (f.rflags & !ARITHMETIC) | (regs.eflags as u64 & ARITHMETIC);
}

/// Fills gdb's x86-64 register set from a CPU's saved registers (the
/// segment registers other than CS/SS, the x87 and SSE state were not
/// saved: zero).
fn fill(regs: &mut X86_64CoreRegs, r: &SavedRegs) {
    regs.regs = [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ];
    regs.rip = r.rip;
    regs.eflags = r.rflags as u32;
    regs.segments.cs = r.cs as u32;
    regs.segments.ss = r.ss as u32;
}

/// Copies readable memory at `addr` into `data`: as many bytes as the `mem`
/// command's check ([`crate::command::debug::readable_prefix`]: mapped, and
/// RAM) allows, none of a non-canonical address.
pub fn read_memory(addr: u64, data: &mut [u8]) -> Option<usize> {
    if !crate::command::parse::is_canonical(addr) {
        return None;
    }
    let n = crate::command::debug::readable_prefix(addr, data.len() as u64) as usize;
    if n == 0 {
        return None;
    }
    for (i, b) in data[..n].iter_mut().enumerate() {
        // SAFETY: every byte of `addr..addr + n` was checked mapped RAM just
        // now, with the world stopped (nothing unmaps it meanwhile).
        *b = unsafe { ((addr + i as u64) as *const u8).read_volatile() };
    }
    Some(n)
}

impl Target for Machine {
    type Arch = X86_64_SSE;
    type Error = ();

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl Breakpoints for Machine {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Machine {
    /// After a panic: refused (nothing runs to hit it). A bad address (not
    /// the kernel's mapped code), a full table: refused with the reason on
    /// the console; a duplicate: already in place.
    fn add_sw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        if crate::panic::panicking() {
            pprintln!("gdb: no breakpoints after a panic (nothing runs again)");
            return Ok(false);
        }
        match TABLE.insert(&mut KernelText, addr) {
            Ok(()) | Err(BreakpointError::Duplicate) => Ok(true),
            Err(e) => {
                pprintln!("gdb: breakpoint at {addr:#x} refused: {e}");
                Ok(false)
            }
        }
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        Ok(TABLE.remove(&mut KernelText, addr).is_ok())
    }
}

impl MultiThreadBase for Machine {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let index = cpu_of(tid).ok_or(TargetError::Errno(ESRCH))?;
        let saved = match live_frame(index) {
            Some(f) => Some(SavedRegs::frame_registers(f)),
            None => crate::command::debug::saved_regs(index),
        };
        let r = saved.ok_or(TargetError::Errno(ESRCH))?;
        fill(regs, &r);
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let index = cpu_of(tid).ok_or(TargetError::Errno(ESRCH))?;
        let frame = live_frame(index).ok_or(TargetError::Errno(EPERM))?;
        store(frame, regs);
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], _: Tid) -> TargetResult<usize, Self> {
        read_memory(start, data).ok_or(TargetError::Errno(EFAULT))
    }

    fn write_addrs(&mut self, _: u64, _: &[u8], _: Tid) -> TargetResult<(), Self> {
        Err(TargetError::Errno(EPERM))
    }

    fn list_active_threads(&mut self, thread_is_active: &mut dyn FnMut(Tid)) -> Result<(), ()> {
        let me = cpu::current_index();
        thread_is_active(tid_of(me));
        for c in cpu::all() {
            if c.index() != me {
                thread_is_active(tid_of(c.index()));
            }
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for Machine {
    /// After a panic: accepted, and the session reports the stop at once
    /// (nothing runs). After a break-in: every CPU resumes, and a step
    /// request's CPU traps after one instruction. A resume the debugger
    /// refuses (a CPU stopped by NMI) is a stop at once, the reason on the
    /// console.
    fn resume(&mut self) -> Result<(), ()> {
        let step = self.step.take();
        let Some(d) = debugger().filter(|_| !crate::panic::panicking()) else {
            return Ok(());
        };
        super::session::clear_stop();
        let step_cpu = step.and_then(cpu_of);
        if let Some(index) = step_cpu {
            let Some(frame) = live_frame(index) else {
                pprintln!("gdb: cpu {index} did not stop resumably; it cannot step");
                super::session::stop_at_once();
                return Ok(());
            };
            step::arm(index, frame, Purpose::Report);
        }
        let alone = core::mem::take(&mut self.alone);
        let resumed = match step_cpu {
            Some(index) if alone => (d.resume_alone)(index),
            _ => (d.resume)(step_cpu),
        };
        if let Err(why) = resumed {
            pprintln!("gdb: cannot resume: {why}");
            if let Some(index) = step_cpu
                && let Some(frame) = live_frame(index)
            {
                step::cancel(index, frame);
            }
            super::session::stop_at_once();
        }
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), ()> {
        self.step = None;
        self.alone = false;
        Ok(())
    }

    fn set_resume_action_continue(&mut self, _: Tid, _: Option<Signal>) -> Result<(), ()> {
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for Machine {
    /// gdb steps one thread alone (`vCont;s:N` with no `c`: how it steps
    /// off a breakpoint). For the debugger's own CPU the others stay held
    /// for that instruction ([`crate::debugger::resume_alone`]); a lone
    /// step of another CPU resumes them all (no partial release).
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), ()> {
        self.alone = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for Machine {
    fn set_resume_action_step(&mut self, tid: Tid, _: Option<Signal>) -> Result<(), ()> {
        self.step = Some(tid);
        Ok(())
    }
}

impl ThreadExtraInfo for Machine {
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, ()> {
        let mut w = Truncating { buf, len: 0 };
        if let Some(index) = cpu_of(tid) {
            let c = cpu::cpu(index);
            let _ = core::fmt::Write::write_fmt(
                &mut w,
                format_args!(
                    "cpu {index}, apic {}, {}",
                    c.apic_id.load(core::sync::atomic::Ordering::Relaxed),
                    c.state().name()
                ),
            );
        }
        Ok(w.len)
    }
}

/// Formats into a fixed buffer, dropping what does not fit.
struct Truncating<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
