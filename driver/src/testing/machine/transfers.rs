//! Transfer rings (xHCI 1.2 §4.11): control transfers on EP0 and
//! interrupt IN transfers, as the fake xHC runs them.
extern crate std;

use std::vec::Vec;

use super::{Machine, SLOTS};
use crate::testing::device::ControlReply;
use crate::testing::hal::Memory;

impl Machine {
    pub(super) fn next_trb(
        &mut self,
        mem: &Memory,
        slot: usize,
        dci: usize,
    ) -> Option<(u64, [u32; 4])> {
        for _ in 0..4 {
            let ep = self.slots[slot].eps[dci];
            let trb = mem.read_trb(ep.deq);
            if (trb[3] & 1 != 0) != ep.ccs {
                return None;
            }
            if (trb[3] >> 10) & 0x3f == 6 {
                let e = &mut self.slots[slot].eps[dci];
                e.deq = (u64::from(trb[0]) | (u64::from(trb[1]) << 32)) & !0xf;
                if trb[3] & 2 != 0 {
                    e.ccs = !e.ccs;
                    e.wraps += 1;
                }
                continue;
            }
            return Some((ep.deq, trb));
        }
        None
    }

    pub(super) fn run_ep0(&mut self, mem: &Memory, slot: usize) {
        if slot > SLOTS || !self.slots[slot].enabled || self.slots[slot].eps[1].state != 1 {
            return;
        }
        for _ in 0..8 {
            let saved = self.slots[slot].eps[1];
            let Some((setup_at, setup)) = self.next_trb(mem, slot, 1) else {
                return;
            };
            if (setup[3] >> 10) & 0x3f == 8 {
                // a No-Op TRB (xHCI 1.2 §6.4.1.4): no event without IOC
                self.slots[slot].eps[1].deq += 16;
                self.ep0_noops += 1;
                continue;
            }
            let wraps = self.slots[slot].eps[1].wraps;
            if (setup[3] >> 10) & 0x3f != 2 {
                self.transfer_event(mem, setup_at, 5, 0, slot, 1);
                return;
            }
            self.slots[slot].eps[1].deq += 16;
            let mut data = None;
            let Some((mut at, mut trb)) = self.next_trb(mem, slot, 1) else {
                self.slots[slot].eps[1] = saved;
                return;
            };
            if (trb[3] >> 10) & 0x3f == 3 {
                data = Some((at, trb));
                self.slots[slot].eps[1].deq += 16;
                let Some(next) = self.next_trb(mem, slot, 1) else {
                    self.slots[slot].eps[1] = saved;
                    return;
                };
                (at, trb) = next;
            }
            if (trb[3] >> 10) & 0x3f != 4 {
                self.transfer_event(mem, at, 5, 0, slot, 1);
                return;
            }
            self.slots[slot].eps[1].deq += 16;
            let status_at = at;
            if self.slots[slot].eps[1].wraps != wraps {
                // legal (xHCI 1.2 §4.11.5.1), but what Etron EJ168/EJ188 fail
                self.ep0_straddles += 1;
            }
            let bytes = {
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&setup[0].to_le_bytes());
                b[4..].copy_from_slice(&setup[1].to_le_bytes());
                b
            };
            let out = match data {
                Some((_, d)) if d[3] & (1 << 16) == 0 => mem.read_bytes(
                    u64::from(d[0]) | (u64::from(d[1]) << 32),
                    (d[2] & 0x1ffff) as usize,
                ),
                _ => Vec::new(),
            };
            let (port, route) = (self.slots[slot].port, self.slots[slot].route);
            self.control_log.push(super::ControlRecord {
                slot,
                setup: bytes,
                at_us: self.now_us,
                addressed_at: self.slots[slot].addressed_at,
            });
            let answered = port
                .and_then(|p| self.device_at(p, route))
                .map(|dev| dev.answers_setup());
            let (reply, device_max_packet) = match port.and_then(|p| self.device_at(p, route)) {
                Some(dev) if answered == Some(true) => {
                    (dev.control(bytes, &out), dev.descriptor.max_packet0)
                }
                _ => {
                    self.transfer_event(mem, setup_at, 4, 0, slot, 1);
                    self.slots[slot].eps[1].state = 2;
                    self.sync_ep(mem, slot, 1);
                    return;
                }
            };
            match reply {
                ControlReply::Stall => {
                    self.transfer_event(mem, data.map_or(status_at, |d| d.0), 6, 0, slot, 1);
                    self.slots[slot].eps[1].state = 2;
                    self.sync_ep(mem, slot, 1);
                    return;
                }
                ControlReply::Data(reply) => {
                    if let Some((data_at, d)) = data
                        && d[3] & (1 << 16) != 0
                    {
                        let len = (d[2] & 0x1ffff) as usize;
                        // the first device descriptor read asks for 64
                        // bytes and expects to be cut short (Linux new scheme)
                        let probe = bytes[..4] == [0x80, 6, 0, 1] && len == 64;
                        let Some(n) =
                            self.ep0_packets(slot, len.min(reply.len()), device_max_packet, probe)
                        else {
                            self.transfer_event(mem, data_at, 3, len as u32, slot, 1);
                            self.slots[slot].eps[1].state = 2;
                            self.sync_ep(mem, slot, 1);
                            return;
                        };
                        mem.write_bytes(u64::from(d[0]) | (u64::from(d[1]) << 32), &reply[..n]);
                        if n < len && d[3] & (1 << 2) != 0 {
                            self.transfer_event(mem, data_at, 13, (len - n) as u32, slot, 1);
                        }
                    }
                    self.transfer_event(mem, status_at, 1, 0, slot, 1);
                }
            }
        }
    }

    pub(super) fn run_interrupt(&mut self, mem: &Memory, slot: usize, dci: usize) {
        let Some(port) = self.slots[slot].port else {
            return;
        };
        let route = self.slots[slot].route;
        for _ in 0..8 {
            let Some((at, trb)) = self.next_trb(mem, slot, dci) else {
                return;
            };
            let fault = match self.device_at(port, route) {
                Some(d) if d.interrupt_halted => Some(6), // STALL
                Some(d) if d.interrupt_errors > 0 => {
                    d.interrupt_errors -= 1;
                    Some(4) // USB Transaction Error: no handshake
                }
                _ => None,
            };
            if let Some(code) = fault {
                // the endpoint halts on the TD (xHCI 1.2 §4.10.2.1, §4.10.2.7)
                let len = trb[2] & 0x1ffff;
                self.transfer_event(mem, at, code, len, slot, dci);
                self.slots[slot].eps[dci].state = 2;
                self.sync_ep(mem, slot, dci);
                return;
            }
            // an IN endpoint's DCI is 2 × number + 1 (xHCI 1.2 §4.5.1)
            let number = (dci / 2) as u8;
            let report = match self.device_at(port, route) {
                Some(d) if dci % 2 == 1 => d.interrupt_in(number),
                _ => None,
            };
            let Some(report) = report else {
                return; // NAK: the TRB stays pending
            };
            let len = (trb[2] & 0x1ffff) as usize;
            let n = len.min(report.len());
            mem.write_bytes(u64::from(trb[0]) | (u64::from(trb[1]) << 32), &report[..n]);
            self.slots[slot].eps[dci].deq += 16;
            let code = if n < len { 13 } else { 1 };
            self.transfer_event(mem, at, code, (len - n) as u32, slot, dci);
        }
    }

    /// How many of the `n` bytes a device with `device_max_packet` sends on
    /// EP0 reach the host, whose EP0 context says the slot's Max Packet
    /// Size: a packet longer than that is babble (`None`, USB 2.0 §8.4.1,
    /// xHCI 1.2 §4.10.2.4), one shorter ends the data stage early as a short
    /// packet (USB 2.0 §5.5.3, §8.5.3.2). Either is logged in `refusals`,
    /// the short packet not when the driver asked for it (`expect_short`).
    fn ep0_packets(
        &mut self,
        slot: usize,
        n: usize,
        device_max_packet: u8,
        expect_short: bool,
    ) -> Option<usize> {
        let host = usize::from(self.slots[slot].ep0_max_packet);
        let first = n.min(usize::from(device_max_packet).max(1));
        if first > host {
            self.refusals.push(std::format!(
                "slot {slot}: {first}-byte packet on EP0, Max Packet Size {host}: babble"
            ));
            return None;
        }
        if first < host && n > first {
            if expect_short {
                return Some(first);
            }
            self.refusals.push(std::format!(
                "slot {slot}: {first}-byte packet on EP0, Max Packet Size {host}: data stage cut short"
            ));
            return Some(first);
        }
        Some(n)
    }
}
