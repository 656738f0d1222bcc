//! Enumeration, typing, hot-plug, hostile events and takeover against the fake.
extern crate std;

use std::vec::Vec;

use super::hal::MMIO_PHYS;
use super::*;
use crate::controller::PendingCommand;
use crate::ring::EventRing;
use crate::trb::command;
use crate::types::{Config, DeviceState};
use crate::{Controller, DecodedKey, KeyCode, Layout};

pub(super) type Ctrl = Controller<FakeHal>;

pub(super) fn start(devices: Vec<(usize, FakeDevice)>, config: Config) -> (Ctrl, FakeHandle) {
    start_with(devices, config, 32)
}

pub(super) fn start_with(
    devices: Vec<(usize, FakeDevice)>,
    config: Config,
    context_size: usize,
) -> (Ctrl, FakeHandle) {
    let (hal, handle) = FakeHandle::new();
    handle.with(|m, mem| {
        m.set_context_size(context_size);
        for (port, dev) in devices {
            m.plug(mem, port, dev);
        }
    });
    // SAFETY: the fake BAR belongs to this controller alone.
    let ctrl = unsafe { Controller::new(hal, MMIO_PHYS, config) }.expect("controller init");
    (ctrl, handle)
}

/// A command on the ring, its doorbell rung, that the fake controller
/// never completes (as a CPU stopped waiting for it, or one that timed out,
/// leaves it).
pub(super) fn leave_a_command_in_flight(c: &mut Ctrl, h: &FakeHandle) {
    h.with(|m, _| m.freeze_commands = true);
    let trb = c
        .command_ring
        .push(&mut c.mem.command_ring, command::enable_slot(0));
    c.pending_command = Some(PendingCommand {
        trb,
        name: "Enable Slot",
    });
    c.regs.ring_doorbell(0, 0);
    h.run();
}

pub(super) fn press(h: &FakeHandle, port: usize, report: [u8; 8]) {
    h.with(|m, _| {
        m.ports[port - 1]
            .as_mut()
            .expect("device")
            .reports
            .push_back(report)
    });
    h.run();
}

pub(super) fn keys(c: &mut Ctrl) -> Vec<DecodedKey> {
    let mut v = Vec::new();
    while let Some(k) = c.next_key() {
        v.push(k);
    }
    v
}

pub(super) fn type_hi(c: &mut Ctrl, h: &FakeHandle, port: usize) -> Vec<DecodedKey> {
    press(h, port, [0, 0, 0x0b, 0, 0, 0, 0, 0]); // h
    press(h, port, [0, 0, 0, 0, 0, 0, 0, 0]);
    press(h, port, [0, 0, 0x0c, 0, 0, 0, 0, 0]); // i
    press(h, port, [0, 0, 0, 0, 0, 0, 0, 0]);
    for _ in 0..6 {
        c.poll_settled();
        h.run();
    }
    keys(c)
}

/// Types "hi" on the keyboard at `route` behind root port `root` (1-based).
pub(super) fn type_hi_at(c: &mut Ctrl, h: &FakeHandle, root: usize, route: u32) -> Vec<DecodedKey> {
    for r in [0x0b, 0, 0x0c, 0] {
        h.with(|m, _| {
            m.device_at(root - 1, route)
                .expect("device")
                .reports
                .push_back([0, 0, r, 0, 0, 0, 0, 0])
        });
        h.run();
    }
    for _ in 0..6 {
        c.poll_settled();
        h.run();
    }
    keys(c)
}

/// Runs the controller until `left(h)`, the reports a device still has to
/// send, is 0, and returns the decoded text, draining keys as it goes (the
/// key queue holds 64).
pub(super) fn run_until_typed(
    c: &mut Ctrl,
    h: &FakeHandle,
    left: impl Fn(&FakeHandle) -> usize,
) -> std::string::String {
    let mut text = std::string::String::new();
    for _ in 0..4096 {
        c.poll_settled();
        h.run();
        while let Some(key) = c.next_key() {
            match key {
                DecodedKey::Unicode(ch) => text.push(ch),
                other => panic!("unexpected key {other:?} after {text:?}"),
            }
        }
        if left(h) == 0 {
            c.poll_settled();
            while let Some(DecodedKey::Unicode(ch)) = c.next_key() {
                text.push(ch);
            }
            return text;
        }
    }
    panic!("the keyboard's reports were not taken; typed {text:?}");
}

pub(super) fn hi() -> Vec<DecodedKey> {
    std::vec![DecodedKey::Unicode('h'), DecodedKey::Unicode('i')]
}

#[test]
fn enumerates_keyboard_and_types() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    let devices: Vec<_> = c.devices().collect();
    assert_eq!(devices.len(), 1);
    let d = devices[0];
    assert!(d.is_keyboard);
    assert_eq!(
        (d.port, d.vendor, d.product, d.class, d.state),
        (1, 0x0627, 1, 3, DeviceState::Keyboard)
    );
    h.with(|m, _| {
        let dev = m.ports[0].as_ref().unwrap();
        assert_eq!(dev.configured, Some(1));
        assert_eq!(dev.protocol, Some(0), "boot protocol selected");
        assert_eq!(dev.leds.last(), Some(&1), "num lock LED sent");
    });
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    let info = c.info();
    assert_eq!(
        (
            info.ports,
            info.slots,
            info.context_size,
            info.scratchpad_buffers
        ),
        (4, 16, 32, 2)
    );
    assert_eq!(info.usb3_ports, 0b1100);
    assert!(info.interrupt_mode);
    assert_eq!(c.keyboard_stats().keyboards, 1);
    std::println!("{info}\n{}\n{d}", c.keyboard_stats());
}

/// PORTSC holds RW1C change bits (xHCI 1.2 §5.4.8): the driver's writes to
/// it (PR to reset the port, PRC to acknowledge the reset) must not clear a
/// change it has not looked at. An over-current change raised with the reset
/// stays set until the driver handles the port again on the next `poll()`,
/// and clearing it leaves the port enabled (PED is RW1C too).
#[test]
fn port_writes_leave_unhandled_changes_set() {
    const PORT_ENABLED: u32 = 1 << 1;
    const OVER_CURRENT_CHANGE: u32 = 1 << 20;
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    h.with(|m, _| m.faults.change_on_port_reset = OVER_CURRENT_CHANGE);
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    h.run();
    let portsc = h.with(|m, _| m.port_status(1));
    assert_ne!(
        portsc & OVER_CURRENT_CHANGE,
        0,
        "a PORTSC write cleared OCC before the driver handled it: {portsc:#x}"
    );
    c.poll_settled();
    h.run();
    let portsc = h.with(|m, _| m.port_status(1));
    assert_eq!(portsc & OVER_CURRENT_CHANGE, 0, "handled: {portsc:#x}");
    assert_ne!(portsc & PORT_ENABLED, 0, "port disabled: {portsc:#x}");
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn sixty_four_byte_contexts() {
    let (mut c, h) = start_with(
        std::vec![(2, FakeDevice::keyboard())],
        Config::default(),
        64,
    );
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(c.info().context_size, 64);
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}

#[test]
fn tablet_is_listed_and_left_alone() {
    let (mut c, h) = start(
        std::vec![(1, FakeDevice::tablet()), (2, FakeDevice::keyboard())],
        Config::default(),
    );
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (2, 0), "{s:?}");
    let mut devices: Vec<_> = c.devices().collect();
    devices.sort_by_key(|d| d.port);
    assert_eq!(devices[0].state, DeviceState::Ignored);
    assert!(!devices[0].is_keyboard);
    assert_eq!(devices[0].class, 3);
    assert_eq!(devices[1].state, DeviceState::Keyboard);
    h.with(|m, _| assert_eq!(m.ports[0].as_ref().unwrap().configured, None));
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}

#[test]
fn hotplug_unplug_replug_without_allocation() {
    let (mut c, h) = start(std::vec![], Config::default());
    assert_eq!(c.poll_settled().attached, 0);
    let allocations = h.0.borrow().allocations.len();
    for round in 0..3 {
        h.with(|m, mem| m.plug(mem, 1, FakeDevice::keyboard()));
        let s = c.poll_settled();
        assert_eq!(s.attached, 1, "round {round}: {s:?}");
        assert_eq!(type_hi(&mut c, &h, 1), hi());
        // hold a key, then unplug: the key is released, no repeat afterwards
        press(&h, 1, [0, 0, 0x04, 0, 0, 0, 0, 0]);
        c.poll_settled();
        h.with(|m, mem| m.unplug(mem, 1));
        let s = c.poll_settled();
        assert_eq!(s.detached, 1, "round {round}: {s:?}");
        assert_eq!(c.devices().count(), 0);
        h.advance_ms(2000);
        c.poll_settled();
        assert_eq!(keys(&mut c), [DecodedKey::Unicode('a')]);
        assert!(
            h.with(|m, _| m.commands.contains(&10)),
            "Disable Slot issued"
        );
    }
    assert_eq!(
        h.0.borrow().allocations.len(),
        allocations,
        "hot-plug must not allocate"
    );
}

#[test]
fn hostile_events_are_rejected() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    let before = c.info().rejected_events;
    let hostile: [[u32; 4]; 8] = [
        [
            0xdead_0000,
            0x1,
            1 << 24,
            (32 << 10) | (3 << 16) | (1 << 24),
        ], // transfer, pointer outside rings
        [0, 0, 1 << 24, (32 << 10) | (3 << 16) | (99 << 24)], // slot out of range
        [0, 0, 1 << 24, (32 << 10) | (1 << 24)],              // endpoint 0
        [0, 0, 1 << 24, (32 << 10) | (3 << 16) | (5 << 24)],  // slot not in use
        [0x1234_5670, 0, 1 << 24, 33 << 10],                  // command pointer outside ring
        [200 << 24, 0, 1 << 24, 34 << 10],                    // port out of range
        [0, 0, 0, 50 << 10],                                  // unknown TRB type
        [0, 0, 200 << 24, 37 << 10],                          // unknown completion code
    ];
    for trb in hostile {
        h.with(|m, mem| m.post_raw(mem, trb, false));
    }
    let s = c.poll_settled();
    assert_eq!(s.events, 8);
    assert_eq!(c.info().rejected_events - before, 8);
    // a stuck cycle bit: an event written with the wrong cycle is never consumed
    h.with(|m, mem| {
        let (base, enq, pcs) = m.event_enqueue();
        let _ = base;
        let bad = [0, 0, 1 << 24, (34 << 10) | u32::from(!pcs)];
        m.post_raw(mem, bad, true);
        let _ = enq;
    });
    assert_eq!(c.poll_settled().events, 0);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn stalled_set_idle_is_recovered() {
    let mut kbd = FakeDevice::keyboard();
    kbd.stall_set_idle = true;
    let (mut c, h) = start(std::vec![(1, kbd)], Config::default());
    let s = c.poll_settled();
    assert_eq!(s.attached, 1);
    assert_eq!(s.errors, 1, "the stall is reported: {s:?}");
    h.with(|m, _| {
        assert!(m.commands.contains(&14), "Reset Endpoint");
        assert!(m.commands.contains(&16), "Set TR Dequeue Pointer");
    });
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn caps_lock_led_and_repeat_through_controller() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    press(&h, 1, [0, 0, 0x39, 0, 0, 0, 0, 0]);
    c.poll_settled();
    press(&h, 1, [0, 0, 0, 0, 0, 0, 0, 0]);
    c.poll_settled();
    h.with(|m, _| assert_eq!(m.ports[0].as_ref().unwrap().leds.last(), Some(&0b011)));
    assert!(c.keyboard_stats().leds.caps_lock);
    c.set_repeat(300, 10);
    press(&h, 1, [0, 0, 0x04, 0, 0, 0, 0, 0]);
    c.poll_settled();
    assert_eq!(keys(&mut c), [DecodedKey::Unicode('A')]);
    h.advance_ms(299);
    c.poll_settled();
    assert_eq!(keys(&mut c), []);
    h.advance_ms(1);
    c.poll_settled();
    h.advance_ms(100);
    c.poll_settled();
    assert_eq!(keys(&mut c), [DecodedKey::Unicode('A'); 2]);
    press(&h, 1, [0, 0, 0, 0, 0, 0, 0, 0]);
    c.poll_settled();
    h.advance_ms(1000);
    c.poll_settled();
    assert_eq!(keys(&mut c), []);
    c.set_layout(Layout::De105);
    press(&h, 1, [0, 0, 0x52, 0, 0, 0, 0, 0]);
    c.poll_settled();
    assert_eq!(keys(&mut c), [DecodedKey::RawKey(KeyCode::ArrowUp)]);
}

#[test]
fn early_panic_polled_from_start() {
    let config = Config {
        interrupts: false,
        ..Config::default()
    };
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], config);
    h.with(|m, _| {
        assert_eq!(m.reg(0x1020) & 2, 0, "IMAN.IE clear");
        assert_eq!(m.reg(0x40) & 4, 0, "USBCMD.INTE clear");
    });
    c.poll_settled();
    assert!(!c.info().interrupt_mode);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn ack_interrupt_reports_and_clears() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    c.ack_interrupt();
    h.run();
    press(&h, 1, [0, 0, 0x0b, 0, 0, 0, 0, 0]);
    assert!(c.ack_interrupt());
    h.run();
    h.with(|m, _| assert_eq!(m.reg(0x44) & (1 << 3), 0, "USBSTS.EINT cleared"));
    c.poll_settled();
    assert_eq!(keys(&mut c), [DecodedKey::Unicode('h')]);
}

#[test]
fn takeover_with_command_in_flight_and_torn_state() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    let allocations = h.0.borrow().allocations.len();
    // A CPU stopped right after ringing the doorbell for a command that the
    // controller hasn't completed, with the event ring state torn and the
    // keyboard's transfer bookkeeping lost.
    leave_a_command_in_flight(&mut c, &h);
    c.event_ring = EventRing::new(crate::controller::EVENT_RING_TRBS); // torn: back to index 0
    c.devices[0].intr_outstanding = None;
    // SAFETY: single-threaded test; nothing else uses the controller.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    std::println!("{report}");
    assert!(!report.full_reset, "{report}");
    assert!(report.command_aborted, "{report}");
    assert!(report.command_ring_reset);
    assert!(report.event_ring_repaired, "{report}");
    assert_eq!(report.endpoints_restarted, 1);
    assert!(!c.info().interrupt_mode);
    h.with(|m, _| assert_eq!(m.reg(0x1020) & 2, 0, "IMAN.IE cleared"));
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert_eq!(h.0.borrow().allocations.len(), allocations);
}

#[test]
fn takeover_mid_enumeration_restarts_it() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    // pretend the CPU stopped while enumerating a second device on port 2
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    let done = c.command(command::enable_slot(0), "Enable Slot").unwrap();
    let index = usize::from(done.slot) - 1;
    c.devices[index].state = Some(DeviceState::Enumerating);
    c.devices[index].port = 2;
    c.ports[1].slot = done.slot;
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert_eq!(report.enumerations_restarted, 1, "{report}");
    let s = c.poll_settled();
    assert_eq!(s.attached, 1, "{s:?}");
    assert_eq!(c.devices().filter(|d| d.is_keyboard).count(), 2);
    assert_eq!(type_hi(&mut c, &h, 2), hi());
    assert_eq!(type_hi(&mut c, &h, 1), hi());
}

#[test]
fn takeover_after_host_system_error_resets_with_same_memory() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    let allocations = h.0.borrow().allocations.len();
    h.with(|m, _| m.host_system_error());
    // SAFETY: single-threaded test.
    let report = unsafe { c.enter_polled_mode(crate::Left::Torn) };
    assert!(report.full_reset && !report.dead, "{report}");
    assert_eq!(report.reset_reason, Some(crate::Error::HostSystemError));
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert_eq!(h.0.borrow().allocations.len(), allocations);
}

#[test]
fn out_of_memory_at_attach_is_an_error() {
    let (hal, handle) = FakeHandle::new();
    handle.0.borrow_mut().alloc_fail = true;
    // SAFETY: fake BAR.
    let r = unsafe { Controller::new(hal, MMIO_PHYS, Config::default()) };
    assert_eq!(r.err(), Some(crate::Error::NoMemory));
}

#[test]
fn event_ring_full_is_recovered() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
    c.poll_settled();
    // Nobody drains the ring: port events fill it until the controller posts
    // Event Ring Full and drops the rest, including the keyboard's report.
    h.with(|m, mem| {
        for _ in 0..crate::controller::EVENT_RING_TRBS {
            m.post_raw(mem, [3 << 24, 0, 1 << 24, 34 << 10], false);
        }
    });
    press(&h, 1, [0, 0, 0x04, 0, 0, 0, 0, 0]); // lost with its transfer event
    assert!(h.with(|m, _| m.dropped_events) > 0);
    let s = c.poll_settled();
    assert!(s.errors >= 1, "the loss is reported: {s:?}");
    assert_eq!(c.counters.event_ring_full, 1);
    h.with(|m, _| assert!(m.commands.contains(&15), "Stop Endpoint"));
    press(&h, 1, [0, 0, 0, 0, 0, 0, 0, 0]);
    c.poll_settled();
    keys(&mut c);
    assert_eq!(type_hi(&mut c, &h, 1), hi(), "keys flow again");
}

/// Fuzz: event TRBs from a misbehaving controller, any 16 bytes with a valid
/// cycle bit (random type, TRB pointer, slot, endpoint, port, completion
/// code), 1 to 23 at a time. Every one is consumed by one `poll()` (none is
/// left stuck), nothing panics, and the keyboard types afterwards unless the
/// driver declared the controller dead. Dead outcomes are counted and
/// printed; see also [`plausible_controller_events_never_kill_the_driver`].
#[test]
fn random_controller_events_are_survived() {
    use proptest::prelude::*;
    let dead = core::cell::Cell::new(0u32);
    super::check(
        "random controller events",
        400,
        proptest::collection::vec(any::<[u32; 4]>(), 1..24),
        |trbs| {
            let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
            c.poll_settled();
            let before = c.info().rejected_events;
            h.with(|m, mem| {
                for t in &trbs {
                    m.post_raw(mem, *t, false);
                }
            });
            let s = c.poll_settled();
            prop_assert!(
                s.events as usize >= trbs.len(),
                "{} posted, {s:?}",
                trbs.len()
            );
            prop_assert!(c.info().rejected_events >= before);
            if c.is_dead() {
                dead.set(dead.get() + 1);
            } else {
                keys(&mut c);
                prop_assert_eq!(type_hi(&mut c, &h, 1), hi());
            }
            Ok(())
        },
    );
    extern crate std;
    std::println!("random controller events: {} dead outcomes", dead.get());
}

/// Events a real controller can produce at any time, in any number: Port
/// Status Change for any root port, Transfer events for the keyboard's own
/// slot and endpoints with any completion code a controller reports
/// (success, short packet, stall, babble, transaction error, missed
/// service, stopped; xHCI 1.2 §6.4.5), and a Command Completion nobody
/// waits for. The driver must never give up (declare the controller dead)
/// on these, and the keyboard types afterwards.
#[test]
fn plausible_controller_events_never_kill_the_driver() {
    use proptest::prelude::*;
    // (type, completion code) pairs and field values a controller uses.
    const CODES: [u32; 9] = [1, 13, 6, 3, 4, 15, 26, 27, 5];
    let event = (
        0u32..3,
        0usize..CODES.len(),
        1u32..=8,
        1u32..=5,
        any::<u32>(),
    )
        .prop_map(|(kind, code, port, ep, ptr)| match kind {
            // Port Status Change Event (type 34): port ID in dword 0 bits 31:24.
            0 => [port << 24, 0, 1 << 24, 34 << 10],
            // Transfer Event (type 32) for slot 1, endpoint `ep`.
            1 => [
                ptr & !0xf,
                0,
                (CODES[code] << 24) | 8,
                (1 << 24) | (ep << 16) | (32 << 10),
            ],
            // Command Completion Event (type 33) for a command nobody issued.
            _ => [ptr & !0xf, 0, CODES[code] << 24, (1 << 24) | (33 << 10)],
        });
    super::check(
        "plausible controller events",
        300,
        proptest::collection::vec(event, 1..24),
        |trbs| {
            let (mut c, h) = start(std::vec![(1, FakeDevice::keyboard())], Config::default());
            c.poll_settled();
            h.with(|m, mem| {
                for t in &trbs {
                    m.post_raw(mem, *t, false);
                }
            });
            c.poll_settled();
            prop_assert!(!c.is_dead(), "the driver gave up on {trbs:x?}");
            keys(&mut c);
            prop_assert_eq!(type_hi(&mut c, &h, 1), hi());
            Ok(())
        },
    );
}
