//! The fake xHC: register semantics (RW1C, doorbells, CRCR) detected by
//! sentinel values, rings consumed from the driver's DMA memory.
extern crate std;

use std::string::String;
use std::vec::Vec;

use super::device::FakeDevice;
use super::hal::{MMIO_SIZE, Memory};

mod checks;
mod commands;
mod transfers;

pub(crate) const PORTS: usize = 4;
/// Slot IDs the fake can hand out (HCSPARAMS1.MaxSlots is 8 bits) ...
const SLOTS: usize = 255;
/// ... and the MaxSlots it reports unless a test sets another.
const DEFAULT_MAX_SLOTS: u32 = 16;
const OP: usize = 0x40;
const RT: usize = 0x1000;
const DB: usize = 0x2000;
const XCAP: usize = 0x3000;
const USBCMD: usize = OP;
const USBSTS: usize = OP + 4;
const CRCR: usize = OP + 0x18;
const DCBAAP: usize = OP + 0x30;
const CONFIG: usize = OP + 0x38;
const IMAN: usize = RT + 0x20;
const ERSTBA: usize = RT + 0x30;
const ERDP: usize = RT + 0x38;
/// RsvdZ bits used as "published by the fake" markers: a driver write clears them.
const USBSTS_MARK: u32 = 1 << 1;
const PORTSC_MARK: u32 = 1 << 2;

const CCS: u32 = 1;
const PED: u32 = 2;
const PR: u32 = 1 << 4;
const PP: u32 = 1 << 9;
const CSC: u32 = 1 << 17;
const PRC: u32 = 1 << 21;
const PEC: u32 = 1 << 18;
const WRC: u32 = 1 << 19;
const PLC: u32 = 1 << 22;
const WPR: u32 = 1 << 31;
const CHANGE: u32 = 0x7f << 17;

/// Ways a controller can stop responding or slow down, set by a test.
#[derive(Clone, Copy, Default)]
pub(crate) struct Faults {
    /// Enable Slot hands out the lowest free slot ID from this one on (0
    /// or 1: from 1), as a controller whose low IDs are in use would.
    pub(crate) first_slot_id: usize,
    /// A command runs only after it has waited this long on the ring.
    pub(crate) command_latency_us: u64,
    /// Commands never run (an abort still stops the ring).
    pub(crate) commands_hung: bool,
    /// Clearing USBCMD.R/S never sets USBSTS.HCH.
    pub(crate) never_halts: bool,
    /// USBCMD.HCRST and USBSTS.CNR stay set this long after HCRST is written
    /// (`u64::MAX`: for ever).
    pub(crate) reset_takes_us: u64,
    /// RW1C change bits a root port raises besides PRC when its reset
    /// completes (an over-current change, say), covered by the reset's one
    /// Port Status Change event.
    pub(crate) change_on_port_reset: u32,
    /// The next this many Address Device commands with BSR = 0 find no
    /// device answering SET_ADDRESS: USB Transaction Error (xHCI 1.2 §4.6.5).
    pub(crate) set_address_failures: u32,
    /// Bochs' xHCI: Address Device of a full-speed device whose EP0 Max
    /// Packet Size is not 64 fails with Parameter Error.
    pub(crate) full_speed_ep0_must_be_64: bool,
    /// A warm reset leaves a USB 3 port's link where it was (stuck in
    /// Compliance Mode, say), WRC and PRC reported all the same.
    pub(crate) warm_reset_useless: bool,
    /// USBSTS.CNR stays set this long after the fake first runs, as after a
    /// chip hardware reset (xHCI 1.2 §4.2); an operational or runtime
    /// register written meanwhile is logged in `refusals`.
    pub(crate) not_ready_us: u64,
    /// Bochs' xHCI, once: a stopped endpoint is run again at its old
    /// dequeue position with its old cycle state, which leaves it Running,
    /// so the next Set TR Dequeue Pointer fails with Context State Error; a
    /// TRB of type 0 that is valid there (a zeroed ring read at cycle state
    /// 0) is logged in `refusals` ("Unknown TRB found").
    pub(crate) reads_stopped_ring: bool,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Ep {
    pub(crate) state: u8,
    pub(crate) deq: u64,
    pub(crate) ccs: bool,
    /// Link TRBs with Toggle Cycle followed (ring wraps, xHCI 1.2 §4.11.5.1).
    pub(crate) wraps: u32,
}

/// A control transfer as the fake ran it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ControlRecord {
    pub(crate) slot: usize,
    pub(crate) setup: [u8; 8],
    /// Fake time it ran at.
    pub(crate) at_us: u64,
    /// When the slot's SET_ADDRESS went out (`None`: still at address 0).
    pub(crate) addressed_at: Option<u64>,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Slot {
    pub(crate) enabled: bool,
    pub(crate) port: Option<usize>,
    /// Route string from the slot context at Address Device.
    pub(crate) route: u32,
    /// EP0 Max Packet Size from Address Device or Evaluate Context (§6.2.3).
    pub(crate) ep0_max_packet: u16,
    /// Fake time of the Address Device (BSR = 0) that sent SET_ADDRESS.
    pub(crate) addressed_at: Option<u64>,
    pub(crate) eps: [Ep; 32],
}

pub(crate) struct Machine {
    regs: *mut u32,
    halted: bool,
    usbsts: u32,
    portsc: [u32; PORTS],
    pub(crate) ports: [Option<FakeDevice>; PORTS],
    cmd_deq: u64,
    cmd_ccs: bool,
    crr: bool,
    crcr_published: u32,
    er_base: u64,
    er_size: u32,
    er_enq: u32,
    er_pcs: bool,
    erstba_seen: u64,
    pub(crate) slots: [Slot; SLOTS + 1],
    /// Command TRB types executed, in order.
    pub(crate) commands: Vec<u8>,
    /// Don't execute commands: they stay "in flight" until aborted.
    pub(crate) freeze_commands: bool,
    /// Events dropped because the event ring was full.
    pub(crate) dropped_events: u32,
    pub(crate) resets: u32,
    pub(crate) context_size: usize,
    /// (root port, route string) of every successful Address Device.
    pub(crate) address_log: Vec<(usize, u32)>,
    /// (slot, EP0 max packet) of every Address Device with BSR = 1.
    pub(crate) bsr_log: Vec<(usize, u16)>,
    /// Every control transfer run, see [`ControlRecord`].
    pub(crate) control_log: Vec<ControlRecord>,
    /// Warm resets of USB 3 root ports (PORTSC.WPR written).
    pub(crate) warm_resets: u32,
    /// (slot, EP0 max packet) of every Evaluate Context that changed EP0.
    pub(crate) evaluate_log: Vec<(usize, u16)>,
    /// Why commands or transfers were refused (wrong slot context, EP0
    /// max packet size), for the test to read.
    pub(crate) refusals: Vec<String>,
    /// What is broken or slow about this controller.
    pub(crate) faults: Faults,
    /// The fake clock, as of the last step.
    pub(crate) now_us: u64,
    /// The command at the head of the ring and when it was first seen there.
    cmd_seen: Option<(u64, u64)>,
    /// When HCRST was first seen set.
    reset_started: Option<u64>,
    /// When the fake first ran (for `faults.not_ready_us`).
    powered_at: Option<u64>,
    /// (slot, DCI, Transfer State Preserve) of every Reset Endpoint command.
    pub(crate) reset_endpoint_log: Vec<(usize, usize, bool)>,
    /// No-Op TRBs skipped on EP0 rings.
    pub(crate) ep0_noops: u32,
    /// Control TDs whose TRBs straddled a Link TRB.
    pub(crate) ep0_straddles: u32,
}

impl Machine {
    pub(crate) fn new(regs: *mut u32) -> Self {
        let mut m = Self {
            regs,
            halted: true,
            usbsts: 1,
            portsc: [PP; PORTS],
            ports: [const { None }; PORTS],
            cmd_deq: 0,
            cmd_ccs: true,
            crr: false,
            crcr_published: 0,
            er_base: 0,
            er_size: 0,
            er_enq: 0,
            er_pcs: true,
            erstba_seen: 0,
            slots: [Slot::default(); SLOTS + 1],
            commands: Vec::new(),
            freeze_commands: false,
            dropped_events: 0,
            resets: 0,
            context_size: 32,
            address_log: Vec::new(),
            bsr_log: Vec::new(),
            control_log: Vec::new(),
            warm_resets: 0,
            evaluate_log: Vec::new(),
            refusals: Vec::new(),
            faults: Faults::default(),
            now_us: 0,
            cmd_seen: None,
            reset_started: None,
            powered_at: None,
            reset_endpoint_log: Vec::new(),
            ep0_noops: 0,
            ep0_straddles: 0,
        };
        m.power_on();
        m
    }

    pub(crate) fn regs_ptr(&self) -> *mut u32 {
        self.regs
    }

    pub(crate) fn reg(&self, off: usize) -> u32 {
        assert!(off < MMIO_SIZE);
        // SAFETY: inside the leaked register allocation of MMIO_SIZE bytes.
        unsafe { self.regs.add(off / 4).read_volatile() }
    }

    pub(crate) fn set_reg(&self, off: usize, v: u32) {
        assert!(off < MMIO_SIZE);
        // SAFETY: as in `reg`.
        unsafe { self.regs.add(off / 4).write_volatile(v) }
    }

    /// Capability registers and extended capabilities (legacy support owned by
    /// the "BIOS", USB 2 ports 1-2, USB 3 ports 3-4).
    fn power_on(&mut self) {
        for off in (0..MMIO_SIZE).step_by(4) {
            self.set_reg(off, 0);
        }
        self.set_reg(0x00, 0x40 | (0x0110 << 16));
        self.set_reg(0x04, DEFAULT_MAX_SLOTS | (1 << 8) | ((PORTS as u32) << 24));
        self.set_reg(0x08, 2 << 27); // two scratchpad buffers
        let csz = if self.context_size == 64 { 1 << 2 } else { 0 };
        self.set_reg(0x10, ((XCAP as u32 / 4) << 16) | csz | 1); // AC64
        self.set_reg(0x14, DB as u32);
        self.set_reg(0x18, RT as u32);
        self.set_reg(OP + 8, 1); // PAGESIZE 4 KiB
        self.set_reg(XCAP, 1 | (4 << 8) | (1 << 16)); // legacy, BIOS owned
        self.set_reg(XCAP + 4, 1 | (1 << 13));
        self.set_reg(XCAP + 0x10, 2 | (8 << 8) | (2 << 24));
        self.set_reg(XCAP + 0x14, u32::from_le_bytes(*b"USB "));
        self.set_reg(XCAP + 0x18, 1 | (2 << 8));
        self.set_reg(XCAP + 0x30, 2 | (3 << 24));
        self.set_reg(XCAP + 0x34, u32::from_le_bytes(*b"USB "));
        self.set_reg(XCAP + 0x38, 3 | (2 << 8));
        self.reset_controller();
    }

    /// HCSPARAMS1.MaxSlots (xHCI 1.2 §5.3.3), at most 255.
    pub(crate) fn set_max_slots(&mut self, slots: u32) {
        let v = self.reg(0x04);
        self.set_reg(0x04, (v & !0xff) | slots.min(SLOTS as u32));
    }

    pub(crate) fn set_context_size(&mut self, size: usize) {
        self.context_size = size;
        let csz = if size == 64 { 1 << 2 } else { 0 };
        let ac64 = self.reg(0x10) & 1;
        self.set_reg(0x10, ((XCAP as u32 / 4) << 16) | csz | ac64);
    }

    /// Sets or clears HCCPARAMS1.AC64 (xHCI 1.2 §5.3.6; set by default).
    pub(crate) fn set_ac64(&mut self, ac64: bool) {
        self.set_reg(0x10, (self.reg(0x10) & !1) | u32::from(ac64));
    }

    fn reset_controller(&mut self) {
        for off in (OP..OP + 0x400).step_by(4) {
            if off != OP + 8 {
                self.set_reg(off, 0);
            }
        }
        for off in (RT..RT + 0x40).step_by(4) {
            self.set_reg(off, 0);
        }
        self.halted = true;
        self.usbsts = 1;
        self.cmd_deq = 0;
        self.cmd_ccs = true;
        self.crr = false;
        self.crcr_published = 0;
        self.er_base = 0;
        self.er_size = 0;
        self.er_enq = 0;
        self.er_pcs = true;
        self.erstba_seen = 0;
        self.slots = [Slot::default(); SLOTS + 1];
        for p in 0..PORTS {
            self.portsc[p] = PP
                | match &self.ports[p] {
                    Some(dev) => CCS | CSC | (dev.speed << 10) | (7 << 5),
                    None => 5 << 5,
                };
        }
        self.publish();
    }

    fn publish(&self) {
        self.set_reg(USBSTS, self.usbsts | USBSTS_MARK);
        for p in 0..PORTS {
            self.set_reg(OP + 0x400 + 0x10 * p, self.portsc[p] | PORTSC_MARK);
        }
        self.set_reg(CRCR, self.crcr_published);
        self.set_reg(CRCR + 4, 0);
    }

    pub(crate) fn plug(&mut self, mem: &Memory, port: usize, device: FakeDevice) {
        let speed = device.speed;
        self.ports[port - 1] = Some(device);
        self.portsc[port - 1] = PP | CCS | CSC | (speed << 10) | (7 << 5);
        self.publish();
        self.post(mem, [0, 0, 1 << 24, 34 << 10], Some(port));
    }

    /// Changes the PORTSC speed ID of a connected root port (1-based) and
    /// the speed its device runs at.
    pub(crate) fn set_port_speed(&mut self, port: usize, speed: u32) {
        if let Some(dev) = self.ports[port - 1].as_mut() {
            dev.speed = speed;
        }
        self.portsc[port - 1] = (self.portsc[port - 1] & !(0xf << 10)) | (speed << 10);
        self.publish();
    }

    /// The controller disables a connected root port (1-based), as after
    /// babble or a port error (xHCI 1.2 §4.19.2: PED cleared, PEC set).
    pub(crate) fn disable_port(&mut self, mem: &Memory, port: usize) {
        self.drop_port_enable(mem, port, PEC);
    }

    /// PED of a root port (1-based) clears, with the RW1C change bits
    /// `change` reported (PEC for an error disable; anything else, or 0,
    /// for a port found disabled by a later look).
    pub(crate) fn drop_port_enable(&mut self, mem: &Memory, port: usize, change: u32) {
        self.portsc[port - 1] = (self.portsc[port - 1] & !PED) | (change & CHANGE);
        self.publish();
        self.post(mem, [0, 0, 1 << 24, 34 << 10], Some(port));
    }

    /// A USB 3 root port's link drops to SS.Inactive (PLS 6), or to
    /// Compliance Mode (10): PED clear, PLC set, only a warm reset helps
    /// (xHCI 1.2 §4.19.1.2.4.1).
    pub(crate) fn link_inactive(&mut self, mem: &Memory, port: usize, pls: u32) {
        self.portsc[port - 1] = (self.portsc[port - 1] & !(PED | (0xf << 5))) | (pls << 5) | PLC;
        self.publish();
        self.post(mem, [0, 0, 1 << 24, 34 << 10], Some(port));
    }

    /// PORTSC of a root port (1-based) as the fake holds it.
    pub(crate) fn port_status(&self, port: usize) -> u32 {
        self.portsc[port - 1]
    }

    pub(crate) fn unplug(&mut self, mem: &Memory, port: usize) {
        self.ports[port - 1] = None;
        self.portsc[port - 1] = PP | CSC | (5 << 5);
        self.publish();
        self.post(mem, [0, 0, 1 << 24, 34 << 10], Some(port));
    }

    /// Writes an arbitrary event (the cycle bit is set correctly unless `raw`).
    pub(crate) fn post_raw(&mut self, mem: &Memory, trb: [u32; 4], raw: bool) {
        if raw {
            let at = self.er_base + u64::from(self.er_enq) * 16;
            for (i, d) in trb.iter().enumerate() {
                mem.write32(at + 4 * i as u64, *d);
            }
        } else {
            self.post(mem, trb, None);
        }
    }

    fn post(&mut self, mem: &Memory, mut trb: [u32; 4], port: Option<usize>) {
        if let Some(p) = port {
            trb[0] = (p as u32) << 24;
        }
        if self.halted || self.er_size == 0 {
            return;
        }
        let erdp = (u64::from(self.reg(ERDP)) | (u64::from(self.reg(ERDP + 4)) << 32)) & !0xf;
        let deq_index = erdp.wrapping_sub(self.er_base) / 16;
        if u64::from((self.er_enq + 1) % self.er_size) == deq_index {
            self.dropped_events += 1;
            return;
        }
        if u64::from((self.er_enq + 2) % self.er_size) == deq_index {
            // xHCI 1.2 §4.9.4: the last free slot gets an Event Ring Full
            // error event; this event and the following ones are lost.
            self.dropped_events += 1;
            trb = [0, 0, 21 << 24, 37 << 10];
        }
        let at = self.er_base + u64::from(self.er_enq) * 16;
        mem.write32(at, trb[0]);
        mem.write32(at + 4, trb[1]);
        mem.write32(at + 8, trb[2]);
        mem.write32(at + 12, (trb[3] & !1) | u32::from(self.er_pcs));
        self.er_enq += 1;
        if self.er_enq == self.er_size {
            self.er_enq = 0;
            self.er_pcs = !self.er_pcs;
        }
        self.usbsts |= 1 << 3;
        let iman = self.reg(IMAN);
        if iman & 2 != 0 {
            self.set_reg(IMAN, iman | 1);
        }
        self.publish();
    }

    fn complete_command(&mut self, mem: &Memory, trb: u64, code: u32, slot: u32) {
        self.post(
            mem,
            [
                trb as u32,
                (trb >> 32) as u32,
                code << 24,
                (33 << 10) | (slot << 24),
            ],
            None,
        );
    }

    fn transfer_event(
        &mut self,
        mem: &Memory,
        trb: u64,
        code: u32,
        residual: u32,
        slot: usize,
        dci: usize,
    ) {
        self.post(
            mem,
            [
                trb as u32,
                (trb >> 32) as u32,
                (code << 24) | residual,
                (32 << 10) | ((dci as u32) << 16) | ((slot as u32) << 24),
            ],
            None,
        );
    }

    /// Still not ready after power-on (`faults.not_ready_us`): USBSTS shows
    /// CNR and nothing runs; a write to an operational, runtime or doorbell
    /// register now breaks xHCI 1.2 §4.2 and is logged in `refusals`.
    fn not_ready(&mut self) -> bool {
        let since = *self.powered_at.get_or_insert(self.now_us);
        if self.now_us.saturating_sub(since) >= self.faults.not_ready_us {
            return false;
        }
        let early = crate::regs::WRITE_LOG
            .with(|l| l.borrow().iter().any(|&(off, _)| (OP..XCAP).contains(&off)));
        if early {
            self.refusals
                .push(String::from("register written while USBSTS.CNR = 1"));
        }
        self.set_reg(USBSTS, self.usbsts | USBSTS_MARK | (1 << 11));
        true
    }

    /// One round of controller activity.
    pub(crate) fn step(&mut self, mem: &Memory) {
        // legacy handoff: the "BIOS" lets go as soon as the OS asks
        let leg = self.reg(XCAP);
        if leg & (1 << 24) != 0 && leg & (1 << 16) != 0 {
            self.set_reg(XCAP, leg & !(1 << 16));
        }
        if self.not_ready() {
            return;
        }
        // USBCMD
        let cmd = self.reg(USBCMD);
        if cmd & 2 != 0 {
            let since = *self.reset_started.get_or_insert(self.now_us);
            if self.now_us.saturating_sub(since) < self.faults.reset_takes_us {
                self.usbsts |= 1 << 11; // CNR
                self.publish();
                return;
            }
            self.reset_started = None;
            self.resets += 1;
            self.reset_controller();
            return;
        }
        // USBSTS writes (RW1C)
        let sts = self.reg(USBSTS);
        if sts & USBSTS_MARK == 0 {
            self.usbsts &= !(sts & ((1 << 2) | (1 << 3) | (1 << 4) | (1 << 10)));
        }
        if cmd & 1 != 0 && self.halted {
            self.halted = false;
        } else if cmd & 1 == 0 && !self.faults.never_halts {
            self.halted = true;
        }
        self.usbsts = (self.usbsts & !1) | u32::from(self.halted);
        // CRCR
        let lo = self.reg(CRCR);
        let hi = self.reg(CRCR + 4);
        if lo != self.crcr_published || hi != 0 {
            if lo & 6 != 0 && self.crr {
                self.crr = false;
                let pending = mem.read_trb(self.cmd_deq);
                let stuck = self.freeze_commands
                    || self.faults.commands_hung
                    || self.faults.command_latency_us > 0;
                self.cmd_seen = None;
                if stuck && (pending[3] & 1 != 0) == self.cmd_ccs && (pending[3] >> 10) & 0x3f != 6
                {
                    self.complete_command(mem, self.cmd_deq, 25, 0); // Command Aborted
                    self.cmd_deq += 16;
                }
                self.complete_command(mem, self.cmd_deq, 24, 0); // Command Ring Stopped
                self.freeze_commands = false;
            } else if !self.crr {
                self.cmd_deq = (u64::from(hi) << 32 | u64::from(lo)) & !63;
                self.cmd_ccs = lo & 1 != 0;
            }
            self.crcr_published = u32::from(self.crr) << 3;
        }
        // ERSTBA
        let erstba = u64::from(self.reg(ERSTBA)) | (u64::from(self.reg(ERSTBA + 4)) << 32);
        if erstba != self.erstba_seen && erstba != 0 {
            self.erstba_seen = erstba;
            self.er_base = mem.read64(erstba);
            self.er_size = mem.read32(erstba + 8) & 0xffff;
            self.er_enq = 0;
            self.er_pcs = true;
        }
        // PORTSC and doorbell writes, in the order the driver made them (a
        // doorbell rung before a Stop Endpoint command runs before it)
        let log = crate::regs::WRITE_LOG.with(|l| core::mem::take(&mut *l.borrow_mut()));
        for (off, v) in log {
            if (OP + 0x400..OP + 0x400 + 0x10 * PORTS).contains(&off) && off % 0x10 == 0 {
                self.portsc_write((off - OP - 0x400) / 0x10, v, mem);
            } else if (DB..=DB + 4 * SLOTS).contains(&off) && off % 4 == 0 && !self.halted {
                // (rung while halted: ignored)
                self.doorbell((off - DB) / 4, v, mem);
            }
        }
        self.publish();
        if self.halted {
            return;
        }
        if !self.freeze_commands && self.crr {
            self.run_commands(mem);
        }
        for slot in 1..=SLOTS {
            if !self.slots[slot].enabled {
                continue;
            }
            for dci in 2..32 {
                if self.slots[slot].enabled && self.slots[slot].eps[dci].state == 1 {
                    self.run_interrupt(mem, slot, dci);
                }
            }
        }
    }

    fn dcbaa_entry(&self, mem: &Memory, slot: usize) -> u64 {
        let dcbaa = u64::from(self.reg(DCBAAP)) | (u64::from(self.reg(DCBAAP + 4)) << 32);
        mem.read64(dcbaa + 8 * slot as u64)
    }

    fn sync_ep(&self, mem: &Memory, slot: usize, dci: usize) {
        let out = self.dcbaa_entry(mem, slot);
        if out == 0 {
            return;
        }
        let at = out + (dci * self.context_size) as u64;
        let v = mem.read32(at);
        let ep = self.slots[slot].eps[dci];
        mem.write32(at, (v & !7) | u32::from(ep.state));
        // TR Dequeue Pointer and DCS as the xHC leaves them when the
        // endpoint stops or halts (xHCI 1.2 §4.6.9, §6.2.3)
        let deq = ep.deq | u64::from(ep.ccs);
        mem.write32(at + 8, deq as u32);
        mem.write32(at + 12, (deq >> 32) as u32);
    }

    fn portsc_write(&mut self, p: usize, v: u32, mem: &Memory) {
        self.portsc[p] &= !(v & CHANGE);
        if v & PED != 0 {
            self.portsc[p] &= !PED;
        }
        if v & WPR != 0 && p >= 2 {
            // warm reset of a USB 3 port (xHCI 1.2 §4.19.5.1): the link
            // trains to U0, the port is enabled, WRC and PRC report it
            self.warm_resets += 1;
            self.portsc[p] |= WRC | PRC;
            if !self.faults.warm_reset_useless {
                self.portsc[p] &= !(0xf << 5);
                if self.portsc[p] & CCS != 0 {
                    self.portsc[p] |= PED;
                } else {
                    self.portsc[p] |= 5 << 5; // RxDetect
                }
            }
            self.publish();
            self.post(mem, [0, 0, 1 << 24, 34 << 10], Some(p + 1));
        }
        if v & PR != 0 && self.portsc[p] & CCS != 0 {
            self.portsc[p] =
                (self.portsc[p] & !(0xf << 5)) | PED | PRC | self.faults.change_on_port_reset;
            self.publish();
            self.post(mem, [0, 0, 1 << 24, 34 << 10], Some(p + 1));
        }
    }

    /// A write of `v` to doorbell `i` (0: the command ring).
    fn doorbell(&mut self, i: usize, v: u32, mem: &Memory) {
        if i == 0 {
            self.crr = true;
            self.crcr_published = 1 << 3;
            self.publish();
            if !self.freeze_commands {
                self.run_commands(mem);
            }
            return;
        }
        // xHCI 1.2 §4.6.9: ringing a stopped endpoint restarts it
        let dci = (v & 0x1f) as usize;
        if self.slots[i].enabled && dci > 0 && self.slots[i].eps[dci].state == 3 {
            self.slots[i].eps[dci].state = 1;
            self.sync_ep(mem, i, dci);
        }
        if dci == 1 {
            self.run_ep0(mem, i);
        }
    }

    fn run_commands(&mut self, mem: &Memory) {
        if self.faults.commands_hung {
            return;
        }
        for _ in 0..64 {
            let trb = mem.read_trb(self.cmd_deq);
            if (trb[3] & 1 != 0) != self.cmd_ccs {
                return;
            }
            let kind = ((trb[3] >> 10) & 0x3f) as u8;
            if kind == 6 {
                self.cmd_deq = (u64::from(trb[0]) | (u64::from(trb[1]) << 32)) & !0xf;
                if trb[3] & 2 != 0 {
                    self.cmd_ccs = !self.cmd_ccs;
                }
                continue;
            }
            let at = self.cmd_deq;
            if self.faults.command_latency_us > 0 {
                // a slow controller: the command sits on the ring for a while
                let since = match self.cmd_seen {
                    Some((trb, since)) if trb == at => since,
                    _ => {
                        self.cmd_seen = Some((at, self.now_us));
                        self.now_us
                    }
                };
                if self.now_us.saturating_sub(since) < self.faults.command_latency_us {
                    return;
                }
                self.cmd_seen = None;
            }
            self.cmd_deq += 16;
            self.commands.push(kind);
            let (code, slot) = self.execute(mem, kind, trb);
            self.complete_command(mem, at, code, slot);
        }
    }

    /// The device at root port index `port` and `route` (QEMU xhci_lookup_uport).
    pub(crate) fn device_at(&mut self, port: usize, route: u32) -> Option<&mut FakeDevice> {
        let mut dev = self.ports.get_mut(port)?.as_mut()?;
        for tier in 0..5 {
            let hub_port = ((route >> (4 * tier)) & 0xf) as usize;
            if hub_port == 0 {
                break;
            }
            dev = dev
                .hub
                .as_mut()?
                .ports
                .get_mut(hub_port - 1)?
                .device
                .as_mut()?;
        }
        Some(dev)
    }

    /// Index of the event ring's enqueue pointer (for hostile tests).
    pub(crate) fn event_enqueue(&self) -> (u64, u32, bool) {
        (self.er_base, self.er_enq, self.er_pcs)
    }

    /// Makes USBSTS show a Host System Error.
    pub(crate) fn host_system_error(&mut self) {
        self.usbsts |= 1 << 2;
        self.publish();
    }
}
