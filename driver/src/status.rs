//! What a running controller tells its kernel: the devices for `lsusb`,
//! the controller's identity and DMA span, the keyboard counters, and
//! whether a held key will repeat.
#![forbid(unsafe_code)]

use crate::controller::Controller;
use crate::hal::Hal;
use crate::types::{ControllerInfo, DeviceInfo, DeviceState, KeyboardStats};

impl<H: Hal> Controller<H> {
    /// The devices we know of, for `lsusb`.
    pub fn devices(&self) -> impl Iterator<Item = DeviceInfo> + '_ {
        self.devices.iter().filter_map(|d| {
            let state = d.state?;
            Some(DeviceInfo {
                port: d.port,
                route: d.location.route,
                parent_slot: self.slot_id_of(d.location.parent_slot),
                parent_port: d.location.parent_port,
                hub_ports: d.hub.map_or(0, |h| h.ports),
                speed: d.speed,
                // a listing without a slot shows none (its ID may be reused)
                slot: if d.slot_released { 0 } else { d.slot_id },
                vendor: d.descriptor.vendor,
                product: d.descriptor.product,
                class: d.class,
                state,
                is_keyboard: d.keyboard.is_some() && state == DeviceState::Keyboard,
                reports: d.reports,
                errors: d.errors,
                poll_us: d
                    .keyboard
                    .map_or(0, |k| crate::context::interval_us(k.interval)),
                report_protocol: d.report_format.is_report_protocol(),
            })
        })
    }

    /// Controller facts.
    pub fn info(&self) -> ControllerInfo {
        ControllerInfo {
            version: self.caps.version,
            ports: self.caps.ports,
            slots: self.caps.slots,
            context_size: self.caps.context.size as u8,
            scratchpad_buffers: self.caps.scratchpads,
            interrupt_mode: self.interrupts,
            dead: self.dead,
            rejected_events: self.counters.rejected_events,
            last_rejected_at: self.counters.last_rejected_at,
            last_rejected: self.counters.last_rejected,
            usb3_ports: self.caps.usb3_ports,
            dma_limit: self.caps.dma_limit,
            dma_lowest: self.caps.dma_span.0,
            dma_highest: self.caps.dma_span.1,
        }
    }

    /// Keyboard settings and counters.
    pub fn keyboard_stats(&self) -> KeyboardStats {
        let mut stats = KeyboardStats {
            layout: self.keyboard.layout(),
            repeat: self.keyboard.repeat(),
            leds: self.keyboard.leds(),
            keyboards: 0,
            reports: 0,
            rollover_reports: 0,
            transfer_errors: 0,
            keys_queued: self.keyboard.queue.total,
            keys_dropped: self.keyboard.queue.dropped,
            keys_pending: self.keyboard.queue.len() as u32,
        };
        for d in self
            .devices
            .iter()
            .filter(|d| d.keyboard.is_some() && d.state.is_some())
        {
            stats.keyboards += 1;
            stats.reports = stats.reports.wrapping_add(d.reports);
            stats.rollover_reports = stats.rollover_reports.wrapping_add(d.rollover);
            stats.transfer_errors = stats.transfer_errors.wrapping_add(d.errors);
        }
        stats
    }

    /// Is a key held that will repeat? In interrupt mode the kernel should
    /// then call [`poll`](Self::poll) from a timer (every 10-20 ms), since
    /// repeats come from the clock, not from the device.
    pub fn repeat_pending(&self) -> bool {
        self.keyboard.repeat_pending()
    }

    /// Is a device being attached, a port waiting for its turn, or a hub
    /// waiting for its ports' power-good (`attach.rs`)? A device attached
    /// shows in a later [`poll`](Self::poll)'s `attached` count.
    pub fn attach_pending(&self) -> bool {
        self.enumeration_pending()
    }

    /// Is every configured keyboard armed: its interrupt IN transfer queued
    /// on its ring (the doorbell rung), no endpoint waiting for a restart?
    /// A key pressed now completes that transfer (USB 2.0 §5.7.4: the
    /// device answers the host's next poll of the endpoint) and the next
    /// [`poll`](Self::poll) reads it: the panic console's prompt waits for
    /// this, not for the bus to be quiet for a while.
    pub fn keyboards_armed(&self) -> bool {
        self.devices.iter().all(|d| {
            d.state != Some(DeviceState::Keyboard)
                || (d.intr_outstanding.is_some() && !d.intr_needs_restart)
        })
    }

    /// Does something wait on the clock rather than on the controller: a
    /// key that will repeat, a device being attached between the stages of
    /// `attach.rs` (debounce, reset recovery, SET_ADDRESS recovery: no
    /// interrupt ends them), a hub whose ports are not power-good yet? In
    /// interrupt mode the kernel should then call [`poll`](Self::poll)
    /// from a timer, every millisecond or so.
    pub fn timer_pending(&self) -> bool {
        self.keyboard.repeat_pending() || self.enumeration_pending()
    }
}
