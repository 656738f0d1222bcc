//! Register access (xHCI 1.2 §5, §7): typed register values whose accessor
//! names say each bit's access rule (RO, RW, RW1C, RW1S), read and written by
//! [`Registers`] through one bounds-checked volatile window.
//!
//! Registers holding RW1C bits (USBSTS, PORTSC, IMAN, ERDP, USBLEGCTLSTS) are
//! never written back as read: each has one write method that starts from a
//! neutral value. PORTSC goes through [`Registers::write_portsc`] only. (Why
//! the `xhci` crate's register types are not used: see the
//! [crate docs](crate#why-not-the-xhci-crate).)

#[macro_use]
mod macros;

mod access;
mod capability;
mod extended;
mod mmio;
mod operational;
mod runtime;

pub(crate) use access::Registers;
pub(crate) use capability::{CapabilityParameters1, StructuralParameters1};
pub(crate) use extended::{CAPABILITY_LEGACY_SUPPORT, CAPABILITY_SUPPORTED_PROTOCOL};
pub(crate) use mmio::Mmio;
#[cfg(test)]
pub(crate) use mmio::WRITE_LOG;
pub(crate) use operational::{
    CommandRingControl, DeviceContextBaseAddressArrayPointer, PortStatusControl, UsbCommand,
    UsbStatus,
};
pub(crate) use runtime::{
    EventRingDequeuePointer, EventRingSegmentTableBaseAddress, EventRingSegmentTableSize,
    InterrupterModeration,
};
