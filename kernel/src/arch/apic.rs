//! Local APIC (x2APIC where the CPU has it, xAPIC otherwise, through the
//! `x2apic` crate) and the IOAPIC for legacy interrupts.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use x2apic::ioapic::{IoApic, IrqFlags, IrqMode, RedirectionTableEntry};
use x2apic::lapic::{LocalApicBuilder, TimerDivide, TimerMode};

use super::cpu;
use super::idt::vector;

/// Timer interrupts per second on every CPU.
pub const TICK_HZ: u64 = 100;

static X2APIC: AtomicBool = AtomicBool::new(false);
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0xFEE0_0000);
static TIMER_INITIAL: AtomicU32 = AtomicU32::new(0);
static IOAPIC_BASE: AtomicU64 = AtomicU64::new(0);

/// Records the xAPIC MMIO window from the MADT, already mapped uncached
/// by the caller (the memory layer sits above this one).
pub fn set_xapic_base(mapped: u64) {
    XAPIC_BASE.store(mapped, Ordering::Relaxed);
}

/// Records the (first) IOAPIC MMIO window from the MADT, already mapped
/// uncached by the caller; 0: none.
pub fn set_ioapic_base(mapped: u64) {
    IOAPIC_BASE.store(mapped, Ordering::Relaxed);
}

/// True when the local APICs run in x2APIC mode.
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Enables this CPU's local APIC and its periodic timer.
pub fn init_cpu() {
    let base = XAPIC_BASE.load(Ordering::Relaxed);
    let mut b = LocalApicBuilder::new();
    b.timer_vector(vector::TIMER as usize)
        .error_vector(vector::APIC_ERROR as usize)
        .spurious_vector(vector::SPURIOUS as usize)
        .set_xapic_base(base)
        .timer_mode(TimerMode::OneShot)
        .timer_divide(TimerDivide::Div16)
        .timer_initial(0);
    let Ok(mut lapic) = b.build() else {
        log::error!("local APIC setup failed on cpu {}", cpu::current_index());
        return;
    };
    let x2 = raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_x2apic());
    X2APIC.store(x2, Ordering::Relaxed);
    // SAFETY: enabling this CPU's own local APIC; its vectors have IDT entries.
    unsafe {
        lapic.enable();
        lapic.disable_timer();
    }
    let mut initial = TIMER_INITIAL.load(Ordering::Relaxed);
    if initial == 0 {
        // Calibrate against the TSC over 500 us (31,250 counts of a 1 GHz
        // bus clock divided by 16 under QEMU), both ends bracketed by TSC
        // reads: the rate is counts over the TSC cycles between the start
        // and the read, so time spent around them (an emulator translating
        // this code on its first run) cannot skew it. Only the scheduler
        // tick's period rests on it; time itself is the TSC.
        // SAFETY: the timer is masked/one-shot while we measure.
        unsafe {
            let start = crate::time::rdtsc();
            lapic.set_timer_initial(u32::MAX);
            let wait = crate::time::us_to_cycles(500);
            while crate::time::rdtsc() - start < wait {
                core::hint::spin_loop();
            }
            let elapsed = u64::from(u32::MAX - lapic.timer_current());
            let cycles = (crate::time::rdtsc() - start).max(1);
            lapic.set_timer_initial(0);
            let per_second =
                u128::from(elapsed) * u128::from(crate::time::tsc_hz()) / u128::from(cycles);
            initial = (per_second / u128::from(TICK_HZ)).clamp(1000, u128::from(u32::MAX)) as u32;
        }
        TIMER_INITIAL.store(initial, Ordering::Relaxed);
    }
    // SAFETY: programs this CPU's own timer.
    unsafe {
        lapic.set_timer_mode(TimerMode::Periodic);
        lapic.set_timer_initial(initial);
        lapic.enable_timer();
    }
    // SAFETY: only this CPU touches its own `lapic` cell, with interrupts off.
    unsafe { *cpu::this().lapic.get() = Some(lapic) };
}

/// The running CPU's local APIC id.
pub fn current_apic_id() -> u32 {
    let c = raw_cpuid::CpuId::new();
    if let Some(x) = c.get_extended_topology_info().and_then(|mut t| t.next()) {
        return x.x2apic_id();
    }
    c.get_feature_info()
        .map_or(0, |f| f.initial_local_apic_id() as u32)
}

fn dest(apic_id: u32) -> u32 {
    if is_x2apic() { apic_id } else { apic_id << 24 }
}

/// Signals end of interrupt to this CPU's local APIC.
pub fn eoi() {
    // SAFETY: EOI is a write to this CPU's own APIC.
    cpu::this().with_lapic(|l| unsafe { l.end_of_interrupt() });
}

/// Sends a fixed IPI with `vec` to CPU `index`.
pub fn send_ipi(index: usize, vec: u8) {
    let id = cpu::cpu(index).apic_id.load(Ordering::Relaxed);
    // SAFETY: a fixed IPI to a vector with an IDT entry.
    cpu::this().with_lapic(|l| unsafe { l.send_ipi(vec, dest(id)) });
}

/// Set at boot when every local APIC of the machine is one of the CPUs the
/// kernel lists (none skipped beyond `MAX_CPUS`): only then may an IPI go
/// to "all excluding self", see [`send_ipi_all_others`].
static ALL_APICS_LISTED: AtomicBool = AtomicBool::new(false);

/// Records whether the CPU list holds every local APIC of the machine.
pub fn set_all_apics_listed(listed: bool) {
    ALL_APICS_LISTED.store(listed, Ordering::Relaxed);
}

/// Sends a fixed IPI with `vec` (or an NMI: `vec == None`) to every CPU but
/// this one with one ICR write, the "All Excluding Self" destination
/// shorthand (Intel SDM Vol. 3A §11.6.1), as Linux's
/// `apic->send_IPI_allbutself` does for its stop and kgdb round-up. Returns
/// false, sending nothing, unless the caller may address every APIC at
/// once: all CPUs listed (see [`set_all_apics_listed`]) and, which the
/// caller knows, each of them online with its IDT loaded (a CPU still in
/// the trampoline has none, and an NMI there resets the machine). Under
/// QEMU each ICR write is an exit into the emulator under its global lock:
/// one write instead of one per CPU.
pub fn send_ipi_all_others(vec: Option<u8>) -> bool {
    if !ALL_APICS_LISTED.load(Ordering::Relaxed) {
        return false;
    }
    if is_x2apic() {
        let who = x2apic::lapic::IpiAllShorthand::AllExcludingSelf;
        return cpu::this()
            .with_lapic(|l| match vec {
                // SAFETY: a fixed IPI to a vector every CPU has an IDT entry
                // for (the caller checked they are all online).
                Some(v) => unsafe { l.send_ipi_all(v, who) },
                // SAFETY: NMIs are handled by the stop logic (`panic::stop::on_nmi`).
                None => unsafe { l.send_nmi_all(who) },
            })
            .is_some();
    }
    // xAPIC: the low half of the ICR alone; a shorthand needs no
    // destination, and each write is an emulator exit (the `x2apic` crate
    // writes the high half first). SDM Vol. 3A §11.6.1: vector 7:0,
    // delivery mode 10:8 (000 fixed, 100 NMI), level 14 (assert), shorthand
    // 19:18 (11 all excluding self).
    const ASSERT: u32 = 1 << 14;
    const ALL_EXCLUDING_SELF: u32 = 0b11 << 18;
    const NMI: u32 = 0b100 << 8;
    let low = match vec {
        Some(v) => u32::from(v),
        None => NMI,
    } | ASSERT
        | ALL_EXCLUDING_SELF;
    let icr_low = XAPIC_BASE.load(Ordering::Relaxed) + 0x300;
    // SAFETY: the ICR of this CPU's xAPIC, mapped uncached at boot
    // (`set_xapic_base`); a shorthand IPI to CPUs that are all online (the
    // caller's check), with vectors they handle.
    unsafe { (icr_low as *mut u32).write_volatile(low) };
    true
}

/// Sends an NMI to CPU `index`.
pub fn send_nmi(index: usize) {
    let id = cpu::cpu(index).apic_id.load(Ordering::Relaxed);
    // SAFETY: NMIs are handled by the stop logic (`panic::stop::on_nmi`).
    cpu::this().with_lapic(|l| unsafe { l.send_nmi(dest(id)) });
}

/// The wait after INIT before the first STARTUP IPI, in microseconds: the
/// 10 ms of the universal start-up algorithm, or none on the processors
/// Linux exempts (`smp_quirk_init_udelay` in arch/x86/kernel/smpboot.c:
/// Intel family 6, AMD family 0xF and later, Hygon 0x18 and later, whose
/// APs take the STARTUP IPI at once; QEMU's CPU models are among them).
fn init_wait_us() -> u64 {
    let id = raw_cpuid::CpuId::new();
    let family = id.get_feature_info().map_or(0, |f| f.family_id());
    let modern = match id.get_vendor_info().as_ref().map(|v| v.as_str()) {
        Some("GenuineIntel") => family == 6,
        Some("AuthenticAMD") => family >= 0xF,
        Some("HygonGenuine") => family >= 0x18,
        _ => false,
    };
    if modern { 0 } else { 10_000 }
}

/// Sends INIT, then two STARTUP IPIs for the trampoline page `page` (SDM
/// Vol. 3A §8.4.4.1; the wait after INIT as [`init_wait_us`] says).
pub fn start_ap(apic_id: u32, page: u8) {
    let init_wait = init_wait_us();
    cpu::this().with_lapic(|l| {
        // SAFETY: the universal start-up algorithm on an AP that is in wait-for-SIPI.
        unsafe {
            l.send_init_ipi(dest(apic_id));
            crate::time::delay_us(init_wait);
            l.send_sipi(page, dest(apic_id));
            crate::time::delay_us(200);
            l.send_sipi(page, dest(apic_id));
        }
    });
}

/// Routes legacy ISA interrupt `irq` (after MADT overrides: `gsi`) to `vec`
/// on the bootstrap CPU; `level_low`: level triggered, active low.
pub fn route_irq(gsi: u8, vec: u8, level_low: bool) {
    if let Err(e) = route_gsi(gsi, vec, level_low, level_low) {
        log::error!("ioapic: {e}");
    }
}

/// Why [`route_gsi`] programmed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The MADT named no IOAPIC.
    NoIoApic,
    /// The IOAPIC has no such input (its redirection table ends at `last`).
    NoSuchPin {
        /// The input asked for.
        gsi: u8,
        /// The last input (IOAPIC version register, Maximum Redirection Entry).
        last: u8,
    },
}

impl core::fmt::Display for RouteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoIoApic => write!(f, "no IOAPIC"),
            Self::NoSuchPin { gsi, last } => {
                write!(f, "no IOAPIC input {gsi} (inputs 0-{last})")
            }
        }
    }
}

/// Routes IOAPIC input `gsi` (one IOAPIC, at GSI 0) to `vec` on the
/// bootstrap CPU, fixed delivery, with the given trigger mode and polarity
/// (a PCI INTx: level, active low; ACPI 6.5 §5.2.12.5 for ISA overrides).
/// The entry is written masked and unmasked last, so it never fires
/// half-programmed. A level-triggered input stays asserted until the device
/// is acknowledged: its handler must acknowledge the device before the EOI
/// (`trap_dispatch` calls the device handler, then EOIs), or the input fires
/// again at once (82093AA IOAPIC datasheet: Remote IRR is
/// set until the EOI, and the input is sampled again then).
pub fn route_gsi(gsi: u8, vec: u8, level: bool, active_low: bool) -> Result<(), RouteError> {
    let base = IOAPIC_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return Err(RouteError::NoIoApic);
    }
    // SAFETY: the IOAPIC's MMIO window from the MADT, mapped uncached; the
    // index and data registers are used by this CPU alone at boot.
    unsafe {
        let mut io = IoApic::new(base);
        let last = io.max_table_entry();
        if gsi > last {
            return Err(RouteError::NoSuchPin { gsi, last });
        }
        let mut e = RedirectionTableEntry::default();
        e.set_mode(IrqMode::Fixed);
        let mut flags = IrqFlags::MASKED;
        if level {
            flags |= IrqFlags::LEVEL_TRIGGERED;
        }
        if active_low {
            flags |= IrqFlags::LOW_ACTIVE;
        }
        e.set_flags(flags);
        e.set_vector(vec);
        e.set_dest(cpu::cpu(0).apic_id.load(Ordering::Relaxed) as u8);
        io.set_table_entry(gsi, e);
        io.enable_irq(gsi);
    }
    Ok(())
}

/// Masks IOAPIC input `gsi` (a device whose driver did not start must not
/// leave a level-triggered line asserted and unacknowledged).
pub fn mask_gsi(gsi: u8) {
    let base = IOAPIC_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: the IOAPIC's MMIO window from the MADT, mapped uncached; only
    // an existing input is touched.
    unsafe {
        let mut io = IoApic::new(base);
        if gsi <= io.max_table_entry() {
            io.disable_irq(gsi);
        }
    }
}

/// Remaps the legacy 8259 PICs away from the exception vectors (to
/// 0x30-0x3F) and masks them: the kernel uses the APICs only.
pub fn disable_8259() {
    use crate::arch::port::outb;
    // SAFETY: the standard ICW1-ICW4 sequence on the 8259 ports, then mask all.
    unsafe {
        outb(0x20, 0x11);
        outb(0xA0, 0x11);
        outb(0x21, 0x30);
        outb(0xA1, 0x38);
        outb(0x21, 0x04);
        outb(0xA1, 0x02);
        outb(0x21, 0x01);
        outb(0xA1, 0x01);
        outb(0x21, 0xFF);
        outb(0xA1, 0xFF);
    }
}
