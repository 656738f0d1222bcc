//! ACPI: CPUs and interrupt controllers from the MADT, power control from the
//! FADT, through the `acpi` crate (tables are identity mapped).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, Ordering};

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

use crate::arch::cpu::MAX_CPUS;

pub mod aml;

#[derive(Clone, Copy)]
struct IdentityMap;

impl AcpiHandler for IdentityMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        // SAFETY: all RAM and the firmware tables below 4 GiB are identity
        // mapped by the boot page tables; the caller guarantees a valid `T`.
        unsafe {
            PhysicalMapping::new(
                physical_address,
                NonNull::new(physical_address as *mut T).expect("ACPI table at address 0"),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What the kernel learned from the MADT.
#[derive(Debug)]
pub struct Topology {
    /// Local APIC ids of enabled CPUs; index 0 is the bootstrap processor.
    pub apic_ids: [u32; MAX_CPUS],
    /// Number of CPUs in `apic_ids`.
    pub count: usize,
    /// CPUs listed beyond `MAX_CPUS` (reported and skipped).
    pub skipped: usize,
    /// Local APIC MMIO base.
    pub lapic_base: u64,
    /// First IOAPIC MMIO base (0 if none).
    pub ioapic_base: u64,
    /// GSI of legacy IRQ n after interrupt source overrides, and whether it
    /// is active-low level triggered.
    pub isa_gsi: [(u8, bool); 16],
}

static PM1A_CNT: AtomicU16 = AtomicU16::new(0);
/// Per ISA IRQ: its MADT interrupt source override (ACPI 6.5 §5.2.12.5) as
/// `1 << 31 | flags << 8 | gsi`, 0 for none. Written by [`init`] at boot.
static ISA_OVERRIDE: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];
static RESET_PORT: AtomicU16 = AtomicU16::new(0);
static RESET_VALUE: AtomicU8 = AtomicU8::new(0);
/// Most SSDTs whose AML [`aml_tables`] gives.
const MAX_SSDTS: usize = 15;
/// Where the AML bodies (after the 36-byte header) of the DSDT and the SSDTs
/// lie: physical address and length, 0 for none. Written once by [`init`].
static AML: [[AtomicU32; 2]; 1 + MAX_SSDTS] =
    [const { [AtomicU32::new(0), AtomicU32::new(0)] }; 1 + MAX_SSDTS];
/// Longest AML body taken (real DSDTs are under 1 MiB).
const MAX_AML: u32 = 4 << 20;

/// Parses the MADT (and FADT for power control) from the RSDP.
pub fn init(rsdp: u64, bsp_apic_id: u32) -> Option<Topology> {
    // SAFETY: `rsdp` comes from PVH start_info (or the BIOS area scan) and the
    // tables are identity mapped.
    let tables = unsafe {
        if rsdp != 0 {
            AcpiTables::from_rsdp(IdentityMap, rsdp as usize)
        } else {
            AcpiTables::search_for_rsdp_bios(IdentityMap)
        }
    }
    .ok()?;
    if let Ok(fadt) = tables.find_table::<Fadt>() {
        if let Ok(pm1a) = fadt.pm1a_control_block() {
            PM1A_CNT.store(pm1a.address as u16, Ordering::Relaxed);
        }
        if let Ok(r) = fadt.reset_register() {
            let flags = fadt.flags;
            if flags.supports_system_reset_via_fadt()
                && matches!(r.address_space, acpi::address::AddressSpace::SystemIo)
            {
                RESET_PORT.store(r.address as u16, Ordering::Relaxed);
                RESET_VALUE.store(fadt.reset_value, Ordering::Relaxed);
            }
        }
    }
    record_aml(&tables);
    let madt = tables.find_table::<Madt>().ok()?;
    let mut t = Topology {
        apic_ids: [0; MAX_CPUS],
        count: 1,
        skipped: 0,
        lapic_base: madt.get().local_apic_address as u64,
        ioapic_base: 0,
        isa_gsi: core::array::from_fn(|i| (i as u8, false)),
    };
    t.apic_ids[0] = bsp_apic_id;
    let add = |id: u32, flags: u32, t: &mut Topology| {
        // Bit 0: enabled; bit 1: online capable.
        if flags & 0b11 == 0 || id == bsp_apic_id {
            return;
        }
        if t.count < MAX_CPUS {
            t.apic_ids[t.count] = id;
            t.count += 1;
        } else {
            t.skipped += 1;
        }
    };
    for e in madt.get().entries() {
        match e {
            MadtEntry::LocalApic(l) => add(l.apic_id as u32, l.flags, &mut t),
            MadtEntry::LocalX2Apic(l) => add(l.x2apic_id, l.flags, &mut t),
            MadtEntry::IoApic(io) if t.ioapic_base == 0 => {
                t.ioapic_base = io.io_apic_address as u64
            }
            MadtEntry::InterruptSourceOverride(o) if (o.irq as usize) < 16 => {
                let flags = o.flags;
                ISA_OVERRIDE[o.irq as usize].store(
                    1 << 31 | u32::from(flags) << 8 | (o.global_system_interrupt & 0xff),
                    Ordering::Relaxed,
                );
                let low = flags & 0b11 == 0b11;
                let level = (flags >> 2) & 0b11 == 0b11;
                t.isa_gsi[o.irq as usize] = (o.global_system_interrupt as u8, low && level);
            }
            MadtEntry::LocalApicAddressOverride(o) => t.lapic_base = o.local_apic_address,
            _ => {}
        }
    }
    Some(t)
}

/// Records where the DSDT's and SSDTs' AML lies, for [`aml_tables`]: only
/// tables below 4 GiB (identity mapped) and of a sane length.
fn record_aml(tables: &AcpiTables<IdentityMap>) {
    let dsdt = tables.dsdt().ok();
    let ssdts = tables.ssdts().take(MAX_SSDTS);
    for (slot, t) in AML.iter().zip(dsdt.into_iter().chain(ssdts)) {
        if let Ok(address) = u32::try_from(t.address)
            && t.length <= MAX_AML
            && address.checked_add(t.length).is_some()
        {
            slot[0].store(address, Ordering::Relaxed);
            slot[1].store(t.length, Ordering::Relaxed);
        }
    }
}

/// The AML of the DSDT, then of each SSDT, without their headers (empty
/// slices for the slots unused), for [`aml::pci_intx`].
pub fn aml_tables() -> [&'static [u8]; 1 + MAX_SSDTS] {
    core::array::from_fn(|i| {
        let address = AML[i][0].load(Ordering::Relaxed) as usize;
        let length = AML[i][1].load(Ordering::Relaxed) as usize;
        if address == 0 {
            return &[][..];
        }
        // SAFETY: [`record_aml`] took this range from the table's own header
        // (the `acpi` crate checked its signature); it lies below 4 GiB,
        // which the boot page tables identity map, in memory the firmware
        // did not report as usable RAM (reserved or ACPI reclaimable), which
        // `mm::frame` never hands out, so nothing writes it.
        unsafe { core::slice::from_raw_parts(address as *const u8, length) }
    })
}

/// The MADT's interrupt source override of ISA IRQ `irq` (ACPI 6.5
/// §5.2.12.5): its GSI and MPS INTI flags, or `None`.
pub fn isa_override(irq: u8) -> Option<(u8, u16)> {
    let o = ISA_OVERRIDE
        .get(usize::from(irq))
        .map_or(0, |o| o.load(Ordering::Relaxed));
    (o & 1 << 31 != 0).then_some((o as u8, (o >> 8) as u16))
}

/// Powers off through the FADT's PM1a control block (SLP_TYP 0 = S5 on
/// QEMU's q35/piix PM, SLP_EN); returns if that did not work.
pub fn poweroff() {
    let port = PM1A_CNT.load(Ordering::Relaxed);
    if port != 0 {
        // SAFETY: writing SLP_EN to the PM1a control register.
        unsafe { crate::arch::port::outw(port, 1 << 13) };
    }
}

/// Resets through the FADT reset register, the 0xCF9 reset control and the
/// keyboard controller, in that order.
pub fn reset() {
    // SAFETY: standard PC reset mechanisms; none touches memory.
    unsafe {
        let port = RESET_PORT.load(Ordering::Relaxed);
        if port != 0 {
            crate::arch::port::outb(port, RESET_VALUE.load(Ordering::Relaxed));
        }
        crate::arch::port::outb(0xCF9, 0x06);
        crate::time::delay_us(10_000);
        crate::arch::port::outb(0x64, 0xFE);
    }
}
