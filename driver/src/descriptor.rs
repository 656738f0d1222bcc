//! USB descriptors (USB 2.0 §9.6, HID 1.11 §6.2.1, USB 2.0 §11.23.2.1) and
//! standard requests (USB 2.0 §9.3, §9.4; HID 1.11 §7.2).
//!
//! Parsers take untrusted bytes from the device: truncated or malformed input
//! gives `Err`, never a panic.
#![forbid(unsafe_code)]

use core::fmt;

/// Descriptor types (USB 2.0 Table 9-5, HID 1.11 §7.1).
pub(crate) const DESC_DEVICE: u8 = 1;
/// Configuration descriptor.
pub(crate) const DESC_CONFIGURATION: u8 = 2;
/// Interface descriptor.
pub(crate) const DESC_INTERFACE: u8 = 4;
/// Endpoint descriptor.
pub(crate) const DESC_ENDPOINT: u8 = 5;
/// Hub descriptor (USB 2.0 §11.23.2.1).
pub(crate) const DESC_HUB: u8 = 0x29;

/// What is wrong with a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorError {
    /// Fewer bytes than the descriptor needs.
    Truncated,
    /// bDescriptorType is not what was asked for.
    WrongType(u8),
    /// bLength is smaller than the minimum or runs past the buffer.
    BadLength(u8),
    /// A field has a value the specification does not allow.
    BadValue(&'static str),
    /// A HID report descriptor (HID 1.11 §6.2.2) that cannot be parsed.
    BadReportDescriptor {
        /// Byte offset of the offending item.
        offset: u16,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A HID report descriptor without a keyboard: no Generic Desktop /
    /// Keyboard application collection with key fields (HUT 1.12 §4, §10).
    NotAKeyboard,
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "truncated descriptor"),
            Self::WrongType(t) => write!(f, "unexpected descriptor type {t:#x}"),
            Self::BadLength(l) => write!(f, "bad descriptor length {l}"),
            Self::BadValue(what) => write!(f, "invalid {what}"),
            Self::BadReportDescriptor { offset, what } => {
                write!(f, "bad report descriptor at byte {offset}: {what}")
            }
            Self::NotAKeyboard => write!(f, "report descriptor has no keyboard"),
        }
    }
}

/// A device descriptor (USB 2.0 §9.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceDescriptor {
    /// bcdUSB.
    pub usb_version: u16,
    /// bDeviceClass.
    pub class: u8,
    /// bDeviceSubClass.
    pub subclass: u8,
    /// bDeviceProtocol.
    pub protocol: u8,
    /// bMaxPacketSize0.
    pub max_packet_size0: u8,
    /// idVendor.
    pub vendor: u16,
    /// idProduct.
    pub product: u16,
    /// bNumConfigurations.
    pub num_configurations: u8,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

/// Checks the header of a descriptor of `kind` that needs `min` bytes.
fn header(bytes: &[u8], kind: u8, min: usize) -> Result<(), DescriptorError> {
    if bytes.len() < 2 {
        return Err(DescriptorError::Truncated);
    }
    if bytes[1] != kind {
        return Err(DescriptorError::WrongType(bytes[1]));
    }
    if usize::from(bytes[0]) < min {
        return Err(DescriptorError::BadLength(bytes[0]));
    }
    if bytes.len() < min {
        return Err(DescriptorError::Truncated);
    }
    Ok(())
}

/// Parses the first 8 bytes of a device descriptor: enough for bMaxPacketSize0.
pub(crate) fn parse_device_prefix(bytes: &[u8]) -> Result<u8, DescriptorError> {
    header(bytes, DESC_DEVICE, 8)?;
    Ok(bytes[7])
}

impl DeviceDescriptor {
    /// Parses a full 18-byte device descriptor.
    pub fn parse(bytes: &[u8]) -> Result<Self, DescriptorError> {
        header(bytes, DESC_DEVICE, 18)?;
        Ok(Self {
            usb_version: u16_at(bytes, 2),
            class: bytes[4],
            subclass: bytes[5],
            protocol: bytes[6],
            max_packet_size0: bytes[7],
            vendor: u16_at(bytes, 8),
            product: u16_at(bytes, 10),
            num_configurations: bytes[17],
        })
    }
}

/// HID interfaces a configuration summary lists (a keyboard with consumer
/// keys, a mouse and a vendor interface has four).
pub const MAX_HID_INTERFACES: usize = 6;

/// The parts of a configuration we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigSummary {
    /// bConfigurationValue.
    pub value: u8,
    /// wTotalLength.
    pub total_length: u16,
    /// The bytes given were fewer than wTotalLength (the read was bounded)
    /// and the walk stopped at the last whole descriptor.
    pub truncated: bool,
    /// Class of the first interface (for listing non-keyboards).
    pub first_interface_class: u8,
    /// The keyboard interface to drive: the first boot keyboard interface
    /// (class 3, subclass 1, protocol 1) as parsed; enumeration may instead
    /// pick a HID interface whose report descriptor has a keyboard.
    pub keyboard: Option<InterruptInterface>,
    /// A hub interface (class 9) with its status-change endpoint, if any.
    pub hub: Option<InterruptInterface>,
    /// The HID interfaces (class 3, alternate setting 0) with an interrupt
    /// IN endpoint, in descriptor order; past [`MAX_HID_INTERFACES`] they
    /// are not listed.
    pub hid: [Option<HidInterface>; MAX_HID_INTERFACES],
}

/// A HID interface (HID 1.11 §4) with its interrupt IN endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HidInterface {
    /// The interface and its endpoint.
    pub interrupt: InterruptInterface,
    /// bInterfaceSubClass (1: boot interface, HID 1.11 §4.2).
    pub subclass: u8,
    /// bInterfaceProtocol (1: keyboard, 2: mouse, HID 1.11 §4.3).
    pub protocol: u8,
    /// wDescriptorLength of its report descriptor, from the HID descriptor
    /// (HID 1.11 §6.2.1); 0 if it gave none.
    pub report_length: u16,
}

impl HidInterface {
    /// Is it a boot keyboard (subclass 1, protocol 1)?
    pub fn is_boot_keyboard(&self) -> bool {
        self.subclass == 1 && self.protocol == 1
    }
}

/// An interface with an interrupt IN endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterruptInterface {
    /// bInterfaceNumber.
    pub interface: u8,
    /// bAlternateSetting.
    pub alternate: u8,
    /// Endpoint number (1..=15).
    pub endpoint: u8,
    /// wMaxPacketSize (bits 10:0).
    pub max_packet: u16,
    /// bInterval.
    pub interval: u8,
}

/// Parses only the 9-byte configuration header (for wTotalLength).
pub(crate) fn parse_config_header(bytes: &[u8]) -> Result<(u8, u16), DescriptorError> {
    header(bytes, DESC_CONFIGURATION, 9)?;
    Ok((bytes[5], u16_at(bytes, 2)))
}

/// HID class / boot subclass / keyboard protocol (HID 1.11 §4.2, §4.3).
const CLASS_HID: u8 = 3;
const CLASS_HUB: u8 = 9;
/// HID descriptor (HID 1.11 §6.2.1) and report descriptor types (§7.1).
const DESC_HID: u8 = 0x21;
/// Report descriptor type.
pub(crate) const DESC_REPORT: u8 = 0x22;

/// The interface descriptor being walked.
#[derive(Debug, Clone, Copy)]
struct CurrentInterface {
    class: u8,
    subclass: u8,
    protocol: u8,
    number: u8,
    alternate: u8,
    report_length: u16,
}

impl ConfigSummary {
    /// Walks a configuration descriptor set (USB 2.0 §9.6.3-§9.6.6) and
    /// lists its HID interfaces with their report descriptor lengths, picks
    /// the first boot keyboard interface (class 3, subclass 1, protocol 1)
    /// with an interrupt IN endpoint, and any hub interface.
    ///
    /// `bytes` may be shorter than wTotalLength when the read was bounded:
    /// then the walk ends at the last whole descriptor and `truncated` is
    /// set. Within wTotalLength a descriptor that runs past it is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, DescriptorError> {
        let (value, total_length) = parse_config_header(bytes)?;
        let mut summary = Self {
            value,
            total_length,
            truncated: bytes.len() < usize::from(total_length),
            ..Self::default()
        };
        let end = bytes.len().min(usize::from(total_length));
        let mut offset = usize::from(bytes[0]);
        let mut current: Option<CurrentInterface> = None;
        let mut seen_interface = false;
        while offset + 2 <= end {
            let len = usize::from(bytes[offset]);
            if len >= 2 && offset + len > end && summary.truncated {
                break; // cut by the bounded read: the rest is not used
            }
            if len < 2 || offset + len > end {
                return Err(DescriptorError::BadLength(bytes[offset]));
            }
            let d = &bytes[offset..offset + len];
            match d[1] {
                DESC_INTERFACE if len >= 9 => {
                    current = Some(CurrentInterface {
                        class: d[5],
                        subclass: d[6],
                        protocol: d[7],
                        number: d[2],
                        alternate: d[3],
                        report_length: 0,
                    });
                    if !seen_interface {
                        summary.first_interface_class = d[5];
                        seen_interface = true;
                    }
                }
                DESC_INTERFACE => return Err(DescriptorError::BadLength(d[0])),
                DESC_HID => {
                    if let Some(c) = current.as_mut() {
                        c.report_length = hid_report_length(d);
                    }
                }
                DESC_ENDPOINT if len >= 7 => {
                    if let Some(c) = current {
                        summary.endpoint(c, d);
                    }
                }
                DESC_ENDPOINT => return Err(DescriptorError::BadLength(d[0])),
                _ => {} // class-specific and unknown descriptors are skipped
            }
            offset += len;
        }
        Ok(summary)
    }

    /// An endpoint descriptor `d` of interface `c`: an interrupt IN endpoint
    /// of a HID or hub interface at alternate setting 0 is recorded.
    fn endpoint(&mut self, c: CurrentInterface, d: &[u8]) {
        let address = d[2];
        let is_interrupt_in = address & 0x80 != 0 && d[3] & 0x3 == 3;
        let number = address & 0x0f;
        if !is_interrupt_in || number == 0 || c.alternate != 0 {
            return;
        }
        let found = InterruptInterface {
            interface: c.number,
            alternate: c.alternate,
            endpoint: number,
            max_packet: u16_at(d, 4) & 0x7ff,
            interval: d[6],
        };
        match c.class {
            CLASS_HID => {
                let hid = HidInterface {
                    interrupt: found,
                    subclass: c.subclass,
                    protocol: c.protocol,
                    report_length: c.report_length,
                };
                let listed = self
                    .hid
                    .iter()
                    .flatten()
                    .any(|h| h.interrupt.interface == c.number);
                if !listed && let Some(slot) = self.hid.iter_mut().find(|h| h.is_none()) {
                    *slot = Some(hid);
                }
                if hid.is_boot_keyboard() && self.keyboard.is_none() {
                    self.keyboard = Some(found);
                }
            }
            CLASS_HUB if self.hub.is_none() => self.hub = Some(found),
            _ => {}
        }
    }
}

/// wDescriptorLength of the report descriptor a HID descriptor lists (HID
/// 1.11 §6.2.1: bNumDescriptors entries of bDescriptorType and
/// wDescriptorLength from byte 6); 0 if it lists none.
fn hid_report_length(d: &[u8]) -> u16 {
    let count = usize::from(*d.get(5).unwrap_or(&0));
    (0..count)
        .map(|i| 6 + 3 * i)
        .take_while(|&at| at + 3 <= d.len())
        .find(|&at| d[at] == DESC_REPORT)
        .map_or(0, |at| u16_at(d, at + 1))
}

/// A hub descriptor (USB 2.0 §11.23.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubDescriptor {
    /// bNbrPorts.
    pub ports: u8,
    /// wHubCharacteristics.
    pub characteristics: u16,
    /// bPwrOn2PwrGood in 2 ms units.
    pub power_on_to_good_2ms: u8,
}

impl HubDescriptor {
    /// Parses a USB 2.0 hub descriptor: bNbrPorts must be non-zero and the
    /// DeviceRemovable bitmap (one bit per port plus bit 0) must be present.
    pub fn parse(bytes: &[u8]) -> Result<Self, DescriptorError> {
        header(bytes, DESC_HUB, 7)?;
        let ports = bytes[2];
        if ports == 0 {
            return Err(DescriptorError::BadValue("hub with no ports"));
        }
        let needed = 7 + (usize::from(ports) + 1).div_ceil(8);
        if usize::from(bytes[0]) < needed {
            return Err(DescriptorError::BadLength(bytes[0]));
        }
        if bytes.len() < needed {
            return Err(DescriptorError::Truncated);
        }
        Ok(Self {
            ports: bytes[2],
            characteristics: u16_at(bytes, 3),
            power_on_to_good_2ms: bytes[5],
        })
    }
}

/// A SETUP packet (USB 2.0 §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetupPacket {
    pub(crate) request_type: u8,
    pub(crate) request: u8,
    pub(crate) value: u16,
    pub(crate) index: u16,
    pub(crate) length: u16,
}

impl SetupPacket {
    /// The 8 bytes on the wire.
    pub(crate) fn bytes(&self) -> [u8; 8] {
        let v = self.value.to_le_bytes();
        let i = self.index.to_le_bytes();
        let l = self.length.to_le_bytes();
        [
            self.request_type,
            self.request,
            v[0],
            v[1],
            i[0],
            i[1],
            l[0],
            l[1],
        ]
    }

    /// Is the data stage device-to-host?
    pub(crate) fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }

    /// GET_DESCRIPTOR (§9.4.3).
    pub(crate) fn get_descriptor(kind: u8, index: u8, length: u16) -> Self {
        Self {
            request_type: 0x80,
            request: 6,
            value: (u16::from(kind) << 8) | u16::from(index),
            index: 0,
            length,
        }
    }

    /// GET_DESCRIPTOR of a HID report descriptor (HID 1.11 §7.1.1): a
    /// standard request to the interface, descriptor type 0x22, index 0.
    pub(crate) fn get_report_descriptor(interface: u8, length: u16) -> Self {
        Self {
            request_type: 0x81,
            request: 6,
            value: u16::from(DESC_REPORT) << 8,
            index: u16::from(interface),
            length,
        }
    }

    /// GET_DESCRIPTOR of a class descriptor (hub).
    pub(crate) fn get_class_descriptor(kind: u8, length: u16) -> Self {
        Self {
            request_type: 0xa0,
            request: 6,
            value: u16::from(kind) << 8,
            index: 0,
            length,
        }
    }

    /// SET_CONFIGURATION (§9.4.7).
    pub(crate) fn set_configuration(value: u8) -> Self {
        Self {
            request_type: 0,
            request: 9,
            value: u16::from(value),
            index: 0,
            length: 0,
        }
    }

    /// SET_INTERFACE (USB 2.0 §9.4.10): select `alternate` of `interface`.
    pub(crate) fn set_interface(interface: u8, alternate: u8) -> Self {
        Self {
            request_type: 0x01,
            request: 11,
            value: u16::from(alternate),
            index: u16::from(interface),
            length: 0,
        }
    }

    /// HID SET_PROTOCOL (HID 1.11 §7.2.6): 0 = boot.
    pub(crate) fn set_protocol(interface: u8, protocol: u16) -> Self {
        Self {
            request_type: 0x21,
            request: 0x0b,
            value: protocol,
            index: u16::from(interface),
            length: 0,
        }
    }

    /// HID SET_IDLE (HID 1.11 §7.2.4): duration 0 = report only on change.
    pub(crate) fn set_idle(interface: u8) -> Self {
        Self {
            request_type: 0x21,
            request: 0x0a,
            value: 0,
            index: u16::from(interface),
            length: 0,
        }
    }

    /// HID SET_REPORT of output report `report_id` (0: Report IDs are not
    /// used) with `length` bytes (HID 1.11 §7.2.2: wValue is the report
    /// type, 2 = Output, and the ID).
    pub(crate) fn set_output_report(interface: u8, report_id: u8, length: u16) -> Self {
        Self {
            request_type: 0x21,
            request: 0x09,
            value: 0x0200 | u16::from(report_id),
            index: u16::from(interface),
            length,
        }
    }

    /// Hub SET_FEATURE(port feature) (USB 2.0 §11.24.2.13).
    pub(crate) fn set_port_feature(port: u8, feature: u16) -> Self {
        Self {
            request_type: 0x23,
            request: 3,
            value: feature,
            index: u16::from(port),
            length: 0,
        }
    }

    /// Hub CLEAR_FEATURE(port feature) (USB 2.0 §11.24.2.2).
    pub(crate) fn clear_port_feature(port: u8, feature: u16) -> Self {
        Self {
            request_type: 0x23,
            request: 1,
            value: feature,
            index: u16::from(port),
            length: 0,
        }
    }

    /// Hub GET_STATUS(hub) (USB 2.0 §11.24.2.6), 4 bytes.
    pub(crate) fn get_hub_status() -> Self {
        Self {
            request_type: 0xa0,
            request: 0,
            value: 0,
            index: 0,
            length: 4,
        }
    }

    /// Hub CLEAR_FEATURE(hub feature) (USB 2.0 §11.24.2.1).
    pub(crate) fn clear_hub_feature(feature: u16) -> Self {
        Self {
            request_type: 0x20,
            request: 1,
            value: feature,
            index: 0,
            length: 0,
        }
    }

    /// Hub GET_STATUS(port) (USB 2.0 §11.24.2.7), 4 bytes.
    pub(crate) fn get_port_status(port: u8) -> Self {
        Self {
            request_type: 0xa3,
            request: 0,
            value: 0,
            index: u16::from(port),
            length: 4,
        }
    }
}

#[cfg(test)]
mod tests;
