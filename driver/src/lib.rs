#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs, unreachable_pub)]

mod attach;
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
mod interrupt;
mod keyboard_setup;
mod port;
mod regs;
mod resume;
mod ring;
mod slots;
mod status;
mod takeover;
mod transfer;
mod trb;
mod types;

#[cfg(test)]
mod testing;

pub use controller::Controller;
pub use descriptor::{
    ConfigSummary, DescriptorError, DeviceDescriptor, HidInterface, HubDescriptor,
    InterruptInterface, MAX_HID_INTERFACES,
};
pub use error::Error;
pub use hal::{DMA_32BIT_LIMIT, DmaRegion, Hal};
pub use hid::{Layout, Leds, Repeat};
pub use interrupt::InterruptAck;
pub use pc_keyboard::{DecodedKey, KeyCode};
pub use resume::ResumeReport;
pub use takeover::Left;
pub use trb::{CompletionCode, Event, TrbParseError, TrbType};
pub use types::{
    Config, ControllerInfo, DeviceInfo, DeviceState, DmaLimitReason, ETRON_QUIRKS, EnumerationStep,
    KeyboardStats, MAX_DEVICES, MAX_PORTS, NO_64BIT_DMA_QUIRKS, PollSummary, Speed, TakeoverReport,
};
