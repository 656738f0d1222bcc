//! Controller quirks decided from PCI identity and configuration space, free
//! of hardware so they are unit-tested on the host against a fake
//! configuration space: Intel's EHCI/xHCI port switching and the xHCI
//! controllers whose MSI is broken.

#![forbid(unsafe_code)]

/// Intel's PCI vendor id.
pub const VENDOR_INTEL: u16 = 0x8086;
/// Sony's PCI vendor id (one VAIO cannot switch its ports).
const VENDOR_SONY: u16 = 0x104d;
/// Fresco Logic's PCI vendor id.
const VENDOR_FRESCO_LOGIC: u16 = 0x1b73;

/// xHC USB 2.0 Port Routing (Intel 7 Series PCH datasheet, xHCI PCI
/// configuration registers;
/// Linux `USB_INTEL_XUSB2PR`): a set bit routes that USB 2.0 port to the
/// xHCI instead of the EHCI.
pub const XUSB2PR: u16 = 0xD0;
/// xHC USB 2.0 Port Routing Mask (Linux `USB_INTEL_USB2PRM`): the ports
/// the BIOS lets the OS switch.
pub const XUSB2PRM: u16 = 0xD4;
/// USB 3.0 Port SuperSpeed Enable (Linux `USB_INTEL_USB3_PSSEN`): turns
/// on the SuperSpeed terminations of a port.
pub const USB3_PSSEN: u16 = 0xD8;
/// USB 3.0 Port Routing Mask (Linux `USB_INTEL_USB3PRM`): the ports whose
/// SuperSpeed the OS may enable.
pub const USB3PRM: u16 = 0xDC;

/// Dword access to one function's configuration space.
pub trait ConfigSpace {
    /// The dword at `offset` (dword aligned).
    fn read(&mut self, offset: u16) -> u32;
    /// Writes the dword at `offset` (dword aligned).
    fn write(&mut self, offset: u16, value: u32);
}

/// Who a PCI function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Subsystem vendor id (offset 0x2C).
    pub subsystem_vendor: u16,
    /// Subsystem id (offset 0x2E).
    pub subsystem_device: u16,
}

/// What [`switch_intel_ports`] did: the registers as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSwitch {
    /// USB3_PSSEN after the write: SuperSpeed enabled on these ports.
    pub superspeed: u32,
    /// XUSB2PR after the write: these USB 2.0 ports now go to the xHCI.
    pub usb2: u32,
}

/// Intel EHCI/xHCI port switching (7/8/9-series PCHs and Bay Trail: Panther
/// Point, Lynx Point, Wildcat Point), as Linux `usb_enable_intel_xhci_ports`
/// (drivers/usb/host/pci-quirks.c) does it: until the OS writes these
/// registers the BIOS may leave the USB 2.0 pins (a keyboard among them) on
/// the EHCI, which this kernel does not drive.
///
/// Like Linux: every Intel xHCI function (`quirk_usb_handoff_xhci` calls it
/// for vendor 0x8086 alone; the Panther/Lynx Point id list of
/// `usb_is_intel_switchable_xhci` is gone from Linux), but only when an
/// Intel EHCI exists (`intel_ehci_present`: nothing to switch from
/// otherwise) and not on the Sony VAIO (subsystem 104d:90a8) that cannot
/// switch. Order: read USB3PRM, write it to USB3_PSSEN (SuperSpeed
/// terminations first), read back; read XUSB2PRM, write it to XUSB2PR,
/// read back. Only ports in the masks the BIOS set are ever written.
/// `None`: not applicable, nothing read or written.
pub fn switch_intel_ports(
    cfg: &mut impl ConfigSpace,
    id: Identity,
    intel_ehci_present: bool,
) -> Option<PortSwitch> {
    if id.vendor != VENDOR_INTEL || !intel_ehci_present {
        return None;
    }
    if id.subsystem_vendor == VENDOR_SONY && id.subsystem_device == 0x90a8 {
        return None;
    }
    let usb3_mask = cfg.read(USB3PRM);
    cfg.write(USB3_PSSEN, usb3_mask);
    let superspeed = cfg.read(USB3_PSSEN);
    let usb2_mask = cfg.read(XUSB2PRM);
    cfg.write(XUSB2PR, usb2_mask);
    let usb2 = cfg.read(XUSB2PR);
    Some(PortSwitch { superspeed, usb2 })
}

/// xHCI controllers whose MSI does not work, so they get INTx (Linux
/// `XHCI_BROKEN_MSI` in drivers/usb/host/xhci-pci.c: the Fresco Logic
/// FL1000 "PDK" 1b73:1000 and the FL1400 1b73:1400).
pub fn msi_broken(vendor: u16, device: u16) -> bool {
    vendor == VENDOR_FRESCO_LOGIC && matches!(device, 0x1000 | 0x1400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A fake configuration space that logs every access.
    struct Fake {
        dwords: [u32; 64],
        log: Vec<(char, u16, u32)>,
    }

    impl Fake {
        fn new(usb2_mask: u32, usb3_mask: u32) -> Self {
            let mut dwords = [0; 64];
            dwords[usize::from(XUSB2PRM) / 4] = usb2_mask;
            dwords[usize::from(USB3PRM) / 4] = usb3_mask;
            Self {
                dwords,
                log: Vec::new(),
            }
        }
    }

    impl ConfigSpace for Fake {
        fn read(&mut self, offset: u16) -> u32 {
            let v = self.dwords[usize::from(offset) / 4];
            self.log.push(('r', offset, v));
            v
        }
        fn write(&mut self, offset: u16, value: u32) {
            // The hardware keeps only the bits its mask allows.
            let v = match offset {
                XUSB2PR => value & self.dwords[usize::from(XUSB2PRM) / 4],
                USB3_PSSEN => value & self.dwords[usize::from(USB3PRM) / 4],
                _ => value,
            };
            self.dwords[usize::from(offset) / 4] = v;
            self.log.push(('w', offset, value));
        }
    }

    fn intel(device: u16) -> Identity {
        Identity {
            vendor: VENDOR_INTEL,
            device,
            subsystem_vendor: 0x17aa,
            subsystem_device: 0x21f3,
        }
    }

    #[test]
    fn intel_ports_are_switched_from_the_masks_in_linux_order() {
        // Lynx Point: 6 SuperSpeed ports, 14 USB 2.0 ports, the BIOS lets
        // the OS switch some of them.
        let mut cfg = Fake::new(0x0000_3fbf, 0x0000_002f);
        let done = switch_intel_ports(&mut cfg, intel(0x8c31), true);
        assert_eq!(
            cfg.log,
            [
                ('r', USB3PRM, 0x2f),
                ('w', USB3_PSSEN, 0x2f),
                ('r', USB3_PSSEN, 0x2f),
                ('r', XUSB2PRM, 0x3fbf),
                ('w', XUSB2PR, 0x3fbf),
                ('r', XUSB2PR, 0x3fbf),
            ]
        );
        assert_eq!(
            done,
            Some(PortSwitch {
                superspeed: 0x2f,
                usb2: 0x3fbf
            })
        );
    }

    #[test]
    fn only_masked_ports_are_written() {
        // A BIOS that allows nothing: both writes are of 0.
        let mut cfg = Fake::new(0, 0);
        cfg.dwords[usize::from(XUSB2PR) / 4] = 0;
        let done = switch_intel_ports(&mut cfg, intel(0x9c31), true).unwrap();
        assert_eq!(
            done,
            PortSwitch {
                superspeed: 0,
                usb2: 0
            }
        );
        for (kind, offset, value) in &cfg.log {
            if *kind == 'w' {
                assert_eq!(*value, 0, "a write of bits outside the mask at {offset:#x}");
            }
        }
    }

    #[test]
    fn non_intel_no_ehci_and_the_sony_vaio_are_untouched() {
        for (id, ehci) in [
            (
                Identity {
                    vendor: 0x1033,
                    ..intel(0x0194)
                },
                true,
            ),
            (intel(0x1e31), false),
            (
                Identity {
                    subsystem_vendor: VENDOR_SONY,
                    subsystem_device: 0x90a8,
                    ..intel(0x1e31)
                },
                true,
            ),
        ] {
            let mut cfg = Fake::new(0xff, 0xf);
            assert_eq!(switch_intel_ports(&mut cfg, id, ehci), None);
            assert!(cfg.log.is_empty(), "{id:?} touched: {:?}", cfg.log);
        }
    }

    #[test]
    fn fresco_logic_msi_is_broken() {
        assert!(msi_broken(0x1b73, 0x1000));
        assert!(msi_broken(0x1b73, 0x1400));
        assert!(!msi_broken(0x1b73, 0x1100));
        assert!(!msi_broken(0x1033, 0x0194));
    }
}
