//! The two shapes of keyboard input report, decoded into one: a report in
//! the boot protocol (HID 1.11 Appendix B.1) is used as it is, a
//! report-protocol report (HID 1.11 §5.6, §8) is read through the
//! [`ReportLayout`] its report descriptor gave and rewritten into the boot
//! shape, so the diffing, key repeat and keymap of `hid/` serve both.
//!
//! The common shape holds a modifier byte and six keys. A report-protocol
//! report with more than six keys down (an NKRO bitmap) is turned into an
//! ErrorRollOver report, as a boot keyboard reports a phantom state (HID
//! 1.11 Appendix C): the keys held before stay held until fewer than seven
//! are down. Linux `hid-input.c` and FreeBSD `ukbd` (`ukbd_intr_callback`,
//! which reads its fields with `hid_get_data` at the `hid_locate`d
//! positions) decode by the descriptor the same way.
#![forbid(unsafe_code)]

use super::report_descriptor::{KeyField, ReportLayout};

/// Boot-shape report of ErrorRollOver in every key slot (HID 1.11 Appendix C).
const ROLLOVER: [u8; 6] = [1; 6];

/// How a keyboard's input reports are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportFormat {
    /// Boot protocol (SET_PROTOCOL(boot) was accepted). `fallback` is the
    /// report-protocol layout from the report descriptor, used from the
    /// first report that has its length and not the boot report's 8 bytes:
    /// a keyboard that accepts SET_PROTOCOL but keeps sending
    /// report-protocol reports.
    Boot {
        /// The layout of the report descriptor, if it was read and parsed.
        fallback: Option<ReportLayout>,
    },
    /// Report protocol, read through the layout (a keyboard without the
    /// boot subclass, or one that stalled SET_PROTOCOL).
    Report(ReportLayout),
}

impl Default for ReportFormat {
    fn default() -> Self {
        Self::Boot { fallback: None }
    }
}

impl ReportFormat {
    /// Is the keyboard read in report protocol?
    pub(crate) fn is_report_protocol(&self) -> bool {
        matches!(self, Self::Report(_))
    }

    /// The report in the boot shape, or `None` for a report that is not the
    /// keyboard's (another Report ID: consumer keys, system control, which
    /// are ignored). A boot keyboard seen sending reports of its
    /// report-protocol length switches this format to report protocol.
    pub(crate) fn boot_report(&mut self, bytes: &[u8]) -> Option<[u8; 8]> {
        if let Self::Boot {
            fallback: Some(layout),
        } = *self
            && bytes.len() != 8
            && bytes.len() == layout.wire_bytes()
        {
            *self = Self::Report(layout);
        }
        match self {
            Self::Boot { .. } => {
                let mut report = [0u8; 8];
                let n = bytes.len().min(8);
                report[..n].copy_from_slice(&bytes[..n]);
                Some(report)
            }
            Self::Report(layout) => decode(layout, bytes),
        }
    }
}

/// Bits `offset..offset + size` of `payload`, least significant first (HID
/// 1.11 §5.8: fields are packed little-endian); bits past the end read as 0,
/// as Linux zero-pads a short report (`hid_report_raw_event`).
fn bits(payload: &[u8], offset: usize, size: usize) -> u32 {
    let mut value = 0u32;
    for k in 0..size.min(32) {
        let bit = offset + k;
        if payload
            .get(bit / 8)
            .is_some_and(|byte| byte >> (bit % 8) & 1 != 0)
        {
            value |= 1 << k;
        }
    }
    value
}

/// The boot report being built.
struct Builder {
    report: [u8; 8],
    keys: usize,
    rollover: bool,
}

impl Builder {
    fn usage(&mut self, usage: u32) {
        match usage {
            0 => {}
            1..=3 => self.rollover = true,
            0xe0..=0xe7 => self.report[0] |= 1 << (usage - 0xe0),
            0x04..=0xdf => {
                let usage = usage as u8;
                if self.report[2..2 + self.keys].contains(&usage) {
                    return;
                }
                if self.keys == 6 {
                    self.rollover = true;
                } else {
                    self.report[2 + self.keys] = usage;
                    self.keys += 1;
                }
            }
            _ => {} // reserved usages
        }
    }
}

/// Reads a report-protocol report by `layout` (HID 1.11 §6.2.2.5 Input
/// items: a variable field is one bit per usage, an array field holds
/// usage indexes from Logical Minimum).
pub(crate) fn decode(layout: &ReportLayout, bytes: &[u8]) -> Option<[u8; 8]> {
    let payload = if layout.report_id != 0 {
        let (&id, rest) = bytes.split_first()?;
        if id != layout.report_id {
            return None;
        }
        rest
    } else {
        bytes
    };
    let mut out = Builder {
        report: [0; 8],
        keys: 0,
        rollover: false,
    };
    for field in layout.fields.iter().flatten() {
        match *field {
            KeyField::Bitmap {
                offset,
                first,
                count,
            } => {
                for i in 0..usize::from(count) {
                    if bits(payload, usize::from(offset) + i, 1) != 0 {
                        out.usage(u32::from(first) + i as u32);
                    }
                }
            }
            KeyField::Array {
                offset,
                size,
                count,
                logical_min,
                first,
                last,
            } => {
                let size = usize::from(size);
                for i in 0..usize::from(count) {
                    let raw = bits(payload, usize::from(offset) + i * size, size);
                    let value = if logical_min < 0 && raw >> (size - 1) != 0 {
                        i64::from(raw) - (1i64 << size)
                    } else {
                        i64::from(raw)
                    };
                    // out of the logical range: no key (HID 1.11 §6.2.2.5)
                    let usage = i64::from(first) + value - i64::from(logical_min);
                    if value >= i64::from(logical_min) && usage <= i64::from(last) {
                        out.usage(usage as u32);
                    }
                }
            }
        }
    }
    if out.rollover {
        out.report[2..].copy_from_slice(&ROLLOVER);
    }
    Some(out.report)
}
