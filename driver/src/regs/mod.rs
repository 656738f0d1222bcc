//! Register access (xHCI 1.2 §5): capability, operational, runtime and
//! doorbell registers through one bounds-checked volatile window.
//!
//! The `xhci` crate's register types are not used here: its `update_volatile`
//! on PORTSC writes RW1C change bits back, and its `UsbLegacySupport` places
//! USBLEGCTLSTS at the wrong offset. PORTSC goes through [`Registers::write_portsc`]
//! only.

mod bits;
mod mmio;

pub(crate) use bits::*;
pub(crate) use mmio::Mmio;
#[cfg(test)]
pub(crate) use mmio::WRITE_LOG;

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
        let caplength = (mmio.read32(CAP_CAPLENGTH) & 0xff) as usize;
        let db = (mmio.read32(CAP_DBOFF) & !0x3) as usize;
        let rt = (mmio.read32(CAP_RTSOFF) & !0x1f) as usize;
        Self {
            mmio,
            op: caplength,
            rt,
            db,
        }
    }

    /// The raw window.
    pub(crate) fn mmio(&self) -> &Mmio {
        &self.mmio
    }

    /// Reads a capability register.
    pub(crate) fn cap(&self, offset: usize) -> u32 {
        self.mmio.read32(offset)
    }

    /// Reads an operational register.
    pub(crate) fn op(&self, offset: usize) -> u32 {
        self.mmio.read32(self.op + offset)
    }

    /// Writes an operational register.
    pub(crate) fn set_op(&self, offset: usize, value: u32) {
        self.mmio.write32(self.op + offset, value);
    }

    /// Writes a 64-bit operational register, low dword first (§5.1).
    pub(crate) fn set_op64(&self, offset: usize, value: u64) {
        self.mmio.write32(self.op + offset, value as u32);
        self.mmio
            .write32(self.op + offset + 4, (value >> 32) as u32);
    }

    /// Reads an interrupter register of interrupter 0 (§5.5.2).
    pub(crate) fn intr(&self, offset: usize) -> u32 {
        self.mmio.read32(self.rt + 0x20 + offset)
    }

    /// Writes an interrupter register of interrupter 0.
    pub(crate) fn set_intr(&self, offset: usize, value: u32) {
        self.mmio.write32(self.rt + 0x20 + offset, value);
    }

    /// Writes a 64-bit interrupter register, low dword first.
    pub(crate) fn set_intr64(&self, offset: usize, value: u64) {
        self.set_intr(offset, value as u32);
        self.set_intr(offset + 4, (value >> 32) as u32);
    }

    /// Reads ERDP (64 bits).
    pub(crate) fn erdp(&self) -> u64 {
        u64::from(self.intr(INTR_ERDP)) | (u64::from(self.intr(INTR_ERDP + 4)) << 32)
    }

    /// Rings doorbell `index` (0 = host controller command ring) (§5.6).
    pub(crate) fn ring_doorbell(&self, index: u8, target: u8) {
        self.mmio
            .write32(self.db + 4 * usize::from(index), u32::from(target));
    }

    /// Offset of PORTSC for 1-based `port`.
    fn portsc_offset(&self, port: u8) -> usize {
        self.op + 0x400 + 0x10 * usize::from(port.saturating_sub(1))
    }

    /// Reads PORTSC of 1-based `port` (§5.4.8).
    pub(crate) fn portsc(&self, port: u8) -> u32 {
        self.mmio.read32(self.portsc_offset(port))
    }

    /// The only PORTSC write: keeps the RW bits we must preserve (PP, PIC, the
    /// wake enables), writes every RW1C change bit, PED (RW1C: writing 1
    /// disables the port), PR, LWS and WPR as 0, then ORs in `set` — change
    /// bits to clear or PR to start a reset. Never a plain read-modify-write.
    pub(crate) fn write_portsc(&self, port: u8, set: u32) {
        let current = self.portsc(port);
        let value = (current & PORTSC_PRESERVE) | (set & PORTSC_WRITABLE);
        self.mmio.write32(self.portsc_offset(port), value);
    }

    /// Size of the block of registers we need mapped, given the capability values.
    pub(crate) fn required_size(&self, max_ports: u8, max_slots: u8) -> usize {
        let op_end = self.op + 0x400 + 0x10 * usize::from(max_ports);
        let rt_end = self.rt + 0x40;
        let db_end = self.db + 4 * (usize::from(max_slots) + 1);
        op_end.max(rt_end).max(db_end)
    }
}
