//! Control transfers on endpoint 0 (xHCI 1.2 §4.11.2.2, USB 2.0 §8.5.3) and
//! the keyboard's interrupt IN transfers (§4.11.2.1, §4.14.1).
#![forbid(unsafe_code)]

use core::sync::atomic::{Ordering, compiler_fence};

use crate::controller::Controller;
use crate::descriptor::SetupPacket;
use crate::device::CONTROL_BUFFER_BYTES;
use crate::error::Error;
use crate::hal::Hal;
use crate::trb::{CompletionCode, transfer};
use crate::types::DeviceState;

/// Control transfers: 500 ms is generous (USB 2.0 §9.2.6.4 allows 500 ms for
/// a data stage, 50 ms for no-data requests).
const CONTROL_TIMEOUT_US: u64 = 500_000;

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
        let slot = index as u8 + 1;
        let length = usize::from(setup.length).min(CONTROL_BUFFER_BYTES);
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
        let slot = index as u8 + 1;
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

    /// Restarts keyboard and hub endpoints that reported errors (stall recovery).
    pub(crate) fn restart_halted_endpoints(&mut self) {
        for index in 0..self.devices.len() {
            let device = &self.devices[index];
            let Some((dci, _)) = device.interrupt_endpoint() else {
                continue;
            };
            if !device.intr_needs_restart {
                continue;
            }
            match self.restart_endpoint(index, dci) {
                Ok(()) => {
                    self.devices[index].intr_needs_restart = false;
                    self.queue_interrupt(index);
                }
                Err(e) => {
                    self.note_error(e);
                    self.devices[index].state = Some(DeviceState::Failed);
                }
            }
        }
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
