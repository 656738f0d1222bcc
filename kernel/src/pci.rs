//! PCI: configuration space through the legacy 0xCF8/0xCFC mechanism (all of
//! q35's bus 0 and the first 256 bytes of every function), enumeration, BARs
//! and MSI-X / MSI set-up, with the `pci_types` crate for the register layout.

use alloc::vec::Vec;

use pci_types::capability::PciCapability;
use pci_types::{Bar, ConfigRegionAccess, EndpointHeader, PciAddress, PciHeader};

use crate::arch::port::{inl, outl};
use crate::sync::SpinLock;

/// Serialises the two-step 0xCF8/0xCFC access between CPUs.
static CONFIG_LOCK: SpinLock<()> = SpinLock::new(());

/// Runs one configuration access: under [`CONFIG_LOCK`] in normal
/// operation; without any lock once a panic has stopped the other CPUs,
/// so that the panic path (the USB takeover masks MSI-X, an early panic
/// finds and enables the controller) takes no lock at all. Nothing can
/// interleave then: the panic CPU is the only one running, and every access
/// writes 0xCF8 before it touches 0xCFC, so an access a stopped CPU left
/// half done does not matter.
fn config_access<R>(access: impl FnOnce() -> R) -> R {
    if crate::sync::raw::scheduler_stopped() {
        access()
    } else {
        let _g = CONFIG_LOCK.lock();
        access()
    }
}

/// Configuration access through ports 0xCF8/0xCFC.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortAccess;

fn config_address(a: PciAddress, offset: u16) -> u32 {
    0x8000_0000
        | (a.bus() as u32) << 16
        | (a.device() as u32) << 11
        | (a.function() as u32) << 8
        | (offset as u32 & 0xfc)
}

impl ConfigRegionAccess for PortAccess {
    unsafe fn read(&self, address: PciAddress, offset: u16) -> u32 {
        // SAFETY: the PCI configuration mechanism #1 ports.
        config_access(|| unsafe {
            outl(0xCF8, config_address(address, offset));
            inl(0xCFC)
        })
    }

    unsafe fn write(&self, address: PciAddress, offset: u16, value: u32) {
        // SAFETY: as `read`; the caller owns the semantics of the write.
        config_access(|| unsafe {
            outl(0xCF8, config_address(address, offset));
            outl(0xCFC, value);
        })
    }
}

/// A PCI function found by [`scan`].
#[derive(Clone, Copy, Debug)]
pub struct Device {
    /// Bus/device/function.
    pub address: PciAddress,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Base class.
    pub class: u8,
    /// Sub class.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
}

/// Visits every function on buses 0..=255 (bounded: 256 x 32 x 8 probes)
/// until `f` returns true. Allocates nothing (usable on the panic path).
fn visit(mut f: impl FnMut(Device) -> bool) {
    for bus in 0..=255u8 {
        for dev in 0..32u8 {
            for func in 0..8u8 {
                let address = PciAddress::new(0, bus, dev, func);
                let h = PciHeader::new(address);
                let (vendor, device) = h.id(PortAccess);
                if vendor == 0xffff {
                    if func == 0 {
                        break;
                    }
                    continue;
                }
                let (_, class, subclass, prog_if) = h.revision_and_class(PortAccess);
                if f(Device {
                    address,
                    vendor,
                    device,
                    class,
                    subclass,
                    prog_if,
                }) {
                    return;
                }
                if func == 0 && !h.has_multiple_functions(PortAccess) {
                    break;
                }
            }
        }
    }
}

/// Every PCI function.
pub fn scan() -> Vec<Device> {
    let mut out = Vec::new();
    visit(|d| {
        out.push(d);
        false
    });
    out
}

/// The first function matching `pred`, without allocating (panic path).
pub fn find(pred: impl Fn(&Device) -> bool) -> Option<Device> {
    let mut found = None;
    visit(|d| {
        let hit = pred(&d);
        if hit {
            found = Some(d);
        }
        hit
    });
    found
}

/// Enables memory decoding and bus mastering (DMA).
pub fn enable(d: &Device) {
    let mut h = PciHeader::new(d.address);
    h.update_command(PortAccess, |c| {
        c | pci_types::CommandRegister::MEMORY_ENABLE
            | pci_types::CommandRegister::BUS_MASTER_ENABLE
            | pci_types::CommandRegister::IO_ENABLE
    });
}

/// Memory BAR `slot`: (physical address, size). A BAR the firmware left
/// unassigned (qboot assigns none for some devices) gets an address from
/// [`assign_window`]; 0 is never returned as an address.
pub fn mem_bar(d: &Device, slot: u8) -> Option<(u64, u64)> {
    let mut ep = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess)?;
    let (address, size) = match ep.bar(slot, PortAccess)? {
        Bar::Memory32 { address, size, .. } => (address as u64, size as u64),
        Bar::Memory64 { address, size, .. } => (address, size),
        Bar::Io { .. } => return None,
    };
    if address != 0 {
        return Some((address, size));
    }
    let addr = assign_window(size)?;
    // SAFETY: `addr` is a free, size-aligned range in the PCI hole below the
    // IOAPIC; memory decoding is enabled only afterwards by `enable`.
    unsafe { ep.write_bar(slot, PortAccess, addr as usize) }.ok()?;
    log::info!(
        "pci {:02x}:{:02x}.{}: assigned BAR{slot} at {addr:#x} ({size:#x} bytes)",
        d.address.bus(),
        d.address.device(),
        d.address.function()
    );
    Some((addr, size))
}

/// Hands out size-aligned MMIO windows above every BAR the firmware
/// assigned, from 0xE000_0000 up to the IOAPIC/LAPIC area at 0xFEC0_0000.
fn assign_window(size: u64) -> Option<u64> {
    static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    const START: u64 = 0xE000_0000;
    const END: u64 = 0xFEC0_0000;
    if NEXT.load(core::sync::atomic::Ordering::Relaxed) == 0 {
        let mut top = START;
        visit(|d| {
            if let Some(ep) = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess) {
                for slot in 0..6u8 {
                    if let Some(Bar::Memory32 { address, size, .. }) = ep.bar(slot, PortAccess) {
                        let (a, s) = (address as u64, size as u64);
                        if (START..END).contains(&a) {
                            top = top.max(a + s);
                        }
                    }
                }
            }
            false
        });
        NEXT.store(top, core::sync::atomic::Ordering::Relaxed);
    }
    let size = size.max(4096).next_power_of_two();
    let base = NEXT
        .load(core::sync::atomic::Ordering::Relaxed)
        .div_ceil(size)
        * size;
    if base + size > END {
        return None;
    }
    NEXT.store(base + size, core::sync::atomic::Ordering::Relaxed);
    Some(base)
}

/// Which interrupt mechanism a device got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqKind {
    /// MSI-X table entry 0.
    MsiX,
    /// MSI.
    Msi,
    /// Legacy INTx through the IOAPIC.
    IntX,
    /// Nothing could be set up.
    None,
}

impl IrqKind {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::MsiX => "MSI-X",
            Self::Msi => "MSI",
            Self::IntX => "INTx",
            Self::None => "none",
        }
    }
}

/// MSI message address for the bootstrap CPU (Intel SDM Vol. 3A §11.11.1).
fn msi_address() -> u64 {
    let id = crate::arch::cpu::cpu(0)
        .apic_id
        .load(core::sync::atomic::Ordering::Relaxed) as u64;
    0xFEE0_0000 | (id & 0xff) << 12
}

/// Routes the device's interrupt to `vector` on CPU 0: MSI-X, else MSI,
/// else INTx through the IOAPIC.
pub fn setup_interrupt(d: &Device, vector: u8) -> IrqKind {
    let Some(ep) = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess) else {
        return IrqKind::None;
    };
    let mut msi = None;
    let mut msix = None;
    for cap in ep.capabilities(PortAccess) {
        match cap {
            PciCapability::MsiX(m) => msix = Some(m),
            PciCapability::Msi(m) => msi = Some(m),
            _ => {}
        }
    }
    if let Some(mut m) = msix
        && let Some((base, size)) = mem_bar(d, m.table_bar())
    {
        let off = m.table_offset() as u64;
        if off + 16 <= size {
            let table = crate::mm::paging::map_mmio(base, size) + off;
            // SAFETY: MSI-X table entry 0 (PCI Local Bus 3.0 §6.8.2):
            // address lo/hi, data, vector control (bit 0 = masked).
            unsafe {
                let e = table as *mut u32;
                e.write_volatile(msi_address() as u32);
                e.add(1).write_volatile((msi_address() >> 32) as u32);
                e.add(2).write_volatile(vector as u32);
                e.add(3).write_volatile(0);
            }
            m.set_function_mask(false, PortAccess);
            m.set_enabled(true, PortAccess);
            return IrqKind::MsiX;
        }
    }
    if let Some(m) = msi {
        m.set_message_info(msi_address(), vector as u32, PortAccess);
        m.set_enabled(true, PortAccess);
        return IrqKind::Msi;
    }
    let (_, line) = ep.interrupt(PortAccess);
    if line != 0 && line != 0xff {
        crate::arch::apic::route_irq(line, vector, true);
        return IrqKind::IntX;
    }
    IrqKind::None
}

/// Masks the device's MSI-X/MSI (panic mode: polled, no interrupts).
pub fn disable_msi(d: &Device) {
    let Some(ep) = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess) else {
        return;
    };
    for cap in ep.capabilities(PortAccess) {
        match cap {
            PciCapability::MsiX(mut m) => m.set_function_mask(true, PortAccess),
            PciCapability::Msi(m) => m.set_enabled(false, PortAccess),
            _ => {}
        }
    }
}
