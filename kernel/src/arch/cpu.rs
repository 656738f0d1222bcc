//! Per-CPU data, reached through the GS base (`gs:[0]` points at the CPU's own
//! [`PerCpu`], `gs:[8]` holds its index).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

use super::regs::SavedRegs;

/// Most CPUs the kernel brings up; more in the MADT are reported and skipped.
pub const MAX_CPUS: usize = 16;

/// Size of each IST stack (NMI, double fault, machine check).
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// Lifecycle of a CPU as shown by `cpus` and the panic console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuState {
    /// Not present or not started.
    Absent = 0,
    /// INIT-SIPI-SIPI sent, not yet answered.
    Starting = 1,
    /// Running the scheduler.
    Online = 2,
    /// Did not come up within the bound; skipped.
    Failed = 3,
    /// Parked by the panic path after an IPI.
    StoppedIpi = 4,
    /// Parked by the panic path after an NMI.
    StoppedNmi = 5,
    /// Parked itself because it panicked after another CPU won the panic.
    ParkedPanic = 6,
    /// The CPU that owns the panic.
    Panicking = 7,
    /// Arrived from INIT-SIPI-SIPI after a panic had begun and parked itself
    /// before running anything.
    StoppedOnArrival = 8,
}

impl CpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Starting,
            2 => Self::Online,
            3 => Self::Failed,
            4 => Self::StoppedIpi,
            5 => Self::StoppedNmi,
            6 => Self::ParkedPanic,
            7 => Self::Panicking,
            8 => Self::StoppedOnArrival,
            _ => Self::Absent,
        }
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Starting => "starting",
            Self::Online => "online",
            Self::Failed => "failed",
            Self::StoppedIpi => "stopped (ipi)",
            Self::StoppedNmi => "stopped (nmi)",
            Self::ParkedPanic => "parked (panicked too)",
            Self::Panicking => "panicking",
            Self::StoppedOnArrival => "stopped (on arrival)",
        }
    }
}

/// [`PerCpu::idle`]: running (or halted somewhere else than the idle loop).
const RUNNING: u8 = 0;
/// [`PerCpu::idle`]: halted in the idle loop.
const HALTED: u8 = 1;
/// [`PerCpu::idle`]: halted in the idle loop and claimed by a panic.
const CLAIMED: u8 = 2;
/// A [`PerCpu::idle`] value never stored (the rehearsal's compare).
const NEVER: u8 = 0xFF;

/// One CPU's private data. `#[repr(C)]` so the entry code can rely on the
/// first two fields' offsets.
#[repr(C, align(64))]
pub struct PerCpu {
    self_ptr: AtomicPtr<PerCpu>,
    index: AtomicU32,
    /// Thread running on this CPU: opaque here, owned and interpreted by the
    /// scheduler. At offset 16 so that one `gs`-relative load reads it (see
    /// [`current_thread`]).
    pub current: AtomicPtr<()>,
    /// Local APIC id from the MADT.
    pub apic_id: AtomicU32,
    state: AtomicU8,
    /// Timer ticks handled on this CPU.
    pub ticks: AtomicU64,
    /// Nesting depth of interrupt handlers (0 = thread context).
    pub irq_depth: AtomicU32,
    /// Non-zero while preemption is disabled on this CPU.
    pub preempt_off: AtomicU32,
    /// Set when a timer tick wants a reschedule at the next safe point.
    pub need_resched: AtomicBool,
    /// Nesting depth of `push_irq_off` (IRQ-safe locks held on this CPU).
    pub irq_nest: AtomicU32,
    /// Interrupt flag before the outermost `push_irq_off`.
    pub irq_saved: AtomicBool,
    /// TSC at the last context switch on this CPU (CPU time accounting).
    pub last_switch_tsc: AtomicU64,
    /// TSC cycles spent in the idle thread.
    pub idle_cycles: AtomicU64,
    /// Registers saved when the panic path stopped this CPU.
    pub saved: UnsafeCell<SavedRegs>,
    /// While this CPU is held by a break-in: its live trap frame (on its
    /// own stack; the debugger and gdb read and may modify it, and the CPU
    /// resumes from it). Null otherwise.
    pub break_frame: AtomicPtr<super::trap::TrapFrame>,
    /// Halted in the idle loop, and claimed as stopped by a panic meanwhile
    /// ([`PerCpu::mark_halted`], [`PerCpu::claim_if_halted`],
    /// [`PerCpu::wake`]).
    idle: AtomicU8,
    /// The CPU's GDT (with its TSS descriptor).
    pub gdt: UnsafeCell<GlobalDescriptorTable>,
    /// The CPU's TSS (IST stacks).
    pub tss: UnsafeCell<TaskStateSegment>,
    /// Local APIC driver (touched only by its own CPU).
    pub lapic: UnsafeCell<Option<x2apic::lapic::LocalApic>>,
}

// SAFETY: the UnsafeCell fields are only touched by the CPU that owns them
// (gdt/tss/lapic during its own bring-up and interrupt handling) or, for
// `saved`, written by the owner before it publishes its stopped state with a
// release store and read by the panic CPU after an acquire load of that state.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        Self {
            self_ptr: AtomicPtr::new(core::ptr::null_mut()),
            index: AtomicU32::new(0),
            current: AtomicPtr::new(core::ptr::null_mut()),
            apic_id: AtomicU32::new(0),
            state: AtomicU8::new(0),
            ticks: AtomicU64::new(0),
            irq_depth: AtomicU32::new(0),
            preempt_off: AtomicU32::new(0),
            need_resched: AtomicBool::new(false),
            irq_nest: AtomicU32::new(0),
            irq_saved: AtomicBool::new(false),
            last_switch_tsc: AtomicU64::new(0),
            idle_cycles: AtomicU64::new(0),
            saved: UnsafeCell::new(SavedRegs::ZERO),
            break_frame: AtomicPtr::new(core::ptr::null_mut()),
            idle: AtomicU8::new(RUNNING),
            gdt: UnsafeCell::new(GlobalDescriptorTable::new()),
            tss: UnsafeCell::new(TaskStateSegment::new()),
            lapic: UnsafeCell::new(None),
        }
    }

    /// This CPU's index (0 = bootstrap processor).
    pub fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed) as usize
    }

    /// Current lifecycle state.
    pub fn state(&self) -> CpuState {
        CpuState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Publishes a new lifecycle state (release: `saved` is written before).
    pub fn set_state(&self, s: CpuState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// This CPU's idle thread halts next (`sti; hlt`, with nothing touched
    /// in between): until the next trap wakes it, it runs nothing, so a
    /// panic may count it stopped at once ([`PerCpu::claim_if_halted`]).
    /// Linux's RCU reasons the same way about a CPU idle in `dynticks`
    /// mode: it needs no IPI to be known quiescent.
    pub fn mark_halted(&self) {
        self.idle.store(HALTED, Ordering::SeqCst);
    }

    /// For the panic CPU: claims this CPU as stopped if it is halted in its
    /// idle loop; it then parks on its next trap, before running anything
    /// ([`PerCpu::wake`]). False if it runs. `rehearsal`: the same code,
    /// with a compare that never matches (the boot's rehearsal of the stop
    /// runs it so that TCG has translated it before a panic).
    pub fn claim_if_halted(&self, rehearsal: bool) -> bool {
        let from = if rehearsal { NEVER } else { HALTED };
        self.idle
            .compare_exchange(from, CLAIMED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// First thing of every trap on this CPU: it runs again. True if a
    /// panic claimed it while it was halted: it must park now.
    pub fn wake(&self) -> bool {
        self.idle.load(Ordering::Relaxed) != RUNNING
            && self.idle.swap(RUNNING, Ordering::SeqCst) == CLAIMED
    }

    /// Atomically moves from `from` to `to`; false if the state was different.
    pub fn transition(&self, from: CpuState, to: CpuState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Runs `f` with this CPU's local APIC.
    ///
    /// Must be called on the CPU that owns this `PerCpu`, with interrupts
    /// disabled or from an interrupt handler that does not nest into another
    /// APIC user (x2apic register sequences are short and self-contained).
    pub fn with_lapic<R>(&self, f: impl FnOnce(&mut x2apic::lapic::LocalApic) -> R) -> Option<R> {
        // SAFETY: only the owning CPU touches its LocalApic; callers run on it.
        // A nested use from an NMI touches only the ICR/EOI, which is benign.
        unsafe { (*self.lapic.get()).as_mut().map(f) }
    }
}

struct CpuArray([PerCpu; MAX_CPUS]);

static CPUS: CpuArray = CpuArray([const { PerCpu::new() }; MAX_CPUS]);

/// Number of CPUs that were found and given an index.
static CPU_COUNT: AtomicU32 = AtomicU32::new(1);

/// The per-CPU block of CPU `index`.
pub fn cpu(index: usize) -> &'static PerCpu {
    &CPUS.0[index]
}

/// All CPUs that were assigned an index.
pub fn all() -> &'static [PerCpu] {
    &CPUS.0[..CPU_COUNT.load(Ordering::Acquire) as usize]
}

/// Assigns indices to the CPUs with local APIC ids `apic_ids` (index 0 is
/// the bootstrap processor), so every CPU is reported consistently even
/// before it starts.
pub fn set_cpus(apic_ids: &[u32]) {
    let n = apic_ids.len().min(MAX_CPUS);
    for (i, &id) in apic_ids.iter().enumerate().take(n) {
        CPUS.0[i].index.store(i as u32, Ordering::Relaxed);
        CPUS.0[i].apic_id.store(id, Ordering::Relaxed);
    }
    CPU_COUNT.store(n as u32, Ordering::Release);
}

/// Points GS at CPU `index`'s block. Called first thing on every CPU.
pub fn install(index: usize, apic_id: u32) {
    let c = &CPUS.0[index];
    c.self_ptr
        .store(c as *const PerCpu as *mut PerCpu, Ordering::Relaxed);
    c.index.store(index as u32, Ordering::Relaxed);
    c.apic_id.store(apic_id, Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(c));
    super::pat::init();
}

/// Index of the CPU running this code (one `gs`-relative load).
#[inline(always)]
pub fn current_index() -> usize {
    let v: u32;
    // SAFETY: GS points at this CPU's PerCpu from `install` on; offset 8 is
    // `index` (repr(C), after the 8-byte self pointer).
    unsafe {
        core::arch::asm!("mov {0:e}, gs:[8]", out(reg) v, options(nostack, readonly, preserves_flags));
    }
    v as usize
}

/// The thread running on this CPU, read with one `gs`-relative load: the
/// read cannot be split by a preemption that migrates the caller (reading
/// `this().current` could pair CPU A's index with CPU B's thread).
#[inline(always)]
pub fn current_thread() -> *const () {
    let t: *const ();
    // SAFETY: GS points at this CPU's PerCpu; offset 16 is `current`
    // (checked by the assertion below).
    unsafe {
        core::arch::asm!("mov {0}, gs:[16]", out(reg) t, options(nostack, readonly, preserves_flags));
    }
    t
}

const _: () = assert!(core::mem::offset_of!(PerCpu, index) == 8);
const _: () = assert!(core::mem::offset_of!(PerCpu, current) == 16);

/// The running CPU's block.
#[inline(always)]
pub fn this() -> &'static PerCpu {
    &CPUS.0[current_index()]
}
