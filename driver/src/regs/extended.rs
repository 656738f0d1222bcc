//! Extended capability values (xHCI 1.2 §7): the list header, USB Legacy
//! Support (§7.1) and Supported Protocol (§7.2).

register_value! {
    /// The first dword of every extended capability (xHCI 1.2 §7).
    #[doc(alias = "xECP")]
    ExtendedCapability(u32);
}

/// Capability ID of USB Legacy Support (xHCI 1.2 §7).
pub(crate) const CAPABILITY_LEGACY_SUPPORT: u8 = 1;
/// Capability ID of Supported Protocol.
pub(crate) const CAPABILITY_SUPPORTED_PROTOCOL: u8 = 2;

impl ExtendedCapability {
    ro_field!(0..8, id, u8, "Capability ID");
    ro_field!(
        8..16,
        next_pointer,
        u8,
        "Next xHCI Extended Capability Pointer, in dwords (0: last)"
    );
}

register_value! {
    /// USB Legacy Support Capability (xHCI 1.2 §7.1.1). No RW1C bits.
    #[doc(alias = "USBLEGSUP")]
    UsbLegacySupport(u32);
}

impl UsbLegacySupport {
    rw_bit!(16, bios_owned, set_bios_owned, "HC BIOS Owned Semaphore");
    rw_bit!(24, os_owned, set_os_owned, "HC OS Owned Semaphore");
}

register_value! {
    /// USB Legacy Support Control/Status (xHCI 1.2 §7.1.2), the dword after
    /// USBLEGSUP. Bits 31:29 are RW1C: written through
    /// [`Registers::write_usblegctlsts`](super::Registers::write_usblegctlsts),
    /// which starts from [`neutral`](Self::neutral).
    #[doc(alias = "USBLEGCTLSTS")]
    UsbLegacyControlStatus(u32);
}

/// The RW SMI enables: USB SMI (0), SMI on Host System Error (4), on OS
/// Ownership (13), on PCI Command (14), on BAR (15).
const LEGACY_SMI_ENABLES: u32 = (1 << 0) | (1 << 4) | (1 << 13) | (1 << 14) | (1 << 15);
/// The RW1C SMI status bits: on OS Ownership Change (29), on PCI Command
/// (30), on BAR (31).
const LEGACY_SMI_STATUS: u32 = 7 << 29;

impl UsbLegacyControlStatus {
    /// RW: clears every SMI enable in this value.
    #[must_use]
    pub(crate) const fn disable_smis(self) -> Self {
        Self(self.0 & !LEGACY_SMI_ENABLES)
    }

    /// RW1C: writes 1 to the three SMI status bits, which clears them.
    #[must_use]
    pub(crate) const fn clear_smi_status(self) -> Self {
        Self(self.0 | LEGACY_SMI_STATUS)
    }

    /// What a write starts from: every bit as read but the RW1C status bits,
    /// which are 0 (no effect).
    pub(crate) const fn neutral(self) -> Self {
        Self(self.0 & !LEGACY_SMI_STATUS)
    }
}

register_value! {
    /// Dword 0 of a Supported Protocol Capability (xHCI 1.2 §7.2).
    #[doc(alias = "Supported Protocol Capability")]
    SupportedProtocolRevision(u32);
}

impl SupportedProtocolRevision {
    ro_field!(
        24..32,
        major_revision,
        u8,
        "Major Revision, BCD (3 for USB 3)"
    );
}

register_value! {
    /// Dword 2 of a Supported Protocol Capability (xHCI 1.2 §7.2):
    /// the root ports that speak the protocol.
    SupportedProtocolPorts(u32);
}

impl SupportedProtocolPorts {
    ro_field!(
        0..8,
        compatible_port_offset,
        u8,
        "Compatible Port Offset (first 1-based port)"
    );
    ro_field!(8..16, compatible_port_count, u8, "Compatible Port Count");
}

register_value! {
    /// Dword 3 of a Supported Protocol Capability (xHCI 1.2 §7.2).
    SupportedProtocolSlotType(u32);
}

impl SupportedProtocolSlotType {
    ro_field!(0..5, protocol_slot_type, u8, "Protocol Slot Type");
}
