//! Full controller resets against the fake: no key stays held across one,
//! the lock keys survive it, and the takeover keeps to its time budget when
//! the controller stops responding or is slow.
extern crate std;

use super::machine::Faults;
use super::tests::{Ctrl, keys, press, start};
use super::*;
use crate::types::Config;
use crate::{DecodedKey, Error, KeyCode};

/// The two ways a full reset happens: `poll()` finds the controller failed
/// (HSE, `recover_or_die`), or the takeover's repair fails and it falls back
/// to `initialize()`.
#[derive(Debug, Clone, Copy)]
enum ResetBy {
    Poll,
    Takeover,
}

/// Makes the controller report a Host System Error and lets `how` react to
/// it with a full reset; checks that the fake saw a controller reset.
fn full_reset(c: &mut Ctrl, h: &FakeHandle, how: ResetBy) {
    let resets = h.with(|m, _| m.resets);
    h.with(|m, _| m.host_system_error());
    match how {
        ResetBy::Poll => {
            let s = c.poll_settled();
            assert_eq!(s.last_error, Some(Error::HostSystemError), "{s:?}");
        }
        ResetBy::Takeover => {
            // SAFETY: single-threaded test; nothing else uses the controller.
            let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
            assert!(report.full_reset && !report.dead, "{report}");
        }
    }
    assert!(!c.is_dead());
    assert!(
        h.with(|m, _| m.resets) > resets,
        "{how:?}: no controller reset"
    );
}

/// A keyboard holds Left-Ctrl + `a` when the controller is reset: after the
/// reset and re-enumeration nothing repeats, and a lone `c` is a `c`, not
/// Ctrl-C (U+0003).
fn held_keys_are_released(how: ResetBy) {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    press(&h, 1, [0x01, 0, 0x04, 0, 0, 0, 0, 0]); // Left-Ctrl + a, held
    c.poll_settled();
    assert_eq!(keys(&mut c), [DecodedKey::Unicode('\u{1}')]);
    assert!(c.repeat_pending());
    full_reset(&mut c, &h, how);
    assert!(!c.repeat_pending(), "{how:?}: the held key still repeats");
    assert!(
        c.devices.iter().all(|d| d.previous_report == [0; 8]),
        "{how:?}: a previous report survived"
    );
    assert_eq!(c.poll_settled().attached, 1, "{how:?}: re-enumerated");
    h.advance_ms(2000);
    c.poll_settled();
    assert_eq!(keys(&mut c), [], "{how:?}: the held key repeated");
    press(&h, 1, [0, 0, 0x06, 0, 0, 0, 0, 0]); // c alone
    c.poll_settled();
    assert_eq!(
        keys(&mut c),
        [DecodedKey::Unicode('c')],
        "{how:?}: Ctrl latched"
    );
}

#[test]
fn poll_reset_releases_held_keys() {
    held_keys_are_released(ResetBy::Poll);
}

#[test]
fn takeover_reset_releases_held_keys() {
    held_keys_are_released(ResetBy::Takeover);
}

/// Caps Lock on, Num Lock off and Left-Shift held at the reset: Shift is
/// released, the lock keys keep their state (in the LEDs sent to the
/// re-enumerated keyboard and in decoding).
fn lock_keys_survive(how: ResetBy) {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    for report in [0x39, 0, 0x53, 0] {
        press(&h, 1, [0, 0, report, 0, 0, 0, 0, 0]); // Caps Lock, Num Lock
        c.poll_settled();
    }
    press(&h, 1, [0x02, 0, 0, 0, 0, 0, 0, 0]); // Left-Shift, held
    c.poll_settled();
    let leds = c.keyboard_stats().leds;
    assert!(leds.caps_lock && !leds.num_lock, "{leds:?}");
    full_reset(&mut c, &h, how);
    assert_eq!(c.poll_settled().attached, 1, "{how:?}: re-enumerated");
    assert_eq!(c.keyboard_stats().leds, leds, "{how:?}");
    h.with(|m, _| {
        let sent = m.ports[0].as_ref().expect("keyboard").leds.last().copied();
        assert_eq!(sent, Some(0b010), "{how:?}: LEDs sent after the reset");
    });
    for report in [0x06, 0, 0x59] {
        press(&h, 1, [0, 0, report, 0, 0, 0, 0, 0]); // c, keypad 1
        c.poll_settled();
    }
    assert_eq!(
        keys(&mut c),
        [DecodedKey::Unicode('C'), DecodedKey::RawKey(KeyCode::End)],
        "{how:?}: Caps Lock on, Num Lock off, Shift released"
    );
}

#[test]
fn poll_reset_keeps_lock_keys() {
    lock_keys_survive(ResetBy::Poll);
}

#[test]
fn takeover_reset_keeps_lock_keys() {
    lock_keys_survive(ResetBy::Takeover);
}

/// A controller that stops responding, or answers too slowly, at takeover.
struct Stuck {
    name: &'static str,
    faults: Faults,
    /// The takeover must end with a dead controller (else: a full reset).
    dead: bool,
    /// Part of the one-line reason in the report.
    reason: &'static str,
}

const NEVER: u64 = u64::MAX;

fn stuck_controllers() -> [Stuck; 5] {
    [
        Stuck {
            name: "slow commands, reset never completes",
            faults: Faults {
                command_latency_us: 400_000,
                reset_takes_us: NEVER,
                ..Faults::default()
            },
            dead: true,
            reason: "timed out waiting for controller reset (USBCMD.HCRST)",
        },
        Stuck {
            name: "slow commands, never halts",
            faults: Faults {
                command_latency_us: 450_000,
                never_halts: true,
                ..Faults::default()
            },
            dead: true,
            reason: "timed out waiting for controller halt (USBSTS.HCH)",
        },
        Stuck {
            name: "commands hung, reset never completes",
            faults: Faults {
                commands_hung: true,
                reset_takes_us: NEVER,
                ..Faults::default()
            },
            dead: true,
            reason: "timed out waiting for controller reset (USBCMD.HCRST)",
        },
        Stuck {
            name: "commands hung, never halts",
            faults: Faults {
                commands_hung: true,
                never_halts: true,
                ..Faults::default()
            },
            dead: true,
            reason: "timed out waiting for controller halt (USBSTS.HCH)",
        },
        Stuck {
            name: "slow commands, reset works",
            faults: Faults {
                command_latency_us: 400_000,
                ..Faults::default()
            },
            dead: false,
            reason: "FULL RESET (timed out waiting for ",
        },
    ]
}

/// Four keyboards and a No Op in flight, then the controller stops
/// responding (or slows down): the takeover ends within about its budget
/// of fake time, with a dead controller and its one-line reason (or, when
/// only the repair is too slow, with a full reset).
#[test]
fn takeover_of_a_stuck_controller_keeps_to_its_budget() {
    let budget = crate::takeover::TAKEOVER_BUDGET_US;
    for stuck in stuck_controllers() {
        let name = stuck.name;
        let keyboards = (1..=4).map(|port| (port, FakeDevice::keyboard())).collect();
        let (mut c, h) = start(keyboards, Config::default());
        assert_eq!(c.poll_settled().attached, 4, "{name}");
        press(&h, 1, [0, 0, 0x04, 0, 0, 0, 0, 0]); // a, held
        c.poll_settled();
        assert!(c.repeat_pending(), "{name}");
        c.submit_noop_command().expect("queued");
        h.with(|m, _| m.faults = stuck.faults);
        let before = h.0.borrow().now_us;
        // SAFETY: single-threaded test; nothing else uses the controller.
        let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
        let took = h.0.borrow().now_us - before;
        let text = std::format!("{report}");
        std::println!("{name}: {took} us: {text}");
        assert!(
            took <= budget + budget / 4,
            "{name}: the takeover took {took} us: {text}"
        );
        assert!(report.full_reset, "{name}: {text}");
        assert_eq!(report.dead, stuck.dead, "{name}: {text}");
        assert_eq!(c.is_dead(), stuck.dead, "{name}");
        assert!(
            !text.contains('\n') && text.contains(stuck.reason),
            "{name}: {text}"
        );
        if stuck.dead {
            assert!(text.starts_with("controller DEAD"), "{text}");
            assert_eq!(c.poll_settled(), crate::PollSummary::default(), "{name}");
        }
        assert!(!c.repeat_pending(), "{name}: a key of the dead bus repeats");
        assert_eq!(
            c.deadline_us, None,
            "{name}: the budget outlived the takeover"
        );
    }
}

#[test]
fn takeover_report_of_a_dead_controller_gives_a_reason() {
    let dead = crate::TakeoverReport {
        dead: true,
        ..crate::TakeoverReport::default()
    };
    let text = std::format!("{dead}");
    assert_eq!(text, "controller DEAD (already dead before the takeover)");
    let failed = crate::TakeoverReport {
        dead: true,
        full_reset: true,
        reset_reason: Some(Error::ControllerNotReady),
        ..crate::TakeoverReport::default()
    };
    let text = std::format!("{failed}");
    assert_eq!(
        text,
        "controller DEAD, full reset failed (controller not ready (USBSTS.CNR stuck))"
    );
}

/// Bochs' xHCI runs a stopped interrupt endpoint once more at its old
/// dequeue position with its old cycle state, leaving it Running (seen in
/// `tests/bochs.rs`'s log: "Unknown TRB found", then Set TR Dequeue
/// Pointer failed with Context State Error and the takeover fell back to a
/// full reset). After the ring has wrapped once (cycle state 0), a zeroed
/// ring offered it zeros that look valid; the ring restarted at the stopped
/// cycle state offers nothing, and the endpoint stopped again takes the Set
/// TR Dequeue Pointer, so the takeover needs no reset.
#[test]
fn takeover_restarts_a_wrapped_endpoint_that_is_read_after_stop() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    // One report per interrupt TRB: 20 reports wrap the 16-TRB ring once.
    for i in 0..10 {
        press(&h, 1, [0, 0, 0x04 + i, 0, 0, 0, 0, 0]);
        c.poll_settled();
        press(&h, 1, [0; 8]);
        c.poll_settled();
    }
    assert_eq!(keys(&mut c).len(), 10);
    assert!(
        h.with(|m, _| m.slots[1].eps[3].wraps) % 2 == 1,
        "the interrupt ring did not wrap an odd number of times"
    );
    h.with(|m, _| m.faults.reads_stopped_ring = true);
    // SAFETY: single-threaded test; nothing else uses the controller.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert!(!report.full_reset && !report.dead, "{report}");
    let refusals = h.with(|m, _| m.refusals.clone());
    assert!(refusals.is_empty(), "{refusals:?}");
    press(&h, 1, [0, 0, 0x05, 0, 0, 0, 0, 0]);
    c.poll_settled();
    assert_eq!(keys(&mut c), [DecodedKey::Unicode('b')]);
}

/// The 1 ms after USBCMD.HCRST is Linux's `XHCI_INTEL_HOST` delay: Intel
/// hosts and controllers of unknown PCI ID wait it, others (QEMU's
/// 1b36:000d) go on to poll HCRST and CNR at once.
#[test]
fn only_intel_and_unknown_hosts_wait_after_hcrst() {
    let start_time = |pci_id| {
        let (hal, h) = FakeHandle::new();
        let before = h.0.borrow().now_us;
        let config = Config {
            pci_id,
            ..Config::default()
        };
        // SAFETY: the fake BAR belongs to this controller alone.
        let c = unsafe { crate::Controller::new(hal, super::hal::MMIO_PHYS, config) };
        assert!(c.is_ok(), "controller start failed");
        h.0.borrow().now_us - before
    };
    let qemu = start_time(Some((0x1b36, 0x000d)));
    let intel = start_time(Some((0x8086, 0x1e31)));
    let unknown = start_time(None);
    assert!(
        qemu < 1000 && intel >= 1000 && unknown >= 1000,
        "controller start took {qemu} us (QEMU), {intel} us (Intel), {unknown} us (unknown)"
    );
}
