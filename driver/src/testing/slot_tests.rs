//! Device slots against the fake: MaxSlotsEn from HCSPARAMS1.MaxSlots and
//! the slots of devices the driver does not use given back (Disable Slot,
//! xHCI 1.2 §4.6.4) while they stay listed.
extern crate std;

use std::vec::Vec;

use super::hal::MMIO_PHYS;
use super::tests::{Ctrl, hi, start, type_hi, type_hi_at};
use super::*;
use crate::types::{Config, DeviceState, MAX_DEVICES};

/// USBCMD.CONFIG (xHCI 1.2 §5.4.7) in the fake's register file.
const CONFIG: usize = 0x40 + 0x38;

fn start_with_max_slots(max_slots: u32, devices: Vec<(usize, FakeDevice)>) -> (Ctrl, FakeHandle) {
    let (hal, h) = FakeHandle::new();
    h.with(|m, mem| {
        m.set_max_slots(max_slots);
        for (port, dev) in devices {
            m.plug(mem, port, dev);
        }
    });
    // SAFETY: the fake BAR belongs to this controller alone.
    let c = unsafe { crate::Controller::new(hal, MMIO_PHYS, Config::default()) }
        .expect("controller init");
    (c, h)
}

fn count_commands(h: &FakeHandle, kind: u8) -> usize {
    h.with(|m, _| m.commands.iter().filter(|&&k| k == kind).count())
}

/// MaxSlotsEn is HCSPARAMS1.MaxSlots, capped by the records the driver
/// preallocates ([`MAX_DEVICES`]).
#[test]
fn max_slots_enabled_follows_hcsparams1() {
    for (max_slots, want) in [(16u32, MAX_DEVICES as u32), (4, 4), (1, 1)] {
        let (c, h) = start_with_max_slots(max_slots, std::vec![]);
        let enabled = h.with(|m, _| m.reg(CONFIG) & 0xff);
        assert_eq!(enabled, want, "MaxSlots {max_slots}");
        assert_eq!(u32::from(c.info().slots), want, "MaxSlots {max_slots}");
    }
    let (hal, h) = FakeHandle::new();
    h.with(|m, _| m.set_max_slots(0));
    // SAFETY: as above.
    let e = unsafe { crate::Controller::new(hal, MMIO_PHYS, Config::default()) }.err();
    assert!(
        matches!(e, Some(crate::Error::Unsupported { .. })),
        "no slots: {e:?}"
    );
}

/// A tablet is listed as ignored without a slot: Disable Slot after its
/// descriptors were read, and none again when it is unplugged.
#[test]
fn ignored_device_gives_its_slot_back() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::tablet())], Config::default());
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    let tablet = c.devices().next().expect("listed");
    assert_eq!(tablet.state, DeviceState::Ignored);
    assert_eq!(count_commands(&h, 10), 1, "Disable Slot");
    let enabled = h.with(|m, _| (1..=16).filter(|&s| m.slots[s].enabled).count());
    assert_eq!(enabled, 0, "no slot enabled");
    h.with(|m, mem| m.unplug(mem, 1));
    let s = c.poll_settled();
    assert_eq!(s.detached, 1, "{s:?}");
    assert_eq!(c.devices().count(), 0);
    assert_eq!(count_commands(&h, 10), 1, "no second Disable Slot");
}

/// The controller hands the released slot ID to the next device: the
/// tablet's listing moves to a free record and still leaves with its port.
#[test]
fn listing_moves_when_its_slot_id_is_reused() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::tablet())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    let first = c.devices().next().expect("tablet").slot;
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    assert_eq!(c.poll_settled().attached, 1);
    let kbd = c.devices().find(|d| d.is_keyboard).expect("keyboard");
    assert_eq!(kbd.slot, first, "the fake hands out the lowest free slot");
    let tablet = c
        .devices()
        .find(|d| d.state == DeviceState::Ignored)
        .expect("tablet still listed");
    assert_eq!(tablet.port, 1);
    assert_ne!(tablet.slot, kbd.slot);
    assert_eq!(type_hi(&mut c, &h, 2), hi());
    h.with(|m, mem| m.unplug(mem, 1));
    assert_eq!(c.poll_settled().detached, 1);
    assert_eq!(c.devices().count(), 1);
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}

/// Seven tablets and a keyboard behind one hub: hub, tablets and keyboard
/// are nine devices for [`MAX_DEVICES`] = 8 records, and the keyboard still
/// gets a slot (one tablet's listing is dropped, its port left alone).
#[test]
fn ignored_devices_do_not_use_up_the_slots() {
    let mut hub = FakeDevice::hub(8);
    for port in 1..=7 {
        hub.hub_plug(port, FakeDevice::tablet());
    }
    hub.hub_plug(8, FakeDevice::keyboard());
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    let s = c.poll_settled();
    assert_eq!(s.attached, 9, "{s:?}");
    assert_eq!(c.devices().filter(|d| d.is_keyboard).count(), 1);
    assert_eq!(c.devices().count(), MAX_DEVICES);
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x8), hi());
    // the dropped tablet's port is not enumerated again without a change
    let enables = count_commands(&h, 9);
    for _ in 0..3 {
        c.poll_settled();
        h.run();
    }
    assert_eq!(count_commands(&h, 9), enables);
}

/// With a single slot, a tablet that came first does not keep the keyboard
/// out: its listing is dropped when the keyboard takes the slot.
#[test]
fn one_slot_goes_to_the_keyboard() {
    let (mut c, h) = start_with_max_slots(1, std::vec![(1, FakeDevice::tablet())]);
    assert_eq!(c.poll_settled().attached, 1);
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    assert_eq!(c.devices().count(), 1);
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}
