//! Driver errors. Every wait is bounded and a timeout names what it waited for.
#![forbid(unsafe_code)]

use core::fmt;

use crate::descriptor::DescriptorError;
use crate::trb::{CodeDisplay, CompletionCode};

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A bounded wait ran out.
    Timeout {
        /// What we waited for.
        what: &'static str,
    },
    /// A command completed with an error code.
    CommandFailed {
        /// Which command.
        command: &'static str,
        /// Its completion code (unknown codes kept raw).
        code: Result<CompletionCode, u8>,
    },
    /// A control or interrupt transfer failed.
    TransferFailed {
        /// Which transfer.
        what: &'static str,
        /// Its completion code.
        code: Result<CompletionCode, u8>,
    },
    /// USBSTS.HSE: the controller hit a host system error (§5.4.2).
    HostSystemError,
    /// USBSTS.HCE: internal controller error (§5.4.2).
    HostControllerError,
    /// Controller Not Ready never cleared.
    ControllerNotReady,
    /// Registers read all ones: the device is gone or unmapped.
    ControllerGone,
    /// DMA allocation failed (only at attach time).
    NoMemory,
    /// The HAL returned DMA memory the controller cannot address (its last
    /// byte above `max_address`, or shorter than asked).
    DmaAboveLimit {
        /// Where the region starts.
        phys: u64,
        /// The limit passed to [`Hal::dma_alloc`](crate::Hal::dma_alloc).
        max_address: u64,
    },
    /// The controller gave a slot ID we don't have resources for.
    NoSlot,
    /// A device sent a malformed descriptor.
    BadDescriptor(DescriptorError),
    /// The controller is marked dead after a failed recovery.
    Dead,
    /// Something the driver doesn't support.
    Unsupported {
        /// What.
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { what } => write!(f, "timed out waiting for {what}"),
            Error::CommandFailed { command, code } => {
                write!(f, "{command} command failed: {}", CodeDisplay(*code))
            }
            Error::TransferFailed { what, code } => {
                write!(f, "{what} failed: {}", CodeDisplay(*code))
            }
            Error::HostSystemError => write!(f, "host system error (USBSTS.HSE)"),
            Error::HostControllerError => write!(f, "host controller error (USBSTS.HCE)"),
            Error::ControllerNotReady => write!(f, "controller not ready (USBSTS.CNR stuck)"),
            Error::ControllerGone => write!(f, "controller registers read all ones"),
            Error::NoMemory => write!(f, "out of DMA memory"),
            Error::DmaAboveLimit { phys, max_address } => write!(
                f,
                "the HAL gave DMA memory at {phys:#x}, beyond the controller's limit {max_address:#x}"
            ),
            Error::NoSlot => write!(f, "device slot out of range"),
            Error::BadDescriptor(e) => write!(f, "bad descriptor: {e}"),
            Error::Dead => write!(f, "controller is dead"),
            Error::Unsupported { what } => write!(f, "unsupported: {what}"),
        }
    }
}

impl From<DescriptorError> for Error {
    fn from(e: DescriptorError) -> Self {
        Error::BadDescriptor(e)
    }
}
