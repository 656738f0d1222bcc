//! Device slots and the driver's device records.
//!
//! The controller hands out slot IDs 1 to MaxSlotsEn (xHCI 1.2 §4.5.3,
//! §5.4.7), which is HCSPARAMS1.MaxSlots (up to 255, §5.3.3); the driver
//! has [`MAX_DEVICES`](crate::MAX_DEVICES) records with preallocated
//! memory. They are decoupled: a record keeps its device's slot ID
//! (`Device::slot_id`), events are matched to records by a bounded search
//! (`slot_index`), the DCBAA entry (§6.1) is the slot ID's. Links between
//! records (the root port table, a hub's children, a device's parent and
//! TT hub) hold record numbers (index + 1), translated to slot IDs only
//! where the controller reads them (the slot context's TT Hub Slot ID).
//!
//! A device the driver does not use (a tablet, a mouse, the SuperSpeed half
//! of a USB 3 hub, a device whose enumeration failed) needs no slot: its
//! slot is disabled (Disable Slot, §4.6.4) as Linux frees the `usb_device`
//! of a port it gives up on, and only its identity stays in the record, for
//! `lsusb`. When a new device finds no free record, such a listing gives
//! its record up (its port is left alone until it changes), so ignored
//! devices never keep a keyboard from getting one; with every record in
//! use by working devices, the new slot is given back and the attach fails
//! with [`Error::NoSlot`](crate::Error::NoSlot).
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
        let slot = self.devices[index].slot_id;
        if let Err(e) = self.command(command::disable_slot(slot), "Disable Slot") {
            self.note_error(e);
            return;
        }
        self.mem.dcbaa.write64(usize::from(slot) * 8, 0);
        let listing = self.devices[index].listing();
        // the record keeps the identity; rings, buffers and contexts are clean
        self.devices[index].adopt(listing);
    }

    /// A record for a device just given a slot: a free one, else the first
    /// that only lists a device without a slot (the listing is dropped and
    /// its port left alone until it changes); `None` if every record holds
    /// a device with a slot.
    pub(crate) fn free_record(&mut self) -> Option<usize> {
        if let Some(index) = self.devices.iter().position(|d| d.state.is_none()) {
            return Some(index);
        }
        let index = self.devices.iter().position(|d| d.slot_released)?;
        let at = self.devices[index].location;
        self.relink(at, index as u8 + 1, 0, true);
        self.devices[index].reset();
        Some(index)
    }

    /// The slot ID of the device in record number `record` (index + 1; 0:
    /// none), as the controller knows it; 0 if there is none.
    pub(crate) fn slot_id_of(&self, record: u8) -> u8 {
        usize::from(record)
            .checked_sub(1)
            .and_then(|i| self.devices.get(i))
            .filter(|d| d.state.is_some() && !d.slot_released)
            .map_or(0, |d| d.slot_id)
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
