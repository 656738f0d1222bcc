//! Capability register values (xHCI 1.2 §5.3): all read-only.

register_value! {
    /// CAPLENGTH and HCIVERSION, read as the first dword of the capability
    /// registers (xHCI 1.2 §5.3.1, §5.3.2).
    #[doc(alias = "CAPLENGTH")]
    #[doc(alias = "HCIVERSION")]
    CapabilityLengthVersion(u32);
}

impl CapabilityLengthVersion {
    ro_field!(
        0..8,
        capability_length,
        u8,
        "length of the capability registers: the operational registers' offset (CAPLENGTH)"
    );
    ro_field!(
        16..32,
        interface_version,
        u16,
        "interface version number, BCD (HCIVERSION)"
    );
}

register_value! {
    /// Structural Parameters 1 (xHCI 1.2 §5.3.3).
    #[doc(alias = "HCSPARAMS1")]
    StructuralParameters1(u32);
}

impl StructuralParameters1 {
    ro_field!(
        0..8,
        max_device_slots,
        u8,
        "Number of Device Slots (MaxSlots)"
    );
    ro_field!(24..32, max_ports, u8, "Number of Ports (MaxPorts)");
}

register_value! {
    /// Structural Parameters 2 (xHCI 1.2 §5.3.4).
    #[doc(alias = "HCSPARAMS2")]
    StructuralParameters2(u32);
}

impl StructuralParameters2 {
    ro_field!(
        21..26,
        max_scratchpad_buffers_high,
        u16,
        "Max Scratchpad Buffers, high 5 bits (Max Scratchpad Bufs Hi)"
    );
    ro_field!(
        27..32,
        max_scratchpad_buffers_low,
        u16,
        "Max Scratchpad Buffers, low 5 bits (Max Scratchpad Bufs Lo)"
    );

    /// Number of scratchpad buffers the controller asks for (0..=1023).
    pub(crate) const fn max_scratchpad_buffers(self) -> u16 {
        (self.max_scratchpad_buffers_high() << 5) | self.max_scratchpad_buffers_low()
    }
}

register_value! {
    /// Capability Parameters 1 (xHCI 1.2 §5.3.6).
    #[doc(alias = "HCCPARAMS1")]
    CapabilityParameters1(u32);
}

impl CapabilityParameters1 {
    ro_bit!(
        0,
        addressing_64bit,
        "64-bit Addressing Capability (AC64): 64-bit addresses are used"
    );
    ro_bit!(
        2,
        context_size,
        "Context Size (CSZ): contexts are 64 bytes, not 32"
    );
    ro_bit!(
        3,
        port_power_control,
        "Port Power Control (PPC): PORTSC.PP is writable"
    );
    ro_field!(
        16..32,
        extended_capabilities_pointer,
        u16,
        "xHCI Extended Capabilities Pointer (xECP), in dwords from the base"
    );

    /// Byte offset of the first extended capability (0: none).
    pub(crate) const fn extended_capabilities_offset(self) -> usize {
        self.extended_capabilities_pointer() as usize * 4
    }
}

register_value! {
    /// Doorbell Offset (xHCI 1.2 §5.3.7).
    #[doc(alias = "DBOFF")]
    DoorbellOffset(u32);
}

impl DoorbellOffset {
    /// Byte offset of the doorbell array from the base (bits 31:2).
    pub(crate) const fn offset(self) -> usize {
        (self.0 & !0x3) as usize
    }
}

register_value! {
    /// Runtime Register Space Offset (xHCI 1.2 §5.3.8).
    #[doc(alias = "RTSOFF")]
    RuntimeOffset(u32);
}

impl RuntimeOffset {
    /// Byte offset of the runtime registers from the base (bits 31:5).
    pub(crate) const fn offset(self) -> usize {
        (self.0 & !0x1f) as usize
    }
}
