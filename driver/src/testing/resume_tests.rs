//! Break-in round trips against the fake: interrupt mode -> polled mode ->
//! interrupt mode, with the rings kept (`resume.rs`).
extern crate std;

use super::tests::{Ctrl, hi, keys, press, start, type_hi};
use super::*;
use crate::DecodedKey;
use crate::types::Config;

const USBCMD: usize = 0x40;
const IMAN: usize = 0x1000 + 0x20;
const ERDP: usize = 0x1000 + 0x38;
const INTE: u32 = 1 << 2;
const IE: u32 = 1 << 1;
const IP: u32 = 1 << 0;
const EHB: u32 = 1 << 3;

fn iman(h: &FakeHandle) -> u32 {
    h.with(|m, _| m.reg(IMAN))
}

fn usbcmd(h: &FakeHandle) -> u32 {
    h.with(|m, _| m.reg(USBCMD))
}

fn clear_ip(h: &FakeHandle) {
    h.with(|m, _| m.set_reg(IMAN, m.reg(IMAN) & !IP));
}

/// An interrupt-driven controller with a keyboard on port 1, enumerated.
fn armed_keyboard() -> (Ctrl, FakeHandle) {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    assert!(c.interrupt_mode());
    assert_eq!(iman(&h) & IE, IE, "armed at start");
    assert_eq!(usbcmd(&h) & INTE, INTE, "INTE at start");
    (c, h)
}

#[test]
fn polled_interrupt_polled_round_trips_keep_the_rings() {
    let (mut c, h) = armed_keyboard();
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    for round in 0..5 {
        assert!(c.pause_interrupts(), "round {round}: was in interrupt mode");
        assert!(!c.interrupt_mode());
        assert_eq!(iman(&h) & IE, 0, "round {round}: IE cleared");
        clear_ip(&h); // the fake's IMAN is plain memory, not RW1C
        assert_eq!(usbcmd(&h) & INTE, 0, "round {round}: INTE cleared");
        let enqueue_before = h.with(|m, _| m.event_enqueue());
        // Polled: keys arrive by poll() alone and raise no interrupt.
        assert_eq!(type_hi(&mut c, &h, 1), hi(), "round {round}: polled typing");
        assert_eq!(iman(&h) & IP, 0, "round {round}: no interrupt while masked");
        assert_ne!(h.with(|m, _| m.event_enqueue()), enqueue_before);
        // A key typed at db> and not consumed is dropped on resume.
        press(&h, 1, [0, 0, 0x1b, 0, 0, 0, 0, 0]); // x
        press(&h, 1, [0; 8]);
        for _ in 0..4 {
            c.poll();
            h.run();
        }
        h.with(|m, _| m.set_reg(ERDP, m.reg(ERDP) | EHB));
        let r = c.resume_interrupt_mode();
        assert_eq!(r.keys_discarded, 1, "round {round}: {r:?}");
        assert!(c.interrupt_mode());
        assert_eq!(iman(&h) & IE, IE, "round {round}: IE set again");
        assert_eq!(usbcmd(&h) & INTE, INTE, "round {round}: INTE set again");
        let erdp = h.with(|m, _| m.reg(ERDP));
        assert_eq!(
            erdp & EHB,
            EHB,
            "round {round}: EHB written as 1 (RW1C clear)"
        );
        let (base, enq, _) = h.with(|m, _| m.event_enqueue());
        assert_eq!(
            u64::from(erdp & !0xf),
            (base + u64::from(enq) * 16) & 0xffff_fff0,
            "round {round}: ERDP at the event ring's dequeue = enqueue (nothing left)"
        );
        assert_eq!(keys(&mut c), [], "round {round}: nothing replayed");
        // Interrupt mode again: the next key raises IMAN.IP.
        clear_ip(&h);
        press(&h, 1, [0, 0, 0x0b, 0, 0, 0, 0, 0]);
        assert_eq!(iman(&h) & IP, IP, "round {round}: the key interrupts again");
        press(&h, 1, [0; 8]);
        c.ack_interrupt();
        c.poll();
        h.run();
        c.poll();
        assert_eq!(keys(&mut c), [DecodedKey::Unicode('h')], "round {round}");
    }
}

#[test]
fn a_keyboard_plugged_while_polled_types_after_resume() {
    let (mut c, h) = armed_keyboard();
    assert!(c.pause_interrupts());
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    let attached = c.poll_settled().attached;
    assert_eq!(attached, 1, "enumerated by polled poll()s");
    assert_eq!(type_hi(&mut c, &h, 2), hi(), "types at db>");
    c.resume_interrupt_mode();
    clear_ip(&h);
    assert_eq!(type_hi(&mut c, &h, 2), hi(), "types after continue");
    assert_eq!(iman(&h) & IP, IP, "and interrupts");
    assert_eq!(type_hi(&mut c, &h, 1), hi(), "the first keyboard too");
}

#[test]
fn a_polled_only_controller_is_left_polled() {
    let (mut c, h) = start(
        std::vec![(1, FakeDevice::keyboard())],
        Config {
            interrupts: false,
            ..Config::default()
        },
    );
    c.poll();
    assert!(!c.pause_interrupts(), "was not in interrupt mode");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn ctrl_alt_esc_is_reported_once_through_the_controller() {
    let (mut c, h) = armed_keyboard();
    press(&h, 1, [0x05, 0, 0, 0, 0, 0, 0, 0]);
    press(&h, 1, [0x05, 0, 0x29, 0, 0, 0, 0, 0]);
    press(&h, 1, [0; 8]);
    for _ in 0..4 {
        c.poll();
        h.run();
    }
    assert!(c.take_break_request());
    assert!(!c.take_break_request());
    assert_eq!(keys(&mut c), []);
}
