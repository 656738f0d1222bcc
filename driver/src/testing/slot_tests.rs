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

/// MaxSlotsEn is HCSPARAMS1.MaxSlots (xHCI 1.2 §5.3.3, §5.4.7), up to 255,
/// whatever the driver's [`MAX_DEVICES`] records; the DCBAA has an entry
/// for each slot ID.
#[test]
fn max_slots_enabled_follows_hcsparams1() {
    for (max_slots, want) in [(255u32, 255u32), (16, 16), (4, 4), (1, 1)] {
        let (c, h) = start_with_max_slots(max_slots, std::vec![]);
        let enabled = h.with(|m, _| m.reg(CONFIG) & 0xff);
        assert_eq!(enabled, want, "MaxSlots {max_slots}");
        assert_eq!(u32::from(c.info().slots), want, "MaxSlots {max_slots}");
        assert!(
            c.mem.dcbaa.sub(want as usize * 8, 8).is_some(),
            "DCBAA entry for slot {want}"
        );
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
/// tablet's listing keeps its record (records are not slot IDs), lists no
/// slot, and still leaves with its port.
#[test]
fn released_slot_id_reused_leaves_the_listing_alone() {
    let (mut c, h) = start(std::vec![(1, FakeDevice::tablet())], Config::default());
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(
        c.devices().next().expect("tablet").slot,
        0,
        "slot given back"
    );
    let first = 1;
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    assert_eq!(c.poll_settled().attached, 1);
    let kbd = c.devices().find(|d| d.is_keyboard).expect("keyboard");
    assert_eq!(kbd.slot, first, "the fake hands out the lowest free slot");
    let tablet = c
        .devices()
        .find(|d| d.state == DeviceState::Ignored)
        .expect("tablet still listed");
    assert_eq!(tablet.port, 1);
    assert_eq!(tablet.slot, 0, "a listing without a slot");
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
/// out: it gave its slot back, the keyboard takes it, and the tablet stays
/// listed in its own record.
#[test]
fn one_slot_goes_to_the_keyboard() {
    let (mut c, h) = start_with_max_slots(1, std::vec![(1, FakeDevice::tablet())]);
    assert_eq!(c.poll_settled().attached, 1);
    h.with(|m, mem| m.plug(mem, 2, FakeDevice::keyboard()));
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (1, 0), "{s:?}");
    assert_eq!(c.devices().count(), 2);
    assert_eq!(c.devices().find(|d| d.is_keyboard).map(|d| d.slot), Some(1));
    assert_eq!(type_hi(&mut c, &h, 2), hi());
}

/// A controller that hands out high slot IDs (from 200 on, MaxSlots 255):
/// the keyboard on slot 200 and the high-speed hub it sits behind work, the
/// slot context's TT Hub Slot ID names the hub's slot ID (not a record
/// number), and unplugging disables those slot IDs.
#[test]
fn slot_ids_above_the_record_count_work() {
    let mut hub = FakeDevice::hub(4);
    hub.hub_plug(3, FakeDevice::keyboard());
    let (mut c, h) = start_with_max_slots(255, std::vec![(1, hub)]);
    h.with(|m, _| {
        m.faults.first_slot_id = 200;
        m.set_port_speed(1, 3);
    });
    let s = c.poll_settled();
    assert_eq!((s.attached, s.errors), (2, 0), "{s:?}");
    let hub = c
        .devices()
        .find(|d| d.state == DeviceState::Hub)
        .expect("hub");
    let kbd = c.devices().find(|d| d.is_keyboard).expect("keyboard");
    assert_eq!((hub.slot, kbd.slot), (200, 201));
    assert_eq!(kbd.parent_slot, 200, "lsusb names the parent's slot ID");
    let index = c.slot_index(201).expect("a record for slot 201");
    let out = c.devices[index].mem.device_context;
    assert_eq!(out.read32(8) & 0xff, 200, "TT Hub Slot ID");
    let entry =
        u64::from(c.mem.dcbaa.read32(201 * 8)) | (u64::from(c.mem.dcbaa.read32(201 * 8 + 4)) << 32);
    assert_eq!(entry, out.phys(), "DCBAA entry of slot 201");
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x3), hi());
    h.with(|m, mem| m.unplug(mem, 1));
    assert_eq!(c.poll_settled().detached, 1);
    let enabled = h.with(|m, _| (1..=255).filter(|&s| m.slots[s].enabled).count());
    assert_eq!(enabled, 0, "slots 200 and 201 disabled");
    assert_eq!(c.devices().count(), 0);
}

/// More devices with slots than records: a hub with eight keyboards is nine
/// devices for eight records. The ninth gets a clear error, its slot given
/// back, its port left alone until it changes; the others type.
#[test]
fn more_devices_than_records_is_a_clear_error() {
    let mut hub = FakeDevice::hub(8);
    for port in 1..=8 {
        hub.hub_plug(port, FakeDevice::keyboard());
    }
    let (mut c, h) = start(std::vec![(1, hub)], Config::default());
    let s = c.poll_settled();
    assert_eq!(s.attached, 8, "{s:?}");
    assert_eq!(
        s.last_error,
        Some(crate::Error::Unsupported {
            what: "more devices than the driver's device records (MAX_DEVICES)"
        }),
        "{s:?}"
    );
    assert_eq!(c.devices().count(), MAX_DEVICES);
    let enabled = h.with(|m, _| (1..=255).filter(|&s| m.slots[s].enabled).count());
    assert_eq!(enabled, MAX_DEVICES, "the ninth slot was given back");
    assert_eq!(type_hi_at(&mut c, &h, 1, 0x1), hi());
    let enables = count_commands(&h, 9);
    for _ in 0..3 {
        c.poll_settled();
        h.run();
    }
    assert_eq!(count_commands(&h, 9), enables, "the ninth is not retried");
}
