//! Runtime register values of an interrupter (xHCI 1.2 §5.5.2) and the
//! doorbell value (§5.6).

register_value! {
    /// Interrupter Management (xHCI 1.2 §5.5.2.1). IP is RW1C: written
    /// through [`Registers::write_iman`](super::Registers::write_iman), which
    /// starts from [`neutral`](Self::neutral).
    #[doc(alias = "IMAN")]
    InterrupterManagement(u32);
}

impl InterrupterManagement {
    rw1c_bit!(
        0,
        interrupt_pending,
        clear_interrupt_pending,
        "Interrupt Pending (IP)"
    );
    rw_bit!(
        1,
        interrupt_enable,
        set_interrupt_enable,
        "Interrupt Enable (IE)"
    );

    /// What a write starts from: IE as read, IP as 0 (no effect).
    pub(crate) const fn neutral(self) -> Self {
        Self(self.0 & !1)
    }
}

register_value! {
    /// Interrupter Moderation (xHCI 1.2 §5.5.2.2).
    #[doc(alias = "IMOD")]
    InterrupterModeration(u32);
}

impl InterrupterModeration {
    rw_field!(
        0..16,
        interval,
        set_interval,
        u16,
        "Interrupt Moderation Interval (IMODI), in 250 ns units"
    );
    rw_field!(
        16..32,
        counter,
        set_counter,
        u16,
        "Interrupt Moderation Counter (IMODC)"
    );
}

register_value! {
    /// Event Ring Segment Table Size (xHCI 1.2 §5.5.2.3.1).
    #[doc(alias = "ERSTSZ")]
    EventRingSegmentTableSize(u32);
}

impl EventRingSegmentTableSize {
    rw_field!(
        0..16,
        segments,
        set_segments,
        u16,
        "Event Ring Segment Table Size: segments in the table"
    );
}

register_value! {
    /// Event Ring Segment Table Base Address (xHCI 1.2 §5.5.2.3.2), 64 bits.
    /// Writing it (low dword first) makes the controller read the table.
    #[doc(alias = "ERSTBA")]
    EventRingSegmentTableBaseAddress(u64);
}

impl EventRingSegmentTableBaseAddress {
    /// RW: sets the table's physical address (bits 63:6, 64-byte aligned).
    #[must_use]
    pub(crate) const fn set_pointer(self, phys: u64) -> Self {
        Self((self.0 & 0x3f) | (phys & !0x3f))
    }
}

register_value! {
    /// Event Ring Dequeue Pointer (xHCI 1.2 §5.5.2.3.3), 64 bits. EHB is
    /// RW1C: a write is built from 0, never from a read.
    #[doc(alias = "ERDP")]
    EventRingDequeuePointer(u64);
}

impl EventRingDequeuePointer {
    rw1c_bit!(
        3,
        event_handler_busy,
        clear_event_handler_busy,
        "Event Handler Busy (EHB)"
    );

    /// RW: the Event Ring Dequeue Pointer (bits 63:4, 16-byte aligned).
    pub(crate) const fn dequeue_pointer(self) -> u64 {
        self.0 & !0xf
    }

    /// RW: sets the Event Ring Dequeue Pointer (bits 63:4).
    #[must_use]
    pub(crate) const fn set_dequeue_pointer(self, phys: u64) -> Self {
        Self((self.0 & 0xf) | (phys & !0xf))
    }
}

register_value! {
    /// A doorbell register (xHCI 1.2 §5.6): write-only in effect.
    #[doc(alias = "DB")]
    #[doc(alias = "DOORBELL")]
    Doorbell(u32);
}

impl Doorbell {
    rw_field!(
        0..8,
        target,
        set_target,
        u8,
        "DB Target: 0 for the command ring, else the endpoint's DCI"
    );
}
