extern crate std;

use std::collections::VecDeque;
use std::vec::Vec;

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
}

const PORT_STAT_CONNECTION: u16 = 1;
const PORT_STAT_ENABLE: u16 = 2;
const PORT_STAT_POWER: u16 = 0x100;

/// A fake full-speed device: QEMU's usb-kbd, usb-tablet or usb-hub.
pub(crate) struct FakeDevice {
    pub(crate) keyboard: bool,
    pub(crate) hub: Option<FakeHub>,
    pub(crate) reports: VecDeque<[u8; 8]>,
    pub(crate) leds: Vec<u8>,
    pub(crate) configured: Option<u8>,
    pub(crate) protocol: Option<u16>,
    pub(crate) stall_set_idle: bool,
    pub(crate) requests: Vec<[u8; 8]>,
}

impl FakeDevice {
    pub(crate) fn keyboard() -> Self {
        Self::new(true)
    }

    pub(crate) fn tablet() -> Self {
        Self::new(false)
    }

    /// QEMU's usb-hub with `ports` ports (8 by default there).
    pub(crate) fn hub(ports: usize) -> Self {
        let mut hub = Self::new(false);
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
        });
        hub
    }

    /// Plugs a device into hub port `port` (QEMU usb_hub_attach).
    pub(crate) fn hub_plug(&mut self, port: usize, device: FakeDevice) {
        let p = &mut self.hub.as_mut().expect("hub").ports[port - 1];
        p.device = Some(device);
        p.status |= PORT_STAT_CONNECTION;
        p.change |= PORT_STAT_CONNECTION;
    }

    /// Unplugs hub port `port` (QEMU usb_hub_detach).
    pub(crate) fn hub_unplug(&mut self, port: usize) {
        let p = &mut self.hub.as_mut().expect("hub").ports[port - 1];
        p.device = None;
        p.status &= !PORT_STAT_CONNECTION;
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
        if let Some(hub) = self.hub.as_mut() {
            for p in hub.ports.iter_mut() {
                p.status = PORT_STAT_POWER;
                p.change = 0;
                if p.device.is_some() {
                    p.status |= PORT_STAT_CONNECTION;
                    p.change |= PORT_STAT_CONNECTION;
                }
            }
        }
    }

    /// Data for the next interrupt IN transfer, or `None` for a NAK.
    pub(crate) fn interrupt_in(&mut self) -> Option<Vec<u8>> {
        if let Some(hub) = self.hub.as_ref() {
            let mut bits = 0u16;
            for (i, p) in hub.ports.iter().enumerate() {
                if p.change != 0 {
                    bits |= 1 << (i + 1);
                }
            }
            return (bits != 0).then(|| bits.to_le_bytes().to_vec());
        }
        self.reports.pop_front().map(|r| r.to_vec())
    }

    fn new(keyboard: bool) -> Self {
        Self {
            keyboard,
            hub: None,
            reports: VecDeque::new(),
            leds: Vec::new(),
            configured: None,
            protocol: None,
            stall_set_idle: false,
            requests: Vec::new(),
        }
    }

    fn device_descriptor(&self) -> Vec<u8> {
        if self.hub.is_some() {
            return std::vec![
                18, 1, 0x10, 1, 9, 0, 0, 8, 0x09, 0x04, 0xaa, 0x55, 1, 1, 1, 2, 3, 1
            ];
        }
        let product = if self.keyboard { 1u8 } else { 2 };
        std::vec![
            18, 1, 0, 2, 0, 0, 0, 8, 0x27, 0x06, product, 0, 0, 0, 1, 2, 3, 1
        ]
    }

    fn config_descriptor(&self) -> Vec<u8> {
        if self.hub.is_some() {
            return std::vec![
                9, 2, 25, 0, 1, 1, 0, 0xe0, 0, //
                9, 4, 0, 0, 1, 9, 0, 0, 0, //
                7, 5, 0x81, 3, 2, 0, 0xff,
            ];
        }
        let (subclass, protocol) = if self.keyboard { (1, 1) } else { (0, 0) };
        std::vec![
            9, 2, 34, 0, 1, 1, 0, 0xa0, 50, //
            9, 4, 0, 0, 1, 3, subclass, protocol, 0, //
            9, 0x21, 0x11, 1, 0, 1, 0x22, 63, 0, //
            7, 5, 0x81, 3, 8, 0, 7,
        ]
    }

    /// Handles a SETUP packet (USB 2.0 §9.4, HID 1.11 §7.2).
    pub(crate) fn control(&mut self, setup: [u8; 8], out: &[u8]) -> ControlReply {
        self.requests.push(setup);
        let value = u16::from_le_bytes([setup[2], setup[3]]);
        let index = u16::from_le_bytes([setup[4], setup[5]]);
        if let Some(reply) = self.hub_control(setup[0], setup[1], value, index) {
            return reply;
        }
        match (setup[0], setup[1]) {
            (0x80, 6) => match value >> 8 {
                1 => ControlReply::Data(self.device_descriptor()),
                2 => ControlReply::Data(self.config_descriptor()),
                _ => ControlReply::Stall,
            },
            (0x00, 9) => {
                self.configured = Some(value as u8);
                ControlReply::Data(Vec::new())
            }
            (0x21, 0x0b) => {
                self.protocol = Some(value);
                ControlReply::Data(Vec::new())
            }
            (0x21, 0x0a) if self.stall_set_idle => ControlReply::Stall,
            (0x21, 0x0a) => ControlReply::Data(Vec::new()),
            (0x21, 0x09) => {
                self.leds.push(out.first().copied().unwrap_or(0));
                ControlReply::Data(Vec::new())
            }
            _ => ControlReply::Stall,
        }
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
            (0x23, _) | (0xa3, _) => ControlReply::Stall,
            _ => return None,
        };
        Some(reply)
    }
}
