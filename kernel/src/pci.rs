//! PCI: configuration space through the legacy 0xCF8/0xCFC mechanism (all of
//! q35's bus 0 and the first 256 bytes of every function), enumeration, BARs
//! and MSI-X / MSI set-up, with the `pci_types` crate for the register layout.

use alloc::vec::Vec;

use pci_types::capability::PciCapability;
use pci_types::{Bar, ConfigRegionAccess, EndpointHeader, PciAddress, PciHeader};

use crate::arch::port::{inl, outl};
use crate::sync::SpinLock;

/// Serialises the two-step 0xCF8/0xCFC access.
static CONFIG_LOCK: SpinLock<()> = SpinLock::new(());

/// Configuration access through ports 0xCF8/0xCFC.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortAccess;

fn config_address(a: PciAddress, offset: u16) -> u32 {
    0x8000_0000 | (a.bus() as u32) << 16 | (a.device() as u32) << 11 | (a.function() as u32) << 8 | (offset as u32 & 0xfc)
}

impl ConfigRegionAccess for PortAccess {
    unsafe fn read(&self, address: PciAddress, offset: u16) -> u32 {
        let _g = CONFIG_LOCK.lock();
        // SAFETY: the PCI configuration mechanism #1 ports.
        unsafe {
            outl(0xCF8, config_address(address, offset));
            inl(0xCFC)
        }
    }

    unsafe fn write(&self, address: PciAddress, offset: u16, value: u32) {
        let _g = CONFIG_LOCK.lock();
        // SAFETY: as `read`; the caller owns the semantics of the write.
        unsafe {
            outl(0xCF8, config_address(address, offset));
            outl(0xCFC, value);
        }
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

/// Every function on buses 0..=255 (bounded: 256 x 32 x 8 probes).
pub fn scan() -> Vec<Device> {
    let mut out = Vec::new();
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
                out.push(Device { address, vendor, device, class, subclass, prog_if });
                if func == 0 && !h.has_multiple_functions(PortAccess) {
                    break;
                }
            }
        }
    }
    out
}

/// Enables memory decoding and bus mastering (DMA).
pub fn enable(d: &Device) {
    let mut h = PciHeader::new(d.address);
    h.update_command(PortAccess, |c| {
        c | pci_types::CommandRegister::MEMORY_ENABLE | pci_types::CommandRegister::BUS_MASTER_ENABLE | pci_types::CommandRegister::IO_ENABLE
    });
}

/// Memory BAR `slot`: (physical address, size).
pub fn mem_bar(d: &Device, slot: u8) -> Option<(u64, u64)> {
    let ep = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess)?;
    match ep.bar(slot, PortAccess)? {
        Bar::Memory32 { address, size, .. } => Some((address as u64, size as u64)),
        Bar::Memory64 { address, size, .. } => Some((address, size)),
        Bar::Io { .. } => None,
    }
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
    let id = crate::arch::cpu::cpu(0).apic_id.load(core::sync::atomic::Ordering::Relaxed) as u64;
    0xFEE0_0000 | (id & 0xff) << 12
}

/// Routes the device's interrupt to `vector` on CPU 0: MSI-X, else MSI,
/// else INTx through the IOAPIC.
pub fn setup_interrupt(d: &Device, vector: u8) -> IrqKind {
    let Some(ep) = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess) else { return IrqKind::None };
    let mut msi = None;
    let mut msix = None;
    for cap in ep.capabilities(PortAccess) {
        match cap {
            PciCapability::MsiX(m) => msix = Some(m),
            PciCapability::Msi(m) => msi = Some(m),
            _ => {}
        }
    }
    if let Some(mut m) = msix {
        if let Some((base, size)) = mem_bar(d, m.table_bar()) {
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
    let Some(ep) = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess) else { return };
    for cap in ep.capabilities(PortAccess) {
        match cap {
            PciCapability::MsiX(mut m) => m.set_function_mask(true, PortAccess),
            PciCapability::Msi(m) => m.set_enabled(false, PortAccess),
            _ => {}
        }
    }
}
