//! Error recovery as the reference drivers do it, against the fake: soft
//! retries of transaction errors (xHCI 1.2 §4.6.8.1, Linux
//! `xhci_handle_halted_endpoint`), Reset Endpoint plus
//! CLEAR_FEATURE(ENDPOINT_HALT) after a stall (USB 2.0 §9.4.1, Linux
//! `usb_clear_halt`), control TDs that never straddle the Link TRB, CNR
//! before the first operational register write (xHCI 1.2 §4.2), and the
//! long timeouts of interrupt mode that polled mode does not use.
extern crate std;

use std::vec::Vec;

use super::hal::MMIO_PHYS;
use super::machine::Faults;
use super::tests::{Ctrl, hi, start, type_hi};
use super::*;
use crate::descriptor::SetupPacket;
use crate::trb::{CompletionCode, command};
use crate::types::{Config, DeviceState};
use crate::{Controller, Error};

/// Slot and DCI of the keyboard's interrupt IN endpoint (EP 1 IN).
const KEYBOARD: (usize, usize) = (1, 3);

/// A keyboard on port 1, enumerated.
fn keyboard() -> (Ctrl, FakeHandle) {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    (c, h)
}

/// Reset Endpoint commands the fake saw on the keyboard's interrupt
/// endpoint: how many preserved the transfer state (soft) and how many not.
fn reset_endpoints(h: &FakeHandle) -> (usize, usize) {
    h.with(|m, _| {
        let log: Vec<_> = m
            .reset_endpoint_log
            .iter()
            .filter(|&&(slot, dci, _)| (slot, dci) == KEYBOARD)
            .collect();
        let soft = log.iter().filter(|e| e.2).count();
        (soft, log.len() - soft)
    })
}

fn set_tr_dequeues(h: &FakeHandle) -> usize {
    h.with(|m, _| m.commands.iter().filter(|&&k| k == 16).count())
}

fn polls(c: &mut Ctrl, h: &FakeHandle, n: usize) {
    for _ in 0..n {
        c.poll_settled();
        h.run();
    }
}

/// Two transaction errors, then the keyboard answers: two soft retries
/// (Reset Endpoint with TSP = 1, no Set TR Dequeue Pointer, no
/// CLEAR_FEATURE) and the keys arrive.
#[test]
fn transaction_errors_get_a_soft_retry() {
    let (mut c, h) = keyboard();
    let dequeues = set_tr_dequeues(&h);
    h.with(|m, _| m.ports[0].as_mut().expect("keyboard").interrupt_errors = 2);
    polls(&mut c, &h, 4);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert_eq!(reset_endpoints(&h), (2, 0), "soft, hard Reset Endpoints");
    assert_eq!(set_tr_dequeues(&h), dequeues, "the TD was given up");
    h.with(|m, _| assert!(m.ports[0].as_ref().expect("kbd").clear_halts.is_empty()));
    assert_eq!(
        c.devices[0].recovery.soft_retries, 0,
        "reset by the reports"
    );
    assert_eq!(c.devices().next().expect("keyboard").errors, 2);
}

/// A keyboard whose every transaction fails: soft retries, then hard
/// restarts with CLEAR_FEATURE(ENDPOINT_HALT), each bounded; then the
/// keyboard is given up with a clear error, and polling goes on.
#[test]
fn persistent_transaction_errors_are_bounded() {
    use crate::transfer::{MAX_HARD_RESTARTS, MAX_SOFT_RETRIES};
    let (mut c, h) = keyboard();
    h.with(|m, _| m.ports[0].as_mut().expect("keyboard").interrupt_errors = u32::MAX);
    let mut last_error = None;
    for _ in 0..100 {
        let s = c.poll_settled();
        last_error = s.last_error.or(last_error);
        h.run();
    }
    let (soft, hard) = reset_endpoints(&h);
    let rounds = usize::from(MAX_HARD_RESTARTS) + 1;
    assert_eq!(soft, rounds * usize::from(MAX_SOFT_RETRIES), "soft retries");
    assert_eq!(hard, usize::from(MAX_HARD_RESTARTS), "hard restarts");
    h.with(|m, _| {
        let clears = &m.ports[0].as_ref().expect("keyboard").clear_halts;
        assert_eq!(clears.len(), usize::from(MAX_HARD_RESTARTS));
    });
    let device = c.devices().next().expect("keyboard");
    assert_eq!(device.state, DeviceState::Failed);
    let Some(e) = last_error else {
        panic!("no error reported")
    };
    assert_eq!(
        e,
        Error::TransferFailed {
            what: "interrupt IN endpoint, given up after 3 restarts",
            code: Ok(CompletionCode::UsbTransactionError),
        }
    );
    let text = std::format!("{e}");
    assert!(
        text.contains("given up after 3 restarts failed: UsbTransactionError"),
        "{text}"
    );
}

/// A stalled interrupt endpoint (the device STALLs until its halt feature
/// is cleared): Reset Endpoint without TSP, a fresh ring and
/// CLEAR_FEATURE(ENDPOINT_HALT) for endpoint 0x81, then typing works.
#[test]
fn a_stalled_interrupt_endpoint_is_cleared() {
    let (mut c, h) = keyboard();
    h.with(|m, _| m.ports[0].as_mut().expect("keyboard").interrupt_halted = true);
    polls(&mut c, &h, 4);
    h.with(|m, _| {
        let kbd = m.ports[0].as_ref().expect("keyboard");
        assert_eq!(kbd.clear_halts, [0x81], "CLEAR_FEATURE(ENDPOINT_HALT)");
        assert!(!kbd.interrupt_halted);
    });
    assert_eq!(reset_endpoints(&h), (0, 1), "soft, hard Reset Endpoints");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert_eq!(
        c.devices().next().expect("kbd").state,
        DeviceState::Keyboard
    );
}

/// An Etron EJ188 (Linux `XHCI_ETRON_HOST`).
fn etron() -> Config {
    Config {
        pci_id: Some((0x1b6f, 0x7052)),
        ..Config::default()
    }
}

/// Control transfers of two and three TRBs, many times around EP0's ring:
/// how many TDs straddled the Link TRB, and the No-Ops the fake skipped.
fn control_tds(config: Config) -> (u32, u32) {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], config);
    assert_eq!(c.poll_settled().attached, 1);
    let device_descriptor = SetupPacket::get_descriptor(1, 0, 18);
    let set_idle = SetupPacket::set_idle(0);
    for i in 0..40 {
        let (setup, what) = match i % 3 {
            0 => (set_idle, "SET_IDLE"),
            _ => (device_descriptor, "GET_DESCRIPTOR"),
        };
        c.control(0, setup, &[], what).expect(what);
    }
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    h.with(|m, _| (m.ep0_straddles, m.ep0_noops))
}

/// On an Etron controller, whenever a control TD would straddle the Link
/// TRB, No-Op TRBs fill the ring up to it, so every TD is contiguous (the
/// fake counts straddling ones).
#[test]
fn control_tds_never_straddle_the_link_trb_on_etron() {
    let (straddling, noops) = control_tds(etron());
    assert!(noops > 0, "no position needed padding");
    assert_eq!(straddling, 0, "control TDs straddled the Link TRB");
}

/// Other controllers take TDs across the link (xHCI 1.2 §4.11.5.1), and
/// get no No-Ops (QEMU keeps a No-Op TD on EP0 as an unfinished transfer).
#[test]
fn other_controllers_get_no_padding() {
    let (straddling, noops) = control_tds(Config::default());
    assert_eq!(noops, 0);
    assert!(straddling > 0, "the test never reached the link");
}

/// Etron controllers get no soft retry (Linux `XHCI_NO_SOFT_RETRY`): a
/// transaction error gets the hard restart with CLEAR_FEATURE at once.
#[test]
fn etron_gets_no_soft_retry() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], etron());
    assert_eq!(c.poll_settled().attached, 1);
    h.with(|m, _| m.ports[0].as_mut().expect("keyboard").interrupt_errors = 1);
    polls(&mut c, &h, 4);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert_eq!(reset_endpoints(&h), (0, 1), "soft, hard Reset Endpoints");
    h.with(|m, _| assert_eq!(m.ports[0].as_ref().expect("kbd").clear_halts, [0x81]));
}

/// USBSTS.CNR stays set for 50 ms after power-on: no operational
/// register is written before it clears, and the controller then starts.
#[test]
fn no_operational_write_before_cnr_clears() {
    let (hal, h) = FakeHandle::new();
    h.with(|m, mem| {
        m.faults = Faults {
            not_ready_us: 50_000,
            ..Faults::default()
        };
        m.plug(mem, 1, FakeDevice::keyboard());
    });
    let before = h.0.borrow().now_us;
    // SAFETY: the fake BAR belongs to this controller alone.
    let mut c = unsafe { Controller::new(hal, MMIO_PHYS, Config::default()) }.expect("init");
    assert!(
        h.0.borrow().now_us - before >= 50_000,
        "did not wait for CNR"
    );
    h.with(|m, _| assert!(m.refusals.is_empty(), "{:?}", m.refusals));
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

/// A controller whose reset takes 3 s: fine in interrupt mode (Linux
/// waits up to 10 s, `XHCI_RESET_LONG_USEC`), a clear timeout within
/// about 1 s in polled mode (the panic console's).
#[test]
fn reset_waits_long_in_interrupt_mode_only() {
    for (interrupts, ok) in [(true, true), (false, false)] {
        let (hal, h) = FakeHandle::new();
        h.with(|m, _| m.faults.reset_takes_us = 3_000_000);
        let before = h.0.borrow().now_us;
        let config = Config {
            interrupts,
            ..Config::default()
        };
        // SAFETY: the fake BAR belongs to this controller alone.
        let result = unsafe { Controller::new(hal, MMIO_PHYS, config) };
        let took = h.0.borrow().now_us - before;
        match result {
            Ok(_) => assert!(ok, "polled mode waited {took} us"),
            Err(e) => {
                assert!(!ok, "interrupt mode: {e}");
                assert_eq!(
                    e,
                    Error::Timeout {
                        what: "controller reset (USBCMD.HCRST)"
                    }
                );
                assert!(took < 1_500_000, "polled mode waited {took} us");
            }
        }
    }
}

/// A command that takes 2 s completes in interrupt mode (Linux
/// `XHCI_CMD_DEFAULT_TIMEOUT`, 5 s) and times out after 500 ms in polled
/// mode.
#[test]
fn commands_wait_long_in_interrupt_mode_only() {
    let (mut c, h) = start(std::vec![], Config::default());
    h.with(|m, _| m.faults.command_latency_us = 2_000_000);
    c.command(command::noop(), "No Op").expect("a slow command");
    c.interrupts = false;
    let before = h.0.borrow().now_us;
    let e = c.command(command::noop(), "No Op").expect_err("polled");
    assert_eq!(e, Error::Timeout { what: "No Op" });
    let took = h.0.borrow().now_us - before;
    assert!(took < 1_100_000, "polled mode waited {took} us");
}
