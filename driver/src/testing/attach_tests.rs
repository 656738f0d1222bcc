//! Attach as stages (`attach.rs`): no `poll()` waits out the connect
//! debounce or a recovery interval, and every USB 2.0 timing still holds
//! (§7.1.7.3 TATTDB 100 ms, §7.1.7.5 TRSTRCY, §9.2.6.3 SET_ADDRESS recovery).
//! Each test calls `poll()` itself, with the fake clock moving 1 ms between
//! polls as a kernel's 1 kHz loop would.
extern crate std;

use std::vec::Vec;

use super::tests::{Ctrl, hi, start, type_hi, type_hi_at};
use super::*;
use crate::types::Config;

/// The longest one `poll()` may take on the fake clock: the busy-waits for
/// completions the fake answers at once (10 µs steps), never a time delay.
const POLL_BOUND_US: u64 = 1_000;

/// Enable Slot commands the fake has seen.
fn enable_slots(h: &FakeHandle) -> usize {
    h.with(|m, _| m.commands.iter().filter(|&&k| k == 9).count())
}

/// One `poll()`, checked to stay within [`POLL_BOUND_US`] of fake time;
/// returns the devices it attached.
fn bounded_poll(c: &mut Ctrl, h: &FakeHandle) -> u32 {
    let before = h.0.borrow().now_us;
    let s = c.poll();
    let took = h.0.borrow().now_us - before;
    assert!(
        took < POLL_BOUND_US,
        "one poll() took {took} us of fake time ({s:?})"
    );
    s.attached
}

/// Polls every millisecond until a device is attached; returns the fake
/// time it took from `since`, and checks that no Enable Slot was issued
/// before `quiet_until` (nothing addressed during the debounce).
fn poll_until_attached(c: &mut Ctrl, h: &FakeHandle, since: u64, quiet_until: u64) -> u64 {
    for _ in 0..2_000 {
        let attached = bounded_poll(c, h);
        let now = h.0.borrow().now_us;
        if now < quiet_until {
            assert_eq!(
                enable_slots(h),
                0,
                "a slot was enabled {} us after the connection, within the debounce",
                now - since
            );
        }
        if attached > 0 {
            return now - since;
        }
        h.advance_ms(1);
        h.run();
    }
    panic!("the device was never attached");
}

/// A new connection: each `poll()` returns at once, the device is attached
/// by the polls after the 100 ms debounce, not before, and types.
#[test]
fn no_poll_waits_out_the_debounce_and_the_100_ms_still_hold() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    let plugged = h.0.borrow().now_us;
    let took = poll_until_attached(&mut c, &h, plugged, plugged + 100_000);
    // debounce 100 ms, reset recovery 10 ms, SET_ADDRESS recovery 10 ms
    assert!(
        (120_000..200_000).contains(&took),
        "attached {took} us after the connection"
    );
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// A connection that bounces mid-debounce (CSC again at 60 ms) starts the
/// 100 ms over: nothing is addressed until 100 ms after the bounce.
#[test]
fn a_connect_bounce_restarts_the_debounce() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    let plugged = h.0.borrow().now_us;
    for _ in 0..60 {
        assert_eq!(bounded_poll(&mut c, &h), 0);
        h.advance_ms(1);
        h.run();
    }
    h.with(|m, mem| {
        m.unplug(mem, 1);
        m.plug(mem, 1, FakeDevice::keyboard());
    });
    let bounced = h.0.borrow().now_us;
    let took = poll_until_attached(&mut c, &h, plugged, bounced + 100_000);
    assert!(
        took >= 160_000,
        "attached {took} us after the first connection, the bounce was at 60 ms"
    );
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// A device caught mid-debounce by the takeover (`enter_polled_mode`) is
/// debounced afresh and attached by later polls; the takeover itself does
/// not wait for it.
#[test]
fn a_device_mid_debounce_at_takeover_finishes_in_later_polls() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    for _ in 0..30 {
        assert_eq!(bounded_poll(&mut c, &h), 0);
        h.advance_ms(1);
        h.run();
    }
    let before = h.0.borrow().now_us;
    // SAFETY: single-threaded test; nothing else drives the controller.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    let took = h.0.borrow().now_us - before;
    assert!(!report.full_reset && !report.dead, "{report}");
    assert!(took < 5_000, "the takeover took {took} us");
    assert_eq!(enable_slots(&h), 0, "{report}");
    let taken = h.0.borrow().now_us;
    let took = poll_until_attached(&mut c, &h, taken, taken + 100_000);
    assert!(took >= 120_000, "attached {took} us after the takeover");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// Two devices connected at once are attached one after the other (one
/// device at the default address, USB 2.0 §9.1.2), each debounced; the
/// second waits its turn without any poll blocking.
#[test]
fn two_connections_are_attached_in_turn() {
    let (mut c, h) = start(
        std::vec![(1, FakeDevice::keyboard()), (2, FakeDevice::keyboard())],
        Config::default(),
    );
    let plugged = h.0.borrow().now_us;
    let mut attached_at = Vec::new();
    for _ in 0..2_000 {
        if bounded_poll(&mut c, &h) > 0 {
            attached_at.push(h.0.borrow().now_us - plugged);
        }
        if attached_at.len() == 2 {
            break;
        }
        h.advance_ms(1);
        h.run();
    }
    assert_eq!(attached_at.len(), 2, "{attached_at:?}");
    assert!(
        attached_at[1] - attached_at[0] >= 100_000,
        "the second device was not debounced on its turn: {attached_at:?}"
    );
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}

/// Behind a hub: its power-good wait (at least 100 ms, USB 2.0 §11.23.2.1)
/// and its port's debounce are stages too; no poll blocks and the keyboard
/// behind it types.
#[test]
fn hub_power_good_and_hub_port_debounce_do_not_block() {
    let mut hub = FakeDevice::hub(4);
    hub.hub_plug(1, FakeDevice::keyboard());
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    let plugged = h.0.borrow().now_us;
    let mut keyboards = 0;
    for _ in 0..3_000 {
        bounded_poll(&mut c, &h);
        keyboards = c.devices().filter(|d| d.is_keyboard).count();
        if keyboards == 1 {
            break;
        }
        h.advance_ms(1);
        h.run();
    }
    assert_eq!(
        keyboards, 1,
        "the keyboard behind the hub was never attached"
    );
    let took = h.0.borrow().now_us - plugged;
    // root debounce 100 + hub power-good 100 + hub port debounce 100 (+ recoveries)
    assert!(took >= 300_000, "keyboard behind the hub after {took} us");
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x1), hi());
}
