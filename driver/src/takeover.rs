//! The one-way switch to polled mode at panic time, robust against a CPU
//! that was stopped in the middle of any driver method: state is re-derived
//! from ring memory and hardware, not trusted.
#![deny(unsafe_code)]

use crate::controller::Controller;
use crate::error::Error;
use crate::hal::Hal;
use crate::regs::*;
use crate::ring::EventRing;
use crate::trb::command;
use crate::types::{DeviceState, MAX_PORTS, TakeoverReport};

/// Bounded wait for a command that was in flight when the CPU stopped.
const PENDING_COMMAND_GRACE_US: u64 = 100_000;

impl<H: Hal> Controller<H> {
    /// Switches to polled mode for good: masks the interrupter (IMAN.IE,
    /// USBCMD.INTE), then repairs whatever a stopped CPU may have left half
    /// done — event ring dequeue/cycle state re-derived from memory and ERDP,
    /// an outstanding command waited for (bounded) or aborted and the command
    /// ring reset, every keyboard's interrupt endpoint stopped, its ring
    /// re-initialised (Set TR Dequeue Pointer) and re-armed, a half-enumerated
    /// device restarted. If that fails, or the controller shows HSE/HCE or
    /// all-ones registers, it is reset and re-initialised with the same
    /// memory (no allocation) and devices are re-enumerated by `poll()`; if
    /// even that fails the controller is reported dead.
    ///
    /// # Safety
    ///
    /// No other CPU may run any method of this controller during or after the
    /// call (they are stopped); `self` may have been left mid-update by one.
    /// After this call only [`poll`](Self::poll), [`next_key`](Self::next_key)
    /// and the introspection methods should be used.
    #[allow(
        unsafe_code,
        reason = "the unsafety is the caller's contract; the body is safe code"
    )]
    pub unsafe fn enter_polled_mode(&mut self) -> TakeoverReport {
        let mut report = TakeoverReport::default();
        self.interrupts = false;
        self.in_wait = false;
        if self.keyboard.queue.sanitize() {
            report.key_queue_reset = true;
        }
        if self.dead {
            report.dead = true;
            return report;
        }
        if self.regs.op(OP_USBSTS) != u32::MAX {
            self.set_interrupter(false);
            let cmd = self.regs.op(OP_USBCMD);
            self.regs.set_op(OP_USBCMD, cmd & !USBCMD_INTE);
        }
        if let Err(reason) = self.repair(&mut report) {
            report.reset_reason = Some(reason);
            report.full_reset = true;
            if let Err(e) = self.initialize() {
                report.reset_reason = Some(e);
                report.dead = true;
                self.dead = true;
                return report;
            }
        }
        report.events_drained += self.process_events();
        report
    }

    fn repair(&mut self, report: &mut TakeoverReport) -> Result<(), Error> {
        let sts = self.health()?;
        if sts & USBSTS_HCH != 0 {
            return Err(Error::Unsupported {
                what: "controller found halted",
            });
        }
        // Event ring: re-derive dequeue index and cycle state.
        let base = self.mem.event_ring.phys();
        let erdp = self.regs.erdp() & !0xf;
        let erdp_index = erdp
            .checked_sub(base)
            .map(|o| (o / 16) as usize)
            .filter(|&i| i < crate::controller::EVENT_RING_TRBS);
        // ERDP is what the controller was last told; the software index may be torn.
        // Events between ERDP and a torn software index may be seen twice: the
        // dispatcher drops what is not outstanding.
        let derived = EventRing::rederive(
            &self.mem.event_ring,
            erdp_index,
            Some(self.event_ring.dequeue_index()),
        );
        if derived != self.event_ring {
            report.event_ring_repaired = true;
        }
        self.event_ring = derived;
        self.regs.set_intr64(
            INTR_ERDP,
            self.event_ring.dequeue_phys(&self.mem.event_ring) | ERDP_EHB,
        );
        report.events_drained += self.process_events();

        // Command ring: let an outstanding command finish (bounded), else abort it;
        // either way rewind the ring to a clean state.
        let had_pending = self.pending_command.is_some();
        if had_pending {
            let _ = self.wait_for(PENDING_COMMAND_GRACE_US, "pending command", |c| {
                c.process_events();
                Ok(c.pending_command.is_none())
            });
            report.command_completed = self.pending_command.is_none();
        }
        let aborted = self.abort_and_reset_command_ring()?;
        report.command_aborted = had_pending && !report.command_completed && aborted;
        report.command_ring_reset = true;

        // Ports table rebuilt from device records.
        let ports = usize::from(self.caps.ports).min(MAX_PORTS);
        for p in self.ports.iter_mut() {
            p.slot = 0;
        }
        for (index, device) in self.devices.iter().enumerate() {
            if device.state.is_some() && (1..=ports).contains(&usize::from(device.port)) {
                self.ports[usize::from(device.port) - 1].slot = index as u8 + 1;
            }
        }

        for index in 0..self.devices.len() {
            match self.devices[index].state {
                Some(DeviceState::Enumerating) => {
                    let port = self.devices[index].port;
                    self.devices[index].state = None;
                    let _ = self.command(command::disable_slot(index as u8 + 1), "Disable Slot");
                    self.mem.dcbaa.write64((index + 1) * 8, 0);
                    self.devices[index].reset();
                    if (1..=ports).contains(&usize::from(port)) {
                        let p = &mut self.ports[usize::from(port) - 1];
                        p.slot = 0;
                        p.failed = false;
                        p.changed = true;
                    }
                    report.enumerations_restarted += 1;
                }
                Some(DeviceState::Keyboard) => {
                    let Some(kbd) = self.devices[index].keyboard else {
                        continue;
                    };
                    if !(3..=31).contains(&kbd.dci) {
                        return Err(Error::Unsupported {
                            what: "corrupt keyboard endpoint record",
                        });
                    }
                    if self.devices[index].control_status_trb.is_some() {
                        self.restart_endpoint(index, 1)?;
                    }
                    self.restart_endpoint(index, kbd.dci)?;
                    self.devices[index].intr_needs_restart = false;
                    self.queue_interrupt(index);
                    report.endpoints_restarted += 1;
                }
                _ => {}
            }
        }
        // Look at every port again: attach/detach that happened meanwhile.
        for p in self.ports.iter_mut().take(ports) {
            p.changed = true;
        }
        Ok(())
    }
}
