//! Keyboards unlike QEMU's usb-kbd: a composite device with the keyboard on
//! interface 1, low- and full-speed keyboards on a root port and behind
//! high-speed hubs (single and multiple TT), EP0 max packet sizes 8 and 64,
//! an NKRO interface beside the boot interface, a keyboard that STALLs
//! SET_PROTOCOL, and enough reports to wrap the interrupt ring many times.
//! Each test checks enumeration and then that typed reports decode.
extern crate std;

use std::string::String;
use std::vec::Vec;

use super::tests::{Ctrl, run_until_typed, start};
use super::*;
use crate::types::{Config, DeviceState};
use crate::{DeviceInfo, Speed};

/// HID usage IDs of `a`..`z` (HID Usage Tables §10: 0x04..=0x1d).
fn usage(c: char) -> u8 {
    0x04 + (c as u8 - b'a')
}

/// Queues a press and a release of each letter of `text` on the keyboard
/// at root port `root`, `route`.
fn queue_text(h: &FakeHandle, root: usize, route: u32, text: &str) {
    h.with(|m, _| {
        let dev = m.device_at(root - 1, route).expect("keyboard");
        for c in text.chars() {
            dev.reports.push_back([0, 0, usage(c), 0, 0, 0, 0, 0]);
            dev.reports.push_back([0; 8]);
        }
    });
}

fn types(c: &mut Ctrl, h: &FakeHandle, root: usize, route: u32, text: &str) -> String {
    queue_text(h, root, route, text);
    run_until_typed(c, h, |h| {
        h.with(|m, _| m.device_at(root - 1, route).map_or(0, |d| d.reports.len()))
    })
}

fn keyboard_at(c: &Ctrl, root: u8, route: u32) -> DeviceInfo {
    c.devices()
        .find(|d| d.is_keyboard && d.port == root && d.route == route)
        .unwrap_or_else(|| {
            let all: Vec<_> = c.devices().map(|d| std::format!("{d}")).collect();
            panic!("no keyboard at {root}/{route:#x}: {all:?}")
        })
}

/// The refusals the fake logged, for failure messages.
fn refusals(h: &FakeHandle) -> Vec<String> {
    h.with(|m, _| m.refusals.clone())
}

/// Slot context dwords 0 and 2 of `slot` in its output device context.
fn slot_context(c: &Ctrl, slot: u8) -> (u32, u32) {
    let out = c.devices[usize::from(slot) - 1].mem.device_context;
    (out.read32(0), out.read32(8))
}

/// (TT Hub Slot ID, TT Port Number, MTT) of a slot context (xHCI 1.2 §6.2.2).
fn tt_fields(c: &Ctrl, slot: u8) -> (u8, u8, bool) {
    let (dword0, dword2) = slot_context(c, slot);
    (
        (dword2 & 0xff) as u8,
        ((dword2 >> 8) & 0xff) as u8,
        dword0 & (1 << 25) != 0,
    )
}

/// The SET_PROTOCOL requests (HID 1.11 §7.2.6) the fake device saw: (wValue, wIndex).
fn set_protocols(h: &FakeHandle, root: usize, route: u32) -> Vec<(u16, u16)> {
    h.with(|m, _| {
        m.device_at(root - 1, route)
            .expect("device")
            .requests
            .iter()
            .filter(|r| r[0] == 0x21 && r[1] == 0x0b)
            .map(|r| {
                (
                    u16::from_le_bytes([r[2], r[3]]),
                    u16::from_le_bytes([r[4], r[5]]),
                )
            })
            .collect()
    })
}

/// A composite device: the boot keyboard is the second interface, on
/// endpoint 0x82 (DCI 5); the class requests go to interface 1 and the
/// reports come from endpoint 2 only (the fake NAKs the others).
#[test]
fn composite_device_with_keyboard_on_interface_1() {
    // a boot mouse on interface 0 (endpoint 0x81), the keyboard on interface 1 (0x82)
    let kbd = FakeDevice::keyboard_with(std::vec![
        FakeInterface::hid(0, 1, 2, 0x81),
        FakeInterface::boot_keyboard(1, 0x82),
    ]);
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?} {:?}", refusals(&h));
    let d = keyboard_at(&c, 1, 0);
    assert_eq!(d.state, DeviceState::Keyboard);
    let endpoint = c.devices[usize::from(d.slot) - 1]
        .keyboard
        .expect("keyboard");
    // DCI of endpoint 2 IN is 2 × 2 + 1 (xHCI 1.2 §4.5.1)
    assert_eq!((endpoint.interface, endpoint.dci), (1, 5));
    assert_eq!(
        set_protocols(&h, 1, 0),
        [(0, 1)],
        "boot protocol on interface 1"
    );
    h.with(|m, _| {
        let dev = m.ports[0].as_ref().unwrap();
        assert_eq!(dev.protocol, Some(0));
        assert_eq!(dev.leds.last(), Some(&1), "LEDs sent to interface 1");
    });
    assert_eq!(types(&mut c, &h, 1, 0, "composite"), "composite");
}

/// A low-speed keyboard on a root port: the slot context says low speed
/// (the fake refuses Address Device otherwise) and has no TT fields.
#[test]
fn low_speed_keyboard_on_root_port() {
    let kbd = FakeDevice::keyboard().at_speed(LOW_SPEED);
    let (mut c, h) = start(std::vec![(2, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?} {:?}", refusals(&h));
    let d = keyboard_at(&c, 2, 0);
    assert_eq!(d.speed, Speed::Low);
    assert_eq!((slot_context(&c, d.slot).0 >> 20) & 0xf, 2, "slot speed");
    // on a root port the xHC's own TT serves it: no TT fields (§6.2.2)
    assert_eq!(tt_fields(&c, d.slot), (0, 0, false));
    assert_eq!(types(&mut c, &h, 2, 0, "slow"), "slow");
}

/// A high-speed hub with a low-speed keyboard on port 1, a full-speed one
/// (bMaxPacketSize0 64) on port 2 and a high-speed one on port 3.
fn hub_with_mixed_keyboards(multi_tt: bool) -> FakeDevice {
    let mut hub = FakeDevice::high_speed_hub(4, multi_tt);
    hub.hub_plug(1, FakeDevice::keyboard().at_speed(LOW_SPEED));
    hub.hub_plug(2, FakeDevice::keyboard().with_max_packet0(64));
    hub.hub_plug(
        3,
        FakeDevice::keyboard()
            .at_speed(HIGH_SPEED)
            .with_max_packet0(64),
    );
    hub
}

fn check_mixed_keyboards_behind_hub(multi_tt: bool) {
    let (mut c, h) = start(
        std::vec![(1, hub_with_mixed_keyboards(multi_tt))],
        Config::default(),
    );
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (4, 0), "{s:?} {:?}", refusals(&h));
    let hub = c.devices().find(|d| d.state == DeviceState::Hub).unwrap();
    assert_eq!(hub.speed, Speed::High);
    h.with(|m, _| {
        let alternate = m.ports[0].as_ref().unwrap().alternate;
        assert_eq!(alternate, u8::from(multi_tt), "multiple-TT interface");
    });
    // the hub's own slot context: Hub = 1, MTT as its TT mode (§6.2.2)
    let (hub_dword0, _) = slot_context(&c, hub.slot);
    assert_eq!((hub_dword0 >> 26) & 1, 1, "Hub");
    assert_eq!(tt_fields(&c, hub.slot), (0, 0, multi_tt), "hub MTT");
    for (port, speed) in [(1u8, Speed::Low), (2, Speed::Full), (3, Speed::High)] {
        let d = keyboard_at(&c, 1, u32::from(port));
        assert_eq!(d.speed, speed, "port {port}");
        let want = if speed == Speed::High {
            (0, 0, false) // no TT between two high-speed devices
        } else {
            (hub.slot, port, multi_tt)
        };
        assert_eq!(tt_fields(&c, d.slot), want, "TT fields of port {port}");
    }
    assert!(refusals(&h).is_empty(), "{:?}", refusals(&h));
    assert_eq!(types(&mut c, &h, 1, 0x1, "low"), "low");
    assert_eq!(types(&mut c, &h, 1, 0x2, "full"), "full");
    assert_eq!(types(&mut c, &h, 1, 0x3, "high"), "high");
}

/// LS, FS and HS keyboards behind a single-TT high-speed hub: TT Hub Slot
/// ID and TT Port Number for the LS/FS ones, MTT clear (xHCI 1.2 §6.2.2);
/// the fake fails Address Device when they are missing or wrong.
#[test]
fn low_and_full_speed_keyboards_behind_single_tt_hub() {
    check_mixed_keyboards_behind_hub(false);
}

/// The same behind a multi-TT hub: the driver selects its multiple-TT
/// interface (USB 2.0 §11.23.1) and sets MTT in the hub's slot context and
/// in the LS/FS keyboards' (xHCI 1.2 §6.2.2).
#[test]
fn low_and_full_speed_keyboards_behind_multi_tt_hub() {
    check_mixed_keyboards_behind_hub(true);
}

/// Full-speed keyboards with bMaxPacketSize0 8, 16 and 64: the driver reads
/// the device descriptor at the first guess of 64 (Linux `hub_port_init`)
/// and, when it differs, Evaluates Context with the real size (xHCI 1.2
/// §4.6.7, §4.8.2.1); the fake checks EP0's Max Packet Size on every
/// transfer.
#[test]
fn full_speed_ep0_max_packet_8_and_64() {
    for max_packet0 in [8u8, 16, 64] {
        let kbd = FakeDevice::keyboard().with_max_packet0(max_packet0);
        let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
        let s = c.poll_settled();
        assert_eq!(
            (s.attached, s.errors),
            (1, 0),
            "bMaxPacketSize0 {max_packet0}: {s:?} {:?}",
            refusals(&h)
        );
        let d = keyboard_at(&c, 1, 0);
        assert_eq!(d.speed, Speed::Full);
        // 64 is the first guess at full speed: only a smaller EP0 is evaluated
        let evaluated = h.with(|m, _| m.evaluate_log.clone());
        let want: Vec<_> = if max_packet0 == 64 {
            Vec::new()
        } else {
            std::vec![(usize::from(d.slot), u16::from(max_packet0))]
        };
        assert_eq!(
            evaluated, want,
            "Evaluate Context, bMaxPacketSize0 {max_packet0}"
        );
        let ep0 = c.devices[usize::from(d.slot) - 1]
            .mem
            .device_context
            .read32(usize::from(c.info().context_size) + 4);
        assert_eq!(ep0 >> 16, u32::from(max_packet0), "EP0 Max Packet Size");
        assert!(refusals(&h).is_empty(), "{:?}", refusals(&h));
        assert_eq!(types(&mut c, &h, 1, 0, "packet"), "packet");
    }
}

/// An NKRO keyboard: a report-protocol interface 0 (subclass 0) before the
/// boot interface 1; the driver must pick the boot one.
#[test]
fn boot_interface_is_chosen_beside_nkro_interface() {
    // interface 0: report-protocol NKRO keyboard (HID 1.11 §4.2: subclass 0,
    // so no boot protocol, even though bInterfaceProtocol says keyboard)
    let nkro = FakeInterface {
        max_packet: 32,
        interval: 1,
        ..FakeInterface::hid(0, 0, 1, 0x81)
    };
    let kbd = FakeDevice::keyboard_with(std::vec![nkro, FakeInterface::boot_keyboard(1, 0x82)]);
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?} {:?}", refusals(&h));
    let d = keyboard_at(&c, 1, 0);
    let endpoint = c.devices[usize::from(d.slot) - 1]
        .keyboard
        .expect("keyboard");
    assert_eq!(
        (endpoint.interface, endpoint.dci, endpoint.max_packet),
        (1, 5, 8)
    );
    assert_eq!(set_protocols(&h, 1, 0), [(0, 1)]);
    assert_eq!(types(&mut c, &h, 1, 0, "nkro"), "nkro");
}

/// A keyboard that STALLs SET_PROTOCOL (a protocol stall, USB 2.0 §9.2.7):
/// EP0 is recovered and enumeration goes on (FreeBSD ukbd ignores the
/// error too); its reports are boot-format, as its report descriptor says.
#[test]
fn keyboard_stalling_set_protocol_still_types() {
    let mut kbd = FakeDevice::keyboard();
    kbd.stall_set_protocol = true;
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    assert_eq!(s.errors, 1, "the stall is reported: {s:?}");
    let d = keyboard_at(&c, 1, 0);
    assert_eq!(d.state, DeviceState::Keyboard);
    h.with(|m, _| {
        let dev = m.ports[0].as_ref().unwrap();
        assert_eq!(dev.protocol, None, "SET_PROTOCOL was refused");
        assert_eq!(dev.leds.last(), Some(&1), "EP0 works again after the stall");
        assert!(m.commands.contains(&14), "Reset Endpoint on EP0");
    });
    assert_eq!(types(&mut c, &h, 1, 0, "stall"), "stall");
}

/// 200 reports through the 16-TRB interrupt ring: at least 13 wraps through
/// the Link TRB with Toggle Cycle (xHCI 1.2 §4.11.5.1), every key in order.
#[test]
fn reports_keep_order_across_many_interrupt_ring_wraps() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    let d = keyboard_at(&c, 1, 0);
    let dci = usize::from(c.devices[usize::from(d.slot) - 1].keyboard.unwrap().dci);
    let alphabet = "abcdefghijklmnopqrstuvwxyz";
    let text: String = alphabet.chars().cycle().take(100).collect();
    // 200 reports through a ring of 15 TRBs and a Link TRB
    let typed = types(&mut c, &h, 1, 0, &text);
    assert_eq!(typed, text);
    let wraps = h.with(|m, _| m.slots[usize::from(d.slot)].eps[dci].wraps);
    assert!(wraps >= 13, "the interrupt ring wrapped {wraps} times");
    assert_eq!(c.keyboard_stats().keys_dropped, 0);
    assert_eq!(c.devices().find(|x| x.slot == d.slot).unwrap().reports, 200);
}

/// Interval field (bits 16..24 of dword 0, xHCI 1.2 §6.2.3) of the
/// keyboard's endpoint context as the fake controller took it from the
/// Configure Endpoint input context (it copies the input endpoint context
/// into the output device context).
fn configured_interval(c: &Ctrl, d: &DeviceInfo) -> u8 {
    let device = &c.devices[usize::from(d.slot) - 1];
    let dci = device.keyboard.expect("keyboard").dci;
    let size = c.caps.context.size;
    ((device.mem.device_context.read32(size * usize::from(dci)) >> 16) & 0xff) as u8
}

/// `Config::keyboard_poll_ms` reaches the Configure Endpoint command: the
/// keyboard is polled every min(bInterval, kbpoll), in 2^n × 125 µs, at
/// low, full and high speed (the fake has no SuperSpeed device; that
/// derivation is tested in `context.rs`).
#[test]
fn configure_endpoint_carries_the_keyboard_poll_interval() {
    // (speed, bInterval, kbpoll ms, Interval)
    let cases = [
        (FULL_SPEED, 10, 1, 3),
        (FULL_SPEED, 10, 0, 6),
        (FULL_SPEED, 10, 4, 5),
        (FULL_SPEED, 2, 8, 4), // never slower than the device asks
        (LOW_SPEED, 10, 1, 3),
        (LOW_SPEED, 24, 16, 7),
        (HIGH_SPEED, 7, 1, 3), // QEMU's usb-kbd: 8 ms → 1 ms
        (HIGH_SPEED, 7, 8, 6),
        (HIGH_SPEED, 7, 0, 6),
        (HIGH_SPEED, 1, 1, 0),
    ];
    for (speed, b_interval, kbpoll, want) in cases {
        let mut kbd = FakeDevice::keyboard().at_speed(speed);
        kbd.interfaces[0].interval = b_interval;
        let config = Config {
            keyboard_poll_ms: kbpoll,
            ..Config::default()
        };
        let (mut c, h) = start(std::vec![(1, kbd)], config);
        let s = c.poll_settled();
        let what = std::format!("speed {speed} bInterval {b_interval} kbpoll {kbpoll}");
        assert_eq!(
            (s.attached, s.errors),
            (1, 0),
            "{what}: {s:?} {:?}",
            refusals(&h)
        );
        let d = keyboard_at(&c, 1, 0);
        assert_eq!(configured_interval(&c, &d), want, "{what}");
        assert_eq!(d.poll_us, 125 << want, "{what}");
        assert_eq!(types(&mut c, &h, 1, 0, "ok"), "ok", "{what}");
    }
}
