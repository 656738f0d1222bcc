//! Hub ports as USB 2.0 ch. 11 and Linux's hub driver treat them, against
//! the fake: the power-on-to-power-good wait, a hub that STALLs PORT_POWER,
//! CLEAR_TT_BUFFER after an aborted control transfer through a TT, the
//! connect debounce and a hub port disabled under its device.
extern crate std;

use std::vec::Vec;

use super::machine::ControlRecord;
use super::tests::{Ctrl, hi, start, type_hi_at};
use super::*;
use crate::types::Config;

/// SET_FEATURE(PORT_POWER) (USB 2.0 §11.24.2.13) as the fake logs it.
fn is_port_power(setup: &[u8; 8]) -> bool {
    setup[..4] == [0x23, 3, 8, 0]
}

fn hub_log(h: &FakeHandle, hub_slot: u8) -> Vec<ControlRecord> {
    h.with(|m, _| {
        m.control_log
            .iter()
            .copied()
            .filter(|r| r.slot == usize::from(hub_slot))
            .collect()
    })
}

fn hub_slot(c: &Ctrl) -> u8 {
    c.devices()
        .find(|d| d.state == crate::DeviceState::Hub)
        .expect("hub")
        .slot
}

/// How long after the last SET_FEATURE(PORT_POWER) the hub was next asked
/// anything, with bPwrOn2PwrGood `pgood` (2 ms units).
fn power_good_wait_us(pgood: u8) -> u64 {
    let mut hub = FakeDevice::hub(4);
    hub.hub.as_mut().expect("hub").descriptor[5] = pgood;
    hub.hub_plug(1, FakeDevice::keyboard());
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (2, 0), "{s:?}");
    let log = hub_log(&h, hub_slot(&c));
    let last_power = log
        .iter()
        .rposition(|r| is_port_power(&r.setup))
        .expect("PORT_POWER sent");
    log[last_power + 1].at_us - log[last_power].at_us
}

/// USB 2.0 §11.23.2.1: bPwrOn2PwrGood × 2 ms after powering the ports,
/// and at least 100 ms for an external hub (Linux
/// `hub_power_on_good_delay`).
#[test]
fn hub_ports_get_their_power_good_time() {
    let long = power_good_wait_us(150); // 300 ms
    assert!(long >= 300_000, "waited {long} us for 300 ms");
    let short = power_good_wait_us(1); // 2 ms: raised to 100 ms
    assert!(short >= 100_000, "waited {short} us, less than 100 ms");
    assert!(short < 300_000, "waited {short} us for 100 ms");
}

/// A hub without power switching may STALL SET_FEATURE(PORT_POWER): its
/// ports are powered anyway and the hub is used (as Linux `hub_power_on`,
/// which does not look at the result).
#[test]
fn hub_stalling_port_power_still_works() {
    let mut hub = FakeDevice::hub(4);
    hub.hub.as_mut().expect("hub").stall_port_power = true;
    hub.hub_plug(2, FakeDevice::keyboard());
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (2, 0), "{s:?}");
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x2), hi());
}

/// CLEAR_TT_BUFFER (USB 2.0 §11.24.2.3) for both directions of EP0 of a
/// full-speed keyboard behind a high-speed hub whose control transfer was
/// aborted (here a STALLed SET_IDLE): wValue the device address (10:4) and
/// endpoint 0, type control, direction in bit 15; wIndex the TT's port on
/// a multi-TT hub, 1 on a single-TT hub (Linux `hub_tt_work`).
#[test]
fn clear_tt_buffer_after_aborted_control_behind_high_speed_hub() {
    for multi_tt in [false, true] {
        let mut hub = FakeDevice::high_speed_hub(4, multi_tt);
        let mut kbd = FakeDevice::keyboard();
        kbd.stall_set_idle = true;
        hub.hub_plug(3, kbd);
        let (mut c, h) = start(std::vec![(1, hub)], Config::default());
        let s = c.poll_settled();
        assert_eq!(s.attached, 2, "{s:?}");
        let kbd_slot = c.devices().find(|d| d.is_keyboard).expect("keyboard").slot;
        let clears = h.with(|m, _| {
            m.ports[0]
                .as_ref()
                .expect("hub")
                .hub
                .as_ref()
                .expect("hub")
                .tt_clears
                .clone()
        });
        let info = u16::from(kbd_slot) << 4; // the fake's USB address is the slot ID
        let tt = if multi_tt { 3 } else { 1 };
        assert_eq!(
            clears,
            [(info, tt), (info | 0x8000, tt)],
            "multi-TT {multi_tt}"
        );
        assert_eq!(type_hi_at(&mut c, &h, 1, 0x3), hi());
    }
}

/// No TT, no CLEAR_TT_BUFFER: the same STALL behind a full-speed hub.
#[test]
fn no_clear_tt_buffer_behind_full_speed_hub() {
    let mut hub = FakeDevice::hub(4);
    let mut kbd = FakeDevice::keyboard();
    kbd.stall_set_idle = true;
    hub.hub_plug(3, kbd);
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    assert_eq!(c.poll_settled().attached, 2);
    let log = hub_log(&h, hub_slot(&c));
    assert!(log.iter().all(|r| r.setup[..2] != [0x23, 8]), "{log:?}");
}

/// A hub port is debounced too (USB 2.0 §7.1.7.3, Linux
/// `hub_port_debounce`): 100 ms between the connection seen by
/// GET_STATUS and the port reset.
#[test]
fn hub_port_connection_is_debounced() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::hub(4))], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    let hub = hub_slot(&c);
    let seen = h.0.borrow().now_us;
    h.with(|m, _| {
        m.ports[0]
            .as_mut()
            .expect("hub")
            .hub_plug(2, FakeDevice::keyboard())
    });
    h.run();
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    let log = hub_log(&h, hub);
    let reset = log
        .iter()
        .find(|r| r.setup[..4] == [0x23, 3, 4, 0] && r.at_us >= seen)
        .expect("PORT_RESET");
    assert!(
        reset.at_us - seen >= 100_000,
        "reset {} us after the connection",
        reset.at_us - seen
    );
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x2), hi());
}

/// A hub port disabled under a connected device (PORT_ENABLE cleared,
/// C_PORT_ENABLE set: USB 2.0 §11.24.2.7.2.2) is enumerated afresh.
#[test]
fn hub_port_disabled_while_connected_is_reenumerated() {
    let mut hub = FakeDevice::hub(4);
    hub.hub_plug(1, FakeDevice::keyboard());
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    assert_eq!(c.poll_settled().attached, 2);
    h.with(|m, _| {
        let p = &mut m.ports[0]
            .as_mut()
            .expect("hub")
            .hub
            .as_mut()
            .expect("hub")
            .ports[0];
        p.status &= !2;
        p.change |= 2;
    });
    h.run();
    let mut s = c.poll_settled();
    for _ in 0..4 {
        if s.attached > 0 {
            break;
        }
        h.run();
        s = c.poll_settled();
    }
    assert_eq!((s.detached, s.attached), (1, 1), "{s:?}");
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x1), hi());
}
