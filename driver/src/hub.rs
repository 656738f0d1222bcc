//! The hub class driver (USB 2.0 ch. 11): configuration of a hub slot
//! (xHCI 1.2 §4.5.3, §6.2.2), port power, status-change handling, port reset
//! and enumeration of the devices behind it with their route string (§8.9).
//!
//! A hub uses the same preallocated per-slot resources as a keyboard: its
//! status-change endpoint runs on the slot's interrupt ring and report buffer.
#![forbid(unsafe_code)]

use crate::attach::Target;
use crate::context::interrupt_interval;
use crate::controller::Controller;
use crate::descriptor::{DESC_HUB, HubDescriptor, InterruptInterface, SetupPacket};
use crate::device::{HubEndpoint, Location, MAX_HUB_PORTS};
use crate::error::Error;
use crate::hal::Hal;
use crate::trb::CompletionCode;
use crate::types::{DeviceState, Speed};

/// CLEAR_TT_BUFFER (USB 2.0 Table 11-16, §11.24.2.3).
const CLEAR_TT_BUFFER: u8 = 8;
/// Hub class feature selectors (USB 2.0 Table 11-17).
const PORT_RESET: u16 = 4;
const PORT_POWER: u16 = 8;
const C_HUB_LOCAL_POWER: u16 = 0;
const C_HUB_OVER_CURRENT: u16 = 1;
/// wPortChange bits and the CLEAR_FEATURE selector of each (Table 11-22).
const PORT_CHANGES: [(u16, u16); 5] = [
    (1 << 0, 16), // C_PORT_CONNECTION
    (1 << 1, 17), // C_PORT_ENABLE
    (1 << 2, 18), // C_PORT_SUSPEND
    (1 << 3, 19), // C_PORT_OVER_CURRENT
    (1 << 4, 20), // C_PORT_RESET
];
const C_PORT_CONNECTION: u16 = 1 << 0;
const C_PORT_ENABLE: u16 = 1 << 1;
const C_PORT_RESET: u16 = 1 << 4;
/// wPortStatus bits (Table 11-21).
const PORT_STAT_CONNECTION: u16 = 1 << 0;
const PORT_STAT_ENABLE: u16 = 1 << 1;
const PORT_STAT_RESET: u16 = 1 << 4;
const PORT_STAT_LOW_SPEED: u16 = 1 << 9;
const PORT_STAT_HIGH_SPEED: u16 = 1 << 10;

/// Longest hub descriptor: 7 bytes + 2 bitmaps of up to 32 bytes.
const HUB_DESCRIPTOR_MAX: u16 = 71;
/// Port reset on a hub port (USB 2.0 §11.5.1.5 TDRST 10-20 ms; be generous).
const HUB_PORT_RESET_TIMEOUT_US: u64 = 500_000;
/// Step between GET_PORT_STATUS while a hub port resets.
const HUB_PORT_RESET_STEP_US: u64 = 2_000;
/// Least wait after powering the ports of an external hub, whatever its
/// bPwrOn2PwrGood (USB 2.0 §11.23.2.1, §7.1.7.3; Linux
/// `hub_power_on_good_delay`: "at least 100 msec for power to become
/// stable"). The longest the descriptor can ask for is 255 × 2 ms.
const POWER_ON_MIN_US: u64 = 100_000;
/// bDeviceProtocol of a high-speed hub with one TT per port (USB 2.0 §11.23.1).
const HUB_PROTOCOL_MULTI_TT: u8 = 2;
/// Route strings have 5 tiers (xHCI 1.2 §8.9).
const MAX_TIERS: u32 = 5;

impl<H: Hal> Controller<H> {
    /// Reads the hub descriptor, turns the slot into a hub slot with its
    /// status-change endpoint (one Configure Endpoint carrying the slot
    /// context's Hub, Number of Ports and TTT fields, §4.6.6, §6.2.2), powers
    /// the ports and marks them all for a first look.
    pub(crate) fn configure_hub(
        &mut self,
        index: usize,
        configuration: u8,
        status: InterruptInterface,
    ) -> Result<(), Error> {
        let speed = self.devices[index].speed;
        if matches!(speed, Speed::Super | Speed::Other(_)) {
            // USB 3 hubs use descriptor 0x2A and different port requests (USB 3.2 §10.16).
            return Err(Error::Unsupported {
                what: "SuperSpeed hub",
            });
        }
        if self.devices[index].location.depth() >= MAX_TIERS {
            return Err(Error::Unsupported {
                what: "hub below the fifth tier",
            });
        }
        let mem = self.devices[index].mem;
        self.control(
            index,
            SetupPacket::set_configuration(configuration),
            &[],
            "SET_CONFIGURATION (hub)",
        )?;
        let multi_tt = speed == Speed::High
            && self.devices[index].descriptor.protocol == HUB_PROTOCOL_MULTI_TT
            && self.select_multi_tt(index, status.interface);
        let n = self.control(
            index,
            SetupPacket::get_class_descriptor(DESC_HUB, HUB_DESCRIPTOR_MAX),
            &[],
            "GET_DESCRIPTOR(hub)",
        )?;
        let mut bytes = [0u8; HUB_DESCRIPTOR_MAX as usize];
        let n = n.min(bytes.len());
        mem.control.read_bytes(0, &mut bytes[..n]);
        let descriptor = HubDescriptor::parse(&bytes[..n])?;
        let think_time = if speed == Speed::High {
            ((descriptor.characteristics >> 5) & 3) as u8
        } else {
            0
        };
        let dci = status.endpoint * 2 + 1;
        let max_packet = status.max_packet.clamp(1, 64);
        let hub = HubEndpoint {
            dci,
            max_packet,
            ports: descriptor.ports.min(MAX_HUB_PORTS as u8),
            children: [0; MAX_HUB_PORTS],
            changed: 0,
            failed: 0,
            waiting: 0,
            waiting_debounce: 0,
            ports_ready_us: 0,
            think_time,
            multi_tt,
        };
        // The slot fields (Hub, ports, think time) come from `device.hub`.
        self.devices[index].hub = Some(hub);
        self.configure_interrupt_in(
            index,
            dci,
            max_packet,
            interrupt_interval(speed.id(), status.interval),
            4,
            "Configure Endpoint (hub)",
        )?;
        self.power_hub_ports(index, hub.ports)?;
        // the power-good wait is not waited out here: the ports are looked
        // at once it is over (`service_hubs`)
        let ready_us = self
            .hal
            .now_us()
            .saturating_add(power_on_delay_us(descriptor.power_on_to_good_2ms));
        if let Some(h) = self.devices[index].hub.as_mut() {
            h.changed = h.all_ports();
            h.ports_ready_us = ready_us;
        }
        Ok(())
    }

    /// SET_FEATURE(PORT_POWER) on every port (USB 2.0 §11.11, §11.24.2.13).
    /// A hub without power switching may STALL it (its ports are always
    /// powered): that port is carried on with, as Linux `hub_power_on`
    /// ignores the request's result. Any other failure is the hub's.
    fn power_hub_ports(&mut self, index: usize, ports: u8) -> Result<(), Error> {
        for port in 1..=ports {
            match self.control(
                index,
                SetupPacket::set_port_feature(port, PORT_POWER),
                &[],
                "SET_FEATURE(PORT_POWER)",
            ) {
                Err(Error::TransferFailed {
                    code: Ok(CompletionCode::StallError),
                    ..
                })
                | Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// After a control transfer to a low- or full-speed device behind a
    /// high-speed hub was aborted (EP0 halted, or stopped mid-transfer, and
    /// rewound), its TT may still hold the split transaction: CLEAR_TT_BUFFER
    /// to that hub (USB 2.0 §11.17.5, §11.24.2.3), as Linux
    /// `xhci_clear_hub_tt_buffer` / `hub_tt_work` do: both directions for a
    /// control endpoint, wIndex the TT's port on a multi-TT hub, else 1.
    /// Best effort: a failure is counted, never returned (the device's own
    /// error is the one to report). Not recursive: the TT's hub is high
    /// speed, so it has no TT above it.
    pub(crate) fn clear_tt_buffer(&mut self, index: usize) {
        let at = self.devices[index].location;
        let Some(hub_index) = usize::from(at.tt_hub_slot)
            .checked_sub(1)
            .filter(|&i| i < self.devices.len() && i != index)
        else {
            return;
        };
        let hub = &self.devices[hub_index];
        if hub.state != Some(DeviceState::Hub) || hub.location.tt_hub_slot != 0 {
            return;
        }
        let address = self
            .caps
            .context
            .device_address(&self.devices[index].mem.device_context);
        // endpoint 0 (bits 3:0), address (10:4), type control (12:11 = 0)
        let info = u16::from(address) << 4;
        let tt = if at.tt_multi {
            u16::from(at.tt_port)
        } else {
            1
        };
        for direction_in in [false, true] {
            let setup = SetupPacket {
                request_type: 0x23,
                request: CLEAR_TT_BUFFER,
                value: info | (u16::from(direction_in) << 15),
                index: tt,
                length: 0,
            };
            if let Err(e) = self.control(hub_index, setup, &[], "CLEAR_TT_BUFFER") {
                self.note_error(e);
                return;
            }
        }
    }

    /// Selects the multiple-TT interface of a high-speed hub whose device
    /// descriptor says it has one TT per port (bDeviceProtocol 2, USB 2.0
    /// §11.23.1: alternate setting 1 of the hub interface, protocol 2). Like
    /// Linux `hub_configure` (`usb_set_interface(hdev, 0, 1)`, "Using single
    /// TT" on failure), a hub refusing it stays single-TT: no error.
    fn select_multi_tt(&mut self, index: usize, interface: u8) -> bool {
        self.control(
            index,
            SetupPacket::set_interface(interface, 1),
            &[],
            "SET_INTERFACE (multiple TTs)",
        )
        .is_ok()
    }

    /// Looks at every hub port a status-change report (or a rescan) flagged,
    /// then re-arms the hub's status-change endpoint. Newly configured hubs
    /// below are handled in further passes. A hub whose ports are not
    /// power-good yet, and the port a device is being attached on
    /// (`attach.rs`), keep their flags for a later `poll()`. Returns
    /// (attached, detached); devices found are attached by `attach.rs`.
    pub(crate) fn service_hubs(&mut self) -> (u32, u32) {
        let (mut attached, mut detached) = (0, 0);
        for _ in 0..=MAX_TIERS {
            let mut any = false;
            for index in 0..self.devices.len() {
                if self.devices[index].state != Some(DeviceState::Hub) {
                    continue;
                }
                let Some(hub) = self.devices[index].hub else {
                    continue;
                };
                let mut changed = hub.changed & !self.attaching_bit(index);
                if self.hal.now_us() < hub.ports_ready_us {
                    changed &= 1;
                }
                if changed == 0 {
                    self.queue_interrupt(index);
                    continue;
                }
                any = true;
                if let Some(h) = self.devices[index].hub.as_mut() {
                    h.changed &= !changed;
                }
                if changed & 1 != 0 {
                    self.hub_status_changed(index);
                }
                for port in 1..=hub.ports {
                    if changed & (1 << port) == 0 {
                        continue;
                    }
                    if self.devices[index].state != Some(DeviceState::Hub) {
                        break; // the hub itself failed or went away
                    }
                    let (a, d) = self.hub_port_changed(index, port);
                    attached += a;
                    detached += d;
                }
                self.queue_interrupt(index);
            }
            if !any {
                break;
            }
        }
        (attached, detached)
    }

    /// GET_STATUS(hub) and clearing of the hub's own change bits (§11.24.2.6).
    fn hub_status_changed(&mut self, index: usize) {
        let result = self
            .control(index, SetupPacket::get_hub_status(), &[], "GET_STATUS(hub)")
            .and_then(|n| {
                let mut b = [0u8; 4];
                self.devices[index]
                    .mem
                    .control
                    .read_bytes(0, &mut b[..n.min(4)]);
                let change = u16::from_le_bytes([b[2], b[3]]);
                for (bit, feature) in [(1, C_HUB_LOCAL_POWER), (2, C_HUB_OVER_CURRENT)] {
                    if change & bit != 0 {
                        self.control(
                            index,
                            SetupPacket::clear_hub_feature(feature),
                            &[],
                            "CLEAR_FEATURE(hub change)",
                        )?;
                    }
                }
                Ok(())
            });
        if let Err(e) = result {
            self.note_error(e);
        }
    }

    /// GET_STATUS(port): (wPortStatus, wPortChange).
    fn hub_port_status(&mut self, index: usize, port: u8) -> Result<(u16, u16), Error> {
        let n = self.control(
            index,
            SetupPacket::get_port_status(port),
            &[],
            "GET_STATUS(hub port)",
        )?;
        if n < 4 {
            return Err(Error::Unsupported {
                what: "short hub port status",
            });
        }
        let mut b = [0u8; 4];
        self.devices[index].mem.control.read_bytes(0, &mut b);
        Ok((
            u16::from_le_bytes([b[0], b[1]]),
            u16::from_le_bytes([b[2], b[3]]),
        ))
    }

    /// Clears the change bits in `change` (CLEAR_FEATURE C_PORT_*).
    fn clear_port_changes(&mut self, index: usize, port: u8, change: u16) -> Result<(), Error> {
        for (bit, feature) in PORT_CHANGES {
            if change & bit != 0 {
                self.control(
                    index,
                    SetupPacket::clear_port_feature(port, feature),
                    &[],
                    "CLEAR_FEATURE(C_PORT_*)",
                )?;
            }
        }
        Ok(())
    }

    /// A hub port changed: detach what left, enumerate what arrived.
    fn hub_port_changed(&mut self, index: usize, port: u8) -> (u32, u32) {
        let bit = 1u16 << port;
        let (status, change) = match self.hub_port_status(index, port) {
            Ok(v) => v,
            Err(e) => {
                self.note_error(e);
                return (0, 0);
            }
        };
        if let Err(e) = self.clear_port_changes(index, port, change) {
            self.note_error(e);
        }
        let connected = status & PORT_STAT_CONNECTION != 0;
        let Some(hub) = self.devices[index].hub else {
            return (0, 0);
        };
        let child = hub.children[usize::from(port - 1)];
        // a new connection, or the hub disabled the port under its device
        // (USB 2.0 §11.24.2.7.2.2: C_PORT_ENABLE is set only on such an
        // error): the device goes and is enumerated again
        let renewed = change & (C_PORT_CONNECTION | C_PORT_ENABLE) != 0;
        let lost = self.is_working(child) && connected && status & PORT_STAT_ENABLE == 0;
        let mut detached = 0;
        if child != 0 && (!connected || renewed || lost) {
            self.detach_slot(child);
            detached = 1;
        }
        let Some(hub) = self.devices[index].hub.as_mut() else {
            return (0, detached);
        };
        if !connected || renewed || lost {
            hub.failed &= !bit;
        }
        if !connected {
            return (0, detached);
        }
        if hub.children[usize::from(port - 1)] != 0 || hub.failed & bit != 0 {
            return (0, detached);
        }
        if self.devices[index].location.depth() >= MAX_TIERS || usize::from(port) > MAX_HUB_PORTS {
            if let Some(h) = self.devices[index].hub.as_mut() {
                h.failed |= bit;
            }
            self.note_error(Error::Unsupported {
                what: "device beyond the route string's reach",
            });
            return (0, detached);
        }
        // Linux debounces on C_PORT_CONNECTION only
        let debounce = change & C_PORT_CONNECTION != 0;
        self.start_attach(Target::Hub { hub: index, port }, debounce);
        (0, detached)
    }

    /// Bit p set if port p of the hub in record `index` has a device being
    /// attached (`attach.rs`).
    fn attaching_bit(&self, index: usize) -> u16 {
        match self.attach.map(|a| a.target) {
            Some(Target::Hub { hub, port }) if hub == index => {
                1u16.checked_shl(u32::from(port)).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Resets hub port `port` (SET_FEATURE(PORT_RESET), bounded wait for
    /// C_PORT_RESET) and returns the wPortStatus after the reset.
    fn reset_hub_port(&mut self, index: usize, port: u8) -> Result<u16, Error> {
        self.control(
            index,
            SetupPacket::set_port_feature(port, PORT_RESET),
            &[],
            "SET_FEATURE(PORT_RESET)",
        )?;
        let start = self.hal.now_us();
        let max_steps = HUB_PORT_RESET_TIMEOUT_US / HUB_PORT_RESET_STEP_US + 1;
        for _ in 0..max_steps {
            let (status, change) = self.hub_port_status(index, port)?;
            let done = change & C_PORT_RESET != 0
                || (status & PORT_STAT_RESET == 0 && status & PORT_STAT_ENABLE != 0);
            if done {
                self.clear_port_changes(index, port, change & (C_PORT_RESET | C_PORT_ENABLE))?;
                if status & PORT_STAT_CONNECTION == 0 || status & PORT_STAT_ENABLE == 0 {
                    return Err(Error::Timeout {
                        what: "hub port enable after reset",
                    });
                }
                return Ok(status);
            }
            if self.hal.now_us().saturating_sub(start) > HUB_PORT_RESET_TIMEOUT_US {
                break;
            }
            self.hal.delay_us(HUB_PORT_RESET_STEP_US);
        }
        Err(Error::Timeout {
            what: "hub port reset (C_PORT_RESET)",
        })
    }

    /// One connect-debounce sample of hub port `port` (USB 2.0 §7.1.7.3,
    /// Linux `hub_port_debounce`: GET_STATUS, C_PORT_CONNECTION cleared as
    /// it is seen): (connected, connect change seen).
    pub(crate) fn sample_hub_port(
        &mut self,
        index: usize,
        port: u8,
    ) -> Result<(bool, bool), Error> {
        let (status, change) = self.hub_port_status(index, port)?;
        if change & C_PORT_CONNECTION != 0 {
            self.clear_port_changes(index, port, C_PORT_CONNECTION)?;
        }
        Ok((
            status & PORT_STAT_CONNECTION != 0,
            change & C_PORT_CONNECTION != 0,
        ))
    }

    /// Resets hub port `port` for an attach (the reset recovery is a stage
    /// of `attach.rs`): the device's location with its route string, root
    /// port and, for LS/FS devices behind a high-speed hub, the TT hub slot
    /// and port (xHCI 1.2 §4.3.3, §6.2.2, §8.9), and its speed. `None` if
    /// nothing is connected any more.
    pub(crate) fn reset_hub_for_attach(
        &mut self,
        index: usize,
        port: u8,
    ) -> Result<Option<(Location, Speed)>, Error> {
        if self.devices[index].state != Some(DeviceState::Hub) {
            return Err(Error::Unsupported {
                what: "hub gone while attaching behind it",
            });
        }
        let (status, _) = self.hub_port_status(index, port)?;
        if status & PORT_STAT_CONNECTION == 0 {
            return Ok(None);
        }
        let status = self.reset_hub_port(index, port)?;
        Ok(Some(self.hub_child_location(index, port, status)))
    }

    /// Where the device on hub port `port` sits and its speed, from the
    /// port's wPortStatus after reset. The TT is in the nearest high-speed
    /// hub above a LS/FS device: this hub if it is high speed, else the one
    /// serving this full-speed hub (xHCI 1.2 §6.2.2 TT Hub Slot ID, TT Port
    /// Number, MTT; §4.3.3).
    fn hub_child_location(&self, index: usize, port: u8, status: u16) -> (Location, Speed) {
        let hub_slot = index as u8 + 1;
        let parent = self.devices[index].location;
        let hub_speed = self.devices[index].speed;
        let speed = if status & PORT_STAT_LOW_SPEED != 0 {
            Speed::Low
        } else if status & PORT_STAT_HIGH_SPEED != 0 && hub_speed == Speed::High {
            Speed::High
        } else {
            Speed::Full
        };
        let hub_multi_tt = self.devices[index].hub.is_some_and(|h| h.multi_tt);
        let (tt_hub_slot, tt_port, tt_multi) = match (speed, hub_speed) {
            (Speed::Low | Speed::Full, Speed::High) => (hub_slot, port, hub_multi_tt),
            (Speed::Low | Speed::Full, _) => (parent.tt_hub_slot, parent.tt_port, parent.tt_multi),
            _ => (0, 0, false),
        };
        let at = Location {
            root_port: parent.root_port,
            route: parent.route | (u32::from(port) << (4 * parent.depth())),
            parent_slot: hub_slot,
            parent_port: port,
            tt_hub_slot,
            tt_port,
            tt_multi,
        };
        (at, speed)
    }
}

/// The wait after powering a hub's ports: bPwrOn2PwrGood × 2 ms (USB 2.0
/// §11.23.2.1), at least [`POWER_ON_MIN_US`] (Linux
/// `hub_power_on_good_delay` for a hub that is not a root hub). Bounded:
/// the descriptor's byte caps it at 510 ms.
fn power_on_delay_us(power_on_to_good_2ms: u8) -> u64 {
    (u64::from(power_on_to_good_2ms) * 2_000).max(POWER_ON_MIN_US)
}
