//! Device slots given back while their device stays listed.
//!
//! A device the driver does not use (a tablet, a mouse, the SuperSpeed half
//! of a USB 3 hub, a device whose enumeration failed) needs no slot: its
//! slot is disabled (Disable Slot, xHCI 1.2 §4.6.4) as Linux frees the
//! `usb_device` of a port it gives up on, and only its identity stays in the
//! record, for `lsusb`. Slot IDs double as record numbers (slot = index + 1,
//! the DCBAA entry and every event name it), so when the controller hands
//! the ID out again the listing moves to a free record; if there is none,
//! the listing is dropped and its port left alone until it changes. Ignored
//! devices therefore never keep a keyboard from getting a slot.
#![forbid(unsafe_code)]

use crate::controller::Controller;
use crate::device::Location;
use crate::hal::Hal;
use crate::trb::command;

impl<H: Hal> Controller<H> {
    /// Gives the slot of record `index` back to the controller (Disable
    /// Slot, §4.6.4; DCBAA entry cleared, §6.1) and keeps the record only as
    /// a listing. A failing Disable Slot is counted; the slot is then left
    /// as it is.
    pub(crate) fn release_slot(&mut self, index: usize) {
        let slot = index as u8 + 1;
        if let Err(e) = self.command(command::disable_slot(slot), "Disable Slot") {
            self.note_error(e);
            return;
        }
        self.mem.dcbaa.write64(usize::from(slot) * 8, 0);
        let listing = self.devices[index].listing();
        // the record keeps the identity; rings, buffers and contexts are clean
        self.devices[index].adopt(listing);
    }

    /// The controller handed out slot `index + 1`, whose record lists a
    /// device without a slot: moves the listing to a free record (and the
    /// link to it in the root port table or the parent hub), or drops it and
    /// marks its port failed, so that it is enumerated again only after its
    /// next change. Record `index` is free afterwards.
    pub(crate) fn move_listing(&mut self, index: usize) {
        let records = usize::from(self.caps.slots).min(self.devices.len());
        let free = (0..records).find(|&j| j != index && self.devices[j].state.is_none());
        let listing = self.devices[index].listing();
        let at = self.devices[index].location;
        let old = index as u8 + 1;
        let new = match free {
            Some(j) => {
                self.devices[j].adopt(listing);
                j as u8 + 1
            }
            None => 0,
        };
        self.relink(at, old, new, true);
        self.devices[index].reset();
    }

    /// The slot field that links the device at `at` into the topology: its
    /// root port's, or its parent hub port's. `None` for a location that
    /// names no port or no hub (a corrupt record never indexes out of bounds).
    pub(crate) fn parent_link(&mut self, at: Location) -> Option<&mut u8> {
        if at.parent_slot == 0 {
            return self
                .ports
                .get_mut(usize::from(at.root_port).wrapping_sub(1))
                .map(|p| &mut p.slot);
        }
        usize::from(at.parent_slot)
            .checked_sub(1)
            .and_then(|i| self.devices.get_mut(i))
            .and_then(|d| d.hub.as_mut())
            .and_then(|hub| {
                hub.children
                    .get_mut(usize::from(at.parent_port).wrapping_sub(1))
            })
    }

    /// Replaces the link `old` to the device at `at` ([`parent_link`](Self::parent_link))
    /// by `new`; 0 drops it, and with `fail` the port is marked failed so it
    /// stays alone until it changes.
    pub(crate) fn relink(&mut self, at: Location, old: u8, new: u8, fail: bool) {
        match self.parent_link(at) {
            Some(link) if *link == old => *link = new,
            _ => return,
        }
        if !(fail && new == 0) {
            return;
        }
        if at.parent_slot == 0 {
            if let Some(p) = self
                .ports
                .get_mut(usize::from(at.root_port).wrapping_sub(1))
            {
                p.failed = true;
            }
        } else if let Some(hub) = usize::from(at.parent_slot)
            .checked_sub(1)
            .and_then(|i| self.devices.get_mut(i))
            .and_then(|d| d.hub.as_mut())
        {
            hub.failed |= 1 << at.parent_port;
        }
    }
}
