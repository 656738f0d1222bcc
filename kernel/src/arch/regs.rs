//! Registers saved when a CPU is stopped or traps into the panic path.

use super::trap::TrapFrame;

/// Register state of a stopped CPU (or of the panic CPU at panic entry).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
#[allow(missing_docs, reason = "register names are self-describing")]
pub struct SavedRegs {
    pub valid: bool,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cs: u64,
    pub ss: u64,
    pub cr2: u64,
    pub cr3: u64,
    /// The interrupted thread (pointer, for the debugger).
    pub thread: u64,
    /// Id of the interrupted thread.
    pub thread_id: u64,
    /// TSC when the registers were saved.
    pub tsc: u64,
}

impl SavedRegs {
    /// All zero, invalid.
    pub const ZERO: Self = Self {
        valid: false,
        rax: 0,
        rbx: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        rbp: 0,
        rsp: 0,
        r8: 0,
        r9: 0,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
        rip: 0,
        rflags: 0,
        cs: 0,
        ss: 0,
        cr2: 0,
        cr3: 0,
        thread: 0,
        thread_id: u64::MAX,
        tsc: 0,
    };

    /// Captures the state of an interrupted context from its trap frame.
    /// The thread is this CPU's current one, as an opaque pointer: the
    /// scheduler fills in [`thread_id`](Self::thread_id).
    pub fn from_frame(f: &TrapFrame) -> Self {
        let thread = super::cpu::current_thread();
        Self {
            cr2: x86_64::registers::control::Cr2::read_raw(),
            cr3: x86_64::registers::control::Cr3::read()
                .0
                .start_address()
                .as_u64(),
            thread: thread as u64,
            tsc: crate::time::rdtsc(),
            ..Self::frame_registers(f)
        }
    }

    /// Only the registers a trap frame holds (no control registers, thread
    /// or time: those are the reading CPU's, not the frame's), as gdb
    /// reads the live frame of another CPU held by a break-in.
    pub fn frame_registers(f: &TrapFrame) -> Self {
        Self {
            valid: true,
            rax: f.rax,
            rbx: f.rbx,
            rcx: f.rcx,
            rdx: f.rdx,
            rsi: f.rsi,
            rdi: f.rdi,
            rbp: f.rbp,
            rsp: f.rsp,
            r8: f.r8,
            r9: f.r9,
            r10: f.r10,
            r11: f.r11,
            r12: f.r12,
            r13: f.r13,
            r14: f.r14,
            r15: f.r15,
            rip: f.rip,
            rflags: f.rflags,
            cs: f.cs,
            ss: f.ss,
            ..Self::ZERO
        }
    }
}
