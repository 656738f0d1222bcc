//! Extended capabilities (xHCI 1.2 §7): USB legacy support handoff and the
//! Supported Protocol capability.
#![forbid(unsafe_code)]

use crate::controller::Capabilities;
use crate::hal::Hal;
use crate::regs::*;
use crate::types::MAX_PORTS;

/// Walks the extended capability list from `first` (bounded, inside the window).
fn for_each(regs: &Registers, first: usize, mut f: impl FnMut(u8, usize)) {
    let mut offset = first;
    for _ in 0..256 {
        if offset == 0 || offset + 4 > regs.mmio().len() {
            return;
        }
        let header = regs.cap(offset);
        if header == u32::MAX {
            return;
        }
        f(header as u8, offset);
        let next = ((header >> 8) & 0xff) as usize * 4;
        if next == 0 {
            return;
        }
        offset += next;
    }
}

/// USB Legacy Support handoff (§4.22.1, §7.1): set the OS Owned semaphore,
/// wait (bounded, 1 s) for the BIOS to release, then disable SMIs in
/// USBLEGCTLSTS at cap+4 (written raw; the `xhci` crate maps it at +0) and
/// clear its RW1C SMI status bits.
pub(crate) fn legacy_handoff(regs: &Registers, hal: &impl Hal, first: usize) {
    for_each(regs, first, |id, offset| {
        if id != XCAP_LEGACY {
            return;
        }
        let legsup = regs.cap(offset);
        if legsup & LEGSUP_BIOS_OWNED != 0 {
            regs.mmio().write32(offset, legsup | LEGSUP_OS_OWNED);
            for _ in 0..100_000 {
                if regs.cap(offset) & LEGSUP_BIOS_OWNED == 0 {
                    break;
                }
                hal.delay_us(10);
            }
            // If the BIOS never let go, take it anyway: clear its semaphore.
            let now = regs.cap(offset);
            if now & LEGSUP_BIOS_OWNED != 0 {
                regs.mmio()
                    .write32(offset, (now & !LEGSUP_BIOS_OWNED) | LEGSUP_OS_OWNED);
            }
        } else {
            regs.mmio().write32(offset, legsup | LEGSUP_OS_OWNED);
        }
        let ctlsts = regs.cap(offset + 4);
        regs.mmio().write32(
            offset + 4,
            (ctlsts & !LEGCTLSTS_SMI_ENABLES & !LEGCTLSTS_SMI_STATUS) | LEGCTLSTS_SMI_STATUS,
        );
    });
}

/// Reads the Supported Protocol capabilities (§7.2): which ports are USB 3
/// and each port's protocol slot type.
pub(crate) fn supported_protocols(regs: &Registers, first: usize, caps: &mut Capabilities) {
    for_each(regs, first, |id, offset| {
        if id != XCAP_PROTOCOL {
            return;
        }
        let major = regs.cap(offset) >> 24;
        let ports = regs.cap(offset + 8);
        let slot_type = (regs.cap(offset + 12) & 0x1f) as u8;
        let start = (ports & 0xff) as usize;
        let count = ((ports >> 8) & 0xff) as usize;
        for port in start..start.saturating_add(count) {
            if port == 0 || port > MAX_PORTS {
                continue;
            }
            caps.slot_types[port - 1] = slot_type;
            if major == 3 {
                caps.usb3_ports |= 1 << (port - 1);
            }
        }
    });
}
