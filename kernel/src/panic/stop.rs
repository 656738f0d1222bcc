//! Stopping the other CPUs on panic (FreeBSD's `stop_cpus_hard` on panic):
//! a stop IPI first, an NMI for any CPU that did not answer (it runs with
//! interrupts disabled), then carry on regardless and report.
//!
//! A CPU that takes a stop request saves its registers into its
//! [`PerCpu::saved`](crate::arch::cpu::PerCpu) and parks forever with
//! interrupts off. NMIs are told apart by [`STOP_PENDING`]: a bit per CPU set
//! by the panic CPU before it sends anything.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::arch::cpu::{self, CpuState};
use crate::arch::idt::vector;
use crate::arch::trap::TrapFrame;

/// Bit n set: CPU n has been asked to stop and has not yet parked.
pub static STOP_PENDING: AtomicU64 = AtomicU64::new(0);

/// Test switch (`trigger=deaf`): the CPU with this index ignores the stop
/// IPI and the NMI, like a CPU wedged in SMM or hung in hardware.
/// `u32::MAX`: none.
pub static DEAF_CPU: AtomicU32 = AtomicU32::new(u32::MAX);

fn deaf(index: usize) -> bool {
    DEAF_CPU.load(Ordering::Relaxed) == index as u32
}

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
    pub fn from_frame(f: &TrapFrame) -> Self {
        let thread = crate::sched::current_ptr();
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
            cr2: x86_64::registers::control::Cr2::read_raw(),
            cr3: x86_64::registers::control::Cr3::read()
                .0
                .start_address()
                .as_u64(),
            thread: thread as u64,
            // SAFETY: `current` points at a live thread or is null.
            thread_id: if thread.is_null() {
                u64::MAX
            } else {
                // SAFETY: `current` points at a live thread (checked non-null).
                unsafe { (*thread).id }
            },
            tsc: crate::arch::rdtsc(),
        }
    }
}

/// How each CPU ended up after [`stop_others`].
pub struct StopReport {
    /// TSC cycles from the start of stopping to the last CPU parked.
    pub cycles: u64,
}

/// Stops every other online CPU. Bounded: 50 ms for the IPI, 200 ms after
/// the NMI; a CPU that answers neither is left and reported.
pub fn stop_others(me: usize) -> StopReport {
    let start = crate::arch::rdtsc();
    // Pairs with the fence in `ap_entry`: a CPU going online either is seen
    // `Online` here or sees the panic and parks itself.
    core::sync::atomic::fence(Ordering::SeqCst);
    let mut mask = 0u64;
    for c in cpu::all() {
        if c.index() != me && c.state() == CpuState::Online {
            mask |= 1 << c.index();
        }
    }
    STOP_PENDING.fetch_or(mask, Ordering::SeqCst);
    for i in 0..cpu::all().len() {
        if mask & (1 << i) != 0 {
            crate::arch::apic::send_ipi(i, vector::STOP);
        }
    }
    wait_parked(mask, 50_000);
    let left = STOP_PENDING.load(Ordering::SeqCst) & mask;
    if left != 0 {
        for i in 0..cpu::all().len() {
            if left & (1 << i) != 0 {
                crate::arch::apic::send_nmi(i);
            }
        }
        wait_parked(left, 200_000);
    }
    StopReport {
        cycles: crate::arch::rdtsc() - start,
    }
}

fn wait_parked(mask: u64, us: u64) {
    let deadline = crate::time::deadline_after_us(us);
    while STOP_PENDING.load(Ordering::SeqCst) & mask != 0 && !crate::time::passed(deadline) {
        core::hint::spin_loop();
    }
}

/// Saves this CPU's state, marks it stopped and parks it forever.
fn park(frame: &TrapFrame, how: CpuState) -> ! {
    let c = cpu::this();
    // SAFETY: only this CPU writes its `saved`; the panic CPU reads it after
    // the release store of the state below.
    unsafe { *c.saved.get() = SavedRegs::from_frame(frame) };
    c.set_state(how);
    STOP_PENDING.fetch_and(!(1 << c.index()), Ordering::SeqCst);
    crate::arch::halt_forever();
}

/// Stop IPI handler.
pub fn on_stop_ipi(frame: &mut TrapFrame) {
    crate::arch::apic::eoi();
    let me = cpu::current_index();
    if deaf(me) {
        return;
    }
    if STOP_PENDING.load(Ordering::SeqCst) & (1 << me) != 0 {
        park(frame, CpuState::StoppedIpi);
    }
}

/// NMI handler: a pending stop parks this CPU; a CPU already parked goes back
/// to sleep; any other NMI is a hardware error and panics.
pub fn on_nmi(frame: &mut TrapFrame) {
    let c = cpu::this();
    if deaf(c.index()) {
        return;
    }
    if STOP_PENDING.load(Ordering::SeqCst) & (1 << c.index()) != 0 {
        park(frame, CpuState::StoppedNmi);
    }
    match c.state() {
        CpuState::StoppedIpi
        | CpuState::StoppedNmi
        | CpuState::ParkedPanic
        | CpuState::StoppedOnArrival
        | CpuState::Panicking => {}
        _ => panic!("unexpected NMI at {:#x}", frame.rip),
    }
}

/// Parks an application processor that arrived from INIT-SIPI-SIPI after a
/// panic began (it was `Starting`, so no stop was sent to it).
pub fn park_on_arrival(index: usize) -> ! {
    x86_64::instructions::interrupts::disable();
    let c = cpu::cpu(index);
    c.set_state(CpuState::StoppedOnArrival);
    STOP_PENDING.fetch_and(!(1 << index), Ordering::SeqCst);
    crate::arch::halt_forever();
}

/// Parks a CPU that panicked after another CPU won the panic.
pub fn park_secondary_panic(regs: SavedRegs) -> ! {
    let c = cpu::this();
    // SAFETY: as in `park`.
    unsafe { *c.saved.get() = regs };
    c.set_state(CpuState::ParkedPanic);
    STOP_PENDING.fetch_and(!(1 << c.index()), Ordering::SeqCst);
    crate::arch::halt_forever();
}
