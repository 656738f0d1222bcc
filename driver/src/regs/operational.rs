//! Operational register values (xHCI 1.2 §5.4).

register_value! {
    /// USB Command (xHCI 1.2 §5.4.1). It has no RW1C bits, so a
    /// read-modify-write of it is safe.
    #[doc(alias = "USBCMD")]
    UsbCommand(u32);
}

impl UsbCommand {
    rw_bit!(0, run_stop, set_run_stop, "Run/Stop (R/S)");
    rw_bit!(
        1,
        host_controller_reset,
        set_host_controller_reset,
        "Host Controller Reset (HCRST)"
    );
    rw_bit!(
        2,
        interrupter_enable,
        set_interrupter_enable,
        "Interrupter Enable (INTE)"
    );
    rw_bit!(
        3,
        host_system_error_enable,
        set_host_system_error_enable,
        "Host System Error Enable (HSEE)"
    );
}

register_value! {
    /// USB Status (xHCI 1.2 §5.4.2). Its writable bits are all RW1C: a
    /// write starts from 0 ([`Registers::clear_usbsts`](super::Registers::clear_usbsts)).
    #[doc(alias = "USBSTS")]
    UsbStatus(u32);
}

impl UsbStatus {
    ro_bit!(0, hc_halted, "HCHalted (HCH)");
    rw1c_bit!(
        2,
        host_system_error,
        clear_host_system_error,
        "Host System Error (HSE)"
    );
    rw1c_bit!(
        3,
        event_interrupt,
        clear_event_interrupt,
        "Event Interrupt (EINT)"
    );
    rw1c_bit!(
        4,
        port_change_detect,
        clear_port_change_detect,
        "Port Change Detect (PCD)"
    );
    ro_bit!(11, controller_not_ready, "Controller Not Ready (CNR)");
    ro_bit!(12, host_controller_error, "Host Controller Error (HCE)");
}

register_value! {
    /// Page Size (xHCI 1.2 §5.4.3).
    #[doc(alias = "PAGESIZE")]
    PageSize(u32);
}

impl PageSize {
    ro_field!(
        0..16,
        page_size_bits,
        u16,
        "Page Size: bit n set means 2^(n+12) bytes are supported"
    );

    /// The smallest supported page size in bytes; 4 KiB if the register
    /// reads as 0 or all ones.
    pub(crate) const fn bytes(self) -> usize {
        let bits = self.page_size_bits();
        if bits == 0 || bits == 0xffff {
            4096
        } else {
            4096usize << bits.trailing_zeros()
        }
    }
}

register_value! {
    /// Command Ring Control (xHCI 1.2 §5.4.5), 64 bits. Reads return 0
    /// except CRR, and CS/CA are RW1S: a write starts from 0, never from a
    /// read.
    #[doc(alias = "CRCR")]
    CommandRingControl(u64);
}

impl CommandRingControl {
    rw_bit!(
        0,
        ring_cycle_state,
        set_ring_cycle_state,
        "Ring Cycle State (RCS)"
    );
    rw1s_bit!(1, command_stop, set_command_stop, "Command Stop (CS)");
    rw1s_bit!(2, command_abort, set_command_abort, "Command Abort (CA)");
    ro_bit!(3, command_ring_running, "Command Ring Running (CRR)");

    /// RW: sets the Command Ring Pointer (bits 63:6, 64-byte aligned).
    #[must_use]
    pub(crate) const fn set_command_ring_pointer(self, phys: u64) -> Self {
        Self((self.0 & 0x3f) | (phys & !0x3f))
    }
}

register_value! {
    /// Device Context Base Address Array Pointer (xHCI 1.2 §5.4.6), 64 bits.
    #[doc(alias = "DCBAAP")]
    DeviceContextBaseAddressArrayPointer(u64);
}

impl DeviceContextBaseAddressArrayPointer {
    /// RW: sets the array's physical address (bits 63:6, 64-byte aligned).
    #[must_use]
    pub(crate) const fn set_pointer(self, phys: u64) -> Self {
        Self((self.0 & 0x3f) | (phys & !0x3f))
    }
}

register_value! {
    /// Configure (xHCI 1.2 §5.4.7). No RW1C bits: read-modify-write is safe.
    #[doc(alias = "CONFIG")]
    Configure(u32);
}

impl Configure {
    rw_field!(
        0..8,
        max_device_slots_enabled,
        set_max_device_slots_enabled,
        u8,
        "Max Device Slots Enabled (MaxSlotsEn)"
    );
}

register_value! {
    /// Port Status and Control (xHCI 1.2 §5.4.8). It mixes RO, RW, RW1S and
    /// RW1C bits, and PED is RW1CS (writing 1 disables the port): it is
    /// written only through [`Registers::write_portsc`](super::Registers::write_portsc),
    /// which starts from [`neutral`](Self::neutral).
    #[doc(alias = "PORTSC")]
    PortStatusControl(u32);
}

/// Connect, Port Enabled/Disabled, Warm Port Reset, Over-current, Port
/// Reset, Port Link State and Port Config Error Change: every RW1C bit.
const PORTSC_CHANGE_BITS: u32 = 0x7f << 17;
/// RW bits a PORTSC write must keep as read: PP (9), PIC (15:14) and the
/// wake enables WCE, WDE, WOE (27:25).
const PORTSC_PRESERVE: u32 = (1 << 9) | (3 << 14) | (7 << 25);
/// Bits a PORTSC write may set: the change bits, PR (4), PP (9), WPR (31).
const PORTSC_WRITABLE: u32 = PORTSC_CHANGE_BITS | (1 << 4) | (1 << 9) | (1 << 31);

impl PortStatusControl {
    ro_bit!(0, current_connect_status, "Current Connect Status (CCS)");

    /// RW1CS, read only here: Port Enabled/Disabled (PED, bit 1). Writing 1
    /// would disable the port, so no accessor writes it and
    /// [`neutral`](Self::neutral) writes it as 0.
    pub(crate) const fn port_enabled(self) -> bool {
        self.0 & (1 << 1) != 0
    }

    rw1s_bit!(4, port_reset, set_port_reset, "Port Reset (PR)");
    ro_field!(
        5..9,
        port_link_state,
        u8,
        "Port Link State (PLS, §5.4.8 Table 5-27)"
    );
    rw_bit!(9, port_power, set_port_power, "Port Power (PP)");
    ro_field!(10..14, port_speed, u8, "Port Speed (protocol speed ID)");
    rw1c_bit!(
        18,
        port_enabled_change,
        clear_port_enabled_change,
        "Port Enabled/Disabled Change (PEC)"
    );
    rw1c_bit!(
        19,
        warm_port_reset_change,
        clear_warm_port_reset_change,
        "Warm Port Reset Change (WRC, USB 3 ports only)"
    );
    rw1c_bit!(
        17,
        connect_status_change,
        clear_connect_status_change,
        "Connect Status Change (CSC)"
    );
    rw1c_bit!(
        21,
        port_reset_change,
        clear_port_reset_change,
        "Port Reset Change (PRC)"
    );

    rw1s_bit!(
        31,
        warm_port_reset,
        set_warm_port_reset,
        "Warm Port Reset (WPR, USB 3 ports only, §4.19.5.1)"
    );

    /// Is any RW1C change bit set?
    pub(crate) const fn has_changes(self) -> bool {
        self.0 & PORTSC_CHANGE_BITS != 0
    }

    /// RW1C: writes 1 to every change bit set in `seen` (a value read
    /// earlier), which clears exactly those.
    #[must_use]
    pub(crate) const fn clear_changes(self, seen: Self) -> Self {
        Self(self.0 | (seen.0 & PORTSC_CHANGE_BITS))
    }

    /// What a write of this port starts from: the RW bits that must keep
    /// their value (PP, PIC, wake enables) as read, every RW1C bit, PED, PR,
    /// LWS and WPR as 0 (no effect).
    pub(crate) const fn neutral(self) -> Self {
        Self(self.0 & PORTSC_PRESERVE)
    }

    /// Drops anything but the kept RW bits and the bits a write may set.
    pub(crate) const fn writable(self) -> Self {
        Self(self.0 & (PORTSC_PRESERVE | PORTSC_WRITABLE))
    }
}
