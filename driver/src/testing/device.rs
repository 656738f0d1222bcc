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

/// A fake full-speed device: QEMU's usb-kbd or usb-tablet.
pub(crate) struct FakeDevice {
    pub(crate) keyboard: bool,
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

    fn new(keyboard: bool) -> Self {
        Self {
            keyboard,
            reports: VecDeque::new(),
            leds: Vec::new(),
            configured: None,
            protocol: None,
            stall_set_idle: false,
            requests: Vec::new(),
        }
    }

    fn device_descriptor(&self) -> Vec<u8> {
        let product = if self.keyboard { 1u8 } else { 2 };
        std::vec![
            18, 1, 0, 2, 0, 0, 0, 8, 0x27, 0x06, product, 0, 0, 0, 1, 2, 3, 1
        ]
    }

    fn config_descriptor(&self) -> Vec<u8> {
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
