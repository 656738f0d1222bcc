//! `xhci-kbd`: a `no_std` xHCI host controller driver with a USB HID boot
//! keyboard class driver, built to keep working after the kernel panicked.
//!
//! - No allocator, no statics, no locks: every DMA buffer (including the
//!   resources of [`MAX_DEVICES`] device slots) is allocated through the
//!   [`Hal`] in [`Controller::new`]; hot-plug never allocates.
//! - One event-drain routine, [`Controller::poll`], serves interrupt mode
//!   (after [`Controller::ack_interrupt`]) and panic mode.
//! - [`Controller::enter_polled_mode`] is the one-way switch at panic time; it
//!   re-derives ring state from memory and hardware and repairs what a
//!   stopped CPU may have left half done.
//! - USB 2.0 hubs (class 9) are driven too, so keyboards behind a hub work;
//!   a hub and its children take slots from the same preallocated pool.
//! - Test hooks for the kernel's panic tests:
//!   [`Controller::submit_noop_command`] leaves a command in flight and
//!   [`Controller::set_enumeration_probe`] reports each [`EnumerationStep`].
//! - Everything read from the controller or a device is validated: bad
//!   events are counted and dropped, malformed descriptors are errors.
//!
//! References: xHCI 1.2 (sections cited as §), USB 2.0 chapter 9, HID 1.11.
//!
//! # Why not the `xhci` crate
//!
//! The `xhci` crate (0.9.2) does not fit: several of its context getters
//! (`slot_state`, `endpoint_state`, `endpoint_type`, `transfer_type`,
//! `endpoint(dci)`) panic on reserved or out-of-range values, so they cannot
//! touch controller-written memory that panic mode must not trust; its
//! `update_volatile` on PORTSC writes the RW1C change bits back (clearing
//! changes nobody handled); and every accessor maps through its `Mapper`
//! again instead of using one mapping made at attach time.
#![no_std]
#![deny(missing_docs, unreachable_pub)]

mod command;
mod context;
mod controller;
mod descriptor;
mod device;
mod dma;
mod enumerate;
mod error;
mod events;
mod extcaps;
mod hal;
mod hid;
mod hub;
mod regs;
mod ring;
mod takeover;
mod transfer;
mod trb;
mod types;

#[cfg(test)]
mod testing;

pub use controller::Controller;
pub use descriptor::{
    ConfigSummary, DescriptorError, DeviceDescriptor, HubDescriptor, InterruptInterface,
};
pub use error::Error;
pub use hal::{DmaRegion, Hal};
pub use hid::{Layout, Leds, Repeat};
pub use pc_keyboard::{DecodedKey, KeyCode};
pub use trb::{CompletionCode, Event, TrbParseError, TrbType};
pub use types::{
    Config, ControllerInfo, DeviceInfo, DeviceState, EnumerationStep, KeyboardStats, MAX_DEVICES,
    MAX_PORTS, PollSummary, Speed, TakeoverReport,
};
