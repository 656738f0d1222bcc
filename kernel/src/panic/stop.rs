//! Stopping the other CPUs on panic (FreeBSD's `stop_cpus_hard` on panic):
//! an NMI to every other CPU at once, a stop IPI and a second NMI for any
//! that did not answer, then carry on regardless and report.
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

/// TSC at which each CPU entered its first stop handler (IPI or NMI), and
/// at which it published itself parked; 0: not (yet). For the report's
/// per-CPU stop times ([`print_times`]).
pub static ENTERED_TSC: [AtomicU64; cpu::MAX_CPUS] = [const { AtomicU64::new(0) }; cpu::MAX_CPUS];
/// See [`ENTERED_TSC`].
pub static PARKED_TSC: [AtomicU64; cpu::MAX_CPUS] = [const { AtomicU64::new(0) }; cpu::MAX_CPUS];
/// TSC at which the stop began and after the last IPI was sent.
pub static STOP_START_TSC: AtomicU64 = AtomicU64::new(0);
/// See [`STOP_START_TSC`].
pub static SENT_TSC: AtomicU64 = AtomicU64::new(0);

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

/// Bit n set: CPU n was halted in its idle loop when the stop began and
/// was claimed as stopped ([`stop_others`]); it parks on its next trap.
pub static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// How each CPU ended up after [`stop_others`].
pub struct StopReport {
    /// TSC cycles from the start of stopping to the world stopped: every
    /// other CPU parked, or claimed while halted in its idle loop (when
    /// all were claimed, that is before the NMI that parks them is sent).
    pub cycles: u64,
}

/// Stops every other online CPU with an NMI, to all of them at once (one
/// ICR write where the APIC allows it), as FreeBSD's `stop_cpus_hard` and
/// Linux kdb's round-up (`kgdb_roundup_cpus`, `apic->send_IPI_allbutself`
/// with `NMI_VECTOR`) do: a CPU spinning with interrupts off stops as fast
/// as an idle one. Each target takes one interrupt and sends no EOI. A
/// target not parked after [`NMI_WAIT_US`] (its NMIs blocked, or a lost
/// message) is sent the stop IPI and the NMI again, one by one, and gets
/// 200 ms more; a CPU that answers neither is left and reported.
///
/// A CPU halted in its idle loop is not waited for: it is claimed
/// ([`cpu::PerCpu::claim_if_halted`]) before the NMI goes out, runs
/// nothing until its next trap, and that trap (the NMI, or anything
/// before it) parks it first thing; the report waits for it to have
/// parked before it names its registers ([`wait_claimed`]), after the
/// report's first lines. Neither FreeBSD nor Linux does this: both wait
/// for every CPU, an idle one in a deep sleep state included.
pub fn stop_others(me: usize) -> StopReport {
    let start = crate::time::rdtsc();
    STOP_START_TSC.store(start, Ordering::Relaxed);
    // Pairs with the fence in `ap_entry`: a CPU going online either is seen
    // `Online` here or sees the panic and parks itself.
    core::sync::atomic::fence(Ordering::SeqCst);
    // A CPU still starting is sent nothing (it may still be in the
    // real-mode trampoline, with no IDT): it parks itself on arrival
    // (`park_on_arrival` clears its bit), and is waited for with the rest.
    let Targets {
        online: mask,
        everyone,
        starting,
    } = targets(me);
    STOP_PENDING.fetch_or(mask | starting, Ordering::SeqCst);
    let claimed = claim_halted(mask, false);
    CLAIMED.store(claimed, Ordering::SeqCst);
    // With every other CPU claimed nothing else runs from here on: the
    // NMI still goes to them all, so that they park with their registers.
    let all_claimed = (mask & !claimed) | starting == 0;
    let claims_done = crate::time::rdtsc();
    if mask != 0 {
        send(mask, everyone, None);
    }
    SENT_TSC.store(crate::time::rdtsc(), Ordering::Relaxed);
    wait_clear(&STOP_PENDING, (mask & !claimed) | starting, NMI_WAIT_US);
    let cycles = if all_claimed {
        claims_done
    } else {
        crate::time::rdtsc()
    } - start;
    let left = STOP_PENDING.load(Ordering::SeqCst) & mask & !claimed;
    if left != 0 {
        send(left, false, Some(vector::STOP));
        send(left, false, None);
        wait_clear(&STOP_PENDING, left, 200_000);
    }
    StopReport {
        cycles: if left != 0 {
            crate::time::rdtsc() - start
        } else {
            cycles
        },
    }
}

/// Claims every CPU of `mask` halted in its idle loop (not the
/// `trigger=deaf` one, which plays a CPU that never answers). Never
/// inlined (see [`targets`]); the rehearsal runs it and claims nothing
/// (translated, it took 150 us more of the stop at `-smp 8`: the NMI went
/// out 236 us after the stop's start instead of 76-91).
#[inline(never)]
fn claim_halted(mask: u64, rehearsal: bool) -> u64 {
    let mut claimed = 0;
    for c in cpu::all() {
        let bit = 1 << c.index();
        if mask & bit != 0 && !deaf(c.index()) && c.claim_if_halted(rehearsal) {
            claimed |= bit;
        }
    }
    claimed
}

/// The first trap of a claimed CPU (`arch::trap`'s claimed hook): it parks
/// through the stop's own code, as if this trap were the stop's NMI.
pub fn park_claimed(frame: &mut TrapFrame) {
    let t = crate::time::rdtsc();
    let how = if frame.vector as u8 == vector::NMI {
        CpuState::StoppedNmi
    } else {
        CpuState::StoppedIpi
    };
    stop_here(frame, how, t);
}

/// How long the report waits for the claimed CPUs to park (the NMI is on
/// its way; a CPU whose NMI is lost still wakes on its next timer tick).
const CLAIMED_WAIT_US: u64 = 50_000;

/// Waits (bounded) until every claimed CPU has parked: before the report
/// reads their registers. Returns at once if none was claimed (the
/// rehearsal's report).
pub fn wait_claimed() {
    let claimed = CLAIMED.load(Ordering::SeqCst);
    if claimed != 0 {
        wait_clear(&STOP_PENDING, claimed, CLAIMED_WAIT_US);
    }
}

/// The CPUs a stop from `me` concerns, as masks.
struct Targets {
    /// The online CPUs other than `me`: sent the stop.
    online: u64,
    /// `online` is every other CPU (so one broadcast reaches exactly them).
    everyone: bool,
    /// The CPUs still starting: sent nothing, waited for.
    starting: u64,
}

/// The [`Targets`] of a stop from `me`. Never inlined, as [`send`] and
/// [`wait_clear`]: the stop and its boot rehearsal ([`rehearse`]) run one
/// copy of the code, which under TCG is translated at the rehearsal (an
/// inlined copy in the stop cost the panic CPU 120-180 us between the
/// stop's start and its NMI, most of a stop at `-smp 4`).
#[inline(never)]
fn targets(me: usize) -> Targets {
    let mut t = Targets {
        online: 0,
        everyone: true,
        starting: 0,
    };
    for c in cpu::all() {
        if c.index() != me {
            match c.state() {
                CpuState::Online => t.online |= 1 << c.index(),
                CpuState::Starting => {
                    t.starting |= 1 << c.index();
                    t.everyone = false;
                }
                _ => t.everyone = false,
            }
        }
    }
    t
}

/// Sends the stop IPI (`vec`) or an NMI (`None`) to the CPUs in `mask`:
/// with one broadcast when `everyone` (every other CPU is online) and the
/// APIC layer allows it, else one by one. Never inlined (see [`targets`]).
#[inline(never)]
fn send(mask: u64, everyone: bool, vec: Option<u8>) {
    if everyone && crate::arch::apic::send_ipi_all_others(vec) {
        return;
    }
    for i in 0..cpu::all().len() {
        if mask & (1 << i) != 0 {
            match vec {
                Some(v) => crate::arch::apic::send_ipi(i, v),
                None => crate::arch::apic::send_nmi(i),
            }
        }
    }
}

/// How long the targets have to park on the first NMI before the second
/// round.
const NMI_WAIT_US: u64 = 10_000;

/// Waits until the bits of `mask` are clear in `bits` (the CPUs parked, or
/// through their rehearsal), at most `us`. Never inlined (see [`targets`]).
#[inline(never)]
fn wait_clear(bits: &AtomicU64, mask: u64, us: u64) {
    let deadline = crate::time::deadline_after_us(us);
    while bits.load(Ordering::SeqCst) & mask != 0 && !crate::time::passed(deadline) {
        core::hint::spin_loop();
    }
}

/// Prints when the stop was sent and when each CPU entered its handler and
/// parked, in microseconds after the stop began (what the stop latency is
/// made of).
pub fn print_times(out: &mut dyn core::fmt::Write) {
    let start = STOP_START_TSC.load(Ordering::Relaxed);
    let us = |t: u64| crate::time::cycles_to_us(t.saturating_sub(start));
    let _ = write!(
        out,
        "stop times (us): sent {}",
        us(SENT_TSC.load(Ordering::Relaxed))
    );
    for c in cpu::all() {
        let (entered, parked) = (
            ENTERED_TSC[c.index()].load(Ordering::Relaxed),
            PARKED_TSC[c.index()].load(Ordering::Relaxed),
        );
        if entered != 0 && parked != 0 {
            let claimed = CLAIMED.load(Ordering::Relaxed) & (1 << c.index()) != 0;
            let _ = write!(
                out,
                "; cpu {}{} entered {} parked {}",
                c.index(),
                if claimed { " (claimed idle)" } else { "" },
                us(entered),
                us(parked)
            );
        }
    }
    let _ = writeln!(out);
}

/// Bit n set: CPU n is asked to run the stop path once without parking
/// (see [`rehearse`]).
static REHEARSE: AtomicU64 = AtomicU64::new(0);

/// Runs the stop once at boot, without stopping anything: the NMI to every
/// other online CPU through [`send`], the wait for them ([`wait_clear`]),
/// and on each target the very code of its stop ([`stop_here`]) up to the
/// park itself, whose effects it then undoes. Under an emulator (QEMU's
/// TCG) the first run of any code pays for its translation: the first CPU
/// to take the panic's NMI spent 350-450 us (debug kernel at opt-level 1)
/// between entering the handler and parking while the CPUs after it took
/// 5 us, with a rehearsal that ran only a copy of the register saving (the
/// compiler had inlined it in two places); on hardware it only warms caches.
/// Bounded (100 ms); returns how many CPUs ran it (a CPU still running it
/// later swallows that one NMI).
pub fn rehearse() -> u32 {
    let me = cpu::current_index();
    let Targets {
        online: mask,
        everyone,
        ..
    } = targets(me);
    if mask == 0 {
        return 0;
    }
    REHEARSE.fetch_or(mask, Ordering::SeqCst);
    claim_halted(mask, true);
    send(mask, everyone, None);
    wait_clear(&REHEARSE, mask, 100_000);
    // A CPU that has not run it yet keeps its bit: its NMI may still
    // arrive, and must not be taken for an unexpected one.
    let missed = REHEARSE.load(Ordering::SeqCst) & mask;
    (mask & !missed).count_ones()
}

/// Stops this CPU: saves its registers, marks it stopped and parks it for
/// good. With no stop pending (the boot's [`rehearse`]) it runs the same
/// code up to the park, then undoes it and returns: a real stop that comes
/// meanwhile finds `STOP_PENDING` set at the check, or its NMI waits until
/// this handler returns. Never inlined: one copy of the code, which the
/// rehearsal translates.
#[inline(never)]
fn stop_here(frame: &TrapFrame, how: CpuState, entered: u64) {
    let c = cpu::this();
    let bit = 1 << c.index();
    let _ =
        ENTERED_TSC[c.index()].compare_exchange(0, entered, Ordering::Relaxed, Ordering::Relaxed);
    // SAFETY: only this CPU writes its `saved`; the panic CPU reads it after
    // the release store of the state below, other readers only where
    // `valid` (cleared again by a rehearsal).
    unsafe { *c.saved.get() = saved_from_frame(frame) };
    let stop = STOP_PENDING.load(Ordering::SeqCst) & bit != 0;
    // A rehearsal stores the state the CPU has (at boot, every CPU is
    // online and only it changes its own state).
    c.set_state(if stop { how } else { c.state() });
    PARKED_TSC[c.index()].store(crate::time::rdtsc(), Ordering::Relaxed);
    if !stop {
        // SAFETY: as above.
        unsafe { (*c.saved.get()).valid = false };
        ENTERED_TSC[c.index()].store(0, Ordering::Relaxed);
        PARKED_TSC[c.index()].store(0, Ordering::Relaxed);
        REHEARSE.fetch_and(!bit, Ordering::SeqCst);
        return;
    }
    STOP_PENDING.fetch_and(!bit, Ordering::SeqCst);
    crate::arch::halt_forever();
}

/// Stop IPI handler (the second round of [`stop_others`]). A CPU that
/// parks sends no EOI: it halts for good with interrupts off.
pub fn on_stop_ipi(frame: &mut TrapFrame) {
    let t = crate::time::rdtsc();
    let me = cpu::current_index();
    if !deaf(me) && STOP_PENDING.load(Ordering::SeqCst) & (1 << me) != 0 {
        stop_here(frame, CpuState::StoppedIpi, t);
    }
    crate::arch::apic::eoi();
}

/// NMI handler: a pending stop parks this CPU; a CPU already parked goes back
/// to sleep; any other NMI is a hardware error and panics.
pub fn on_nmi(frame: &mut TrapFrame) {
    let t = crate::time::rdtsc();
    let c = cpu::this();
    if deaf(c.index()) {
        return;
    }
    let bit = 1 << c.index();
    let stopping = STOP_PENDING.load(Ordering::SeqCst) & bit != 0;
    // A break-in's NMI (after the panic's own stop, which wins).
    if !stopping && crate::arch::trap::nmi_hook(frame) {
        return;
    }
    // One call for the stop and its rehearsal, so the rehearsal runs the
    // stop's own code (returns only for a rehearsal).
    if stopping || REHEARSE.load(Ordering::SeqCst) & bit != 0 {
        stop_here(frame, CpuState::StoppedNmi, t);
        return;
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
