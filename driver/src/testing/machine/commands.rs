//! Command TRBs (xHCI 1.2 §4.6) as the fake xHC executes them.
extern crate std;

use super::{CONFIG, Ep, Machine, PORTS, SLOTS, Slot};
use crate::testing::hal::Memory;

impl Machine {
    /// Runs one command TRB of type `kind`; returns (completion code, slot).
    #[allow(
        clippy::too_many_lines,
        reason = "test fake: one match arm per command type reads best as one table"
    )]
    pub(super) fn execute(&mut self, mem: &Memory, kind: u8, trb: [u32; 4]) -> (u32, u32) {
        let slot = (trb[3] >> 24) as usize;
        let dci = ((trb[3] >> 16) & 0x1f) as usize;
        let ptr = u64::from(trb[0]) | (u64::from(trb[1]) << 32);
        let valid = (1..=SLOTS).contains(&slot) && self.slots[slot].enabled;
        let ctx = self.context_size as u64;
        match kind {
            9 => {
                let max = (self.reg(CONFIG) & 0xff) as usize;
                let first = self.faults.first_slot_id.max(1);
                match (first..=max.min(SLOTS)).find(|&s| !self.slots[s].enabled) {
                    Some(s) => {
                        self.slots[s] = Slot {
                            enabled: true,
                            ..Slot::default()
                        };
                        (1, s as u32)
                    }
                    None => (9, 0),
                }
            }
            10 if valid => {
                self.slots[slot] = Slot::default();
                (1, slot as u32)
            }
            11 if valid => {
                let input = ptr & !0xf;
                let root = ((mem.read32(input + ctx + 4) >> 16) & 0xff) as usize;
                let route = mem.read32(input + ctx) & 0xf_ffff;
                if root == 0 || root > PORTS {
                    return (5, slot as u32);
                }
                // QEMU xhci_address_slot: one slot per device
                if (1..=SLOTS).any(|s| {
                    s != slot
                        && self.slots[s].enabled
                        && self.slots[s].port == Some(root - 1)
                        && self.slots[s].route == route
                }) {
                    return (5, slot as u32);
                }
                if self.device_at(root - 1, route).is_none() {
                    return (4, slot as u32);
                }
                // SET_ADDRESS goes out at the slot's speed through its TT
                if self
                    .check_slot_context(mem, input + ctx, root - 1, route)
                    .is_err()
                {
                    return (4, slot as u32);
                }
                let bsr = trb[3] & (1 << 9) != 0;
                let max_packet = (mem.read32(input + 2 * ctx + 4) >> 16) as u16;
                if let Some(code) = self.address_quirks(root - 1, route, bsr, max_packet) {
                    return (code, slot as u32);
                }
                if let Some(dev) = self.device_at(root - 1, route) {
                    dev.reset();
                }
                if bsr {
                    self.bsr_log.push((slot, max_packet));
                } else {
                    self.address_log.push((root, route));
                    self.slots[slot].addressed_at = Some(self.now_us);
                }
                let ep0 = mem.read64(input + 2 * ctx + 8);
                self.slots[slot].port = Some(root - 1);
                self.slots[slot].route = route;
                self.slots[slot].ep0_max_packet = (mem.read32(input + 2 * ctx + 4) >> 16) as u16;
                self.slots[slot].eps[1] = Ep {
                    state: 1,
                    deq: ep0 & !0xf,
                    ccs: ep0 & 1 != 0,
                    wraps: 0,
                };
                let out = self.dcbaa_entry(mem, slot);
                for i in 0..(2 * ctx / 4) {
                    mem.write32(out + 4 * i, mem.read32(input + ctx + 4 * i));
                }
                // slot state Default (BSR = 1) or Addressed with USB
                // address = slot ID, as QEMU xhci_address_slot (§6.2.2)
                let state = if bsr {
                    1 << 27
                } else {
                    (2 << 27) | slot as u32
                };
                mem.write32(out + 12, state);
                self.sync_ep(mem, slot, 1);
                (1, slot as u32)
            }
            12 if valid => {
                let input = ptr & !0xf;
                let add = mem.read32(input + 4);
                let out = self.dcbaa_entry(mem, slot);
                if add & 1 != 0 {
                    let (port, route) = (self.slots[slot].port, self.slots[slot].route);
                    let checked = port.map(|p| self.check_slot_context(mem, input + ctx, p, route));
                    if !matches!(checked, Some(Ok(()))) {
                        return (17, slot as u32); // Parameter Error
                    }
                    // slot context fields (Hub, ports, TT) as the driver set them
                    for i in 0..3 {
                        mem.write32(out + 4 * i, mem.read32(input + ctx + 4 * i));
                    }
                }
                for d in 2..32usize {
                    if add & (1 << d) != 0 {
                        let e = input + (1 + d as u64) * ctx;
                        let deq = mem.read64(e + 8);
                        self.slots[slot].eps[d] = Ep {
                            state: 1,
                            deq: deq & !0xf,
                            ccs: deq & 1 != 0,
                            wraps: 0,
                        };
                        for i in 0..(ctx / 4) {
                            mem.write32(out + d as u64 * ctx + 4 * i, mem.read32(e + 4 * i));
                        }
                        self.sync_ep(mem, slot, d);
                    }
                }
                mem.write32(out + 12, 3 << 27);
                (1, slot as u32)
            }
            13 if valid => self.evaluate_context(mem, ptr & !0xf, slot),
            14 if valid && dci > 0 => {
                let preserve = trb[3] & (1 << 9) != 0;
                self.reset_endpoint_log.push((slot, dci, preserve));
                if self.slots[slot].eps[dci].state == 2 {
                    self.slots[slot].eps[dci].state = 3;
                    self.sync_ep(mem, slot, dci);
                    (1, slot as u32)
                } else {
                    (19, slot as u32)
                }
            }
            15 if valid && dci > 0 => {
                if self.slots[slot].eps[dci].state == 1 {
                    if let Some((at, _)) = self.next_trb(mem, slot, dci) {
                        self.transfer_event(mem, at, 26, 0, slot, dci);
                    }
                    self.slots[slot].eps[dci].state = 3;
                    self.sync_ep(mem, slot, dci);
                    (1, slot as u32)
                } else {
                    (19, slot as u32)
                }
            }
            16 if valid && dci > 0 => {
                if self.faults.reads_stopped_ring && self.slots[slot].eps[dci].state == 3 {
                    self.faults.reads_stopped_ring = false;
                    if let Some((at, trb)) = self.next_trb(mem, slot, dci)
                        && (trb[3] >> 10) & 0x3f == 0
                    {
                        self.refusals.push(std::format!(
                            "slot {slot} dci {dci}: Unknown TRB at {at:#x}"
                        ));
                    }
                    self.slots[slot].eps[dci].state = 1;
                    self.sync_ep(mem, slot, dci);
                    return (19, slot as u32);
                }
                let e = &mut self.slots[slot].eps[dci];
                if e.state == 3 || e.state == 4 {
                    e.deq = ptr & !0xf;
                    e.ccs = ptr & 1 != 0;
                    (1, slot as u32)
                } else {
                    (19, slot as u32)
                }
            }
            10..=16 => (11, slot as u32),
            23 => (1, 0),
            _ => (5, 0),
        }
    }

    /// Failures of Address Device the test asked for: a device that does
    /// not answer SET_ADDRESS (`faults.set_address_failures`, USB
    /// Transaction Error) and Bochs' refusal of a full-speed EP0 other than
    /// 64 bytes (Parameter Error). `None`: go ahead.
    fn address_quirks(
        &mut self,
        root: usize,
        route: u32,
        bsr: bool,
        max_packet: u16,
    ) -> Option<u32> {
        let speed = self.device_at(root, route).map(|d| d.speed);
        if self.faults.full_speed_ep0_must_be_64
            && speed == Some(crate::testing::FULL_SPEED)
            && max_packet != 64
        {
            self.refusals.push(std::format!(
                "Address Device of a full-speed device with EP0 Max Packet Size {max_packet}"
            ));
            return Some(17);
        }
        if !bsr && self.faults.set_address_failures > 0 {
            self.faults.set_address_failures -= 1;
            return Some(4);
        }
        None
    }

    /// Evaluate Context (xHCI 1.2 §4.6.7, §6.2.5.1): only the slot (A0) and
    /// EP0 (A1) contexts may be added and none dropped; for EP0 the Max
    /// Packet Size is taken, as after the driver read bMaxPacketSize0.
    fn evaluate_context(&mut self, mem: &Memory, input: u64, slot: usize) -> (u32, u32) {
        let ctx = self.context_size as u64;
        let drop = mem.read32(input);
        let add = mem.read32(input + 4);
        if drop != 0 || add == 0 || add & !0b11 != 0 {
            self.refusals.push(std::format!(
                "Evaluate Context with drop {drop:#x} add {add:#x}"
            ));
            return (17, slot as u32); // Parameter Error
        }
        if add & 0b10 != 0 {
            let max_packet = mem.read32(input + 2 * ctx + 4) >> 16;
            self.slots[slot].ep0_max_packet = max_packet as u16;
            self.evaluate_log.push((slot, max_packet as u16));
            let out = self.dcbaa_entry(mem, slot) + ctx + 4;
            mem.write32(out, (mem.read32(out) & 0xffff) | (max_packet << 16));
        }
        (1, slot as u32)
    }
}
