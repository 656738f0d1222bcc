//! Enumeration as USB 2.0 and the reference drivers do it, against the fake:
//! connect debounce, the BSR = 1 two-step address with a first 64-byte read,
//! full-speed EP0 at 64, retries, SET_ADDRESS recovery, a port disabled
//! under its device, and the warm reset of a USB 3 port.
extern crate std;

use std::vec::Vec;

use super::machine::ControlRecord;
use super::tests::{Ctrl, hi, start, type_hi};
use super::*;
use crate::types::{Config, DeviceState};

/// GET_DESCRIPTOR(device) with wLength `n` (USB 2.0 §9.4.3).
fn get_device_descriptor(n: u8) -> [u8; 8] {
    [0x80, 6, 0, 1, 0, 0, n, 0]
}

/// The control transfers the fake ran on `slot`.
fn controls(h: &FakeHandle, slot: u8) -> Vec<ControlRecord> {
    h.with(|m, _| {
        m.control_log
            .iter()
            .copied()
            .filter(|r| r.slot == usize::from(slot))
            .collect()
    })
}

/// Command TRB types the fake ran, counted by type.
fn count_commands(h: &FakeHandle, kind: u8) -> usize {
    h.with(|m, _| m.commands.iter().filter(|&&k| k == kind).count())
}

fn only_keyboard(c: &Ctrl) -> crate::DeviceInfo {
    let mut keyboards = c.devices().filter(|d| d.is_keyboard);
    let d = keyboards.next().expect("a keyboard");
    assert!(keyboards.next().is_none(), "one keyboard");
    d
}

/// Bochs' xHCI refuses a full-speed Address Device whose EP0 Max Packet
/// Size is not 64: the driver starts a full-speed EP0 at 64 (Linux
/// `hub_port_init`) and only then Evaluates Context down to the device's
/// bMaxPacketSize0 of 8.
#[test]
fn full_speed_ep0_starts_at_64() {
    let (hal, h) = FakeHandle::new();
    h.with(|m, mem| {
        m.faults.full_speed_ep0_must_be_64 = true;
        m.plug(mem, 1, FakeDevice::keyboard()); // full speed, bMaxPacketSize0 8
    });
    // SAFETY: the fake BAR belongs to this controller alone.
    let mut c = unsafe { crate::Controller::new(hal, hal::MMIO_PHYS, Config::default()) }
        .expect("controller init");
    let s = c.poll_settled();
    let refusals = h.with(|m, _| m.refusals.clone());
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?} {refusals:?}");
    assert!(refusals.is_empty(), "{refusals:?}");
    let slot = usize::from(only_keyboard(&c).slot);
    assert_eq!(h.with(|m, _| m.bsr_log.clone()), [(slot, 64)]);
    assert_eq!(h.with(|m, _| m.evaluate_log.clone()), [(slot, 8)]);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// The two-step address of Linux's new scheme on xHCI: Address Device with
/// BSR = 1 (no SET_ADDRESS), GET_DESCRIPTOR(device, 64) at address 0, then
/// Address Device with BSR = 0, the SET_ADDRESS recovery interval (Linux:
/// 10 ms, USB 2.0 §9.2.6.3: at least 2 ms), and the full descriptor.
#[test]
fn two_step_address_reads_64_bytes_at_address_0() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    let d = only_keyboard(&c);
    // Enable Slot, Address Device (BSR = 1), Address Device (BSR = 0)
    assert_eq!(h.with(|m, _| m.commands[..3].to_vec()), [9, 11, 11]);
    assert_eq!(h.with(|m, _| m.bsr_log.len()), 1);
    let log = controls(&h, d.slot);
    assert_eq!(log[0].setup, get_device_descriptor(64), "{log:?}");
    assert_eq!(log[0].addressed_at, None, "first read before SET_ADDRESS");
    assert_eq!(log[1].setup, get_device_descriptor(18), "{log:?}");
    let addressed = log[1].addressed_at.expect("addressed by then");
    assert!(
        log[1].at_us - addressed >= 10_000,
        "SET_ADDRESS recovery: {} us",
        log[1].at_us - addressed
    );
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// USB 2.0 §7.1.7.3: nothing is sent to a newly connected device before its
/// connection was stable for 100 ms (TATTDB, Linux `hub_port_debounce`).
#[test]
fn connection_is_debounced_for_100_ms() {
    let (mut c, h) = start(std::vec![], Config::default());
    c.poll_settled();
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    let plugged = h.0.borrow().now_us;
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    let first = h.with(|m, _| m.control_log[0].at_us);
    assert!(
        first - plugged >= 100_000,
        "first request {} us after the connection",
        first - plugged
    );
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}

/// A device that does not answer its first three attempts is enumerated on
/// the fourth (Linux `PORT_INIT_TRIES`): each failed attempt gives its
/// slot back (Disable Slot) and the port is reset again.
#[test]
fn device_failing_first_attempts_is_retried() {
    let mut kbd = FakeDevice::keyboard();
    kbd.unanswered_setups = 3;
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    assert_eq!(count_commands(&h, 9), 4, "Enable Slot per attempt");
    assert_eq!(count_commands(&h, 10), 3, "Disable Slot per failed attempt");
    assert_eq!(c.devices().count(), 1, "one device listed");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// SET_ADDRESS that fails once is tried again within the same attempt
/// (Linux `SET_ADDRESS_TRIES`), with no new slot or port reset.
#[test]
fn set_address_is_tried_twice() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    h.with(|m, _| m.faults.set_address_failures = 1);
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    assert_eq!(count_commands(&h, 9), 1, "one slot");
    assert_eq!(count_commands(&h, 11), 3, "BSR = 1, then SET_ADDRESS twice");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// A device that never answers: the retries are bounded in count and
/// time, the device is listed as failed, and the port is not latched dead:
/// once the device answers, the next port change (here the controller
/// disabling the port) enumerates it.
#[test]
fn failed_enumeration_is_bounded_and_retried_on_the_next_change() {
    let mut kbd = FakeDevice::keyboard();
    kbd.unanswered_setups = u32::MAX;
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let before = h.0.borrow().now_us;
    let s = c.poll_settled();
    let took = h.0.borrow().now_us - before;
    assert_eq!((s.attached, s.errors), (0, 1), "{s:?}");
    assert!(took < 3_000_000, "enumeration gave up after {took} us");
    assert_eq!(count_commands(&h, 9), 4, "Linux PORT_INIT_TRIES attempts");
    let listed: Vec<_> = c.devices().collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, DeviceState::Failed);
    // nothing new on the port: left alone
    assert_eq!(c.poll_settled().attached, 0);
    h.with(|m, mem| {
        m.ports[0].as_mut().expect("device").unanswered_setups = 0;
        m.disable_port(mem, 1);
    });
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// A root port the controller disabled while the device stays connected
/// (PED cleared, PEC set, CCS set: xHCI 1.2 §4.19.2) is enumerated afresh
/// (Linux `port_event`: "disabled by hub (EMI?), re-enabling...").
#[test]
fn port_disabled_while_connected_is_reenumerated() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    let first = only_keyboard(&c).slot;
    h.with(|m, mem| m.disable_port(mem, 1));
    let s = c.poll_settled();
    assert_eq!((s.detached, s.attached), (1, 1), "{s:?}");
    assert_eq!(c.devices().count(), 1);
    assert_eq!(count_commands(&h, 10), 1, "old slot disabled");
    let _ = first;
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// A USB 3 root port whose link fell to SS.Inactive (PLS 6) or Compliance
/// Mode (PLS 10) gets a warm reset (PORTSC.WPR, xHCI 1.2 §4.19.5.1, Linux
/// `hub_port_warm_reset_required`) and its device is enumerated again.
#[test]
fn usb3_port_in_ss_inactive_or_compliance_gets_warm_reset() {
    for pls in [6u32, 10] {
        // the fake does not mind the speed of a device on a USB 3 port
        let (mut c, h) = start(std::vec![(3, FakeDevice::keyboard())], Config::default());
        assert_eq!(c.poll_settled().attached, 1, "PLS {pls}");
        assert_eq!(h.with(|m, _| m.warm_resets), 0);
        h.with(|m, mem| m.link_inactive(mem, 3, pls));
        let s = c.poll_settled();
        assert_eq!((s.detached, s.attached), (1, 1), "PLS {pls}: {s:?}");
        assert_eq!(h.with(|m, _| m.warm_resets), 1, "PLS {pls}");
        let portsc = h.with(|m, _| m.port_status(3));
        assert_eq!((portsc >> 5) & 0xf, 0, "link in U0: {portsc:#x}");
        assert_eq!(portsc & (1 << 19), 0, "WRC cleared: {portsc:#x}");
        assert_eq!(type_hi(&mut c, &h, 3), hi(), "PLS {pls}");
    }
}

/// A device listed as failed is not enumerated again just because its
/// port is seen disabled (a level, not an event: the port of a device that
/// never answers may stay so): another change on the port (here an
/// over-current change, PORTSC.OCC) leaves it alone.
#[test]
fn failed_device_on_a_disabled_port_is_left_alone() {
    const OVER_CURRENT_CHANGE: u32 = 1 << 20;
    let mut kbd = FakeDevice::keyboard();
    kbd.unanswered_setups = u32::MAX;
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    assert_eq!(c.poll_settled().attached, 0);
    let enables = count_commands(&h, 9);
    h.with(|m, mem| m.drop_port_enable(mem, 1, OVER_CURRENT_CHANGE));
    let s = c.poll_settled();
    assert_eq!((s.attached, s.detached), (0, 0), "{s:?}");
    assert_eq!(count_commands(&h, 9), enables, "no new attempt");
    assert_eq!(
        c.devices().next().map(|d| d.state),
        Some(DeviceState::Failed)
    );
}

/// A link a warm reset does not bring back (stuck in Compliance Mode) gets
/// one warm reset, an error, and is then left alone: the port change
/// events of that warm reset do not start another one.
#[test]
fn link_stuck_in_compliance_is_warm_reset_once() {
    let (mut c, h) = start(std::vec![(3, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    h.with(|m, mem| {
        m.faults.warm_reset_useless = true;
        m.link_inactive(mem, 3, 10);
    });
    let s = c.poll_settled();
    assert_eq!((s.detached, s.errors), (1, 1), "{s:?}");
    for _ in 0..4 {
        h.run();
        c.poll_settled();
    }
    assert_eq!(h.with(|m, _| m.warm_resets), 1);
}
