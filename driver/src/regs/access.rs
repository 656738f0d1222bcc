//! [`Registers`]: typed reads and writes of the capability, operational,
//! runtime and doorbell registers at their offsets (xHCI 1.2 §5), through one
//! bounds-checked volatile window.
//!
//! Every register with RW1C bits is written from a neutral value (those bits
//! 0) by its own write method; there is no generic raw write.

use super::Mmio;
use super::capability::*;
use super::extended::*;
use super::operational::*;
use super::runtime::*;

/// CAPLENGTH/HCIVERSION (§5.3.1, §5.3.2).
const CAPLENGTH: usize = 0x00;
/// HCSPARAMS1 (§5.3.3).
const HCSPARAMS1: usize = 0x04;
/// HCSPARAMS2 (§5.3.4).
const HCSPARAMS2: usize = 0x08;
/// HCCPARAMS1 (§5.3.6).
const HCCPARAMS1: usize = 0x10;
/// DBOFF (§5.3.7).
const DBOFF: usize = 0x14;
/// RTSOFF (§5.3.8).
const RTSOFF: usize = 0x18;

/// USBCMD, from the operational base (§5.4.1).
const USBCMD: usize = 0x00;
/// USBSTS (§5.4.2).
const USBSTS: usize = 0x04;
/// PAGESIZE (§5.4.3).
const PAGESIZE: usize = 0x08;
/// CRCR (§5.4.5).
const CRCR: usize = 0x18;
/// DCBAAP (§5.4.6).
const DCBAAP: usize = 0x30;
/// CONFIG (§5.4.7).
const CONFIG: usize = 0x38;
/// The first port register set (§5.4.8), 0x10 bytes per port.
const PORT_REGISTERS: usize = 0x400;
/// Size of one port register set.
const PORT_REGISTER_STRIDE: usize = 0x10;

/// Interrupter 0's register set, from the runtime base (§5.5.2).
const INTERRUPTER_0: usize = 0x20;
/// Size of the runtime registers we use (MFINDEX and interrupter 0).
const RUNTIME_USED: usize = 0x40;
/// IMAN, from an interrupter's base (§5.5.2.1).
const IMAN: usize = 0x00;
/// IMOD (§5.5.2.2).
const IMOD: usize = 0x04;
/// ERSTSZ (§5.5.2.3.1).
const ERSTSZ: usize = 0x08;
/// ERSTBA (§5.5.2.3.2).
const ERSTBA: usize = 0x10;
/// ERDP (§5.5.2.3.3).
const ERDP: usize = 0x18;

/// Offsets of the register blocks inside BAR0, read from the capability
/// registers (§5.3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registers {
    mmio: Mmio,
    op: usize,
    rt: usize,
    db: usize,
}

impl Registers {
    /// Builds the block offsets from a mapped BAR.
    pub(crate) fn new(mmio: Mmio) -> Self {
        let caplength = CapabilityLengthVersion::from_raw(mmio.read32(CAPLENGTH));
        let db = DoorbellOffset::from_raw(mmio.read32(DBOFF)).offset();
        let rt = RuntimeOffset::from_raw(mmio.read32(RTSOFF)).offset();
        Self {
            mmio,
            op: usize::from(caplength.capability_length()),
            rt,
            db,
        }
    }

    /// Length of the mapped window.
    pub(crate) fn window_len(&self) -> usize {
        self.mmio.len()
    }

    /// Size of the block of registers we need mapped, given the capability values.
    pub(crate) fn required_size(&self, max_ports: u8, max_slots: u8) -> usize {
        let op_end = self.op + PORT_REGISTERS + PORT_REGISTER_STRIDE * usize::from(max_ports);
        let rt_end = self.rt + RUNTIME_USED;
        let db_end = self.db + 4 * (usize::from(max_slots) + 1);
        op_end.max(rt_end).max(db_end)
    }

    fn read64(&self, offset: usize) -> u64 {
        u64::from(self.mmio.read32(offset)) | (u64::from(self.mmio.read32(offset + 4)) << 32)
    }

    /// A 64-bit register write, low dword first (§5.1).
    fn write64(&self, offset: usize, value: u64) {
        self.mmio.write32(offset, value as u32);
        self.mmio.write32(offset + 4, (value >> 32) as u32);
    }
}

/// Capability registers (§5.3), all read-only.
impl Registers {
    /// CAPLENGTH and HCIVERSION (§5.3.1, §5.3.2).
    pub(crate) fn caplength(&self) -> CapabilityLengthVersion {
        CapabilityLengthVersion::from_raw(self.mmio.read32(CAPLENGTH))
    }

    /// HCSPARAMS1 (§5.3.3).
    pub(crate) fn hcsparams1(&self) -> StructuralParameters1 {
        StructuralParameters1::from_raw(self.mmio.read32(HCSPARAMS1))
    }

    /// HCSPARAMS2 (§5.3.4).
    pub(crate) fn hcsparams2(&self) -> StructuralParameters2 {
        StructuralParameters2::from_raw(self.mmio.read32(HCSPARAMS2))
    }

    /// HCCPARAMS1 (§5.3.6).
    pub(crate) fn hccparams1(&self) -> CapabilityParameters1 {
        CapabilityParameters1::from_raw(self.mmio.read32(HCCPARAMS1))
    }
}

/// Operational registers (§5.4).
impl Registers {
    /// Reads USBCMD (§5.4.1).
    pub(crate) fn usbcmd(&self) -> UsbCommand {
        UsbCommand::from_raw(self.mmio.read32(self.op + USBCMD))
    }

    /// Writes USBCMD (no RW1C bits: any value, including a modified read).
    pub(crate) fn write_usbcmd(&self, value: UsbCommand) {
        self.mmio.write32(self.op + USBCMD, value.raw());
    }

    /// Reads USBSTS (§5.4.2).
    pub(crate) fn usbsts(&self) -> UsbStatus {
        UsbStatus::from_raw(self.mmio.read32(self.op + USBSTS))
    }

    /// Writes USBSTS starting from 0: only the RW1C bits `clear` sets are
    /// written as 1 (and so cleared), every other bit is written as 0.
    pub(crate) fn clear_usbsts(&self, clear: impl FnOnce(UsbStatus) -> UsbStatus) {
        let value = clear(UsbStatus::default());
        self.mmio.write32(self.op + USBSTS, value.raw());
    }

    /// Reads PAGESIZE (§5.4.3).
    pub(crate) fn pagesize(&self) -> PageSize {
        PageSize::from_raw(self.mmio.read32(self.op + PAGESIZE))
    }

    /// Reads the low dword of CRCR (§5.4.5): CRR is all it holds.
    pub(crate) fn crcr(&self) -> CommandRingControl {
        CommandRingControl::from_raw(u64::from(self.mmio.read32(self.op + CRCR)))
    }

    /// Writes the low dword of CRCR only (CS, CA): writing the high dword
    /// too would be taken as a new ring pointer.
    pub(crate) fn write_crcr_low(&self, value: CommandRingControl) {
        self.mmio.write32(self.op + CRCR, value.raw() as u32);
    }

    /// Writes all of CRCR, low dword first: a new ring pointer and RCS.
    pub(crate) fn write_crcr(&self, value: CommandRingControl) {
        self.write64(self.op + CRCR, value.raw());
    }

    /// Writes DCBAAP (§5.4.6), low dword first.
    pub(crate) fn write_dcbaap(&self, value: DeviceContextBaseAddressArrayPointer) {
        self.write64(self.op + DCBAAP, value.raw());
    }

    /// Reads CONFIG (§5.4.7).
    pub(crate) fn config(&self) -> Configure {
        Configure::from_raw(self.mmio.read32(self.op + CONFIG))
    }

    /// Writes CONFIG (no RW1C bits: any value, including a modified read).
    pub(crate) fn write_config(&self, value: Configure) {
        self.mmio.write32(self.op + CONFIG, value.raw());
    }

    /// Offset of PORTSC for 1-based `port`.
    fn portsc_offset(&self, port: u8) -> usize {
        self.op + PORT_REGISTERS + PORT_REGISTER_STRIDE * usize::from(port.saturating_sub(1))
    }

    /// Reads PORTSC of 1-based `port` (§5.4.8).
    pub(crate) fn portsc(&self, port: u8) -> PortStatusControl {
        PortStatusControl::from_raw(self.mmio.read32(self.portsc_offset(port)))
    }

    /// The only PORTSC write. It reads the port, keeps the RW bits that must
    /// be preserved (PP, PIC, the wake enables), writes every RW1C change
    /// bit, PED (RW1C: writing 1 disables the port), PR, LWS and WPR as 0
    /// ([`PortStatusControl::neutral`]), then applies `change` — change bits
    /// to clear, PR to start a reset, PP to power the port. Never a plain
    /// read-modify-write.
    pub(crate) fn write_portsc(
        &self,
        port: u8,
        change: impl FnOnce(PortStatusControl) -> PortStatusControl,
    ) {
        let value = change(self.portsc(port).neutral()).writable();
        self.mmio.write32(self.portsc_offset(port), value.raw());
    }
}

/// Runtime registers of interrupter 0 (§5.5.2).
impl Registers {
    fn interrupter(&self, offset: usize) -> usize {
        self.rt + INTERRUPTER_0 + offset
    }

    /// Reads IMAN (§5.5.2.1).
    pub(crate) fn iman(&self) -> InterrupterManagement {
        InterrupterManagement::from_raw(self.mmio.read32(self.interrupter(IMAN)))
    }

    /// Writes IMAN from `current` (a value read just before) made neutral
    /// (IP written as 0), then `change` applied: IP cleared on purpose, IE set
    /// or cleared.
    pub(crate) fn write_iman(
        &self,
        current: InterrupterManagement,
        change: impl FnOnce(InterrupterManagement) -> InterrupterManagement,
    ) {
        let value = change(current.neutral());
        self.mmio.write32(self.interrupter(IMAN), value.raw());
    }

    /// Writes IMOD (§5.5.2.2).
    pub(crate) fn write_imod(&self, value: InterrupterModeration) {
        self.mmio.write32(self.interrupter(IMOD), value.raw());
    }

    /// Writes ERSTSZ (§5.5.2.3.1).
    pub(crate) fn write_erstsz(&self, value: EventRingSegmentTableSize) {
        self.mmio.write32(self.interrupter(ERSTSZ), value.raw());
    }

    /// Writes ERSTBA (§5.5.2.3.2), low dword first.
    pub(crate) fn write_erstba(&self, value: EventRingSegmentTableBaseAddress) {
        self.write64(self.interrupter(ERSTBA), value.raw());
    }

    /// Reads ERDP (§5.5.2.3.3), both dwords.
    pub(crate) fn erdp(&self) -> EventRingDequeuePointer {
        EventRingDequeuePointer::from_raw(self.read64(self.interrupter(ERDP)))
    }

    /// Writes ERDP, low dword first. EHB is RW1C: build `value` from 0.
    pub(crate) fn write_erdp(&self, value: EventRingDequeuePointer) {
        self.write64(self.interrupter(ERDP), value.raw());
    }
}

/// Doorbells (§5.6).
impl Registers {
    /// Rings doorbell `index` (0 = host controller command ring) with `target`.
    pub(crate) fn ring_doorbell(&self, index: u8, target: u8) {
        let value = Doorbell::default().set_target(target);
        self.mmio
            .write32(self.db + 4 * usize::from(index), value.raw());
    }
}

/// Extended capabilities (§7), at byte `offset` from the base.
impl Registers {
    /// The header of the extended capability at `offset` (§7).
    pub(crate) fn extended_capability(&self, offset: usize) -> ExtendedCapability {
        ExtendedCapability::from_raw(self.mmio.read32(offset))
    }

    /// USBLEGSUP of the legacy support capability at `offset` (§7.1.1).
    pub(crate) fn usblegsup(&self, offset: usize) -> UsbLegacySupport {
        UsbLegacySupport::from_raw(self.mmio.read32(offset))
    }

    /// Writes USBLEGSUP (no RW1C bits: any value, including a modified read).
    pub(crate) fn write_usblegsup(&self, offset: usize, value: UsbLegacySupport) {
        self.mmio.write32(offset, value.raw());
    }

    /// USBLEGCTLSTS, the dword after USBLEGSUP at `offset` (§7.1.2).
    pub(crate) fn usblegctlsts(&self, offset: usize) -> UsbLegacyControlStatus {
        UsbLegacyControlStatus::from_raw(self.mmio.read32(offset + 4))
    }

    /// Writes USBLEGCTLSTS from `current` (read just before) made neutral
    /// (the RW1C SMI status bits written as 0), then `change` applied.
    pub(crate) fn write_usblegctlsts(
        &self,
        offset: usize,
        current: UsbLegacyControlStatus,
        change: impl FnOnce(UsbLegacyControlStatus) -> UsbLegacyControlStatus,
    ) {
        let value = change(current.neutral());
        self.mmio.write32(offset + 4, value.raw());
    }

    /// The Supported Protocol capability at `offset` (§7.2): dwords 0, 2, 3.
    pub(crate) fn supported_protocol(
        &self,
        offset: usize,
    ) -> (
        SupportedProtocolRevision,
        SupportedProtocolPorts,
        SupportedProtocolSlotType,
    ) {
        (
            SupportedProtocolRevision::from_raw(self.mmio.read32(offset)),
            SupportedProtocolPorts::from_raw(self.mmio.read32(offset + 8)),
            SupportedProtocolSlotType::from_raw(self.mmio.read32(offset + 12)),
        )
    }
}
