//! Fake USB devices: keyboards, a tablet and hubs, answering endpoint 0
//! requests and interrupt IN transfers.
extern crate std;

use std::collections::VecDeque;
use std::vec::Vec;

use super::descriptors::{
    BOOT_KEYBOARD_REPORT, CLASS_HID, CLASS_HUB, DeviceFields, FULL_SPEED, FakeInterface,
    HIGH_SPEED, LOW_SPEED, MOUSE_REPORT, configuration_of,
};

/// What a fake USB device answers on endpoint 0.
pub(crate) enum ControlReply {
    /// Data for an IN request (truncated to wLength) or success for OUT.
    Data(Vec<u8>),
    /// STALL handshake.
    Stall,
}

/// One downstream port of a fake hub (wPortStatus/wPortChange as in QEMU's dev-hub.c).
pub(crate) struct FakeHubPort {
    pub(crate) device: Option<FakeDevice>,
    pub(crate) status: u16,
    pub(crate) change: u16,
}

/// Hub class state of a fake hub: QEMU's usb-hub (USB 1.1, full speed, 8 ports).
pub(crate) struct FakeHub {
    pub(crate) ports: Vec<FakeHubPort>,
    /// Hub descriptor sent for GET_DESCRIPTOR(0x29).
    pub(crate) descriptor: Vec<u8>,
    /// SET_FEATURE(PORT_POWER) seen, per port.
    pub(crate) powered: Vec<bool>,
    /// SET_FEATURE(PORT_RESET) count, per port.
    pub(crate) resets: Vec<u32>,
    /// STALL SET_FEATURE(PORT_POWER) (a hub without power switching may).
    pub(crate) stall_port_power: bool,
    /// (wValue, wIndex) of every CLEAR_TT_BUFFER (USB 2.0 §11.24.2.3).
    pub(crate) tt_clears: Vec<(u16, u16)>,
}

const PORT_STAT_CONNECTION: u16 = 1;
const PORT_STAT_ENABLE: u16 = 2;
const PORT_STAT_POWER: u16 = 0x100;
const PORT_STAT_LOW_SPEED: u16 = 0x200;
const PORT_STAT_HIGH_SPEED: u16 = 0x400;

/// A fake USB device: QEMU's usb-kbd, usb-tablet or usb-hub by default, or a
/// keyboard shaped otherwise (speed, bMaxPacketSize0, interfaces).
pub(crate) struct FakeDevice {
    pub(crate) hub: Option<FakeHub>,
    pub(crate) reports: VecDeque<[u8; 8]>,
    pub(crate) leds: Vec<u8>,
    pub(crate) configured: Option<u8>,
    /// SET_PROTOCOL value received on the boot keyboard interface.
    pub(crate) protocol: Option<u16>,
    pub(crate) stall_set_idle: bool,
    /// STALL SET_PROTOCOL (a protocol stall, USB 2.0 §8.4.5, §9.2.7).
    pub(crate) stall_set_protocol: bool,
    pub(crate) requests: Vec<[u8; 8]>,
    /// The next this many SETUP packets get no answer (USB Transaction
    /// Error): a device not ready yet after its reset.
    pub(crate) unanswered_setups: u32,
    /// PORTSC speed ID the device runs at (see [`FULL_SPEED`] and friends).
    pub(crate) speed: u32,
    pub(crate) descriptor: DeviceFields,
    /// Interfaces and alternate settings of configuration 1.
    pub(crate) interfaces: Vec<FakeInterface>,
    /// Alternate setting selected on interface 0 (SET_INTERFACE, USB 2.0 §9.4.10).
    pub(crate) alternate: u8,
    /// Report descriptors (HID 1.11 §6.2.2) by interface number, replacing
    /// the default (QEMU usb-kbd's for a boot keyboard, a mouse's else).
    pub(crate) report_descriptors: Vec<(u8, Vec<u8>)>,
    /// Input reports of any length, each with the endpoint number it is
    /// sent on, taken before `reports` (report-protocol keyboards).
    pub(crate) raw_reports: VecDeque<(u8, Vec<u8>)>,
    /// Bytes of class-specific descriptors before the first interface.
    pub(crate) config_padding: usize,
    /// Interrupt IN transactions still to fail with no handshake (a USB
    /// Transaction Error on the xHC's side).
    pub(crate) interrupt_errors: u32,
    /// The interrupt IN endpoint is halted: it STALLs every transaction
    /// until CLEAR_FEATURE(ENDPOINT_HALT) (USB 2.0 §9.4.5, §8.5.3.4).
    pub(crate) interrupt_halted: bool,
    /// wIndex of every CLEAR_FEATURE(ENDPOINT_HALT) received.
    pub(crate) clear_halts: Vec<u16>,
}

impl FakeDevice {
    pub(crate) fn keyboard() -> Self {
        Self::new(true, std::vec![FakeInterface::boot_keyboard(0, 0x81)])
    }

    pub(crate) fn tablet() -> Self {
        Self::new(false, std::vec![FakeInterface::hid(0, 0, 0, 0x81)])
    }

    /// A keyboard with `interfaces` (one of them a boot keyboard).
    pub(crate) fn keyboard_with(interfaces: Vec<FakeInterface>) -> Self {
        Self::new(true, interfaces)
    }

    /// The same device at another speed (PORTSC speed ID).
    pub(crate) fn at_speed(mut self, speed: u32) -> Self {
        self.speed = speed;
        if speed == LOW_SPEED {
            // USB 2.0 §5.7.3: a low-speed interrupt endpoint moves at most 8 bytes
            for i in self.interfaces.iter_mut() {
                i.max_packet = i.max_packet.min(8);
                i.interval = i.interval.max(10);
            }
        }
        self
    }

    /// The same device with another bMaxPacketSize0 (USB 2.0 §9.6.1).
    pub(crate) fn with_max_packet0(mut self, max_packet0: u8) -> Self {
        self.descriptor.max_packet0 = max_packet0;
        self
    }

    /// QEMU's usb-hub with `ports` ports (8 by default there): USB 1.1, full speed.
    pub(crate) fn hub(ports: usize) -> Self {
        let mut hub = Self::new(
            false,
            std::vec![FakeInterface {
                number: 0,
                alternate: 0,
                class: (CLASS_HUB, 0, 0),
                endpoint: 0x81,
                max_packet: 2,
                interval: 0xff,
            }],
        );
        hub.descriptor = DeviceFields {
            usb_version: 0x0110,
            class: CLASS_HUB,
            protocol: 0,
            max_packet0: 8,
            vendor: 0x0409,
            product: 0x55aa,
        };
        let bitmap = (ports + 1).div_ceil(8);
        let mut descriptor = std::vec![0, 0x29, ports as u8, 0x0a, 0, 1, 0];
        descriptor.extend(std::iter::repeat_n(0u8, bitmap));
        descriptor.extend(std::iter::repeat_n(0xffu8, ports.div_ceil(8)));
        descriptor[0] = descriptor.len() as u8;
        hub.hub = Some(FakeHub {
            ports: (0..ports)
                .map(|_| FakeHubPort {
                    device: None,
                    status: PORT_STAT_POWER,
                    change: 0,
                })
                .collect(),
            descriptor,
            powered: std::vec![false; ports],
            resets: std::vec![0; ports],
            stall_port_power: false,
            tt_clears: Vec::new(),
        });
        hub
    }

    /// A USB 2.0 high-speed hub (USB 2.0 §11.23.1): bDeviceProtocol 1 with
    /// one TT, or 2 with one TT per port, the multiple-TT interface being
    /// alternate setting 1 (protocol 2) beside the single-TT setting 0
    /// (protocol 1).
    pub(crate) fn high_speed_hub(ports: usize, multi_tt: bool) -> Self {
        let mut hub = Self::hub(ports);
        hub.speed = HIGH_SPEED;
        hub.descriptor.usb_version = 0x0200;
        hub.descriptor.max_packet0 = 64;
        hub.descriptor.protocol = if multi_tt { 2 } else { 1 };
        let status = FakeInterface {
            number: 0,
            alternate: 0,
            class: (CLASS_HUB, 0, if multi_tt { 1 } else { 0 }),
            endpoint: 0x81,
            max_packet: ((ports + 8) / 8) as u16,
            interval: 12,
        };
        hub.interfaces = std::vec![status];
        if multi_tt {
            hub.interfaces.push(FakeInterface {
                alternate: 1,
                class: (CLASS_HUB, 0, 2),
                ..status
            });
        }
        hub
    }

    /// Is the multiple-TT interface of a high-speed hub selected?
    pub(crate) fn multi_tt_enabled(&self) -> bool {
        self.speed == HIGH_SPEED && self.hub.is_some() && self.alternate == 1
    }

    /// The boot keyboard interface, if any.
    pub(crate) fn boot_keyboard(&self) -> Option<FakeInterface> {
        self.interfaces
            .iter()
            .copied()
            .find(|i| i.is_boot_keyboard())
    }

    /// Plugs a device into hub port `port` (QEMU usb_hub_attach). A
    /// high-speed device behind a full-speed hub runs at full speed (no
    /// chirp, USB 2.0 §7.1.7.5).
    pub(crate) fn hub_plug(&mut self, port: usize, mut device: FakeDevice) {
        if self.speed != HIGH_SPEED && device.speed == HIGH_SPEED {
            device.speed = FULL_SPEED;
        }
        let p = &mut self.hub.as_mut().expect("hub").ports[port - 1];
        p.status =
            (p.status & !(PORT_STAT_LOW_SPEED | PORT_STAT_HIGH_SPEED)) | speed_bits(device.speed);
        p.device = Some(device);
        p.status |= PORT_STAT_CONNECTION;
        p.change |= PORT_STAT_CONNECTION;
    }

    /// Unplugs hub port `port` (QEMU usb_hub_detach).
    pub(crate) fn hub_unplug(&mut self, port: usize) {
        let p = &mut self.hub.as_mut().expect("hub").ports[port - 1];
        p.device = None;
        p.status &= !(PORT_STAT_CONNECTION | PORT_STAT_LOW_SPEED | PORT_STAT_HIGH_SPEED);
        p.change |= PORT_STAT_CONNECTION;
        if p.status & PORT_STAT_ENABLE != 0 {
            p.status &= !PORT_STAT_ENABLE;
            p.change |= PORT_STAT_ENABLE;
        }
    }

    /// Bus reset (QEMU usb_device_reset, done by Address Device): a hub's
    /// ports go back to powered, connection reported as a change.
    pub(crate) fn reset(&mut self) {
        self.configured = None;
        self.alternate = 0;
        if let Some(hub) = self.hub.as_mut() {
            for p in hub.ports.iter_mut() {
                p.status = PORT_STAT_POWER;
                p.change = 0;
                if let Some(d) = p.device.as_ref() {
                    p.status |= PORT_STAT_CONNECTION | speed_bits(d.speed);
                    p.change |= PORT_STAT_CONNECTION;
                }
            }
        }
    }

    /// Data for the next interrupt IN transfer on endpoint `number`, or
    /// `None` for a NAK: a hub answers on its status-change endpoint, a
    /// keyboard on its boot interface's endpoint; other endpoints stay idle.
    pub(crate) fn interrupt_in(&mut self, number: u8) -> Option<Vec<u8>> {
        if let Some(hub) = self.hub.as_ref() {
            if self.interfaces.first().map(|i| i.endpoint_number()) != Some(number) {
                return None;
            }
            let mut bits = 0u16;
            for (i, p) in hub.ports.iter().enumerate() {
                if p.change != 0 {
                    bits |= 1 << (i + 1);
                }
            }
            return (bits != 0).then(|| bits.to_le_bytes().to_vec());
        }
        if self
            .raw_reports
            .front()
            .is_some_and(|(ep, _)| *ep == number)
        {
            return self.raw_reports.pop_front().map(|(_, r)| r);
        }
        if self.boot_keyboard().map(|i| i.endpoint_number()) != Some(number) {
            return None;
        }
        self.reports.pop_front().map(|r| r.to_vec())
    }

    fn new(keyboard: bool, interfaces: Vec<FakeInterface>) -> Self {
        Self {
            hub: None,
            reports: VecDeque::new(),
            leds: Vec::new(),
            configured: None,
            protocol: None,
            stall_set_idle: false,
            stall_set_protocol: false,
            requests: Vec::new(),
            unanswered_setups: 0,
            speed: FULL_SPEED,
            descriptor: DeviceFields {
                usb_version: 0x0200,
                class: 0,
                protocol: 0,
                max_packet0: 8,
                vendor: 0x0627,
                product: if keyboard { 1 } else { 2 },
            },
            interfaces,
            alternate: 0,
            report_descriptors: Vec::new(),
            raw_reports: VecDeque::new(),
            config_padding: 0,
            interrupt_errors: 0,
            interrupt_halted: false,
            clear_halts: Vec::new(),
        }
    }

    /// The report descriptor of HID interface `number`.
    pub(crate) fn report_descriptor(&self, number: u8) -> Vec<u8> {
        if let Some((_, d)) = self.report_descriptors.iter().find(|(n, _)| *n == number) {
            return d.clone();
        }
        let boot = self
            .interfaces
            .iter()
            .any(|i| i.number == number && i.is_boot_keyboard());
        if boot {
            BOOT_KEYBOARD_REPORT.to_vec()
        } else {
            MOUSE_REPORT.to_vec()
        }
    }

    /// Does the device answer the next SETUP (see `unanswered_setups`)?
    pub(crate) fn answers_setup(&mut self) -> bool {
        if self.unanswered_setups == 0 {
            return true;
        }
        self.unanswered_setups -= 1;
        false
    }

    /// The HID interface `index` addresses (HID 1.11 §7.2: wIndex is the interface).
    fn hid_interface(&self, index: u16) -> Option<FakeInterface> {
        self.interfaces
            .iter()
            .copied()
            .find(|i| u16::from(i.number) == index && i.class.0 == CLASS_HID && i.alternate == 0)
    }

    /// Handles a SETUP packet (USB 2.0 §9.4, HID 1.11 §7.2). A class request
    /// the addressed interface does not support gets a protocol STALL
    /// (USB 2.0 §9.2.7).
    pub(crate) fn control(&mut self, setup: [u8; 8], out: &[u8]) -> ControlReply {
        self.requests.push(setup);
        let value = u16::from_le_bytes([setup[2], setup[3]]);
        let index = u16::from_le_bytes([setup[4], setup[5]]);
        if let Some(reply) = self.hub_control(setup[0], setup[1], value, index) {
            return reply;
        }
        let hid = self.hid_interface(index);
        let is_keyboard = hid.is_some_and(|i| i.is_boot_keyboard());
        match (setup[0], setup[1]) {
            // CLEAR_FEATURE(ENDPOINT_HALT) (USB 2.0 §9.4.1)
            (0x02, 1) if value == 0 => {
                self.interrupt_halted = false;
                self.clear_halts.push(index);
                ControlReply::Data(Vec::new())
            }
            (0x80, 6) => match value >> 8 {
                1 => ControlReply::Data(self.descriptor.bytes()),
                2 => ControlReply::Data(configuration_of(
                    &self.interfaces,
                    self.hub.is_some(),
                    &|n| self.report_descriptor(n).len() as u16,
                    self.config_padding,
                )),
                _ => ControlReply::Stall,
            },
            // GET_DESCRIPTOR(report) of a HID interface (HID 1.11 §7.1.1)
            (0x81, 6) if value == 0x2200 && hid.is_some() => {
                ControlReply::Data(self.report_descriptor(index as u8))
            }
            (0x00, 9) => {
                // configuration 0 is the Address state (USB 2.0 §9.4.7)
                self.configured = (value != 0).then_some(value as u8);
                self.alternate = 0;
                ControlReply::Data(Vec::new())
            }
            (0x01, 11) => {
                let exists = self
                    .interfaces
                    .iter()
                    .any(|i| u16::from(i.number) == index && u16::from(i.alternate) == value);
                if !exists || index != 0 {
                    return ControlReply::Stall;
                }
                self.alternate = value as u8;
                ControlReply::Data(Vec::new())
            }
            // SET_PROTOCOL is for boot-subclass interfaces only (HID 1.11 §7.2.6)
            (0x21, 0x0b) if hid.is_none_or(|i| i.class.1 != 1) => ControlReply::Stall,
            (0x21, 0x0b) if is_keyboard && self.stall_set_protocol => ControlReply::Stall,
            (0x21, 0x0b) => {
                if is_keyboard {
                    self.protocol = Some(value);
                }
                ControlReply::Data(Vec::new())
            }
            (0x21, 0x0a) if self.stall_set_idle || hid.is_none() => ControlReply::Stall,
            (0x21, 0x0a) => ControlReply::Data(Vec::new()),
            // the LED byte ends the output report, after any Report ID
            (0x21, 0x09) if hid.is_some() => {
                self.leds.push(out.last().copied().unwrap_or(0));
                ControlReply::Data(Vec::new())
            }
            _ => ControlReply::Stall,
        }
    }
}

/// wPortStatus speed bits of a device at `speed` (USB 2.0 Table 11-21).
fn speed_bits(speed: u32) -> u16 {
    match speed {
        LOW_SPEED => PORT_STAT_LOW_SPEED,
        HIGH_SPEED => PORT_STAT_HIGH_SPEED,
        _ => 0,
    }
}

impl FakeDevice {
    /// Hub class requests (USB 2.0 §11.24, as QEMU's dev-hub.c answers them).
    fn hub_control(
        &mut self,
        kind: u8,
        request: u8,
        value: u16,
        index: u16,
    ) -> Option<ControlReply> {
        let hub = self.hub.as_mut()?;
        let port = usize::from(index).wrapping_sub(1);
        let reply = match (kind, request) {
            (0xa0, 6) if value >> 8 == 0x29 => ControlReply::Data(hub.descriptor.clone()),
            (0xa0, 0) => ControlReply::Data(std::vec![0; 4]),
            (0x20, 1) if value <= 1 => ControlReply::Data(Vec::new()),
            (0xa3, 0) => match hub.ports.get(port) {
                Some(p) => {
                    let mut v = p.status.to_le_bytes().to_vec();
                    v.extend(p.change.to_le_bytes());
                    ControlReply::Data(v)
                }
                None => ControlReply::Stall,
            },
            (0x23, 3) if port < hub.ports.len() => {
                let p = &mut hub.ports[port];
                match value {
                    4 => {
                        hub.resets[port] += 1;
                        if let Some(dev) = p.device.as_mut() {
                            dev.reset();
                            p.change |= 0x10; // C_PORT_RESET
                            if p.status & PORT_STAT_ENABLE == 0 {
                                p.status |= PORT_STAT_ENABLE;
                                p.change |= PORT_STAT_ENABLE;
                            }
                        }
                        ControlReply::Data(Vec::new())
                    }
                    8 if hub.stall_port_power => ControlReply::Stall,
                    8 => {
                        hub.powered[port] = true;
                        ControlReply::Data(Vec::new())
                    }
                    _ => ControlReply::Stall,
                }
            }
            (0x23, 1) if port < hub.ports.len() => {
                let p = &mut hub.ports[port];
                match value {
                    1 => p.status &= !PORT_STAT_ENABLE,
                    16..=20 => p.change &= !(1 << (value - 16)),
                    _ => return Some(ControlReply::Stall),
                }
                ControlReply::Data(Vec::new())
            }
            // CLEAR_TT_BUFFER (USB 2.0 §11.24.2.3): a high-speed hub's TT
            (0x23, 8) if self.speed == HIGH_SPEED => {
                hub.tt_clears.push((value, index));
                ControlReply::Data(Vec::new())
            }
            (0x23, _) | (0xa3, _) => ControlReply::Stall,
            _ => return None,
        };
        Some(reply)
    }
}
