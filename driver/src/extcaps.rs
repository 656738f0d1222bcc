//! Extended capabilities (xHCI 1.2 §7): USB legacy support handoff and the
//! Supported Protocol capability.
#![forbid(unsafe_code)]

use crate::controller::Capabilities;
use crate::hal::Hal;
use crate::regs::{CAPABILITY_LEGACY_SUPPORT, CAPABILITY_SUPPORTED_PROTOCOL, Registers};
use crate::types::MAX_PORTS;

/// Walks the extended capability list from `first` (bounded, inside the window).
fn for_each(regs: &Registers, first: usize, mut f: impl FnMut(u8, usize)) {
    let mut offset = first;
    for _ in 0..256 {
        if offset == 0 || offset + 4 > regs.window_len() {
            return;
        }
        let header = regs.extended_capability(offset);
        if header.is_all_ones() {
            return;
        }
        f(header.id(), offset);
        let next = usize::from(header.next_pointer()) * 4;
        if next == 0 {
            return;
        }
        offset += next;
    }
}

/// USB Legacy Support handoff (§4.22.1, §7.1): set the OS Owned semaphore,
/// wait (bounded, 1 s) for the BIOS to release, then disable SMIs in
/// USBLEGCTLSTS at cap+4 (the `xhci` crate maps it at +0) and clear its RW1C
/// SMI status bits.
pub(crate) fn legacy_handoff(regs: &Registers, hal: &impl Hal, first: usize) {
    for_each(regs, first, |id, offset| {
        if id != CAPABILITY_LEGACY_SUPPORT {
            return;
        }
        let legsup = regs.usblegsup(offset);
        regs.write_usblegsup(offset, legsup.set_os_owned(true));
        if legsup.bios_owned() {
            for _ in 0..100_000 {
                if !regs.usblegsup(offset).bios_owned() {
                    break;
                }
                hal.delay_us(10);
            }
            // If the BIOS never let go, take it anyway: clear its semaphore.
            let now = regs.usblegsup(offset);
            if now.bios_owned() {
                regs.write_usblegsup(offset, now.set_bios_owned(false).set_os_owned(true));
            }
        }
        let ctlsts = regs.usblegctlsts(offset);
        regs.write_usblegctlsts(offset, ctlsts, |c| c.disable_smis().clear_smi_status());
    });
}

/// Reads the Supported Protocol capabilities (§7.2): which ports are USB 3
/// and each port's protocol slot type.
pub(crate) fn supported_protocols(regs: &Registers, first: usize, caps: &mut Capabilities) {
    for_each(regs, first, |id, offset| {
        if id != CAPABILITY_SUPPORTED_PROTOCOL {
            return;
        }
        let (revision, ports, slot_type) = regs.supported_protocol(offset);
        let major = revision.major_revision();
        let slot_type = slot_type.protocol_slot_type();
        let start = usize::from(ports.compatible_port_offset());
        let count = usize::from(ports.compatible_port_count());
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
