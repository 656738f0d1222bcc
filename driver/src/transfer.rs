//! Control transfers on endpoint 0 (xHCI 1.2 §4.11.2.2, USB 2.0 §8.5.3),
//! the keyboard's interrupt IN transfers (§4.11.2.1, §4.14.1) and their
//! error recovery: a soft retry of transaction errors, Reset Endpoint plus
//! CLEAR_FEATURE(ENDPOINT_HALT) after a stall, both bounded.
#![forbid(unsafe_code)]

use core::sync::atomic::{Ordering, compiler_fence};

use crate::controller::Controller;
use crate::descriptor::SetupPacket;
use crate::device::CONTROL_BUFFER_BYTES;
use crate::error::Error;
use crate::hal::Hal;
use crate::trb::{CompletionCode, command, transfer};
use crate::types::DeviceState;

/// Control transfers: 500 ms is generous (USB 2.0 §9.2.6.4 allows 500 ms for
/// a data stage, 50 ms for no-data requests).
const CONTROL_TIMEOUT_US: u64 = 500_000;

/// Soft retries of one TD after USB Transaction Errors in a row (Linux
/// `MAX_SOFT_RETRY`, `xhci_handle_halted_endpoint` with `EP_SOFT_RESET`).
pub(crate) const MAX_SOFT_RETRIES: u8 = 3;
/// Hard restarts of an interrupt endpoint (Reset Endpoint, Set TR Dequeue
/// Pointer, CLEAR_FEATURE(ENDPOINT_HALT)) without a completed transfer in
/// between before the device is given up as failed.
pub(crate) const MAX_HARD_RESTARTS: u8 = 3;
/// Reset Endpoint Command TRB, Transfer State Preserve (dword 3 bit 9,
/// xHCI 1.2 §6.4.3.7).
const TRB_TRANSFER_STATE_PRESERVE: u32 = 1 << 9;
/// ENDPOINT_HALT feature selector (USB 2.0 Table 9-6).
const ENDPOINT_HALT: u16 = 0;

/// How a halted interrupt endpoint is brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Reset Endpoint with TSP = 1 and a doorbell: the xHC retries the same
    /// TD with the data toggle kept (xHCI 1.2 §4.6.8.1, a transaction error).
    SoftRetry,
    /// Reset Endpoint, Set TR Dequeue Pointer, then CLEAR_FEATURE
    /// (ENDPOINT_HALT) to the device (USB 2.0 §9.4.1, §8.5.3.4), so both
    /// sides restart at DATA0 (Linux `usb_clear_halt`): a stall, or
    /// transaction errors that soft retries did not cure.
    ClearHalt,
    /// Reset Endpoint (or Stop Endpoint) and Set TR Dequeue Pointer only.
    Restart,
}

/// Error recovery state of a device's interrupt endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct EndpointRecovery {
    /// What the last error asks for (`None`: a plain restart).
    pub(crate) pending: Option<Recovery>,
    /// Soft retries of the outstanding TD so far.
    pub(crate) soft_retries: u8,
    /// Hard restarts since the last completed transfer.
    pub(crate) hard_restarts: u8,
    /// Completion code of the last error.
    pub(crate) last_code: Option<Result<CompletionCode, u8>>,
}

impl EndpointRecovery {
    /// Decides how to recover from an error completion `code` on the
    /// interrupt endpoint (`soft_retry`: the controller may get soft
    /// retries, not an Etron one: Linux `XHCI_NO_SOFT_RETRY`); `true` when
    /// the TD stays on the ring to be retried.
    pub(crate) fn on_error(&mut self, code: Result<CompletionCode, u8>, soft_retry: bool) -> bool {
        self.last_code = Some(code);
        let recovery = match code {
            Ok(CompletionCode::UsbTransactionError)
                if soft_retry && self.soft_retries < MAX_SOFT_RETRIES =>
            {
                Recovery::SoftRetry
            }
            Ok(CompletionCode::UsbTransactionError | CompletionCode::StallError) => {
                Recovery::ClearHalt
            }
            _ => Recovery::Restart,
        };
        self.pending = Some(recovery);
        recovery == Recovery::SoftRetry
    }
}

impl<H: Hal> Controller<H> {
    /// Runs one control transfer on slot `index`'s endpoint 0. For IN
    /// requests, the data is left in the control buffer; returns the number of
    /// bytes transferred. `out` is the data stage of an OUT request.
    ///
    /// EP0 is marked busy before the first TRB is queued and unmarked once
    /// its ring is at rest again, so the takeover can tell a ring a stopped
    /// CPU left TRBs on; a ring left busy by an earlier failure is rewound
    /// (Stop Endpoint, Set TR Dequeue Pointer: xHCI 1.2 §4.6.9, §4.6.10)
    /// before it is used.
    pub(crate) fn control(
        &mut self,
        index: usize,
        setup: SetupPacket,
        out: &[u8],
        what: &'static str,
    ) -> Result<usize, Error> {
        if self.devices[index].ep0_busy() {
            self.restart_endpoint(index, 1)?;
        }
        let slot = self.devices[index].slot_id;
        let length = usize::from(setup.length).min(CONTROL_BUFFER_BYTES);
        let td_before_link = self.caps.quirks.control_td_before_link;
        let device = &mut self.devices[index];
        if device.ep0.capacity() < 4 {
            return Err(Error::Unsupported {
                what: "control ring too small",
            });
        }
        if !setup.is_in() {
            for (i, b) in out.iter().take(length).enumerate() {
                device.mem.control.write8(i, *b);
            }
        }
        let trt = match (length, setup.is_in()) {
            (0, _) => 0,
            (_, true) => 3,
            (_, false) => 2,
        };
        let mut bytes = setup.bytes();
        bytes[6..8].copy_from_slice(&(length as u16).to_le_bytes());
        device.control_done = None;
        device.control_residual = 0;
        device.control_in_flight = true;
        // The mark is stored before any TRB, also as seen by the CPU that
        // takes over after stopping this one.
        compiler_fence(Ordering::SeqCst);
        // The whole TD before the Link TRB: Etron EJ168/EJ188 fail control
        // transfers whose stages straddle it, so No-Op TRBs fill the ring up
        // to the link first (Linux `xhci_queue_ctrl_tx` with
        // `XHCI_ETRON_HOST`). Only for them, as in Linux: QEMU's xHCI keeps
        // a No-Op TD on EP0 as an unfinished transfer, and after 16 of
        // those EP0 stops.
        if td_before_link {
            let trbs = if length > 0 { 3 } else { 2 };
            device.ep0.fit_before_link(&mut device.mem.ep0_ring, trbs);
        }
        device
            .ep0
            .push(&mut device.mem.ep0_ring, transfer::setup(bytes, trt));
        #[cfg(test)]
        crate::testing::stop_point(crate::testing::StopPoint::ControlSetupQueued);
        if length > 0 {
            let phys = device.mem.control.phys();
            device.ep0.push(
                &mut device.mem.ep0_ring,
                transfer::data(phys, length as u32, setup.is_in()),
            );
            #[cfg(test)]
            crate::testing::stop_point(crate::testing::StopPoint::ControlDataQueued);
        }
        // Status stage direction is opposite to the data stage (IN when there is none).
        let status_in = length == 0 || !setup.is_in();
        let status = device
            .ep0
            .push(&mut device.mem.ep0_ring, transfer::status(status_in));
        device.control_status_trb = Some(status);
        self.regs.ring_doorbell(slot, 1);
        let waited = self.wait_for(CONTROL_TIMEOUT_US, what, |c| {
            c.health()?;
            c.process_events();
            Ok(c.devices[index].control_done.is_some() || c.devices[index].state.is_none())
        });
        let device = &mut self.devices[index];
        let done = device.control_done.take();
        device.control_status_trb = None;
        if let Err(e) = waited {
            // the TD is still on the ring: stop the endpoint and rewind it
            let _ = self.restart_endpoint(index, 1);
            return Err(e);
        }
        let Some(done) = done else {
            return Err(Error::Timeout { what });
        };
        match done.code {
            Ok(CompletionCode::Success | CompletionCode::ShortPacket) => {
                // the Status TRB completed: the controller is past the whole TD
                let device = &mut self.devices[index];
                device.control_in_flight = false;
                Ok(length.saturating_sub(device.control_residual as usize))
            }
            code => {
                // A STALL (or error) halts endpoint 0 (§4.8.3): Reset Endpoint + Set TR Dequeue.
                let _ = self.restart_endpoint(index, 1);
                Err(Error::TransferFailed { what, code })
            }
        }
    }

    /// Keeps one interrupt IN transfer outstanding on a keyboard or hub.
    pub(crate) fn queue_interrupt(&mut self, index: usize) {
        let slot = self.devices[index].slot_id;
        let device = &mut self.devices[index];
        let Some((dci, max_packet)) = device.interrupt_endpoint() else {
            return;
        };
        if device.intr_outstanding.is_some() || device.intr_needs_restart {
            return;
        }
        let length = u32::from(max_packet.clamp(1, 64));
        let buffer = device.mem.report.phys();
        let phys = device
            .intr
            .push(&mut device.mem.intr_ring, transfer::normal(buffer, length));
        device.intr_outstanding = Some(phys);
        self.regs.ring_doorbell(slot, dci);
    }

    /// Brings back keyboard and hub endpoints that reported errors, as
    /// their last error asks ([`Recovery`]). A device whose endpoint fails
    /// again after [`MAX_HARD_RESTARTS`] hard restarts without a transfer
    /// completing in between is marked failed, with the error noted.
    pub(crate) fn restart_halted_endpoints(&mut self) {
        for index in 0..self.devices.len() {
            let device = &self.devices[index];
            let Some((dci, _)) = device.interrupt_endpoint() else {
                continue;
            };
            if !device.intr_needs_restart {
                continue;
            }
            let result = match device.recovery.pending {
                Some(Recovery::SoftRetry) => self.soft_retry(index, dci),
                Some(r) => self.hard_restart(index, dci, r == Recovery::ClearHalt),
                // not after an error (events lost to a full event ring)
                None => self.restart_endpoint(index, dci),
            };
            match result {
                Ok(()) => {
                    let device = &mut self.devices[index];
                    device.intr_needs_restart = false;
                    device.recovery.pending = None;
                    self.queue_interrupt(index);
                }
                Err(e) => {
                    self.note_error(e);
                    self.devices[index].state = Some(DeviceState::Failed);
                }
            }
        }
    }

    /// A soft retry (xHCI 1.2 §4.6.8.1; Linux `xhci_handle_halted_endpoint`
    /// with `EP_SOFT_RESET`): Reset Endpoint with Transfer State Preserve
    /// leaves the halted TD and the data toggle in place, and the doorbell
    /// makes the xHC run that TD again. If the command fails, a hard restart.
    fn soft_retry(&mut self, index: usize, dci: u8) -> Result<(), Error> {
        let slot = self.devices[index].slot_id;
        self.devices[index].recovery.soft_retries += 1;
        let mut trb = command::reset_endpoint(slot, dci);
        trb[3] |= TRB_TRANSFER_STATE_PRESERVE;
        match self.command(trb, "Reset Endpoint (soft retry)") {
            Ok(_) => {
                self.regs.ring_doorbell(slot, dci);
                Ok(())
            }
            Err(e) => {
                self.note_error(e);
                self.hard_restart(index, dci, true)
            }
        }
    }

    /// A hard restart: Reset Endpoint (or Stop Endpoint), a fresh ring (Set
    /// TR Dequeue Pointer), and with `clear_halt` a CLEAR_FEATURE
    /// (ENDPOINT_HALT) to the device (USB 2.0 §9.4.1; Linux `usb_clear_halt`,
    /// called by usbhid after -EPIPE), which clears a stalled endpoint and
    /// puts the device's data toggle back to DATA0, as Reset Endpoint did the
    /// xHC's. Fails once [`MAX_HARD_RESTARTS`] in a row did not help.
    fn hard_restart(&mut self, index: usize, dci: u8, clear_halt: bool) -> Result<(), Error> {
        let recovery = &mut self.devices[index].recovery;
        if recovery.hard_restarts >= MAX_HARD_RESTARTS {
            return Err(Error::TransferFailed {
                what: "interrupt IN endpoint, given up after 3 restarts",
                code: recovery.last_code.unwrap_or(Err(0)),
            });
        }
        recovery.hard_restarts += 1;
        recovery.soft_retries = 0;
        self.restart_endpoint(index, dci)?;
        if clear_halt {
            let setup = SetupPacket {
                request_type: 0x02, // host-to-device, standard, endpoint
                request: 1,         // CLEAR_FEATURE
                value: ENDPOINT_HALT,
                index: 0x80 | u16::from(dci >> 1), // IN endpoint dci / 2 (§4.5.1)
                length: 0,
            };
            self.control(index, setup, &[], "CLEAR_FEATURE(ENDPOINT_HALT)")?;
        }
        Ok(())
    }

    /// Sends the LED state to every keyboard (HID SET_REPORT, output report).
    pub(crate) fn send_leds(&mut self) {
        for index in 0..self.devices.len() {
            let device = &self.devices[index];
            let Some(kbd) = device.keyboard else { continue };
            if device.state != Some(DeviceState::Keyboard) {
                continue;
            }
            let Some((setup, data, length)) = self.led_request(index, kbd.interface) else {
                continue;
            };
            if let Err(e) = self.control(index, setup, &data[..length], "SET_REPORT (LEDs)") {
                self.note_error(e);
            }
        }
    }
}
