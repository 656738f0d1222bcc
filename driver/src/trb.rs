//! TRB encoding and parsing (xHCI 1.2 §6.4).
//!
//! Events are parsed with `TryFrom<[u32; 4]>`; unknown completion codes are
//! kept as `Err(code)` instead of panicking.
#![forbid(unsafe_code)]

use core::fmt;

/// Cycle bit, dword 3 bit 0.
pub(crate) const TRB_CYCLE: u32 = 1 << 0;
/// Link TRB Toggle Cycle, dword 3 bit 1 (§6.4.4.1).
pub(crate) const TRB_LINK_TOGGLE_CYCLE: u32 = 1 << 1;
/// Interrupt on Short Packet.
pub(crate) const TRB_ISP: u32 = 1 << 2;
/// Chain bit.
pub(crate) const TRB_CHAIN: u32 = 1 << 4;
/// Interrupt On Completion.
pub(crate) const TRB_IOC: u32 = 1 << 5;
/// Immediate Data (setup stage).
pub(crate) const TRB_IDT: u32 = 1 << 6;
/// Direction IN for data/status stage, dword 3 bit 16.
pub(crate) const TRB_DIR_IN: u32 = 1 << 16;

/// TRB types (xHCI 1.2 §6.4.6, Table 6-91).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs, reason = "names follow Table 6-91")]
pub enum TrbType {
    Normal = 1,
    SetupStage = 2,
    DataStage = 3,
    StatusStage = 4,
    Link = 6,
    Noop = 8,
    EnableSlot = 9,
    DisableSlot = 10,
    AddressDevice = 11,
    ConfigureEndpoint = 12,
    EvaluateContext = 13,
    ResetEndpoint = 14,
    StopEndpoint = 15,
    SetTrDequeuePointer = 16,
    ResetDevice = 17,
    NoopCommand = 23,
    TransferEvent = 32,
    CommandCompletionEvent = 33,
    PortStatusChangeEvent = 34,
    BandwidthRequestEvent = 35,
    DoorbellEvent = 36,
    HostControllerEvent = 37,
    DeviceNotificationEvent = 38,
    MfindexWrapEvent = 39,
}

impl TrbType {
    /// The type field positioned in dword 3.
    pub(crate) const fn bits(self) -> u32 {
        (self as u32) << 10
    }
}

/// Completion codes (xHCI 1.2 §6.4.5, Table 6-90).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs, reason = "names follow Table 6-90")]
pub enum CompletionCode {
    Invalid = 0,
    Success = 1,
    DataBufferError = 2,
    BabbleDetected = 3,
    UsbTransactionError = 4,
    TrbError = 5,
    StallError = 6,
    ResourceError = 7,
    BandwidthError = 8,
    NoSlotsAvailable = 9,
    InvalidStreamType = 10,
    SlotNotEnabled = 11,
    EndpointNotEnabled = 12,
    ShortPacket = 13,
    RingUnderrun = 14,
    RingOverrun = 15,
    VfEventRingFull = 16,
    ParameterError = 17,
    BandwidthOverrun = 18,
    ContextStateError = 19,
    NoPingResponse = 20,
    EventRingFull = 21,
    IncompatibleDevice = 22,
    MissedService = 23,
    CommandRingStopped = 24,
    CommandAborted = 25,
    Stopped = 26,
    StoppedLengthInvalid = 27,
    StoppedShortPacket = 28,
    MaxExitLatencyTooLarge = 29,
    IsochBufferOverrun = 31,
    EventLost = 32,
    UndefinedError = 33,
    InvalidStreamId = 34,
    SecondaryBandwidthError = 35,
    SplitTransactionError = 36,
}

impl CompletionCode {
    /// Decodes a code; unknown values come back as `Err(raw)`.
    pub fn from_raw(raw: u8) -> Result<Self, u8> {
        use CompletionCode::*;
        const TABLE: [CompletionCode; 37] = [
            Invalid,
            Success,
            DataBufferError,
            BabbleDetected,
            UsbTransactionError,
            TrbError,
            StallError,
            ResourceError,
            BandwidthError,
            NoSlotsAvailable,
            InvalidStreamType,
            SlotNotEnabled,
            EndpointNotEnabled,
            ShortPacket,
            RingUnderrun,
            RingOverrun,
            VfEventRingFull,
            ParameterError,
            BandwidthOverrun,
            ContextStateError,
            NoPingResponse,
            EventRingFull,
            IncompatibleDevice,
            MissedService,
            CommandRingStopped,
            CommandAborted,
            Stopped,
            StoppedLengthInvalid,
            StoppedShortPacket,
            MaxExitLatencyTooLarge,
            Invalid, // 30 is reserved: filtered below
            IsochBufferOverrun,
            EventLost,
            UndefinedError,
            InvalidStreamId,
            SecondaryBandwidthError,
            SplitTransactionError,
        ];
        match TABLE.get(usize::from(raw)) {
            Some(code) if raw != 30 => Ok(*code),
            _ => Err(raw),
        }
    }
}

/// Formats a possibly unknown completion code.
pub(crate) struct CodeDisplay(pub(crate) Result<CompletionCode, u8>);

impl fmt::Display for CodeDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(code) => write!(f, "{code:?}"),
            Err(raw) => write!(f, "unknown completion code {raw}"),
        }
    }
}

/// A parsed event TRB (xHCI 1.2 §6.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Transfer Event (§6.4.2.1).
    Transfer {
        /// Pointer to the TRB that generated it (or Event Data if `event_data`).
        trb_pointer: u64,
        /// Residual length in bytes (not transferred).
        residual: u32,
        /// Completion code.
        code: Result<CompletionCode, u8>,
        /// Event Data flag.
        event_data: bool,
        /// Endpoint ID (DCI), 1..=31 in valid events.
        endpoint: u8,
        /// Slot ID.
        slot: u8,
    },
    /// Command Completion Event (§6.4.2.2).
    CommandCompletion {
        /// Pointer to the command TRB.
        command_pointer: u64,
        /// Completion parameter.
        parameter: u32,
        /// Completion code.
        code: Result<CompletionCode, u8>,
        /// Slot ID.
        slot: u8,
    },
    /// Port Status Change Event (§6.4.2.3).
    PortStatusChange {
        /// Root hub port number (1-based).
        port: u8,
        /// Completion code.
        code: Result<CompletionCode, u8>,
    },
    /// Host Controller Event (§6.4.2.6), e.g. Event Ring Full.
    HostController {
        /// Completion code.
        code: Result<CompletionCode, u8>,
    },
    /// Any other known event we don't act on (bandwidth request, doorbell,
    /// device notification, MFINDEX wrap).
    Other {
        /// Raw TRB type.
        trb_type: u8,
    },
}

/// Why a TRB is not an event we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrbParseError {
    /// A TRB type that is not an event type.
    UnknownType(u8),
}

/// Raw TRB type of a TRB.
pub(crate) fn trb_type_raw(trb: &[u32; 4]) -> u8 {
    ((trb[3] >> 10) & 0x3f) as u8
}

impl TryFrom<[u32; 4]> for Event {
    type Error = TrbParseError;

    fn try_from(trb: [u32; 4]) -> Result<Self, Self::Error> {
        let pointer = u64::from(trb[0]) | (u64::from(trb[1]) << 32);
        let code = CompletionCode::from_raw((trb[2] >> 24) as u8);
        let slot = (trb[3] >> 24) as u8;
        Ok(match trb_type_raw(&trb) {
            32 => Event::Transfer {
                trb_pointer: pointer,
                residual: trb[2] & 0x00ff_ffff,
                code,
                event_data: trb[3] & (1 << 2) != 0,
                endpoint: ((trb[3] >> 16) & 0x1f) as u8,
                slot,
            },
            33 => Event::CommandCompletion {
                command_pointer: pointer & !0xf,
                parameter: trb[2] & 0x00ff_ffff,
                code,
                slot,
            },
            34 => Event::PortStatusChange {
                port: (trb[0] >> 24) as u8,
                code,
            },
            37 => Event::HostController { code },
            t @ (35 | 36 | 38 | 39) => Event::Other { trb_type: t },
            t => return Err(TrbParseError::UnknownType(t)),
        })
    }
}

/// Command TRB builders (xHCI 1.2 §6.4.3). Cycle bits are set by the ring.
pub(crate) mod command {
    use super::TrbType;

    fn slot_bits(slot: u8) -> u32 {
        u32::from(slot) << 24
    }

    /// Enable Slot (§6.4.3.2).
    pub(crate) fn enable_slot(slot_type: u8) -> [u32; 4] {
        [
            0,
            0,
            0,
            TrbType::EnableSlot.bits() | (u32::from(slot_type & 0x1f) << 16),
        ]
    }
    /// No Op command (§6.4.3.1): completes with Success and does nothing.
    pub(crate) fn noop() -> [u32; 4] {
        [0, 0, 0, TrbType::NoopCommand.bits()]
    }
    /// Disable Slot (§6.4.3.3).
    pub(crate) fn disable_slot(slot: u8) -> [u32; 4] {
        [0, 0, 0, TrbType::DisableSlot.bits() | slot_bits(slot)]
    }
    /// Address Device (§6.4.3.4), BSR = 0.
    pub(crate) fn address_device(input_context: u64, slot: u8) -> [u32; 4] {
        [
            input_context as u32,
            (input_context >> 32) as u32,
            0,
            TrbType::AddressDevice.bits() | slot_bits(slot),
        ]
    }
    /// Configure Endpoint (§6.4.3.5).
    pub(crate) fn configure_endpoint(input_context: u64, slot: u8) -> [u32; 4] {
        [
            input_context as u32,
            (input_context >> 32) as u32,
            0,
            TrbType::ConfigureEndpoint.bits() | slot_bits(slot),
        ]
    }
    /// Evaluate Context (§6.4.3.6).
    pub(crate) fn evaluate_context(input_context: u64, slot: u8) -> [u32; 4] {
        [
            input_context as u32,
            (input_context >> 32) as u32,
            0,
            TrbType::EvaluateContext.bits() | slot_bits(slot),
        ]
    }
    /// Reset Endpoint (§6.4.3.7), TSP = 0.
    pub(crate) fn reset_endpoint(slot: u8, dci: u8) -> [u32; 4] {
        [
            0,
            0,
            0,
            TrbType::ResetEndpoint.bits() | (u32::from(dci) << 16) | slot_bits(slot),
        ]
    }
    /// Stop Endpoint (§6.4.3.8).
    pub(crate) fn stop_endpoint(slot: u8, dci: u8) -> [u32; 4] {
        [
            0,
            0,
            0,
            TrbType::StopEndpoint.bits() | (u32::from(dci) << 16) | slot_bits(slot),
        ]
    }
    /// Set TR Dequeue Pointer (§6.4.3.9), with the dequeue cycle state.
    pub(crate) fn set_tr_dequeue(slot: u8, dci: u8, pointer: u64, cycle: bool) -> [u32; 4] {
        let p = (pointer & !0xf) | u64::from(cycle);
        [
            p as u32,
            (p >> 32) as u32,
            0,
            TrbType::SetTrDequeuePointer.bits() | (u32::from(dci) << 16) | slot_bits(slot),
        ]
    }
}

/// Transfer TRB builders (xHCI 1.2 §6.4.1).
pub(crate) mod transfer {
    use super::*;

    /// Setup Stage with immediate data (§6.4.1.2.1). `trt`: 0 no data, 2 OUT, 3 IN.
    pub(crate) fn setup(setup: [u8; 8], trt: u32) -> [u32; 4] {
        let d0 = u32::from_le_bytes([setup[0], setup[1], setup[2], setup[3]]);
        let d1 = u32::from_le_bytes([setup[4], setup[5], setup[6], setup[7]]);
        [
            d0,
            d1,
            8,
            TrbType::SetupStage.bits() | TRB_IDT | (trt << 16),
        ]
    }
    /// Data Stage (§6.4.1.2.2).
    pub(crate) fn data(buffer: u64, len: u32, dir_in: bool) -> [u32; 4] {
        let dir = if dir_in { TRB_DIR_IN } else { 0 };
        [
            buffer as u32,
            (buffer >> 32) as u32,
            len & 0x1_ffff,
            TrbType::DataStage.bits() | dir | TRB_ISP,
        ]
    }
    /// Status Stage with IOC (§6.4.1.2.3).
    pub(crate) fn status(dir_in: bool) -> [u32; 4] {
        let dir = if dir_in { TRB_DIR_IN } else { 0 };
        [0, 0, 0, TrbType::StatusStage.bits() | dir | TRB_IOC]
    }
    /// Normal TRB with IOC and ISP (§6.4.1.1).
    pub(crate) fn normal(buffer: u64, len: u32) -> [u32; 4] {
        [
            buffer as u32,
            (buffer >> 32) as u32,
            len & 0x1_ffff,
            TrbType::Normal.bits() | TRB_IOC | TRB_ISP,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_completion_code_round_trips_or_is_kept() {
        let mut known = 0;
        for raw in 0..=255u8 {
            match CompletionCode::from_raw(raw) {
                Ok(code) => {
                    assert_eq!(code as u8, raw);
                    known += 1;
                }
                Err(r) => assert_eq!(r, raw),
            }
        }
        assert_eq!(known, 36);
    }

    #[test]
    fn parses_every_event_type() {
        let t = Event::try_from([
            0x1000,
            0x2,
            (13 << 24) | 5,
            (32 << 10) | (3 << 16) | (7 << 24) | 4 | 1,
        ])
        .unwrap();
        assert_eq!(
            t,
            Event::Transfer {
                trb_pointer: 0x2_0000_1000,
                residual: 5,
                code: Ok(CompletionCode::ShortPacket),
                event_data: true,
                endpoint: 3,
                slot: 7
            }
        );
        let c = Event::try_from([0x2010, 0, (1 << 24) | 0x42, (33 << 10) | (2 << 24)]).unwrap();
        assert_eq!(
            c,
            Event::CommandCompletion {
                command_pointer: 0x2010,
                parameter: 0x42,
                code: Ok(CompletionCode::Success),
                slot: 2
            }
        );
        let p = Event::try_from([5 << 24, 0, 1 << 24, 34 << 10]).unwrap();
        assert_eq!(
            p,
            Event::PortStatusChange {
                port: 5,
                code: Ok(CompletionCode::Success)
            }
        );
        let h = Event::try_from([0, 0, 21 << 24, 37 << 10]).unwrap();
        assert_eq!(
            h,
            Event::HostController {
                code: Ok(CompletionCode::EventRingFull)
            }
        );
        for t in [35u32, 36, 38, 39] {
            assert_eq!(
                Event::try_from([0, 0, 0, t << 10]).unwrap(),
                Event::Other { trb_type: t as u8 }
            );
        }
        let unknown_code = Event::try_from([0, 0, 200 << 24, 37 << 10]).unwrap();
        assert_eq!(unknown_code, Event::HostController { code: Err(200) });
        for t in (0u32..64).filter(|t| !(32..=39).contains(t)) {
            assert_eq!(
                Event::try_from([0, 0, 0, t << 10]),
                Err(TrbParseError::UnknownType(t as u8))
            );
        }
    }

    #[test]
    fn builders_encode_fields() {
        let s = command::set_tr_dequeue(3, 5, 0x1234_5670, true);
        assert_eq!(s, [0x1234_5671, 0, 0, (16 << 10) | (5 << 16) | (3 << 24)]);
        let setup = transfer::setup([0x80, 6, 0, 1, 0, 0, 18, 0], 3);
        assert_eq!(
            setup,
            [0x0100_0680, 0x0012_0000, 8, (2 << 10) | TRB_IDT | (3 << 16)]
        );
    }
}
