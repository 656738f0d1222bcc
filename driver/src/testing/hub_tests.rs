//! Hubs against the fake: enumeration through a hub, typing, hot-plug behind
//! it, nested hubs, malformed descriptors and takeover.
extern crate std;

use std::vec::Vec;

use super::hook_tests::poll_stopped_at;
use super::tests::{Ctrl, hi, keys, start};
use super::*;
use crate::types::{Config, DeviceState, MAX_DEVICES};
use crate::{DecodedKey, EnumerationStep};

fn hub_with_keyboard(port: usize) -> FakeDevice {
    let mut hub = FakeDevice::hub(8);
    hub.hub_plug(port, FakeDevice::keyboard());
    hub
}

/// Queues a report on the keyboard at root port `root`, `route`.
fn press_at(h: &FakeHandle, root: usize, route: u32, report: [u8; 8]) {
    h.with(|m, _| {
        m.device_at(root - 1, route)
            .expect("device")
            .reports
            .push_back(report)
    });
    h.run();
}

fn type_hi_at(c: &mut Ctrl, h: &FakeHandle, root: usize, route: u32) -> Vec<DecodedKey> {
    for r in [0x0b, 0, 0x0c, 0] {
        press_at(h, root, route, [0, 0, r, 0, 0, 0, 0, 0]);
    }
    for _ in 0..6 {
        c.poll_settled();
        h.run();
    }
    keys(c)
}

fn hub_root(h: &FakeHandle, root: usize) -> std::cell::RefMut<'_, super::hal::World> {
    let _ = root;
    h.0.borrow_mut()
}

#[test]
fn keyboard_behind_hub_enumerates_and_types() {
    let (mut c, h) = start(std::vec![(1, hub_with_keyboard(1))], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (2, 0), "{s:?}");
    let devices: Vec<_> = c.devices().collect();
    let hub = devices
        .iter()
        .find(|d| d.state == DeviceState::Hub)
        .expect("hub");
    let kbd = devices.iter().find(|d| d.is_keyboard).expect("keyboard");
    assert_eq!(
        (hub.class, hub.hub_ports, hub.route, hub.port),
        (9, 8, 0, 1)
    );
    assert_eq!(
        (kbd.port, kbd.route, kbd.parent_slot, kbd.parent_port),
        (1, 0x1, hub.slot, 1)
    );
    let text = std::format!("{hub}\n{kbd}");
    std::println!("{text}");
    assert!(
        text.contains("port 1 slot") && text.contains("hub (8 ports)"),
        "{text}"
    );
    assert!(
        text.contains("port 1.1 slot") && text.contains(", keyboard ("),
        "{text}"
    );
    // the xHC found the keyboard by root port + route string (QEMU xhci_lookup_uport)
    assert_eq!(h.with(|m, _| m.address_log.clone()), [(1, 0), (1, 0x1)]);
    // hub slot context: Hub = 1, Number of Ports = 8, full speed so no TT fields
    let hub_index = usize::from(hub.slot) - 1;
    let out = c.devices[hub_index].mem.device_context;
    assert_eq!((out.read32(0) >> 26) & 1, 1, "Hub bit");
    assert_eq!(out.read32(4) >> 24, 8, "Number of Ports");
    let kbd_out = c.devices[usize::from(kbd.slot) - 1].mem.device_context;
    assert_eq!(kbd_out.read32(0) & 0xf_ffff, 0x1, "child route string");
    assert_eq!((kbd_out.read32(4) >> 16) & 0xff, 1, "root port");
    h.with(|m, _| {
        let hub = m.ports[0].as_ref().unwrap().hub.as_ref().unwrap();
        assert!(hub.powered.iter().all(|&p| p), "every port powered");
        assert_eq!(hub.resets[0], 1, "port reset once");
        assert!(hub.ports.iter().all(|p| p.change == 0), "changes cleared");
    });
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x1), hi());
    assert_eq!(c.keyboard_stats().keyboards, 1);
}

#[test]
fn hot_plug_and_unplug_behind_hub_without_allocation() {
    let (mut c, h) = start(std::vec![(2, FakeDevice::hub(8))], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    let allocations = h.0.borrow().allocations.len();
    for (round, port) in [3usize, 5, 3].into_iter().enumerate() {
        hub_root(&h, 2).machine.ports[1]
            .as_mut()
            .unwrap()
            .hub_plug(port, FakeDevice::keyboard());
        h.run(); // the hub's status-change transfer completes
        let s = c.poll_settled();
        assert_eq!(s.attached, 1, "round {round}: {s:?}");
        assert_eq!(type_hi_at(&mut c, &h, 2, port as u32), hi());
        // hold a key, unplug: it is released and does not repeat
        press_at(&h, 2, port as u32, [0, 0, 0x04, 0, 0, 0, 0, 0]);
        c.poll_settled();
        hub_root(&h, 2).machine.ports[1]
            .as_mut()
            .unwrap()
            .hub_unplug(port);
        h.run();
        let s = c.poll_settled();
        assert_eq!(s.detached, 1, "round {round}: {s:?}");
        assert_eq!(c.devices().count(), 1, "only the hub is left");
        h.advance_ms(2000);
        c.poll_settled();
        assert_eq!(keys(&mut c), [DecodedKey::Unicode('a')]);
    }
    assert_eq!(h.0.borrow().allocations.len(), allocations);
    // the hub itself goes: everything behind it is cleaned up
    hub_root(&h, 2).machine.ports[1]
        .as_mut()
        .unwrap()
        .hub_plug(1, FakeDevice::keyboard());
    h.run();
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(c.devices().count(), 2);
    h.with(|m, mem| m.unplug(mem, 2));
    let s = c.poll_settled();
    assert_eq!(s.detached, 1, "{s:?}");
    assert_eq!(c.devices().count(), 0);
    assert!(
        c.devices.iter().all(|d| d.state.is_none()),
        "both slots freed"
    );
}

#[test]
fn hub_behind_hub() {
    let mut inner = FakeDevice::hub(4);
    inner.hub_plug(1, FakeDevice::keyboard());
    let mut outer = FakeDevice::hub(8);
    outer.hub_plug(2, inner);
    let (mut c, h) = start(std::vec![(1, outer)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (3, 0), "{s:?}");
    let kbd = c.devices().find(|d| d.is_keyboard).expect("keyboard");
    assert_eq!(kbd.route, 0x12);
    assert!(std::format!("{kbd}").starts_with("port 1.2.1 slot"));
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x12), hi());
}

#[test]
fn malformed_hub_descriptors_are_rejected() {
    for bad in [
        std::vec![9, 0x29, 0, 0x0a, 0, 1, 0, 0, 0xff], // no ports
        std::vec![7, 0x29, 8, 0x0a, 0, 1, 0],          // no DeviceRemovable bitmap
        std::vec![10, 0x2a, 8, 0x0a, 0, 1, 0, 0, 0, 0xff], // USB 3 type
        std::vec![3, 0x29, 8],                         // truncated
    ] {
        let mut hub = hub_with_keyboard(1);
        hub.hub.as_mut().unwrap().descriptor = bad.clone();
        let (mut c, _h) = start(std::vec![(1, hub)], Config::default());
        let s = c.poll_settled();
        assert_eq!(s.attached, 0, "{bad:?}: {s:?}");
        assert!(s.errors >= 1, "{bad:?}: {s:?}");
        let devices: Vec<_> = c.devices().collect();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].state, DeviceState::Failed, "{bad:?}");
    }
}

#[test]
fn children_count_toward_max_devices() {
    let mut hub = FakeDevice::hub(8);
    for port in 1..=8 {
        hub.hub_plug(port, FakeDevice::keyboard());
    }
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    let s = c.poll_settled();
    assert_eq!(s.attached as usize, MAX_DEVICES, "{s:?}");
    assert!(s.errors >= 1, "the ninth device gets no slot: {s:?}");
    assert_eq!(
        c.devices().filter(|d| d.is_keyboard).count(),
        MAX_DEVICES - 1
    );
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x4), hi());
}

#[test]
fn takeover_with_keyboard_behind_hub() {
    let (mut c, h) = start(std::vec![(1, hub_with_keyboard(2))], Config::default());
    assert_eq!(c.poll_settled().attached, 2);
    // torn transfer bookkeeping on both the hub and the keyboard
    for d in c.devices.iter_mut() {
        d.intr_outstanding = None;
    }
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert!(!report.full_reset, "{report}");
    assert_eq!(
        (report.endpoints_restarted, report.hubs_restarted),
        (1, 1),
        "{report}"
    );
    c.poll_settled();
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x2), hi());
    // hot-plug behind the hub still works in polled mode
    h.with(|m, _| {
        m.ports[0]
            .as_mut()
            .unwrap()
            .hub_plug(4, FakeDevice::keyboard())
    });
    h.run();
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x4), hi());
}

#[test]
fn takeover_full_reset_re_enumerates_hub_children() {
    let (mut c, h) = start(std::vec![(1, hub_with_keyboard(1))], Config::default());
    assert_eq!(c.poll_settled().attached, 2);
    h.with(|m, _| m.host_system_error());
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert!(report.full_reset && !report.dead, "{report}");
    assert_eq!(c.poll_settled().attached, 2);
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x1), hi());
}

#[test]
fn cpu_stopped_enumerating_behind_hub_is_recovered() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::hub(8))], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    h.with(|m, _| {
        m.ports[0]
            .as_mut()
            .unwrap()
            .hub_plug(1, FakeDevice::keyboard())
    });
    h.run();
    let seen = poll_stopped_at(&mut c, EnumerationStep::Addressed);
    assert_eq!(seen.last(), Some(&EnumerationStep::Addressed));
    assert_eq!(
        c.devices
            .iter()
            .filter(|d| d.state == Some(DeviceState::Enumerating))
            .count(),
        1
    );
    // SAFETY: single-threaded test; the "stopped CPU" unwound out of poll().
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert_eq!(report.enumerations_restarted, 1, "{report}");
    assert!(!report.full_reset, "{report}");
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    assert_eq!(c.devices().filter(|d| d.is_keyboard).count(), 1);
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x1), hi());
}

#[test]
fn full_speed_device_behind_high_speed_hub_gets_tt_fields() {
    let mut hub = hub_with_keyboard(3);
    // wHubCharacteristics TTT = 2 (24 FS bit times), bits 6:5
    hub.hub.as_mut().unwrap().descriptor[3] |= 2 << 5;
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    h.with(|m, _| m.set_port_speed(1, 3));
    assert_eq!(c.poll_settled().attached, 2);
    let hub = c.devices().find(|d| d.state == DeviceState::Hub).unwrap();
    let kbd = c.devices().find(|d| d.is_keyboard).unwrap();
    assert_eq!(
        (hub.speed, kbd.speed),
        (crate::Speed::High, crate::Speed::Full)
    );
    let hub_out = c.devices[usize::from(hub.slot) - 1].mem.device_context;
    assert_eq!((hub_out.read32(8) >> 16) & 3, 2, "TT Think Time");
    assert_eq!((hub_out.read32(0) >> 25) & 1, 0, "single TT");
    let kbd_out = c.devices[usize::from(kbd.slot) - 1].mem.device_context;
    assert_eq!(kbd_out.read32(8) & 0xff, u32::from(hub.slot), "TT hub slot");
    assert_eq!((kbd_out.read32(8) >> 8) & 0xff, 3, "TT port");
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x3), hi());
}

/// A USB 3 hub is two hubs (USB 3.2 §10.1): its SuperSpeed half on a USB 3
/// root port (bDeviceClass 9, bDeviceProtocol 3, port speed Super) and its
/// USB 2.0 half on a USB 2 port. The SS half is recognised and left alone:
/// listed `ignored`, no error, its slot given back, no hub request sent;
/// the USB 2.0 half is driven and the keyboard behind it types.
#[test]
fn usb3_hub_superspeed_half_is_left_alone_and_its_usb2_half_types() {
    let mut ss_half = FakeDevice::hub(4);
    ss_half.speed = 4; // SuperSpeed (PORTSC Port Speed 4)
    ss_half.descriptor.usb_version = 0x0300;
    ss_half.descriptor.protocol = 3;
    // a real SS device says 9 (2^9 = 512 bytes); the fake sends packets of
    // bMaxPacketSize0 bytes, so it gets 64, which the driver also reads as
    // 512 at SuperSpeed (the exponent is capped at 9)
    ss_half.descriptor.max_packet0 = 64;
    let usb2_half = hub_with_keyboard(2);
    // fake root ports 3 and 4 are the USB 3 ones
    let (mut c, h) = start(std::vec![(3, ss_half), (1, usb2_half)], Config::default());
    h.with(|m, _| m.set_port_speed(1, 3));
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (3, 0), "{s:?}");
    let ss = c
        .devices()
        .find(|d| d.port == 3)
        .expect("the SuperSpeed half is listed");
    assert_eq!(
        (ss.state, ss.class, ss.speed, ss.slot),
        (DeviceState::Ignored, 9, crate::Speed::Super, 0),
        "{ss}"
    );
    let powered = h.with(|m, _| {
        m.ports[2]
            .as_ref()
            .expect("SS half")
            .hub
            .as_ref()
            .expect("hub")
            .powered
            .iter()
            .any(|&p| p)
    });
    assert!(!powered, "no hub request to the SuperSpeed half");
    assert!(
        c.devices()
            .any(|d| d.port == 1 && d.state == DeviceState::Hub)
    );
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x2), hi());
}
