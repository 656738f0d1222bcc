//! Keyboards read through their report descriptor (HID 1.11 §6.2.2,
//! §7.1.1) against the fake controller: a composite device with the
//! keyboard on interface 1 behind a mouse, a subclass-0 keyboard with
//! Report IDs, a boot keyboard that stalls or ignores SET_PROTOCOL, an NKRO
//! bitmap keyboard, a malformed report descriptor, a configuration longer
//! than 1024 bytes and a low-speed report-protocol keyboard.
extern crate std;

use std::string::String;
use std::vec::Vec;

use super::tests::run_until_typed as run_until;
use super::tests::{Ctrl, start};
use super::*;
use crate::DeviceInfo;
use crate::descriptor::DescriptorError;
use crate::error::Error;
use crate::types::{Config, DeviceState};

/// HID usage IDs of `a`..`z` (HUT 1.12 §10: 0x04..=0x1d).
fn usage(c: char) -> u8 {
    0x04 + (c as u8 - b'a')
}

/// A report-protocol keyboard on `interface`, endpoint `endpoint`, with
/// report descriptor `descriptor`, behind a mouse on interface 0 when
/// `interface` is not 0.
fn report_keyboard(interface: u8, endpoint: u8, descriptor: &[u8]) -> FakeDevice {
    let mut interfaces = Vec::new();
    if interface != 0 {
        interfaces.push(FakeInterface::hid(0, 0, 0, 0x81)); // a mouse
    }
    interfaces.push(FakeInterface {
        max_packet: 16,
        ..FakeInterface::hid(interface, 0, 0, endpoint)
    });
    let mut kbd = FakeDevice::keyboard_with(interfaces);
    kbd.report_descriptors
        .push((interface, descriptor.to_vec()));
    kbd
}

/// Types `text` as press/release reports built by `report(usage)` (usage
/// 0: all keys up) on endpoint `endpoint`.
fn types(
    c: &mut Ctrl,
    h: &FakeHandle,
    port: usize,
    endpoint: u8,
    text: &str,
    report: impl Fn(u8) -> Vec<u8>,
) -> String {
    h.with(|m, _| {
        let dev = m.ports[port - 1].as_mut().expect("keyboard");
        for ch in text.chars() {
            dev.raw_reports.push_back((endpoint, report(usage(ch))));
            dev.raw_reports.push_back((endpoint, report(0)));
        }
    });
    run_until_typed(c, h, port)
}

/// Report 1 of [`REPORT_ID_KEYBOARD`]: ID, modifiers, reserved, six keys.
fn id_report(usage: u8) -> Vec<u8> {
    std::vec![1, 0, 0, usage, 0, 0, 0, 0, 0]
}

/// An [`NKRO_KEYBOARD`] report: modifiers and a 120-bit key bitmap.
fn nkro_report(usage: u8) -> Vec<u8> {
    let mut r = std::vec![0u8; 16];
    if usage != 0 {
        r[1 + usize::from(usage / 8)] |= 1 << (usage % 8);
    }
    r
}

fn keyboard(c: &Ctrl) -> DeviceInfo {
    c.devices().find(|d| d.is_keyboard).unwrap_or_else(|| {
        let all: Vec<_> = c.devices().map(|d| std::format!("{d}")).collect();
        panic!("no keyboard: {all:?}")
    })
}

/// The class requests (bmRequestType 0x21) the device on `port` saw, as
/// (bRequest, wValue, wIndex).
fn class_requests(h: &FakeHandle, port: usize) -> Vec<(u8, u16, u16)> {
    h.with(|m, _| {
        m.ports[port - 1]
            .as_ref()
            .expect("device")
            .requests
            .iter()
            .filter(|r| r[0] == 0x21)
            .map(|r| {
                (
                    r[1],
                    u16::from_le_bytes([r[2], r[3]]),
                    u16::from_le_bytes([r[4], r[5]]),
                )
            })
            .collect()
    })
}

/// A composite device: a mouse on interface 0, a keyboard without the boot
/// subclass on interface 1 (endpoint 2) with Report IDs and a Consumer
/// Control report. The driver reads both report descriptors, drives
/// interface 1 in the report protocol, sends it no SET_PROTOCOL (HID 1.11
/// §7.2.6: boot devices only), its LEDs as output report 1, and ignores the
/// consumer report between the keys.
#[test]
fn composite_report_protocol_keyboard_on_interface_1_behind_a_mouse() {
    let (mut c, h) = start(
        std::vec![(1, report_keyboard(1, 0x82, &REPORT_ID_KEYBOARD))],
        Config::default(),
    );
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    let d = keyboard(&c);
    let device = &c.devices[usize::from(d.slot) - 1];
    let endpoint = device.keyboard.expect("keyboard");
    assert_eq!((endpoint.interface, endpoint.dci), (1, 5));
    assert!(device.report_format.is_report_protocol());
    assert!(d.report_protocol);
    assert!(std::format!("{d}").ends_with(", report protocol"), "{d}");
    let requests = class_requests(&h, 1);
    assert!(
        !requests.iter().any(|r| r.0 == 0x0b),
        "no SET_PROTOCOL: {requests:?}"
    );
    // SET_REPORT(Output, ID 1) to interface 1 with [1, Num Lock]
    assert!(requests.contains(&(0x09, 0x0201, 1)), "{requests:?}");
    h.with(|m, _| assert_eq!(m.ports[0].as_ref().unwrap().leds.last(), Some(&1)));
    h.with(|m, _| {
        let dev = m.ports[0].as_mut().unwrap();
        dev.raw_reports.push_back((2, std::vec![2, 0xe9, 0])); // Volume Up
        dev.raw_reports.push_back((2, std::vec![2, 0, 0]));
    });
    assert_eq!(types(&mut c, &h, 1, 2, "report", id_report), "report");
}

/// A boot keyboard that STALLs SET_PROTOCOL and sends report-protocol
/// reports with a Report ID: read through its report descriptor.
#[test]
fn boot_keyboard_stalling_set_protocol_types_report_protocol_reports() {
    let mut kbd = FakeDevice::keyboard();
    kbd.interfaces[0].max_packet = 16;
    kbd.stall_set_protocol = true;
    kbd.report_descriptors
        .push((0, REPORT_ID_KEYBOARD.to_vec()));
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 1), "the stall is noted: {s:?}");
    let d = keyboard(&c);
    assert!(
        c.devices[usize::from(d.slot) - 1]
            .report_format
            .is_report_protocol()
    );
    assert_eq!(types(&mut c, &h, 1, 1, "stalled", id_report), "stalled");
}

/// A boot keyboard that accepts SET_PROTOCOL(boot) and keeps sending its
/// 9-byte report-protocol reports: the driver switches to its layout.
#[test]
fn boot_keyboard_ignoring_set_protocol_is_read_by_its_descriptor() {
    let mut kbd = FakeDevice::keyboard();
    kbd.interfaces[0].max_packet = 16;
    kbd.report_descriptors
        .push((0, REPORT_ID_KEYBOARD.to_vec()));
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    h.with(|m, _| assert_eq!(m.ports[0].as_ref().unwrap().protocol, Some(0)));
    let d = keyboard(&c);
    assert!(
        !c.devices[usize::from(d.slot) - 1]
            .report_format
            .is_report_protocol()
    );
    assert_eq!(types(&mut c, &h, 1, 1, "ignored", id_report), "ignored");
    assert!(
        c.devices[usize::from(d.slot) - 1]
            .report_format
            .is_report_protocol()
    );
}

/// An NKRO keyboard: a 16-byte report of modifiers and a key bitmap.
#[test]
fn nkro_bitmap_keyboard_types() {
    let (mut c, h) = start(
        std::vec![(1, report_keyboard(0, 0x81, &NKRO_KEYBOARD))],
        Config::default(),
    );
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    assert_eq!(keyboard(&c).state, DeviceState::Keyboard);
    assert_eq!(types(&mut c, &h, 1, 1, "bitmap", nkro_report), "bitmap");
    // Shift held in the modifier bits, 'q' in the bitmap
    h.with(|m, _| {
        let dev = m.ports[0].as_mut().unwrap();
        let mut shifted = nkro_report(usage('q'));
        shifted[0] = 0x02;
        dev.raw_reports.push_back((1, shifted));
        dev.raw_reports.push_back((1, nkro_report(0)));
    });
    assert_eq!(run_until_typed(&mut c, &h, 1), "Q");
}

/// A report descriptor cut short: a clear error, the device is ignored
/// (and put back in the Address state), nothing panics.
#[test]
fn truncated_report_descriptor_leaves_the_device_ignored() {
    let cut = &REPORT_ID_KEYBOARD[..40];
    let (mut c, h) = start(
        std::vec![(1, report_keyboard(0, 0x81, cut))],
        Config::default(),
    );
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 1), "{s:?}");
    assert!(
        matches!(
            s.last_error,
            Some(Error::BadDescriptor(
                DescriptorError::BadReportDescriptor { .. }
            ))
        ),
        "{s:?}"
    );
    let d = c.devices().next().expect("listed");
    assert_eq!((d.state, d.is_keyboard), (DeviceState::Ignored, false));
    h.with(|m, _| assert_eq!(m.ports[0].as_ref().unwrap().configured, None));
}

/// A configuration of 1,600 bytes (class-specific descriptors before the
/// keyboard's interface): read whole to wTotalLength in one request.
#[test]
fn configuration_longer_than_1024_bytes_is_read_to_total_length() {
    let mut kbd = FakeDevice::keyboard();
    kbd.config_padding = 1600;
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    let lengths: Vec<u16> = h.with(|m, _| {
        m.ports[0]
            .as_ref()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r[0] == 0x80 && r[1] == 6 && r[3] == 2)
            .map(|r| u16::from_le_bytes([r[6], r[7]]))
            .collect()
    });
    // 9 + 1600 + interface 9 + HID 9 + endpoint 7
    assert_eq!(lengths, [9, 1634]);
    assert_eq!(keyboard(&c).state, DeviceState::Keyboard);
    let typed = types(&mut c, &h, 1, 1, "long", |u| {
        std::vec![0, 0, u, 0, 0, 0, 0, 0]
    });
    assert_eq!(typed, "long");
}

/// A low-speed report-protocol keyboard (subclass 0; an 8-byte report, as
/// USB 2.0 §5.7.3 allows a low-speed interrupt endpoint): EP0 max packet 8,
/// so its report descriptor comes in 8 packets; its bInterval 10 is in
/// frames (xHCI 1.2 §6.2.3.6): polled every 1 ms, Interval 3.
#[test]
fn low_speed_report_protocol_keyboard() {
    let kbd = report_keyboard(0, 0x81, &BOOT_KEYBOARD_REPORT).at_speed(LOW_SPEED);
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    let d = keyboard(&c);
    assert_eq!(d.speed, crate::Speed::Low);
    let endpoint = c.devices[usize::from(d.slot) - 1].keyboard.unwrap();
    assert_eq!((endpoint.max_packet, endpoint.interval), (8, 3));
    assert_eq!(d.poll_us, 1000);
    assert!(
        c.devices[usize::from(d.slot) - 1]
            .report_format
            .is_report_protocol()
    );
    let typed = types(&mut c, &h, 1, 1, "slow", |u| {
        std::vec![0, 0, u, 0, 0, 0, 0, 0]
    });
    assert_eq!(typed, "slow");
}

/// Runs the controller until the device on root port `port` has sent its
/// raw reports; returns the text typed.
fn run_until_typed(c: &mut Ctrl, h: &FakeHandle, port: usize) -> String {
    run_until(c, h, |h| {
        h.with(|m, _| {
            m.ports[port - 1]
                .as_ref()
                .map_or(0, |d| d.raw_reports.len())
        })
    })
}
