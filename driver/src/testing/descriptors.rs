//! Descriptors of the fake devices (USB 2.0 §9.6, HID 1.11 §6.2.1): a device
//! is described by its device descriptor fields and a list of interfaces,
//! each with one interrupt IN endpoint, from which the configuration
//! descriptor set is built. Keyboards unlike QEMU's usb-kbd are built here.
extern crate std;

use std::vec::Vec;

/// PORTSC speed IDs (xHCI 1.2 §7.2.2.1.1), also used for fake devices.
pub(crate) const FULL_SPEED: u32 = 1;
/// Low speed, 1.5 Mb/s.
pub(crate) const LOW_SPEED: u32 = 2;
/// High speed, 480 Mb/s.
pub(crate) const HIGH_SPEED: u32 = 3;

/// HID class (HID 1.11 §4.1), boot subclass (§4.2), keyboard and mouse protocols (§4.3).
pub(crate) const CLASS_HID: u8 = 3;
/// Hub class (USB 2.0 §11.23.1).
pub(crate) const CLASS_HUB: u8 = 9;

/// One interface (alternate setting) with its interrupt IN endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FakeInterface {
    /// bInterfaceNumber.
    pub(crate) number: u8,
    /// bAlternateSetting.
    pub(crate) alternate: u8,
    /// bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol.
    pub(crate) class: (u8, u8, u8),
    /// bEndpointAddress of the interrupt IN endpoint (bit 7 set).
    pub(crate) endpoint: u8,
    /// wMaxPacketSize.
    pub(crate) max_packet: u16,
    /// bInterval.
    pub(crate) interval: u8,
}

impl FakeInterface {
    /// A HID interface (class 3) on `endpoint`.
    pub(crate) const fn hid(number: u8, subclass: u8, protocol: u8, endpoint: u8) -> Self {
        Self {
            number,
            alternate: 0,
            class: (CLASS_HID, subclass, protocol),
            endpoint,
            max_packet: 8,
            interval: 7,
        }
    }

    /// A boot keyboard interface (HID 1.11 §4.2, §4.3: subclass 1, protocol 1).
    pub(crate) const fn boot_keyboard(number: u8, endpoint: u8) -> Self {
        Self::hid(number, 1, 1, endpoint)
    }

    /// Is this a boot keyboard interface?
    pub(crate) fn is_boot_keyboard(&self) -> bool {
        self.class == (CLASS_HID, 1, 1) && self.alternate == 0
    }

    /// Endpoint number (1..=15) of its interrupt IN endpoint.
    pub(crate) fn endpoint_number(&self) -> u8 {
        self.endpoint & 0xf
    }
}

/// Device descriptor fields (USB 2.0 §9.6.1) a fake device varies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceFields {
    pub(crate) usb_version: u16,
    pub(crate) class: u8,
    pub(crate) protocol: u8,
    pub(crate) max_packet0: u8,
    pub(crate) vendor: u16,
    pub(crate) product: u16,
}

impl DeviceFields {
    /// The 18-byte device descriptor.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let v = self.usb_version.to_le_bytes();
        let id = self.vendor.to_le_bytes();
        let p = self.product.to_le_bytes();
        let bcd_device: [u8; 2] = if self.class == CLASS_HUB {
            [1, 1]
        } else {
            [0, 0]
        };
        std::vec![
            18,
            1,
            v[0],
            v[1],
            self.class,
            0,
            self.protocol,
            self.max_packet0,
            id[0],
            id[1],
            p[0],
            p[1],
            bcd_device[0],
            bcd_device[1],
            1,
            2,
            3,
            1
        ]
    }
}

/// The configuration descriptor set (USB 2.0 §9.6.3-§9.6.6): configuration 1,
/// then each interface with, for HID, its HID descriptor (HID 1.11 §6.2.1)
/// giving its report descriptor's length from `report_length` (by
/// interface number), and its endpoint; `padding` bytes of
/// class-specific descriptors (type 0x24, USB 2.0 §9.6.3) before the first
/// interface: a configuration longer than a small read bound.
pub(crate) fn configuration_of(
    interfaces: &[FakeInterface],
    hub: bool,
    report_length: &dyn Fn(u8) -> u16,
    padding: usize,
) -> Vec<u8> {
    let numbers = {
        let mut n: Vec<u8> = interfaces.iter().map(|i| i.number).collect();
        n.dedup();
        n.len() as u8
    };
    let (attributes, power) = if hub { (0xe0, 0) } else { (0xa0, 50) };
    let mut out = std::vec![9, 2, 0, 0, numbers, 1, 0, attributes, power];
    let mut left = padding;
    while left > 0 {
        let n = left.clamp(3, 255);
        out.push(n as u8);
        out.push(0x24);
        out.extend(std::iter::repeat_n(0xa5u8, n - 2));
        left = left.saturating_sub(n);
    }
    for i in interfaces {
        let (class, subclass, protocol) = i.class;
        out.extend([9, 4, i.number, i.alternate, 1, class, subclass, protocol, 0]);
        if class == CLASS_HID {
            let l = report_length(i.number).to_le_bytes();
            out.extend([9, 0x21, 0x11, 1, 0, 1, 0x22, l[0], l[1]]);
        }
        let mp = i.max_packet.to_le_bytes();
        out.extend([7, 5, i.endpoint, 3, mp[0], mp[1], i.interval]);
    }
    let total = (out.len() as u16).to_le_bytes();
    out[2] = total[0];
    out[3] = total[1];
    out
}

/// QEMU usb-kbd's report descriptor (`hw/usb/dev-hid.c`
/// `qemu_keyboard_hid_report_descriptor`, 63 bytes): the boot report shape.
pub(crate) const BOOT_KEYBOARD_REPORT: [u8; 63] = [
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x75, 0x01, 0x95, 0x08, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7,
    0x15, 0x00, 0x25, 0x01, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x01, 0x95, 0x05, 0x75, 0x01,
    0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01, 0x75, 0x03, 0x91, 0x01, 0x95, 0x06,
    0x75, 0x08, 0x15, 0x00, 0x25, 0xff, 0x05, 0x07, 0x19, 0x00, 0x29, 0xff, 0x81, 0x00, 0xc0,
];

/// A three-button mouse (Generic Desktop / Mouse, HID 1.11 Appendix B.2
/// shape): no keyboard in it.
pub(crate) const MOUSE_REPORT: [u8; 50] = [
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x01, 0xa1, 0x00, 0x05, 0x09, 0x19, 0x01, 0x29, 0x03,
    0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, 0x95, 0x01, 0x75, 0x05, 0x81, 0x01,
    0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x15, 0x81, 0x25, 0x7f, 0x75, 0x08, 0x95, 0x02, 0x81, 0x06,
    0xc0, 0xc0,
];

/// A keyboard in report protocol with Report IDs (HID 1.11 §6.2.2.7), as
/// many real keyboards have: the keyboard application collection is report
/// 1 (modifiers, a reserved byte, six 8-bit keys with 2-byte Logical and
/// Usage Maximum; LEDs as output report 1), and a Consumer Control
/// collection (HUT 1.12 §15) is report 2 with one 16-bit usage.
pub(crate) const REPORT_ID_KEYBOARD: [u8; 92] = [
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x85, 0x01, // keyboard, report 1
    0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00, 0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81,
    0x02, // modifiers
    0x95, 0x01, 0x75, 0x08, 0x81, 0x01, // reserved byte
    0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, // LEDs
    0x95, 0x01, 0x75, 0x03, 0x91, 0x01, // LED padding
    0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x26, 0xff, 0x00, 0x05, 0x07, 0x19, 0x00, 0x2a, 0xff, 0x00,
    0x81, 0x00, // six keys
    0xc0, //
    0x05, 0x0c, 0x09, 0x01, 0xa1, 0x01, 0x85, 0x02, 0x15, 0x00, 0x26, 0x3c, 0x02, 0x19, 0x00, 0x2a,
    0x3c, 0x02, 0x75, 0x10, 0x95, 0x01, 0x81, 0x00, 0xc0, // consumer keys, report 2
];

/// An NKRO keyboard (no Report IDs): modifiers, then a 120-bit bitmap of
/// usages 0x00..=0x77 (a variable field of usage page 7), LEDs as output:
/// a 16-byte input report.
pub(crate) const NKRO_KEYBOARD: [u8; 49] = [
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, //
    0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00, 0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81,
    0x02, // modifiers
    0x19, 0x00, 0x29, 0x77, 0x95, 0x78, 0x81, 0x02, // key bitmap
    0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, // LEDs
    0x95, 0x01, 0x75, 0x03, 0x91, 0x01, // LED padding
    0xc0,
];
