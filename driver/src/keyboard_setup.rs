//! Which interface of a device is its keyboard, and how its reports are
//! read: the boot protocol (HID 1.11 §7.2.6, Appendix B.1) or the report
//! protocol through the report descriptor (HID 1.11 §6.2.2, §7.1.1).
//!
//! Enumeration (`enumerate.rs`, `read_configuration` and
//! `configure_keyboard`) calls these. The order of preference:
//!
//! 1. a HID interface with boot subclass 1 and keyboard protocol 1 (HID
//!    1.11 §4.2, §4.3), wherever it is in the configuration: it is put in
//!    the boot protocol, its report descriptor kept as a fallback for when
//!    SET_PROTOCOL(boot) stalls or is ignored (FreeBSD `ukbd_attach` and
//!    `ukbd_probe`: boot interface first, `hid_locate` on its descriptor);
//! 2. else the first HID interface (any subclass) whose report descriptor
//!    has a Generic Desktop / Keyboard application collection (HUT 1.12 §4,
//!    usage 0x06) with key fields, read in the report protocol (Linux
//!    usbhid always uses the report protocol, `hid-input.c` maps the usages).
//!
//! One interface per device is driven. The others (the consumer-control
//! or system-control interface of a real keyboard, a mouse, a vendor
//! interface) get no endpoint context and are never polled; their reports
//! stay in the device. Consumer and system keys that a keyboard sends on
//! its keyboard interface under another Report ID are read and dropped.
#![forbid(unsafe_code)]

use crate::controller::Controller;
use crate::descriptor::{ConfigSummary, DescriptorError, HidInterface, SetupPacket};
use crate::device::CONTROL_BUFFER_BYTES;
use crate::error::Error;
use crate::hal::Hal;
use crate::hid::{ReportFormat, ReportLayout, parse_report_descriptor};

/// The longest output report sent (LEDs): a Report ID byte and 8 bytes.
pub(crate) const LED_REPORT_BYTES: usize = 9;

impl<H: Hal> Controller<H> {
    /// Chooses the keyboard interface of a configuration (see the module
    /// docs), sets `summary.keyboard` to it and the device's report format.
    ///
    /// The report descriptors are read from the configured device, as
    /// Linux, FreeBSD and Windows read them, so this sends
    /// SET_CONFIGURATION (USB 2.0 §9.4.7) first when there is a HID
    /// interface; when none turns out to be a keyboard the device is put
    /// back in the Address state (configuration 0) and left alone.
    /// A report descriptor that cannot be read or parsed is an error noted
    /// in the poll summary; the device is then ignored unless another
    /// interface is a keyboard.
    pub(crate) fn choose_keyboard(
        &mut self,
        index: usize,
        summary: &mut ConfigSummary,
    ) -> Result<(), Error> {
        summary.keyboard = None;
        if summary.hid.iter().all(Option::is_none) {
            return Ok(());
        }
        self.control(
            index,
            SetupPacket::set_configuration(summary.value),
            &[],
            "SET_CONFIGURATION",
        )?;
        let boot = summary
            .hid
            .iter()
            .flatten()
            .find(|h| h.is_boot_keyboard())
            .copied();
        if let Some(boot) = boot {
            // a fallback only: a boot keyboard with an unreadable descriptor
            // still types in the boot protocol
            let fallback = self.read_report_layout(index, boot).ok();
            self.devices[index].report_format = ReportFormat::Boot { fallback };
            summary.keyboard = Some(boot.interrupt);
            return Ok(());
        }
        for hid in summary.hid.into_iter().flatten() {
            match self.read_report_layout(index, hid) {
                Ok(layout) => {
                    self.devices[index].report_format = ReportFormat::Report(layout);
                    summary.keyboard = Some(hid.interrupt);
                    return Ok(());
                }
                Err(Error::BadDescriptor(DescriptorError::NotAKeyboard)) => {}
                Err(e) => self.note_error(e),
            }
        }
        if let Err(e) = self.control(
            index,
            SetupPacket::set_configuration(0),
            &[],
            "SET_CONFIGURATION(0)",
        ) {
            self.note_error(e);
        }
        Ok(())
    }

    /// GET_DESCRIPTOR(report) of `hid` (HID 1.11 §7.1.1) with the length
    /// its HID descriptor gives, parsed into the keyboard's layout.
    fn read_report_layout(
        &mut self,
        index: usize,
        hid: HidInterface,
    ) -> Result<ReportLayout, Error> {
        let length = usize::from(hid.report_length);
        if length == 0 {
            return Err(
                DescriptorError::BadValue("HID descriptor without a report descriptor").into(),
            );
        }
        if length > CONTROL_BUFFER_BYTES {
            return Err(Error::Unsupported {
                what: "report descriptor longer than the 3 KiB control buffer",
            });
        }
        let n = self.control(
            index,
            SetupPacket::get_report_descriptor(hid.interrupt.interface, length as u16),
            &[],
            "GET_DESCRIPTOR(report)",
        )?;
        let mut bytes = [0u8; CONTROL_BUFFER_BYTES];
        let n = n.min(length);
        self.devices[index]
            .mem
            .control
            .read_bytes(0, &mut bytes[..n]);
        Ok(parse_report_descriptor(&bytes[..n])?)
    }

    /// SET_PROTOCOL(boot) (HID 1.11 §7.2.6) for a boot keyboard; if it
    /// fails (a protocol stall, USB 2.0 §8.4.5, §9.2.7: only EP0 is halted
    /// and gets reset) the keyboard stays in the report protocol it started
    /// in, read through its report descriptor when that was parsed, else
    /// as boot reports (HID 1.11 B.1), as FreeBSD ukbd_attach carries on
    /// ("Set protocol error (ignored)"). A report-protocol keyboard gets
    /// no SET_PROTOCOL: only boot devices support it.
    pub(crate) fn select_protocol(&mut self, index: usize, interface: u8) {
        let ReportFormat::Boot { fallback } = self.devices[index].report_format else {
            return;
        };
        if let Err(e) = self.control(
            index,
            SetupPacket::set_protocol(interface, 0),
            &[],
            "SET_PROTOCOL(boot)",
        ) {
            self.note_error(e);
            if let Some(layout) = fallback {
                self.devices[index].report_format = ReportFormat::Report(layout);
            }
        }
    }

    /// The SET_REPORT request carrying the LED state to keyboard `index`
    /// (HID 1.11 §7.2.2) and its data: the boot output report byte, or in
    /// the report protocol the output report its descriptor describes,
    /// prefixed by its Report ID. `None` for a report-protocol keyboard
    /// without LEDs.
    pub(crate) fn led_request(
        &self,
        index: usize,
        interface: u8,
    ) -> Option<(SetupPacket, [u8; LED_REPORT_BYTES], usize)> {
        let leds = self.keyboard.leds();
        let mut data = [0u8; LED_REPORT_BYTES];
        let ReportFormat::Report(layout) = self.devices[index].report_format else {
            data[0] = leds.report_byte();
            return Some((SetupPacket::set_output_report(interface, 0, 1), data, 1));
        };
        let field = layout.leds?;
        let skip = usize::from(field.report_id != 0);
        data[0] = field.report_id;
        let length = (skip + usize::from(field.bytes)).min(LED_REPORT_BYTES);
        let on = [leds.num_lock, leds.caps_lock, leds.scroll_lock];
        for (&bit, on) in field.bits.iter().zip(on) {
            let bit = usize::from(bit);
            if on
                && bit < 8 * usize::from(field.bytes)
                && let Some(byte) = data.get_mut(skip + bit / 8)
            {
                *byte |= 1 << (bit % 8);
            }
        }
        let setup = SetupPacket::set_output_report(interface, field.report_id, length as u16);
        Some((setup, data, length))
    }
}
