//! Per-slot resources, preallocated at attach time so hot-plug never allocates.
#![forbid(unsafe_code)]

use crate::descriptor::DeviceDescriptor;
use crate::dma::DmaBuf;
use crate::ring::ProducerRing;
use crate::trb::CompletionCode;
use crate::types::{DeviceState, Speed};

/// Bytes of DMA memory per device slot, carved as below (all 64-aligned).
pub(crate) const DEVICE_REGION_BYTES: usize = 8192;
const DEVICE_CONTEXT_OFFSET: usize = 0; // 2048 bytes (32 × 64)
const INPUT_CONTEXT_OFFSET: usize = 2048; // 2112 bytes (33 × 64)
const EP0_RING_OFFSET: usize = 4224;
/// TRBs in the control endpoint ring.
pub(crate) const EP0_RING_TRBS: usize = 32;
const INTR_RING_OFFSET: usize = EP0_RING_OFFSET + EP0_RING_TRBS * 16; // 4736
/// TRBs in the interrupt IN ring.
pub(crate) const INTR_RING_TRBS: usize = 16;
const REPORT_OFFSET: usize = INTR_RING_OFFSET + INTR_RING_TRBS * 16; // 4992
/// Bytes of the interrupt IN buffer.
pub(crate) const REPORT_BYTES: usize = 64;
const CONTROL_BUFFER_OFFSET: usize = 5120;
/// Bytes of the control transfer data buffer: the longest configuration
/// descriptor set and report descriptor read (the rest of the region).
pub(crate) const CONTROL_BUFFER_BYTES: usize = 3072;

const _: () =
    assert!(INPUT_CONTEXT_OFFSET >= DEVICE_CONTEXT_OFFSET + crate::context::DEVICE_CONTEXT_BYTES);
const _: () =
    assert!(EP0_RING_OFFSET >= INPUT_CONTEXT_OFFSET + crate::context::INPUT_CONTEXT_BYTES);
const _: () = assert!(
    EP0_RING_OFFSET.is_multiple_of(64)
        && INTR_RING_OFFSET.is_multiple_of(64)
        && REPORT_OFFSET.is_multiple_of(64)
);
const _: () = assert!(REPORT_OFFSET + REPORT_BYTES <= CONTROL_BUFFER_OFFSET);
const _: () = assert!(CONTROL_BUFFER_OFFSET + CONTROL_BUFFER_BYTES <= DEVICE_REGION_BYTES);

/// The interrupt IN endpoint of a boot keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyboardEndpoint {
    pub(crate) interface: u8,
    pub(crate) dci: u8,
    pub(crate) max_packet: u16,
    /// Interval field programmed (2^n × 125 µs, xHCI 1.2 §6.2.3.6).
    pub(crate) interval: u8,
}

/// Hub ports we can address: a route string tier is 4 bits (xHCI 1.2 §8.9),
/// so ports above 15 are not used.
pub(crate) const MAX_HUB_PORTS: usize = 15;

/// A configured hub (USB 2.0 §11): its status-change endpoint and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HubEndpoint {
    /// DCI of the status-change interrupt IN endpoint.
    pub(crate) dci: u8,
    pub(crate) max_packet: u16,
    /// Ports we drive (bNbrPorts capped to [`MAX_HUB_PORTS`]).
    pub(crate) ports: u8,
    /// Slot of the device on each port (0 = none).
    pub(crate) children: [u8; MAX_HUB_PORTS],
    /// Bit p: port p needs a look (bit 0: the hub's own status).
    pub(crate) changed: u16,
    /// Bit p: enumeration on port p failed; wait for a disconnect.
    pub(crate) failed: u16,
    /// Bit p: port p waits for its turn to be attached (`attach.rs`) ...
    pub(crate) waiting: u16,
    /// ... with the connect debounce.
    pub(crate) waiting_debounce: u16,
    /// HAL time from which the ports are power-good (USB 2.0 §11.23.2.1
    /// bPwrOn2PwrGood): not looked at before.
    pub(crate) ports_ready_us: u64,
    /// TT Think Time for the slot context (high-speed hubs; else 0).
    pub(crate) think_time: u8,
    /// A high-speed hub running one TT per port: its multiple-TT interface
    /// is selected (USB 2.0 §11.14.1.3, §11.23.1), so its slot context and
    /// those of the LS/FS devices behind it carry MTT (xHCI 1.2 §6.2.2).
    pub(crate) multi_tt: bool,
}

impl HubEndpoint {
    /// Bits 1..=ports.
    pub(crate) fn all_ports(&self) -> u16 {
        (((1u32 << (u32::from(self.ports) + 1)) - 2) & 0xffff) as u16
    }
}

/// Where a device sits in the USB tree (xHCI 1.2 §4.3.3, §6.2.2, §8.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Location {
    /// Root hub port (1-based).
    pub(crate) root_port: u8,
    /// Route string below the root port (4 bits per hub tier).
    pub(crate) route: u32,
    /// Slot of the parent hub (0: on a root port).
    pub(crate) parent_slot: u8,
    /// Port of the parent hub (0: on a root port).
    pub(crate) parent_port: u8,
    /// Slot of the high-speed hub whose TT serves this LS/FS device (0: none).
    pub(crate) tt_hub_slot: u8,
    /// Port of that hub.
    pub(crate) tt_port: u8,
    /// That hub has one TT per port (MTT, xHCI 1.2 §6.2.2).
    pub(crate) tt_multi: bool,
}

impl Location {
    /// A device on a root port.
    pub(crate) fn root(port: u8) -> Self {
        Self {
            root_port: port,
            ..Self::default()
        }
    }

    /// Hub tiers below the root port (0..=5).
    pub(crate) fn depth(&self) -> u32 {
        (0..5)
            .take_while(|i| (self.route >> (4 * i)) & 0xf != 0)
            .count() as u32
    }
}

/// A completed control transfer as seen by the event dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ControlDone {
    pub(crate) code: Result<CompletionCode, u8>,
}

/// Memory windows of one slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceMemory {
    pub(crate) device_context: DmaBuf,
    pub(crate) input_context: DmaBuf,
    pub(crate) ep0_ring: DmaBuf,
    pub(crate) intr_ring: DmaBuf,
    pub(crate) report: DmaBuf,
    pub(crate) control: DmaBuf,
}

impl DeviceMemory {
    /// Carves a [`DEVICE_REGION_BYTES`] region.
    pub(crate) fn carve(region: DmaBuf) -> Option<Self> {
        Some(Self {
            device_context: region
                .sub(DEVICE_CONTEXT_OFFSET, crate::context::DEVICE_CONTEXT_BYTES)?,
            input_context: region.sub(INPUT_CONTEXT_OFFSET, crate::context::INPUT_CONTEXT_BYTES)?,
            ep0_ring: region.sub(EP0_RING_OFFSET, EP0_RING_TRBS * 16)?,
            intr_ring: region.sub(INTR_RING_OFFSET, INTR_RING_TRBS * 16)?,
            report: region.sub(REPORT_OFFSET, REPORT_BYTES)?,
            control: region.sub(CONTROL_BUFFER_OFFSET, CONTROL_BUFFER_BYTES)?,
        })
    }
}

/// One device slot: preallocated memory plus what we know about the device.
pub(crate) struct Device {
    pub(crate) mem: DeviceMemory,
    /// `None`: the record is free.
    pub(crate) state: Option<DeviceState>,
    /// The controller's slot ID of the device (xHCI 1.2 §4.5.3), 1 to
    /// MaxSlotsEn: not this record's number (`slots.rs`); kept for the
    /// listing once the slot is released.
    pub(crate) slot_id: u8,
    pub(crate) port: u8,
    pub(crate) speed: Speed,
    pub(crate) descriptor: DeviceDescriptor,
    pub(crate) class: u8,
    pub(crate) ep0: ProducerRing,
    pub(crate) intr: ProducerRing,
    pub(crate) keyboard: Option<KeyboardEndpoint>,
    /// Position in the tree (root port, route string, parent hub).
    pub(crate) location: Location,
    /// Set when the device is a configured hub.
    pub(crate) hub: Option<HubEndpoint>,
    /// Physical address of the outstanding interrupt IN TRB.
    pub(crate) intr_outstanding: Option<u64>,
    /// The interrupt endpoint halted and needs Reset Endpoint / Set TR Dequeue.
    pub(crate) intr_needs_restart: bool,
    /// Status TRB of the control transfer in flight.
    pub(crate) control_status_trb: Option<u64>,
    /// EP0's ring is not at rest: set before a control transfer queues its
    /// first TRB, cleared once the transfer completed or EP0 was rewound
    /// (Set TR Dequeue Pointer, xHCI 1.2 §4.6.10). A CPU stopped anywhere in
    /// between leaves it set, even before `control_status_trb` is known.
    pub(crate) control_in_flight: bool,
    pub(crate) control_done: Option<ControlDone>,
    pub(crate) control_residual: u32,
    pub(crate) previous_report: [u8; 8],
    /// How the keyboard's reports are read: boot or report protocol.
    pub(crate) report_format: crate::hid::ReportFormat,
    pub(crate) reports: u32,
    pub(crate) errors: u32,
    pub(crate) rollover: u32,
    /// The device's slot was given back to the controller (Disable Slot,
    /// xHCI 1.2 §4.6.4) while this record keeps it listed: an ignored
    /// device, or one whose enumeration failed. Its slot ID may be handed
    /// out again, and the listing then moves (see `slots.rs`).
    pub(crate) slot_released: bool,
    /// Error recovery of the interrupt endpoint (soft retries, restarts).
    pub(crate) recovery: crate::transfer::EndpointRecovery,
}

/// What a record whose slot was released keeps listing (the identity of
/// the device, none of its endpoints or memory).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listing {
    state: Option<DeviceState>,
    slot_id: u8,
    port: u8,
    speed: Speed,
    descriptor: DeviceDescriptor,
    class: u8,
    location: Location,
}

impl Device {
    pub(crate) fn new(mem: DeviceMemory) -> Self {
        Self {
            mem,
            state: None,
            slot_id: 0,
            port: 0,
            speed: Speed::Full,
            descriptor: DeviceDescriptor::default(),
            class: 0,
            ep0: ProducerRing::new(EP0_RING_TRBS),
            intr: ProducerRing::new(INTR_RING_TRBS),
            keyboard: None,
            location: Location::default(),
            hub: None,
            intr_outstanding: None,
            intr_needs_restart: false,
            control_status_trb: None,
            control_in_flight: false,
            control_done: None,
            control_residual: 0,
            previous_report: [0; 8],
            report_format: crate::hid::ReportFormat::default(),
            reports: 0,
            errors: 0,
            rollover: 0,
            slot_released: false,
            recovery: crate::transfer::EndpointRecovery::default(),
        }
    }

    /// The identity this record lists.
    pub(crate) fn listing(&self) -> Listing {
        Listing {
            state: self.state,
            slot_id: self.slot_id,
            port: self.port,
            speed: self.speed,
            descriptor: self.descriptor,
            class: self.class,
            location: self.location,
        }
    }

    /// Makes this (free) record list `listing`, a device without a slot.
    pub(crate) fn adopt(&mut self, listing: Listing) {
        self.reset();
        self.state = listing.state;
        self.slot_id = listing.slot_id;
        self.port = listing.port;
        self.speed = listing.speed;
        self.descriptor = listing.descriptor;
        self.class = listing.class;
        self.location = listing.location;
        self.slot_released = true;
    }

    /// The interrupt IN endpoint we keep armed: (DCI, max packet), for a
    /// keyboard or a hub in its working state.
    pub(crate) fn interrupt_endpoint(&self) -> Option<(u8, u16)> {
        match self.state {
            Some(DeviceState::Keyboard) => self.keyboard.map(|k| (k.dci, k.max_packet)),
            Some(DeviceState::Hub) => self.hub.map(|h| (h.dci, h.max_packet)),
            _ => None,
        }
    }

    /// Does EP0 have TRBs of an unfinished control transfer on its ring (so
    /// it must be stopped and rewound before it is used again)?
    pub(crate) fn ep0_busy(&self) -> bool {
        self.control_in_flight || self.control_status_trb.is_some()
    }

    /// Returns the slot to the free state, zeroing its memory and rings.
    pub(crate) fn reset(&mut self) {
        let mem = self.mem;
        mem.device_context.zero();
        mem.input_context.zero();
        *self = Self::new(mem);
        let mut ep0 = self.mem.ep0_ring;
        self.ep0 = ProducerRing::reset(&mut ep0);
        let mut intr = self.mem.intr_ring;
        self.intr = ProducerRing::reset(&mut intr);
    }
}
