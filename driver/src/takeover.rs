//! The one-way switch to polled mode at panic time, robust against a CPU
//! that was stopped in the middle of any driver method: state is re-derived
//! from ring memory and hardware, not trusted.
#![deny(unsafe_code)]

use crate::controller::Controller;
use crate::device::MAX_HUB_PORTS;
use crate::error::Error;
use crate::hal::Hal;
use crate::regs::EventRingDequeuePointer;
use crate::ring::EventRing;
use crate::types::{DeviceState, MAX_PORTS, TakeoverReport};

/// How the other CPUs left a controller when they were stopped, as its
/// owner knows it: the caller of [`Controller::enter_polled_mode`] (the
/// kernel tells by its lock around the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// No CPU was inside a method of this controller (its lock was free
    /// when the others stopped, and the panic did not begin inside the
    /// driver): every ring, slot and device record is whole, as at a
    /// break-in. Only the interrupter is masked; nothing is repaired, no
    /// command is issued, and an attach between its stages carries on.
    Whole,
    /// A CPU may have stopped half way through a method (its lock was held,
    /// or the panic began inside the driver): everything is re-derived.
    Torn,
}

/// Bounded wait for a command that was in flight when the CPU stopped.
const PENDING_COMMAND_GRACE_US: u64 = 100_000;

/// Time budget of the whole takeover ([`Controller::enter_polled_mode`]) on
/// the HAL clock: however dead or slow the controller, the panic path gets
/// its answer (a repaired controller, a reset one, or a dead one with its
/// reason) after at most about 2 s. Every bounded wait inside the takeover
/// (pending command, command abort, endpoint restarts, and the halt, HCRST
/// and CNR waits of a full reset, xHCI 1.2 §4.2) ends at this deadline; a
/// wait reached after it fails at once with a timeout naming what it was for.
pub(crate) const TAKEOVER_BUDGET_US: u64 = 2_000_000;

/// The part of [`TAKEOVER_BUDGET_US`] the repair may use before it gives up
/// and falls back to a full reset, so that a controller whose commands hang
/// but which still resets keeps the rest for halt and reset. The repair of
/// a working controller takes milliseconds.
const REPAIR_BUDGET_US: u64 = 1_000_000;
const _: () = assert!(REPAIR_BUDGET_US < TAKEOVER_BUDGET_US);

impl<H: Hal> Controller<H> {
    /// Switches to polled mode for good: masks the interrupter (IMAN.IE,
    /// USBCMD.INTE). With [`Left::Whole`] (no CPU was inside the driver)
    /// that is all: the rings, slots and devices are kept as they are, as
    /// at a break-in (`resume.rs`), so every armed keyboard stays armed and
    /// no command is issued; a command still pending or a failed controller
    /// is repaired all the same. With [`Left::Torn`] it then repairs
    /// whatever a stopped CPU may have left half done — event ring
    /// dequeue/cycle state re-derived from memory and ERDP,
    /// an outstanding command waited for (bounded) or aborted and the command
    /// ring reset, every keyboard's interrupt endpoint stopped, its ring
    /// re-initialised (Set TR Dequeue Pointer) and re-armed, every hub's
    /// status-change endpoint likewise with all its ports rescanned, EP0 of a
    /// keyboard or hub caught mid-control transfer (any TRB queued) stopped
    /// and rewound too, the LED state sent again, a half-enumerated device
    /// (on a root port or behind a hub) disabled and enumerated again by the
    /// next `poll()`. The enumeration probe (a test hook) is removed. If that fails, or the controller shows HSE/HCE or
    /// all-ones registers, it is reset and re-initialised with the same
    /// memory (no allocation) and devices are re-enumerated by `poll()`; if
    /// even that fails the controller is reported dead.
    ///
    /// The whole takeover keeps to a time budget of 2 s (`TAKEOVER_BUDGET_US`)
    /// (the repair to a first part of it): a controller that never completes
    /// commands, never halts or never finishes its reset is reported dead,
    /// with the reason, within about 2 s.
    ///
    /// # Safety
    ///
    /// No other CPU may run any method of this controller during or after the
    /// call (they are stopped); `self` may have been left mid-update by one.
    /// After this call only [`poll`](Self::poll), [`next_key`](Self::next_key)
    /// and the introspection methods should be used. Keys decoded before it
    /// returns (still queued, or drained from the event ring) are dropped;
    /// a report the device had not yet sent comes at a later `poll()`.
    #[allow(
        unsafe_code,
        reason = "the unsafety is the caller's contract; the body is safe code"
    )]
    pub unsafe fn enter_polled_mode(&mut self, left: Left) -> TakeoverReport {
        let start = self.hal.now_us();
        self.deadline_us = Some(start.saturating_add(REPAIR_BUDGET_US));
        let mut report = self.take_over(start, left);
        self.deadline_us = None;
        // What the keyboards sent before the takeover was typed for the
        // world that panicked (with `trigger=usb-irq`, the key whose
        // interrupt panicked, which the drain above decoded): not for the
        // panic console. The key repeat goes with it.
        report.keys_dropped = self.keyboard.discard_pending();
        report
    }

    /// The body of [`enter_polled_mode`](Self::enter_polled_mode), run
    /// under the repair's deadline; `start` is when the takeover began.
    fn take_over(&mut self, start: u64, left: Left) -> TakeoverReport {
        let mut report = TakeoverReport::default();
        self.interrupts = false;
        self.in_wait = false;
        // test hooks must not follow the kernel into panic mode
        self.enumeration_probe = None;
        if self.keyboard.queue.sanitize() {
            report.key_queue_reset = true;
        }
        if self.dead {
            report.dead = true;
            return report;
        }
        if !self.regs.usbsts().is_all_ones() {
            self.set_interrupter(false);
            let cmd = self.regs.usbcmd();
            self.regs.write_usbcmd(cmd.set_interrupter_enable(false));
        }
        // Whole: nothing to repair, as at a break-in (`resume.rs`); a
        // command still pending (it timed out earlier) or a controller
        // found failed takes the repair below all the same.
        if left == Left::Whole
            && self.pending_command.is_none()
            && self.health().is_ok_and(|s| !s.hc_halted())
        {
            report.kept_whole = true;
            report.events_drained += self.process_events();
            return report;
        }
        if let Err(reason) = self.repair(&mut report) {
            report.reset_reason = Some(reason);
            report.full_reset = true;
            self.deadline_us = Some(start.saturating_add(TAKEOVER_BUDGET_US));
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

    /// Repairs what a stopped CPU may have left half done (see
    /// [`enter_polled_mode`](Self::enter_polled_mode)); an error means only
    /// a full reset will do.
    fn repair(&mut self, report: &mut TakeoverReport) -> Result<(), Error> {
        let sts = self.health()?;
        if sts.hc_halted() {
            return Err(Error::Unsupported {
                what: "controller found halted",
            });
        }
        // A command the stopped CPU left in flight, noted before the first
        // drain: its completion may already wait on the event ring.
        let had_pending = self.pending_command.is_some();
        self.repair_event_ring(report);
        self.repair_command_ring(report, had_pending)?;
        // an attach between its stages (or stopped inside one) starts over
        self.requeue_attach();
        self.rebuild_device_tables();
        for index in 0..self.devices.len() {
            match self.devices[index].state {
                Some(DeviceState::Enumerating) => {
                    self.restart_enumeration(index);
                    report.enumerations_restarted += 1;
                }
                Some(DeviceState::Keyboard | DeviceState::Hub) => {
                    self.restart_device_endpoints(index, report)?;
                }
                _ => {}
            }
        }
        // Look at every port again: attach/detach that happened meanwhile.
        let ports = usize::from(self.caps.ports).min(MAX_PORTS);
        for p in self.ports.iter_mut().take(ports) {
            p.changed = true;
        }
        // An LED report may have been lost with the stopped CPU (mid-transfer,
        // or between clearing `leds_dirty` and sending): send the LEDs again.
        self.leds_dirty = true;
        Ok(())
    }

    /// Event ring: re-derives the dequeue index and cycle state from ring
    /// memory and ERDP, tells the controller (ERDP, EHB cleared) and drains.
    fn repair_event_ring(&mut self, report: &mut TakeoverReport) {
        let base = self.mem.event_ring.phys();
        let erdp = self.regs.erdp().dequeue_pointer();
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
        self.regs.write_erdp(
            EventRingDequeuePointer::default()
                .set_dequeue_pointer(self.event_ring.dequeue_phys(&self.mem.event_ring))
                .clear_event_handler_busy(),
        );
        report.events_drained += self.process_events();
    }

    /// Command ring: lets an outstanding command finish (bounded), else
    /// aborts it; either way rewinds the ring to a clean state.
    fn repair_command_ring(
        &mut self,
        report: &mut TakeoverReport,
        had_pending: bool,
    ) -> Result<(), Error> {
        if self.pending_command.is_some() {
            let _ = self.wait_for(PENDING_COMMAND_GRACE_US, "pending command", |c| {
                c.process_events();
                Ok(c.pending_command.is_none())
            });
        }
        report.command_completed = had_pending && self.pending_command.is_none();
        let aborted = self.abort_and_reset_command_ring()?;
        report.command_aborted = had_pending && !report.command_completed && aborted;
        report.command_ring_reset = true;
        Ok(())
    }

    /// Rebuilds the root port table and every hub's child table from the
    /// device records. A device whose hub is gone or was never finished is
    /// marked `Enumerating`, so it is detached and enumerated again.
    fn rebuild_device_tables(&mut self) {
        let ports = usize::from(self.caps.ports).min(MAX_PORTS);
        for p in self.ports.iter_mut() {
            p.slot = 0;
        }
        for device in self.devices.iter_mut() {
            if let Some(hub) = device.hub.as_mut() {
                hub.children = [0; MAX_HUB_PORTS];
            }
        }
        for index in 0..self.devices.len() {
            let device = &self.devices[index];
            let at = device.location;
            if device.state.is_none() || !(1..=ports).contains(&usize::from(device.port)) {
                continue;
            }
            let slot = index as u8 + 1;
            if at.parent_slot == 0 {
                self.ports[usize::from(device.port) - 1].slot = slot;
                continue;
            }
            let linked = usize::from(at.parent_slot)
                .checked_sub(1)
                .and_then(|i| self.devices.get_mut(i))
                .filter(|d| d.state == Some(DeviceState::Hub))
                .and_then(|d| d.hub.as_mut())
                .and_then(|h| {
                    h.children
                        .get_mut(usize::from(at.parent_port).wrapping_sub(1))
                })
                .map(|child| *child = slot)
                .is_some();
            if !linked {
                // its hub is gone or was never finished: the device goes too
                self.devices[index].state = Some(DeviceState::Enumerating);
            }
        }
    }

    /// A device caught mid-enumeration: disables its slot and flags its root
    /// or hub port for a fresh attach by the next `poll()`.
    fn restart_enumeration(&mut self, index: usize) {
        let ports = usize::from(self.caps.ports).min(MAX_PORTS);
        let at = self.devices[index].location;
        let slot = index as u8 + 1;
        // a hub caught mid-enumeration has no children yet: plain detach
        self.devices[index].hub = None;
        self.detach_slot(slot);
        if at.parent_slot == 0 {
            if (1..=ports).contains(&usize::from(at.root_port)) {
                let p = &mut self.ports[usize::from(at.root_port) - 1];
                p.failed = false;
                p.changed = true;
            }
        } else if let Some(hub) = usize::from(at.parent_slot)
            .checked_sub(1)
            .and_then(|i| self.devices.get_mut(i))
            .and_then(|d| d.hub.as_mut())
            && (1..=hub.ports).contains(&at.parent_port)
        {
            hub.failed &= !(1 << at.parent_port);
            hub.changed |= 1 << at.parent_port;
        }
    }

    /// A configured keyboard or hub: stops and rewinds EP0 if a control
    /// transfer was caught in flight, restarts and re-arms its interrupt
    /// endpoint, and for a hub flags every port for a rescan.
    fn restart_device_endpoints(
        &mut self,
        index: usize,
        report: &mut TakeoverReport,
    ) -> Result<(), Error> {
        let Some((dci, _)) = self.devices[index].interrupt_endpoint() else {
            return Ok(());
        };
        if !(3..=31).contains(&dci) {
            return Err(Error::Unsupported {
                what: "corrupt interrupt endpoint record",
            });
        }
        // EP0 caught mid-control transfer (any TRB queued, even
        // before the Status TRB): stop it and rewind its ring
        if self.devices[index].ep0_busy() {
            self.restart_endpoint(index, 1)?;
        }
        self.restart_endpoint(index, dci)?;
        self.devices[index].intr_needs_restart = false;
        self.devices[index].recovery.pending = None;
        self.queue_interrupt(index);
        if let Some(hub) = self.devices[index].hub.as_mut() {
            // a port change may have been consumed and not acted on
            hub.changed |= hub.all_ports();
            report.hubs_restarted += 1;
        } else {
            report.endpoints_restarted += 1;
        }
        Ok(())
    }
}
