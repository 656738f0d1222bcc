//! The event dispatcher: every event goes through here, whether `poll()` is
//! draining or a bounded wait inside enumeration is. Everything read from the
//! ring is validated before use; bad events are counted, never dereferenced.
#![forbid(unsafe_code)]

use crate::controller::{CommandDone, Controller, EVENT_RING_TRBS};
use crate::device::{ControlDone, REPORT_BYTES};
use crate::hal::Hal;
use crate::regs::EventRingDequeuePointer;
use crate::trb::{CompletionCode, Event};
use crate::types::DeviceState;

impl<H: Hal> Controller<H> {
    /// Drains up to one ring's worth of events, then updates ERDP (clearing
    /// EHB, §5.5.2.3.3). Returns how many were consumed.
    pub(crate) fn process_events(&mut self) -> u32 {
        let mut consumed = 0u32;
        for _ in 0..EVENT_RING_TRBS {
            let Some(trb) = self.event_ring.peek(&self.mem.event_ring) else {
                break;
            };
            self.event_ring.advance();
            consumed += 1;
            self.counters.current_event = trb;
            match Event::try_from(trb) {
                Ok(event) => self.dispatch(event),
                Err(_) => self.reject_event(),
            }
        }
        if consumed > 0 {
            let erdp = EventRingDequeuePointer::default()
                .set_dequeue_pointer(self.event_ring.dequeue_phys(&self.mem.event_ring))
                .clear_event_handler_busy();
            self.regs.write_erdp(erdp);
        }
        consumed
    }

    #[track_caller]
    pub(crate) fn reject_event(&mut self) {
        self.counters.rejected_events = self.counters.rejected_events.saturating_add(1);
        self.counters.last_rejected_at = core::panic::Location::caller().line();
        self.counters.last_rejected = self.counters.current_event;
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::CommandCompletion {
                command_pointer,
                code,
                slot,
                ..
            } => {
                if self
                    .command_ring
                    .index_of(&self.mem.command_ring, command_pointer)
                    .is_none()
                {
                    return self.reject_event();
                }
                match self.pending_command {
                    Some(p) if p.trb == command_pointer => {
                        self.pending_command = None;
                        self.command_done = Some(CommandDone {
                            trb: command_pointer,
                            code,
                            slot,
                        });
                    }
                    _ => {
                        // e.g. Command Ring Stopped for an idle ring, or a late completion
                        self.command_done = Some(CommandDone {
                            trb: command_pointer,
                            code,
                            slot,
                        });
                        self.counters.stale_completions =
                            self.counters.stale_completions.saturating_add(1);
                    }
                }
            }
            Event::Transfer {
                trb_pointer,
                residual,
                code,
                event_data,
                endpoint,
                slot,
            } => {
                if event_data || !(1..=31).contains(&endpoint) {
                    return self.reject_event();
                }
                let Some(index) = self.slot_index(slot) else {
                    return self.reject_event();
                };
                if endpoint == 1 {
                    self.control_event(index, trb_pointer, residual, code);
                } else {
                    self.interrupt_event(index, endpoint, trb_pointer, residual, code);
                }
            }
            Event::PortStatusChange { port, .. } => {
                if port == 0 || port > self.caps.ports {
                    return self.reject_event();
                }
                self.ports[usize::from(port - 1)].changed = true;
            }
            Event::HostController { code } => {
                if code == Ok(CompletionCode::EventRingFull) {
                    self.counters.event_ring_full = self.counters.event_ring_full.saturating_add(1);
                    self.counters.events_lost = true;
                } else {
                    self.reject_event();
                }
            }
            Event::Other { .. } => {}
        }
    }

    /// The record of an in-use slot ID (`slots.rs`): a bounded search of
    /// the [`MAX_DEVICES`](crate::MAX_DEVICES) records, no table.
    pub(crate) fn slot_index(&self, slot: u8) -> Option<usize> {
        if slot == 0 {
            return None;
        }
        self.devices
            .iter()
            .position(|d| d.slot_id == slot && d.state.is_some() && !d.slot_released)
    }

    fn control_event(
        &mut self,
        index: usize,
        pointer: u64,
        residual: u32,
        code: Result<CompletionCode, u8>,
    ) {
        let device = &mut self.devices[index];
        if device.ep0.index_of(&device.mem.ep0_ring, pointer).is_none() {
            return self.reject_event();
        }
        if code == Ok(CompletionCode::ShortPacket) && device.control_status_trb != Some(pointer) {
            // short data stage (ISP): remember the residual, the status stage follows
            device.control_residual = residual;
            return;
        }
        if device.control_status_trb.is_none() {
            self.counters.stale_completions = self.counters.stale_completions.saturating_add(1);
            return;
        }
        device.control_done = Some(ControlDone { code });
    }

    fn interrupt_event(
        &mut self,
        index: usize,
        dci: u8,
        pointer: u64,
        residual: u32,
        code: Result<CompletionCode, u8>,
    ) {
        let device = &mut self.devices[index];
        let Some((endpoint_dci, max_packet)) = device.interrupt_endpoint() else {
            return self.reject_event();
        };
        if endpoint_dci != dci
            || device
                .intr
                .index_of(&device.mem.intr_ring, pointer)
                .is_none()
        {
            return self.reject_event();
        }
        if device.intr_outstanding != Some(pointer) {
            // not the TRB we are waiting for (stale after a restart): ignore
            self.counters.stale_completions = self.counters.stale_completions.saturating_add(1);
            return;
        }
        device.intr_outstanding = None;
        match code {
            Ok(CompletionCode::Success | CompletionCode::ShortPacket) => {
                device.recovery = crate::transfer::EndpointRecovery::default();
                let requested = u32::from(max_packet.min(64));
                let length = requested.saturating_sub(residual) as usize;
                let mut report = [0u8; REPORT_BYTES];
                let length = length.min(REPORT_BYTES);
                device.mem.report.read_bytes(0, &mut report[..length]);
                if device.state == Some(DeviceState::Hub) {
                    // Status change bitmap (USB 2.0 §11.12.4): bit 0 hub, bit p
                    // port p. The endpoint is re-armed once the changes are
                    // handled in poll().
                    if let Some(hub) = device.hub.as_mut() {
                        let bits = u16::from_le_bytes([report[0], report[1]]);
                        hub.changed |= bits & (hub.all_ports() | 1);
                    }
                    return;
                }
                device.reports = device.reports.wrapping_add(1);
                let now = self.hal.now_us();
                let device = &mut self.devices[index];
                if device.state == Some(DeviceState::Keyboard) {
                    let outcome = self.keyboard.handle_input(
                        &mut device.previous_report,
                        &mut device.report_format,
                        &report[..length],
                        now,
                    );
                    if outcome.rollover {
                        device.rollover = device.rollover.wrapping_add(1);
                    }
                    self.leds_dirty |= outcome.leds_changed;
                }
                self.queue_interrupt(index);
            }
            Ok(
                CompletionCode::Stopped
                | CompletionCode::StoppedLengthInvalid
                | CompletionCode::StoppedShortPacket,
            ) => {}
            code => {
                device.errors = device.errors.wrapping_add(1);
                device.intr_needs_restart = true;
                let soft_retry = !self.caps.quirks.no_soft_retry;
                if device.recovery.on_error(code, soft_retry) {
                    // a soft retry runs the same TD again (xHCI 1.2 §4.6.8.1)
                    device.intr_outstanding = Some(pointer);
                }
            }
        }
    }
}
