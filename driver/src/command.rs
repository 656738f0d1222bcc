//! Command submission with bounded waits (xHCI 1.2 §4.6), command ring
//! abort/reset (§4.6.1.2) and endpoint restart (§4.6.8, §4.6.10, §4.8.3).
#![forbid(unsafe_code)]

use crate::context::{EP_STATE_HALTED, EP_STATE_STOPPED};
use crate::controller::{CommandDone, Controller, PendingCommand, WAIT_STEP_US};
use crate::dma::DmaBuf;
use crate::error::Error;
use crate::hal::Hal;
use crate::regs::CommandRingControl;
use crate::ring::{ProducerRing, TrbMemory};
use crate::trb::{CompletionCode, command};

/// How long a command may take before we abort it, in interrupt mode: 5 s,
/// Linux's `XHCI_CMD_DEFAULT_TIMEOUT` (some controllers take seconds for a
/// Configure Endpoint or an Address Device).
const COMMAND_TIMEOUT_US: u64 = 5_000_000;
/// The same in polled mode (the panic console's, and an early panic's
/// bring-up): 500 ms, so a hung command does not hold the panic console for
/// seconds (the takeover caps it further with its own budget).
const POLLED_COMMAND_TIMEOUT_US: u64 = 500_000;

impl<H: Hal> Controller<H> {
    /// How long one command (or a command ring abort) may take: 5 s in
    /// interrupt mode, 500 ms in polled mode.
    pub(crate) fn command_timeout_us(&self) -> u64 {
        if self.interrupts {
            COMMAND_TIMEOUT_US
        } else {
            POLLED_COMMAND_TIMEOUT_US
        }
    }

    /// Places a command on the ring, rings doorbell 0 and waits (draining
    /// events through the dispatcher) for its completion.
    pub(crate) fn command(
        &mut self,
        trb: [u32; 4],
        name: &'static str,
    ) -> Result<CommandDone, Error> {
        if self.dead {
            return Err(Error::Dead);
        }
        if self.pending_command.is_some() {
            // a previous command never completed: get a clean ring first
            self.abort_and_reset_command_ring()?;
        }
        let phys = self.command_ring.push(&mut self.mem.command_ring, trb);
        self.command_done = None;
        self.pending_command = Some(PendingCommand { trb: phys, name });
        self.regs.ring_doorbell(0, 0);
        let result = self.wait_for(self.command_timeout_us(), name, |c| {
            c.health()?;
            c.process_events();
            Ok(c.command_done.is_some_and(|d| d.trb == phys))
        });
        match result {
            Ok(()) => {
                let done = self
                    .command_done
                    .take()
                    .ok_or(Error::Timeout { what: name })?;
                match done.code {
                    Ok(CompletionCode::Success) => Ok(done),
                    code => Err(Error::CommandFailed {
                        command: name,
                        code,
                    }),
                }
            }
            Err(e) => {
                if matches!(e, Error::Timeout { .. }) {
                    // best effort; the command's own timeout is the error to report
                    let _ = self.abort_and_reset_command_ring();
                }
                Err(e)
            }
        }
    }

    /// Stops the command ring (CRCR.CA, §4.6.1.2), waits for CRR to clear,
    /// drains the resulting events and rewinds the ring to a clean state.
    pub(crate) fn abort_and_reset_command_ring(&mut self) -> Result<bool, Error> {
        let mut aborted = false;
        if self.regs.crcr().command_ring_running() {
            // Only the low dword: writing the high dword would be taken as a new pointer.
            self.regs
                .write_crcr_low(CommandRingControl::default().set_command_abort());
            aborted = true;
            // CRR stays set until the abort is done; give the controller a moment first.
            self.hal.delay_us(WAIT_STEP_US);
            let timeout = self.command_timeout_us();
            self.wait_for(timeout, "command ring stop (CRCR.CRR)", |c| {
                c.process_events();
                Ok(!c.regs.crcr().command_ring_running())
            })?;
        }
        self.process_events();
        self.pending_command = None;
        self.command_done = None;
        self.command_ring = ProducerRing::reset(&mut self.mem.command_ring);
        self.regs
            .write_crcr(command_ring_start(&self.mem.command_ring));
        Ok(aborted)
    }

    /// Brings endpoint `dci` of a slot back to a clean, empty ring: Reset
    /// Endpoint if halted, Stop Endpoint if running, re-initialise the ring,
    /// Set TR Dequeue Pointer (§4.6.10). The caller re-arms transfers.
    pub(crate) fn restart_endpoint(&mut self, index: usize, dci: u8) -> Result<(), Error> {
        let slot = self.devices[index].slot_id;
        let context = self.caps.context;
        let state = context.endpoint_state(&self.devices[index].mem.device_context, dci);
        if state == EP_STATE_HALTED {
            self.command(command::reset_endpoint(slot, dci), "Reset Endpoint")?;
        } else if state != EP_STATE_STOPPED {
            match self.command(command::stop_endpoint(slot, dci), "Stop Endpoint") {
                // already stopped/halted by the time the command ran
                Err(Error::CommandFailed {
                    code: Ok(CompletionCode::ContextStateError),
                    ..
                }) => {
                    let now = context.endpoint_state(&self.devices[index].mem.device_context, dci);
                    if now == EP_STATE_HALTED {
                        self.command(command::reset_endpoint(slot, dci), "Reset Endpoint")?;
                    }
                }
                other => {
                    other?;
                }
            }
        }
        // The ring restarts at the cycle state the endpoint stopped with, so
        // its stale TRBs stay invalid to a controller that reads it late.
        let cycle = self.stopped_cycle(index, dci);
        let device = &mut self.devices[index];
        let (phys, cycle) = if dci == 1 {
            device.ep0 = ProducerRing::reset_with_cycle(&mut device.mem.ep0_ring, cycle);
            device.control_status_trb = None;
            device.control_done = None;
            (device.mem.ep0_ring.phys(), device.ep0.cycle())
        } else {
            device.intr = ProducerRing::reset_with_cycle(&mut device.mem.intr_ring, cycle);
            device.intr_outstanding = None;
            (device.mem.intr_ring.phys(), device.intr.cycle())
        };
        self.set_tr_dequeue(slot, dci, phys, cycle)?;
        if dci == 1 {
            // EP0's ring is empty and the controller dequeues from its start
            self.devices[index].control_in_flight = false;
            self.clear_tt_buffer(index); // the aborted transfer's TT state (hub.rs)
        }
        Ok(())
    }
}

/// Set TR Dequeue Pointer attempts when the endpoint is found running again.
const SET_TR_DEQUEUE_TRIES: u32 = 3;

impl<H: Hal> Controller<H> {
    /// Set TR Dequeue Pointer (§4.6.10) on a stopped endpoint. Bochs' xHCI
    /// runs a stopped interrupt endpoint once more when it next serves it,
    /// which leaves it Running, and the command then fails with Context
    /// State Error (seen in `tests/bochs.rs`'s log): the endpoint is stopped
    /// again and the command retried, at most [`SET_TR_DEQUEUE_TRIES`] times.
    fn set_tr_dequeue(&mut self, slot: u8, dci: u8, phys: u64, cycle: bool) -> Result<(), Error> {
        let mut tries = 1;
        loop {
            match self.command(
                command::set_tr_dequeue(slot, dci, phys, cycle),
                "Set TR Dequeue Pointer",
            ) {
                Err(Error::CommandFailed {
                    code: Ok(CompletionCode::ContextStateError),
                    ..
                }) if tries < SET_TR_DEQUEUE_TRIES => {
                    tries += 1;
                    // a Context State Error here means it was stopped already
                    let _ = self.command(command::stop_endpoint(slot, dci), "Stop Endpoint");
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// The consumer cycle state endpoint `dci` of device `index` stopped
    /// with. The interrupt endpoint's is the cycle bit of its outstanding
    /// TRB (where the controller's dequeue pointer rests), else the
    /// producer's: the driver's own record, because Bochs' xHCI leaves the
    /// output context's TR Dequeue Pointer as Configure Endpoint set it.
    /// EP0's is the output context's DCS, which the xHC updates on Stop
    /// Endpoint (xHCI 1.2 §4.6.9).
    fn stopped_cycle(&self, index: usize, dci: u8) -> bool {
        let device = &self.devices[index];
        if dci == 1 {
            return self
                .caps
                .context
                .endpoint_dequeue_cycle(&device.mem.device_context, dci);
        }
        device
            .intr_outstanding
            .and_then(|phys| device.intr.index_of(&device.mem.intr_ring, phys))
            .map_or(device.intr.cycle(), |i| {
                device.mem.intr_ring.read_trb(i)[3] & crate::trb::TRB_CYCLE != 0
            })
    }
}

/// The CRCR value that points the controller at the start of a command ring
/// just reset by [`ProducerRing::reset`]: its first TRB, cycle state 1
/// (§4.9.3, §5.4.5).
pub(crate) fn command_ring_start(ring: &DmaBuf) -> CommandRingControl {
    CommandRingControl::default()
        .set_command_ring_pointer(ring.phys())
        .set_ring_cycle_state(true)
}
