//! The panic takeover of a controller no CPU was inside (`Left::Whole`):
//! the state is kept, nothing is repaired, and every keyboard is armed
//! when it returns (the panic console's prompt waits for no quiet bus).
extern crate std;

use super::tests::{Ctrl, hi, keys, leave_a_command_in_flight, press, start, type_hi};
use super::*;
use crate::types::Config;
use crate::{DecodedKey, Left};

const IMAN: usize = 0x1000 + 0x20;
const IE: u32 = 1 << 1;

fn commands(h: &FakeHandle) -> usize {
    h.with(|m, _| m.commands.len())
}

/// An interrupt-driven controller with a keyboard on port 1, enumerated
/// and typed on.
fn typing_keyboard() -> (Ctrl, FakeHandle) {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    (c, h)
}

#[test]
fn whole_takeover_keeps_the_state_and_the_first_key_arrives_at_the_first_poll() {
    let (mut c, h) = typing_keyboard();
    let before = commands(&h);
    let outstanding = c.devices[0].intr_outstanding;
    assert!(outstanding.is_some());
    // SAFETY: single-threaded test; nothing else uses the controller.
    let report = unsafe { c.enter_polled_mode(Left::Whole) };
    assert!(report.kept_whole, "{report}");
    assert!(
        !report.command_ring_reset && report.endpoints_restarted == 0,
        "{report}"
    );
    assert!(std::format!("{report}").contains("state kept"), "{report}");
    assert_eq!(commands(&h), before, "a whole takeover issues no command");
    assert_eq!(
        c.devices[0].intr_outstanding, outstanding,
        "the same transfer stays queued"
    );
    assert!(!c.info().interrupt_mode);
    h.with(|m, _| assert_eq!(m.reg(IMAN) & IE, 0, "IMAN.IE cleared"));
    assert!(c.keyboards_armed(), "armed as the takeover returns");
    // The key pressed right after the prompt: one poll reads it.
    press(&h, 1, [0, 0, 0x0b, 0, 0, 0, 0, 0]); // h
    c.poll();
    assert_eq!(c.next_key(), Some(DecodedKey::Unicode('h')));
    press(&h, 1, [0; 8]);
    c.poll();
    assert_eq!(keys(&mut c), []);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// A key whose report came in before the takeover (its interrupt taken by
/// no one: `trigger=usb-irq` panics in that very interrupt) is decoded by
/// the takeover's drain and dropped: it was typed for the world that
/// panicked; the first key after the takeover is the first one out.
#[test]
fn keys_typed_before_the_takeover_are_dropped() {
    let (mut c, h) = typing_keyboard();
    press(&h, 1, [0, 0, 0x04, 0, 0, 0, 0, 0]); // a
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(Left::Whole) };
    assert_eq!(report.keys_dropped, 1, "{report}");
    assert!(
        std::format!("{report}").contains("1 earlier key(s) dropped"),
        "{report}"
    );
    assert_eq!(c.next_key(), None, "the key typed before came out");
    press(&h, 1, [0; 8]);
    c.poll();
    assert_eq!(keys(&mut c), []);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn whole_takeover_with_a_command_left_pending_repairs_all_the_same() {
    let (mut c, h) = typing_keyboard();
    // A command that timed out earlier is still on the ring.
    leave_a_command_in_flight(&mut c, &h);
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(Left::Whole) };
    assert!(!report.kept_whole, "{report}");
    assert!(
        report.command_ring_reset && report.command_aborted,
        "{report}"
    );
    assert!(!report.full_reset, "{report}");
    assert!(c.keyboards_armed());
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn keyboards_armed_waits_for_the_transfer_to_be_queued_again() {
    let (mut c, h) = typing_keyboard();
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(Left::Whole) };
    assert!(report.kept_whole, "{report}");
    // An endpoint error left the keyboard waiting for its restart.
    c.devices[0].intr_outstanding = None;
    c.devices[0].intr_needs_restart = true;
    assert!(!c.keyboards_armed());
    for _ in 0..4 {
        c.poll();
        h.run();
    }
    assert!(c.keyboards_armed(), "the poll restarted and re-armed it");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// The takeover's report is printed before the panic prompt, where every
/// byte costs time on a serial line: it names only what happened, and the
/// report of a driver left whole is one short phrase.
#[test]
fn the_report_names_only_what_happened() {
    use crate::TakeoverReport;
    let whole = TakeoverReport {
        kept_whole: true,
        ..TakeoverReport::default()
    };
    assert_eq!(
        std::format!("{whole}"),
        "state kept (no CPU was inside the driver)"
    );
    let repaired = TakeoverReport {
        events_drained: 2,
        command_completed: true,
        ..TakeoverReport::default()
    };
    assert_eq!(
        std::format!("{repaired}"),
        "2 events drained, pending command completed"
    );
    assert_eq!(
        std::format!("{}", TakeoverReport::default()),
        "nothing to repair"
    );
}
