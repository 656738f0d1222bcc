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
use crate::arch::regs::SavedRegs;
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

/// The registers of an interrupted context, with the id of the thread this
/// CPU was running.
pub fn saved_from_frame(frame: &TrapFrame) -> SavedRegs {
    SavedRegs {
        thread_id: crate::sched::current_id(),
        ..SavedRegs::from_frame(frame)
    }
}

/// How each CPU ended up after [`stop_others`].
pub struct StopReport {
    /// TSC cycles from the start of stopping to the last CPU parked.
    pub cycles: u64,
}

/// Stops every other online CPU. Bounded: at most 10 ms for the IPI (see
/// [`wait_ipi`]), 200 ms after the NMI; a CPU that answers neither is left
/// and reported.
pub fn stop_others(me: usize) -> StopReport {
    let start = crate::time::rdtsc();
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
    wait_ipi(mask, start);
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
        cycles: crate::time::rdtsc() - start,
    }
}

/// Longest wait for the stop IPI before the NMI.
const IPI_WAIT_MAX_US: u64 = 10_000;
/// Once one CPU answered the IPI, the others get this many times its
/// latency (at least [`IPI_WAIT_MIN_US`], at most up to
/// [`IPI_WAIT_MAX_US`] in all) before the NMI: a CPU that is only slower
/// (a vCPU the host has not run yet) answers in about the same time, a CPU
/// spinning with interrupts off never does.
const IPI_WAIT_FACTOR: u64 = 8;
/// The least wait for the rest after the first answer.
const IPI_WAIT_MIN_US: u64 = 1_000;

/// Waits for the CPUs in `mask` to park after the stop IPI sent at TSC
/// `start`, bounded as the constants above say (FreeBSD's `stop_cpus_hard`
/// sends the NMI at once; a short IPI phase first lets every CPU that can
/// take an interrupt stop outside its interrupt-disabled sections).
fn wait_ipi(mask: u64, start: u64) {
    let end = crate::time::deadline_after_us(IPI_WAIT_MAX_US);
    let mut deadline = end;
    let mut answered = false;
    loop {
        let pending = STOP_PENDING.load(Ordering::SeqCst) & mask;
        let now = crate::time::rdtsc();
        if pending == 0 || now >= deadline {
            return;
        }
        if !answered && pending != mask {
            answered = true;
            let rest =
                ((now - start) * IPI_WAIT_FACTOR).max(crate::time::us_to_cycles(IPI_WAIT_MIN_US));
            deadline = end.min(now.saturating_add(rest));
        }
        core::hint::spin_loop();
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
    unsafe { *c.saved.get() = saved_from_frame(frame) };
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
    if crate::arch::trap::nmi_hook(frame) {
        return;
    }
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

/// Is the CPU parked (for tests of the stop logic)?
pub fn all_others_parked() -> bool {
    let me = cpu::current_index();
    cpu::all().iter().all(|c| {
        c.index() == me
            || matches!(
                c.state(),
                CpuState::StoppedIpi
                    | CpuState::StoppedNmi
                    | CpuState::ParkedPanic
                    | CpuState::StoppedOnArrival
                    | CpuState::Failed
            )
    })
}
