//! Device, input, slot and endpoint contexts (xHCI 1.2 §6.2), 32- or 64-byte.
//!
//! Contexts live in DMA memory and are written field by field through
//! [`DmaBuf`]; reads of controller-owned contexts return raw, masked values
//! (never a panicking enum conversion, unlike the `xhci` crate's getters).
#![forbid(unsafe_code)]

use crate::dma::DmaBuf;

/// Number of contexts in a device context (slot + 31 endpoints).
pub(crate) const DEVICE_CONTEXTS: usize = 32;
/// Number of contexts in an input context (input control + device context).
pub(crate) const INPUT_CONTEXTS: usize = 33;
/// Bytes to reserve for a device context at the largest context size.
pub(crate) const DEVICE_CONTEXT_BYTES: usize = DEVICE_CONTEXTS * 64;
/// Bytes to reserve for an input context at the largest context size.
pub(crate) const INPUT_CONTEXT_BYTES: usize = INPUT_CONTEXTS * 64;
// The largest context (64 bytes, DCI 31) fits in the buffers reserved for
// device and input contexts (§6.2.1, §6.2.5), at the offsets used below.
const _: () = assert!(LARGEST.device_endpoint(31) + 64 <= DEVICE_CONTEXT_BYTES);
const _: () = assert!(LARGEST.input_endpoint(31) + 64 <= INPUT_CONTEXT_BYTES);
const LARGEST: ContextLayout = ContextLayout { size: 64 };

/// Endpoint types (§6.2.3, Table 6-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointType {
    /// Control, bidirectional.
    Control = 4,
    /// Interrupt IN.
    InterruptIn = 7,
}

/// Endpoint states (§6.2.3, Table 6-8), raw.
pub(crate) const EP_STATE_HALTED: u8 = 2;
/// Stopped.
pub(crate) const EP_STATE_STOPPED: u8 = 3;

/// Slot context fields we program (§6.2.2).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SlotFields {
    /// Route string (hub tiers below the root port).
    pub(crate) route: u32,
    /// PORTSC speed ID.
    pub(crate) speed: u8,
    /// Last valid endpoint context index (DCI).
    pub(crate) context_entries: u8,
    /// Root hub port number (1-based).
    pub(crate) root_port: u8,
    /// The device is a hub (Hub, §6.2.2).
    pub(crate) hub: bool,
    /// Multi-TT in use (MTT): a high-speed hub whose multiple-TT interface
    /// is selected, or a LS/FS device (or full-speed hub) behind the TT of
    /// such a hub (§6.2.2).
    pub(crate) mtt: bool,
    /// Number of downstream ports, hubs only.
    pub(crate) hub_ports: u8,
    /// TT Think Time (TTT, 0-3), high-speed hubs only.
    pub(crate) think_time: u8,
    /// Slot of the high-speed hub whose TT serves this LS/FS device (0: none).
    pub(crate) tt_hub_slot: u8,
    /// Port of that hub (0: none).
    pub(crate) tt_port: u8,
}

/// Endpoint context fields we program (§6.2.3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndpointFields {
    /// Endpoint type.
    pub(crate) ep_type: EndpointType,
    /// Max packet size.
    pub(crate) max_packet: u16,
    /// Interval as 2^n × 125 µs.
    pub(crate) interval: u8,
    /// TR dequeue pointer (16-byte aligned).
    pub(crate) dequeue: u64,
    /// Dequeue cycle state.
    pub(crate) dcs: bool,
    /// Average TRB length.
    pub(crate) average_trb_length: u16,
    /// Max ESIT payload (periodic endpoints).
    pub(crate) max_esit_payload: u16,
}

/// Context size and helpers that locate contexts inside a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContextLayout {
    /// 32 or 64.
    pub(crate) size: usize,
}

impl ContextLayout {
    /// Zeroes an input context and sets its Add/Drop flags (§6.2.5.1).
    pub(crate) fn input_control(&self, input: &DmaBuf, add: u32, drop: u32) {
        input.zero();
        input.write32(0, drop);
        input.write32(4, add);
    }

    /// Offset of the slot context in an input context.
    fn input_slot(&self) -> usize {
        self.size
    }

    /// Offset of endpoint `dci` in an input context.
    const fn input_endpoint(&self, dci: u8) -> usize {
        self.size * (1 + dci as usize)
    }

    /// Offset of endpoint `dci` in an output device context.
    const fn device_endpoint(&self, dci: u8) -> usize {
        self.size * dci as usize
    }

    /// Writes the slot context of an input context.
    pub(crate) fn write_slot(&self, input: &DmaBuf, f: SlotFields) {
        let o = self.input_slot();
        input.write32(
            o,
            (f.route & 0xf_ffff)
                | (u32::from(f.speed & 0xf) << 20)
                | (u32::from(f.mtt) << 25)
                | (u32::from(f.hub) << 26)
                | (u32::from(f.context_entries & 0x1f) << 27),
        );
        input.write32(
            o + 4,
            (u32::from(f.root_port) << 16) | (u32::from(f.hub_ports) << 24),
        );
        // Interrupter Target 0.
        input.write32(
            o + 8,
            u32::from(f.tt_hub_slot)
                | (u32::from(f.tt_port) << 8)
                | (u32::from(f.think_time & 3) << 16),
        );
        input.write32(o + 12, 0);
    }

    /// Writes endpoint context `dci` of an input context.
    pub(crate) fn write_endpoint(&self, input: &DmaBuf, dci: u8, f: EndpointFields) {
        let o = self.input_endpoint(dci);
        input.write32(o, u32::from(f.interval) << 16);
        // CErr = 3 (§4.8.2.1 recommendation), EP type, max packet size.
        input.write32(
            o + 4,
            (3 << 1) | ((f.ep_type as u32) << 3) | (u32::from(f.max_packet) << 16),
        );
        input.write64(o + 8, (f.dequeue & !0xf) | u64::from(f.dcs));
        input.write32(
            o + 16,
            u32::from(f.average_trb_length) | (u32::from(f.max_esit_payload) << 16),
        );
    }

    /// Raw endpoint state (3 bits) of `dci` in an output device context.
    pub(crate) fn endpoint_state(&self, device: &DmaBuf, dci: u8) -> u8 {
        (device.read32(self.device_endpoint(dci)) & 0x7) as u8
    }

    /// Dequeue Cycle State of `dci` (endpoint context dword 2 bit 0,
    /// §6.2.3) in an output device context: the consumer cycle state the
    /// controller left the endpoint with when it stopped (§4.6.9).
    pub(crate) fn endpoint_dequeue_cycle(&self, device: &DmaBuf, dci: u8) -> bool {
        device.read32(self.device_endpoint(dci) + 8) & 1 != 0
    }

    /// USB Device Address the controller assigned (slot context dword 3
    /// bits 7:0, §6.2.2), from an output device context; 7 bits (USB 2.0
    /// §9.4.6), masked so a corrupt context gives a valid-looking value,
    /// never a panic.
    pub(crate) fn device_address(&self, device: &DmaBuf) -> u8 {
        (device.read32(12) & 0x7f) as u8
    }
}

/// Interval field for an interrupt endpoint (§6.2.3.6): full/low speed
/// `bInterval` is in 1 ms frames, high/super speed is 2^(bInterval-1) × 125 µs.
pub(crate) fn interrupt_interval(speed: u8, b_interval: u8) -> u8 {
    match speed {
        1 | 2 => {
            // frames → 125 µs units, rounded down to a power of two, 3..=10.
            let micro = u32::from(b_interval.max(1)) * 8;
            let log = 31 - micro.leading_zeros();
            log.clamp(3, 10) as u8
        }
        _ => b_interval.clamp(1, 16) - 1,
    }
}

/// Interval field for a keyboard's interrupt endpoint: the device's own
/// ([`interrupt_interval`]), shortened to a period of at most `max_period_ms`
/// milliseconds (Linux usbhid's `kbpoll`), never lengthened. The cap is the
/// largest 2^n × 125 µs not above `max_period_ms` (1 ms = 8 microframes → 3);
/// 0 leaves the device's interval alone.
pub(crate) fn keyboard_interval(speed: u8, b_interval: u8, max_period_ms: u8) -> u8 {
    let device = interrupt_interval(speed, b_interval);
    if max_period_ms == 0 {
        return device;
    }
    let micro = u32::from(max_period_ms) * 8;
    let cap = (31 - micro.leading_zeros()) as u8;
    device.min(cap)
}

/// The period, in µs, of an endpoint with Interval field `interval` (§6.2.3.6).
pub(crate) fn interval_us(interval: u8) -> u32 {
    125u32 << interval.min(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(interrupt_interval(1, 10), 6); // 80 → 64 = 2^6 × 125µs = 8 ms
        assert_eq!(interrupt_interval(2, 1), 3);
        assert_eq!(interrupt_interval(1, 255), 10);
        assert_eq!(interrupt_interval(3, 4), 3);
        assert_eq!(interrupt_interval(4, 0), 0);
    }

    /// Speed IDs (xHCI 1.2 §7.2.2.1.1): full, low, high, super.
    const FULL: u8 = 1;
    const LOW: u8 = 2;
    const HIGH: u8 = 3;
    const SUPER: u8 = 4;

    #[test]
    fn keyboard_interval_is_the_shorter_of_device_and_kbpoll() {
        // (speed, bInterval, kbpoll ms, Interval)
        let cases = [
            // LS/FS: bInterval in frames; 1 ms = 8 microframes = 2^3
            (FULL, 10, 1, 3),
            (FULL, 10, 0, 6), // no cap: 10 ms → 8 ms
            (FULL, 10, 8, 6),
            (FULL, 10, 10, 6),
            (FULL, 10, 16, 6), // never slower than the device asks
            (FULL, 1, 8, 3),
            (FULL, 0, 8, 3),
            (FULL, 255, 255, 10),
            (FULL, 255, 2, 4),
            (FULL, 255, 3, 4),
            (FULL, 255, 4, 5),
            (LOW, 10, 1, 3),
            (LOW, 24, 1, 3),
            (LOW, 24, 0, 7),
            (LOW, 10, 255, 6),
            // HS/SS: bInterval b is 2^(b-1) microframes
            (HIGH, 7, 1, 3), // QEMU's usb-kbd at high speed: 8 ms → 1 ms
            (HIGH, 7, 0, 6),
            (HIGH, 7, 8, 6),
            (HIGH, 7, 255, 6),
            (HIGH, 1, 1, 0), // 125 µs stays 125 µs
            (HIGH, 4, 1, 3),
            (HIGH, 4, 2, 3),
            (HIGH, 16, 1, 3),
            (HIGH, 16, 255, 10),
            (HIGH, 0, 1, 0),
            (SUPER, 8, 1, 3),
            (SUPER, 8, 0, 7),
            (SUPER, 2, 1, 1),
            (SUPER, 16, 100, 9), // 100 ms → 64 ms
        ];
        for (speed, b_interval, kbpoll, want) in cases {
            assert_eq!(
                keyboard_interval(speed, b_interval, kbpoll),
                want,
                "speed {speed} bInterval {b_interval} kbpoll {kbpoll}"
            );
        }
    }

    #[test]
    fn keyboard_interval_never_exceeds_kbpoll_or_the_device() {
        for speed in [FULL, LOW, HIGH, SUPER] {
            for b_interval in 0..=255u8 {
                let device = interrupt_interval(speed, b_interval);
                for kbpoll in 1..=255u8 {
                    let got = keyboard_interval(speed, b_interval, kbpoll);
                    assert!(got <= device);
                    assert!(interval_us(got) <= u32::from(kbpoll) * 1000);
                    if matches!(speed, FULL | LOW) {
                        assert!((3..=10).contains(&got), "LS/FS Interval range 3..=10");
                    }
                }
            }
        }
        assert_eq!(interval_us(3), 1000);
        assert_eq!(interval_us(0), 125);
    }
}
