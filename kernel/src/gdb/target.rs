//! What gdb sees of the stopped machine: one thread per CPU (thread id =
//! CPU index + 1, the panic CPU listed first so gdb selects it), each with
//! the registers its stop saved; memory read through the `mem` command's
//! own checks; nothing written.
//!
//! In panic mode nothing runs again: `continue` and `stepi` are accepted and
//! answered at once with a new stop at the same place (see
//! [`super::session`]), so gdb stays usable and the world stays stopped.

use core::num::NonZeroUsize;

use gdbstub::common::{Signal, Tid};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSingleStep,
    MultiThreadSingleStepOps,
};
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;
use gdbstub_arch::x86::reg::X86_64CoreRegs;

use crate::arch::cpu;
use crate::arch::regs::SavedRegs;

/// `EFAULT`: the reply to a read of memory that is not mapped RAM.
const EFAULT: u8 = 14;
/// `EPERM`: the reply to a write (memory or registers) while the world is
/// stopped for good.
const EPERM: u8 = 1;
/// `ESRCH`: the reply for registers of a CPU that saved none (it did not
/// stop) or does not exist.
const ESRCH: u8 = 3;

/// The stopped machine, as a gdbstub target. Holds nothing: the registers
/// are the per-CPU saved ones, memory is memory.
pub struct Machine;

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

    // gdb inserts a breakpoint by writing `int3` itself (`M`); that write
    // is refused like every other, so `break` fails cleanly in panic mode.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl MultiThreadBase for Machine {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let saved = cpu_of(tid).and_then(crate::command::debug::saved_regs);
        let r = saved.ok_or(TargetError::Errno(ESRCH))?;
        fill(regs, &r);
        Ok(())
    }

    fn write_registers(&mut self, _: &X86_64CoreRegs, _: Tid) -> TargetResult<(), Self> {
        Err(TargetError::Errno(EPERM))
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
    // Accepted; the session reports the stop at once (nothing runs).
    fn resume(&mut self) -> Result<(), ()> {
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), ()> {
        Ok(())
    }

    fn set_resume_action_continue(&mut self, _: Tid, _: Option<Signal>) -> Result<(), ()> {
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSingleStep for Machine {
    fn set_resume_action_step(&mut self, _: Tid, _: Option<Signal>) -> Result<(), ()> {
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
