//! The kernel's panic-test hooks: a No Op command left in flight and an
//! enumeration stopped at a chosen step.
extern crate std;

use core::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::vec::Vec;

use super::tests::{Ctrl, hi, press, start, type_hi};
use super::*;
use crate::types::{Config, DeviceState};
use crate::{EnumerationStep, Error};

std::thread_local! {
    static STOP_AT: Cell<Option<EnumerationStep>> = const { Cell::new(None) };
    static SEEN: RefCell<Vec<EnumerationStep>> = const { RefCell::new(Vec::new()) };
}

/// Records every step; at `STOP_AT` it unwinds out of the driver, leaving
/// the controller exactly as a CPU stopped inside the probe would.
fn stopping_probe(step: EnumerationStep) {
    SEEN.with(|s| s.borrow_mut().push(step));
    if STOP_AT.get() == Some(step) {
        STOP_AT.set(None);
        panic!("simulated CPU stop at {step:?}");
    }
}

/// Runs `poll()` with the probe stopping at `step`; returns the steps seen.
pub(super) fn poll_stopped_at(c: &mut Ctrl, step: EnumerationStep) -> Vec<EnumerationStep> {
    SEEN.with(|s| s.borrow_mut().clear());
    STOP_AT.set(Some(step));
    c.set_enumeration_probe(Some(stopping_probe));
    let result = catch_unwind(AssertUnwindSafe(|| c.poll_settled()));
    assert!(result.is_err(), "the probe stopped the enumeration");
    SEEN.with(|s| s.borrow().clone())
}

#[test]
fn noop_command_completes_in_poll() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    c.submit_noop_command().expect("queued");
    assert!(c.pending_command.is_some());
    assert!(
        matches!(c.submit_noop_command(), Err(Error::Unsupported { .. })),
        "one command at a time"
    );
    h.run();
    assert!(h.with(|m, _| m.commands.contains(&23)), "No Op executed");
    c.poll_settled();
    assert!(c.pending_command.is_none(), "completion consumed by poll");
    // the ring keeps working for real commands
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}

#[test]
fn takeover_with_noop_command_in_flight() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    // the controller never gets to it before the CPU is stopped
    h.with(|m, _| m.freeze_commands = true);
    c.submit_noop_command().expect("queued");
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert!(
        report.command_aborted && report.command_ring_reset,
        "{report}"
    );
    assert!(!report.full_reset, "{report}");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    // and without the freeze, a No Op in flight simply completes
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    c.submit_noop_command().expect("queued");
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert!(
        report.command_completed && !report.command_aborted,
        "{report}"
    );
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    // and a No Op whose completion already waits on the event ring when the
    // CPU stops (QEMU completes a No Op at once) is reported completed too
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    c.submit_noop_command().expect("queued");
    h.with(|m, mem| m.step(mem));
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert!(
        report.command_completed && !report.command_aborted,
        "a completion already on the event ring: {report}"
    );
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn probe_sees_every_step() {
    let (mut c, _h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    SEEN.with(|s| s.borrow_mut().clear());
    c.set_enumeration_probe(Some(stopping_probe));
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(
        SEEN.with(|s| s.borrow().clone()),
        [
            EnumerationStep::SlotEnabled,
            EnumerationStep::Addressed,
            EnumerationStep::DescriptorRead,
            EnumerationStep::Configured
        ]
    );
}

#[test]
fn cpu_stopped_at_addressed_is_recovered_by_takeover() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    let seen = poll_stopped_at(&mut c, EnumerationStep::Addressed);
    assert_eq!(
        seen,
        [EnumerationStep::SlotEnabled, EnumerationStep::Addressed]
    );
    assert_eq!(c.devices[0].state, Some(DeviceState::Enumerating));
    assert_eq!(h.with(|m, _| m.address_log.len()), 1, "addressed once");
    let allocations = h.0.borrow().allocations.len();
    // SAFETY: single-threaded test; the "stopped CPU" unwound out of poll().
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert_eq!(report.enumerations_restarted, 1, "{report}");
    assert!(!report.full_reset, "{report}");
    assert!(c.enumeration_probe.is_none(), "takeover removes the hook");
    assert!(h.with(|m, _| m.commands.contains(&10)), "Disable Slot");
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    assert_eq!(h.with(|m, _| m.address_log.len()), 2, "addressed again");
    assert_eq!(c.devices().filter(|d| d.is_keyboard).count(), 1);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert_eq!(h.0.borrow().allocations.len(), allocations);
}

/// A CPU stopped inside the LED report (SET_REPORT, with a one-byte data
/// stage) that Caps Lock sends over a keyboard's EP0, with the Setup TRB (or
/// Setup and Data) queued and neither the Status TRB nor the doorbell: the
/// takeover stops and rewinds EP0, the lost LED report goes out again, and
/// Caps Lock, its LEDs and typing work afterwards without a transfer error.
#[test]
fn takeover_restarts_ep0_caught_mid_control_transfer() {
    for point in [StopPoint::ControlSetupQueued, StopPoint::ControlDataQueued] {
        let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
        assert_eq!(c.poll_settled().attached, 1);
        assert!(!c.devices[0].ep0_busy(), "enumeration left EP0 at rest");
        let leds = |h: &FakeHandle| h.with(|m, _| m.ports[0].as_ref().unwrap().leds.clone());
        let sent = leds(&h).len();
        press(&h, 1, [0, 0, 0x39, 0, 0, 0, 0, 0]); // Caps Lock
        stop_at(Some(point));
        let stopped = catch_unwind(AssertUnwindSafe(|| c.poll_settled()));
        stop_at(None);
        assert!(
            stopped.is_err(),
            "{point:?}: the CPU stopped in the LED report"
        );
        assert_eq!(
            leds(&h).len(),
            sent,
            "{point:?}: the LED report never went out"
        );
        let set_dequeue =
            |h: &FakeHandle| h.with(|m, _| m.commands.iter().filter(|&&k| k == 16).count());
        let before = set_dequeue(&h);
        // SAFETY: single-threaded test; the "stopped CPU" unwound out of poll().
        let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
        assert!(!report.full_reset && !report.dead, "{point:?}: {report}");
        assert_eq!(
            set_dequeue(&h) - before,
            2,
            "{point:?}: EP0 and the interrupt endpoint rewound: {report}"
        );
        for (report, byte) in [(0x00, 0b011), (0x39, 0b001), (0x00, 0b001)] {
            press(&h, 1, [0, 0, report, 0, 0, 0, 0, 0]); // release, Caps Lock again, release
            let s = c.poll_settled();
            assert_eq!(s.errors, 0, "{point:?}: {s:?}");
            assert_eq!(
                leds(&h).last(),
                Some(&byte),
                "{point:?}: LEDs after {report:#x}"
            );
        }
        assert!(!c.keyboard_stats().leds.caps_lock);
        assert!(!c.devices[0].ep0_busy(), "{point:?}: EP0 at rest");
        assert_eq!(type_hi(&mut c, &h, 1), hi(), "{point:?}");
    }
}
