//! The steps of enumeration and detach: Enable Slot, Address Device,
//! descriptors, configuration of a boot keyboard or a hub (xHCI 1.2 §4.3,
//! USB 2.0 §9.1.2, HID 1.11 §7.2). `attach.rs` runs them as stages, with the
//! waits between them and the retries of Linux `hub_port_connect`.
//!
//! The addressing stage, as Linux `hub_port_init` runs it on xHCI with
//! `use_new_scheme` (USB 2.0 §9.1.2, §9.2.6.3; xHCI 1.2 §4.3.4, §4.6.5):
//!
//! 1. Address Device with BSR = 1: the slot goes to the Default state and
//!    no SET_ADDRESS is sent (Linux `xhci_enable_device`), EP0 at the
//!    speed's first guess ([`initial_max_packet0`]);
//! 2. GET_DESCRIPTOR(device, 64) at address 0, for bMaxPacketSize0: a
//!    device with a smaller EP0 ends the data stage with a short packet
//!    (1 and 2: [`Controller::enable_and_address`]);
//! 3. Address Device with BSR = 0 (SET_ADDRESS), up to [`SET_ADDRESS_TRIES`]
//!    times [`SET_ADDRESS_RETRY_US`] apart, then the SET_ADDRESS recovery
//!    interval ([`SET_ADDRESS_RECOVERY_US`]) ([`Controller::set_address`]);
//! 4. Evaluate Context if bMaxPacketSize0 differs from the guess;
//! 5. GET_DESCRIPTOR(device, 18), parsed (4 and 5: [`Controller::identify`]).
#![forbid(unsafe_code)]

use crate::context::{EndpointFields, EndpointType, SlotFields, keyboard_interval};
use crate::controller::Controller;
use crate::descriptor::{
    ConfigSummary, DESC_CONFIGURATION, DESC_DEVICE, DeviceDescriptor, InterruptInterface,
    SetupPacket, parse_config_header, parse_device_prefix,
};
use crate::device::{CONTROL_BUFFER_BYTES, DeviceMemory, KeyboardEndpoint, Location};
use crate::error::Error;
use crate::hal::Hal;
use crate::trb::command;
use crate::types::{DeviceState, EnumerationStep, Speed};

/// Hub device class (USB 2.0 §11.23.1).
const CLASS_HUB: u8 = 9;

/// Port initialisation attempts per connection (Linux `PORT_INIT_TRIES`).
pub(crate) const PORT_INIT_TRIES: u32 = 4;
/// Address Device (BSR = 0, SET_ADDRESS) tries per attempt (Linux
/// `SET_ADDRESS_TRIES`) ...
const SET_ADDRESS_TRIES: u32 = 2;
/// ... this far apart (Linux `hub_port_init`: `msleep(200)`).
const SET_ADDRESS_RETRY_US: u64 = 200_000;
/// After SET_ADDRESS, before the next request: USB 2.0 §9.2.6.3 gives the
/// device 2 ms; Linux `hub_port_init` waits 10 ms ("let SET_ADDRESS
/// settle, some device hardware wants it").
pub(crate) const SET_ADDRESS_RECOVERY_US: u64 = 10_000;
/// No new enumeration attempt starts after this long (the attempts of one
/// connection stay within about this, so a device that never answers does
/// not hold `poll()`, and with it the panic console, for long).
pub(crate) const ENUMERATION_BUDGET_US: u64 = 2_000_000;
/// Bytes of the first device descriptor read (Linux `hub_port_init`: 64,
/// "USB_DT_DEVICE_SIZE" would not reveal a bigger EP0).
const FIRST_READ_BYTES: u16 = 64;
/// Block Set Address Request of the Address Device TRB (xHCI 1.2 §6.4.3.4).
const ADDRESS_DEVICE_BSR: u32 = 1 << 9;

/// Is this failure of the addressing stage worth another port reset? A
/// device that did not answer (transaction errors, stalls, timeouts, a
/// garbled descriptor) is; a controller that failed, ran out of slots or
/// memory, or a device the driver cannot handle is not.
pub(crate) fn retryable(e: Error) -> bool {
    matches!(
        e,
        Error::Timeout { .. }
            | Error::CommandFailed { .. }
            | Error::TransferFailed { .. }
            | Error::BadDescriptor(_)
    )
}

/// EP0's max packet size before bMaxPacketSize0 is known (xHCI 1.2 §4.3.3):
/// 8 at low speed, 64 at full and high speed, 512 at SuperSpeed. Full speed
/// starts at 64 as Linux `hub_port_init` does ("64 as default for full
/// speed"), and because Bochs' xHCI refuses a full-speed Address Device
/// with any other EP0 size.
pub(crate) fn initial_max_packet0(speed: Speed) -> u16 {
    match speed {
        Speed::Low => 8,
        Speed::Full | Speed::High => 64,
        _ => 512,
    }
}

impl<H: Hal> Controller<H> {
    /// Configure Endpoint (xHCI 1.2 §4.6.6) for the device's one interrupt
    /// IN endpoint `dci`, on a freshly reset transfer ring; shared by the
    /// keyboard and the hub status-change endpoint.
    pub(crate) fn configure_interrupt_in(
        &mut self,
        index: usize,
        dci: u8,
        max_packet: u16,
        interval: u8,
        average_trb_length: u16,
        what: &'static str,
    ) -> Result<(), Error> {
        let slot = self.devices[index].slot_id;
        let context = self.caps.context;
        let mem = self.devices[index].mem;
        {
            let device = &mut self.devices[index];
            device.intr = crate::ring::ProducerRing::reset(&mut device.mem.intr_ring);
        }
        context.input_control(&mem.input_context, 1 | (1 << dci), 0);
        context.write_slot(&mem.input_context, self.slot_fields(index, dci));
        context.write_endpoint(
            &mem.input_context,
            dci,
            EndpointFields {
                ep_type: EndpointType::InterruptIn,
                max_packet,
                interval,
                dequeue: mem.intr_ring.phys(),
                dcs: self.devices[index].intr.cycle(),
                average_trb_length,
                max_esit_payload: max_packet,
            },
        );
        self.command(
            command::configure_endpoint(mem.input_context.phys(), slot),
            what,
        )?;
        Ok(())
    }

    /// Enable Slot for a device at `at` (a root port or a hub port that was
    /// just reset and has recovered), then steps 1 and 2 of the addressing
    /// stage (module docs). The slot is recorded
    /// in the root port table or in the parent hub before anything can
    /// fail, so a detach or a takeover always finds it. The outer error is
    /// a failure before there is a record (no slot, a controller error);
    /// the inner one a failure of the attempt on record `index`. Returns
    /// the record and (EP0's first guess, bMaxPacketSize0 reported).
    #[allow(
        clippy::type_complexity,
        reason = "two failure levels: without a record, and of the attempt on one"
    )]
    pub(crate) fn enable_and_address(
        &mut self,
        at: Location,
        speed: Speed,
    ) -> Result<(usize, Result<(u16, u8), Error>), Error> {
        let root = usize::from(at.root_port);
        if !(1..=usize::from(self.caps.ports)).contains(&root) {
            return Err(Error::NoSlot);
        }
        let slot_type = self.caps.slot_types[root - 1];
        let done = self.command(command::enable_slot(slot_type), "Enable Slot")?;
        if done.slot == 0 || self.slot_index(done.slot).is_some() {
            // a slot ID we think is in use: refuse it
            if done.slot != 0 {
                let _ = self.command(command::disable_slot(done.slot), "Disable Slot");
            }
            return Err(Error::NoSlot);
        }
        let Some(index) = self.free_record() else {
            // every record holds a device with a slot: give this one back
            let _ = self.command(command::disable_slot(done.slot), "Disable Slot");
            return Err(Error::Unsupported {
                what: "more devices than the driver's device records (MAX_DEVICES)",
            });
        };
        self.devices[index].reset();
        let device = &mut self.devices[index];
        device.state = Some(DeviceState::Enumerating);
        device.slot_id = done.slot;
        device.port = at.root_port;
        device.speed = speed;
        device.location = at;
        self.link_child(at, index as u8 + 1);
        self.probe(EnumerationStep::SlotEnabled);
        let guess = initial_max_packet0(speed);
        let first = self
            .address_device(index, guess, true)
            .and_then(|_| self.read_max_packet0(index))
            .map(|reported| (guess, reported));
        Ok((index, first))
    }

    /// Step 3 of the addressing stage (module docs): Address Device with BSR = 0
    /// (SET_ADDRESS), try `tries` of [`SET_ADDRESS_TRIES`]. `Ok(Err(us))`:
    /// it failed in a way worth another try, `us` from now.
    pub(crate) fn set_address(
        &mut self,
        index: usize,
        guess: u16,
        tries: u32,
    ) -> Result<Result<(), u64>, Error> {
        match self.address_device(index, guess, false) {
            Ok(_) => Ok(Ok(())),
            Err(e) if tries < SET_ADDRESS_TRIES && retryable(e) => Ok(Err(SET_ADDRESS_RETRY_US)),
            Err(e) => Err(e),
        }
    }

    /// Steps 4 and 5 of the addressing stage, after the SET_ADDRESS
    /// recovery: Evaluate Context if bMaxPacketSize0 (`reported`) differs
    /// from `guess`, then the device descriptor, recorded.
    pub(crate) fn identify(
        &mut self,
        index: usize,
        guess: u16,
        reported: u8,
    ) -> Result<DeviceDescriptor, Error> {
        let slot_fields = self.slot_fields(index, 1);
        self.update_max_packet0(index, slot_fields, guess, reported)?;
        let descriptor = self.read_device_descriptor(index)?;
        self.devices[index].descriptor = descriptor;
        self.devices[index].class = descriptor.class;
        self.probe(EnumerationStep::DescriptorRead);
        Ok(descriptor)
    }

    /// Configures the identified device of record `index` (a keyboard is
    /// armed, a hub watched, anything else listed without its slot); a
    /// failure here is final: the device is listed as failed.
    pub(crate) fn finish_enumeration(
        &mut self,
        index: usize,
        descriptor: DeviceDescriptor,
    ) -> Result<(), Error> {
        match self.configure_device(index, descriptor) {
            Ok(state) => {
                self.devices[index].state = Some(state);
                match state {
                    DeviceState::Keyboard => self.queue_interrupt(index),
                    DeviceState::Ignored => self.release_slot(index),
                    _ => {}
                }
                Ok(())
            }
            Err(e) => {
                self.fail_enumeration(index);
                Err(e)
            }
        }
    }

    /// Lists record `index` as failed until its port changes, without a slot.
    pub(crate) fn fail_enumeration(&mut self, index: usize) {
        self.devices[index].state = Some(DeviceState::Failed);
        self.devices[index].hub = None;
        self.release_slot(index);
    }

    /// Is `slot` (0: none) a device that was enumerated and works (not
    /// one listed as failed)? Only such a device is enumerated again when
    /// its port is found disabled: a failed one on a port that never
    /// enables would otherwise be retried on every event its own port
    /// resets cause, for ever.
    pub(crate) fn is_working(&self, slot: u8) -> bool {
        usize::from(slot)
            .checked_sub(1)
            .and_then(|i| self.devices.get(i))
            .and_then(|d| d.state)
            .is_some_and(|s| s != DeviceState::Failed)
    }

    /// Records `slot` as the device at `at` (root port table or parent hub).
    fn link_child(&mut self, at: Location, slot: u8) {
        if let Some(link) = self.parent_link(at) {
            *link = slot;
        }
    }

    /// Slot context fields of a device, from its record (§6.2.2): route
    /// string, speed, root port, and for a LS/FS device behind a high-speed
    /// hub the TT Hub Slot ID, TT Port Number and MTT (as Linux
    /// `xhci_setup_addressable_virt_dev` fills `tt_info` and `DEV_MTT`); for
    /// a hub, Hub, Number of Ports, TTT and its own MTT (Linux
    /// `xhci_update_hub_device`).
    pub(crate) fn slot_fields(&self, index: usize, context_entries: u8) -> SlotFields {
        let device = &self.devices[index];
        let at = device.location;
        let mut fields = SlotFields {
            route: at.route,
            speed: device.speed.id(),
            context_entries,
            root_port: at.root_port,
            tt_hub_slot: self.slot_id_of(at.tt_hub_slot),
            tt_port: at.tt_port,
            mtt: at.tt_multi,
            ..SlotFields::default()
        };
        if let Some(hub) = device.hub {
            fields.hub = true;
            fields.mtt |= hub.multi_tt;
            fields.hub_ports = hub.ports;
            fields.think_time = hub.think_time;
        }
        fields
    }

    /// Configuration of an identified device: a keyboard or a hub is
    /// configured, anything else left alone.
    fn configure_device(
        &mut self,
        index: usize,
        descriptor: DeviceDescriptor,
    ) -> Result<DeviceState, Error> {
        let summary = self.read_configuration(index)?;
        if descriptor.class == 0 {
            self.devices[index].class = summary.first_interface_class;
        }
        let super_speed = matches!(self.devices[index].speed, Speed::Super | Speed::Other(_));
        let state = if let Some(keyboard) = summary.keyboard {
            self.configure_keyboard(index, summary.value, keyboard)?;
            DeviceState::Keyboard
        } else if summary.hub.is_some() && super_speed {
            // the SuperSpeed half of a USB 3 hub (bDeviceProtocol 3 on a USB
            // 3 port, USB 3.2 §10.15.1): not driven (its descriptor 0x2A and
            // port requests are USB 3.2 §10.16's); its USB 2.0 half on the
            // paired USB 2 port carries the low/full/high-speed devices, as
            // Linux's hub driver runs the two halves as two hubs
            DeviceState::Ignored
        } else if let (Some(hub), CLASS_HUB | 0) = (summary.hub, descriptor.class) {
            self.configure_hub(index, summary.value, hub)?;
            DeviceState::Hub
        } else {
            DeviceState::Ignored
        };
        self.probe(EnumerationStep::Configured);
        Ok(state)
    }

    /// Fills the input context with the slot and EP0 at `max_packet0`
    /// (§4.3.3), points the DCBAA entry at the device context and issues
    /// Address Device, with Block Set Address Request `bsr` (§4.6.5,
    /// §6.4.3.4). EP0's ring starts afresh each time: a second Address
    /// Device takes EP0's TR Dequeue Pointer from the input context again
    /// (as Linux `xhci_copy_ep0_dequeue_into_input_ctx` supplies it).
    /// Returns the slot fields used.
    fn address_device(
        &mut self,
        index: usize,
        max_packet0: u16,
        bsr: bool,
    ) -> Result<SlotFields, Error> {
        let slot = self.devices[index].slot_id;
        let context = self.caps.context;
        {
            let device = &mut self.devices[index];
            device.ep0 = crate::ring::ProducerRing::reset(&mut device.mem.ep0_ring);
        }
        let mem = self.devices[index].mem;
        context.input_control(&mem.input_context, 0b11, 0);
        let slot_fields = self.slot_fields(index, 1);
        context.write_slot(&mem.input_context, slot_fields);
        let dcs = self.devices[index].ep0.cycle();
        context.write_endpoint(&mem.input_context, 1, ep0_fields(&mem, max_packet0, dcs));
        self.mem
            .dcbaa
            .write64(usize::from(slot) * 8, mem.device_context.phys());
        let mut trb = command::address_device(mem.input_context.phys(), slot);
        if bsr {
            trb[3] |= ADDRESS_DEVICE_BSR;
        }
        let name = if bsr {
            "Address Device (BSR=1)"
        } else {
            "Address Device"
        };
        self.command(trb, name)?;
        Ok(slot_fields)
    }

    /// GET_DESCRIPTOR(device, 64) in the Default state (Linux `hub_port_init`
    /// "new scheme"): bMaxPacketSize0 (USB 2.0 §9.6.1) from the first
    /// packet, whatever its size.
    fn read_max_packet0(&mut self, index: usize) -> Result<u8, Error> {
        let n = self.control(
            index,
            SetupPacket::get_descriptor(DESC_DEVICE, 0, FIRST_READ_BYTES),
            &[],
            "GET_DESCRIPTOR(device, 64)",
        )?;
        let mut prefix = [0u8; 8];
        let n = n.min(8);
        self.devices[index]
            .mem
            .control
            .read_bytes(0, &mut prefix[..n]);
        Ok(parse_device_prefix(&prefix[..n])?)
    }

    /// If bMaxPacketSize0 (`reported`, USB 2.0 §9.6.1: bytes, or an
    /// exponent at SuperSpeed) differs from EP0's `current` max packet
    /// size, tells the controller with Evaluate Context (§4.6.7).
    fn update_max_packet0(
        &mut self,
        index: usize,
        slot_fields: SlotFields,
        current: u16,
        reported: u8,
    ) -> Result<(), Error> {
        let slot = self.devices[index].slot_id;
        let context = self.caps.context;
        let mem = self.devices[index].mem;
        let speed = self.devices[index].speed;
        let actual = if matches!(speed, Speed::Super | Speed::Other(_)) {
            1u16 << reported.min(9)
        } else {
            u16::from(reported).clamp(8, 64)
        };
        if actual == current {
            return Ok(());
        }
        let dcs = self.devices[index].ep0.cycle();
        context.input_control(&mem.input_context, 0b10, 0);
        context.write_slot(&mem.input_context, slot_fields);
        context.write_endpoint(&mem.input_context, 1, ep0_fields(&mem, actual, dcs));
        self.command(
            command::evaluate_context(mem.input_context.phys(), slot),
            "Evaluate Context",
        )?;
        Ok(())
    }

    /// GET_DESCRIPTOR(device), parsed.
    fn read_device_descriptor(&mut self, index: usize) -> Result<DeviceDescriptor, Error> {
        let n = self.control(
            index,
            SetupPacket::get_descriptor(DESC_DEVICE, 0, 18),
            &[],
            "GET_DESCRIPTOR(device)",
        )?;
        let mut bytes = [0u8; 18];
        self.devices[index]
            .mem
            .control
            .read_bytes(0, &mut bytes[..n.min(18)]);
        Ok(DeviceDescriptor::parse(&bytes[..n.min(18)])?)
    }

    /// GET_DESCRIPTOR(configuration) (USB 2.0 §9.4.3): the 9-byte header
    /// for wTotalLength, then the whole configuration descriptor set in one
    /// request of wTotalLength bytes, up to [`CONTROL_BUFFER_BYTES`]
    /// (3 KiB; Linux reads up to 64 KiB, a keyboard's is under 200 bytes).
    /// A longer configuration is parsed up to the bound: the descriptors
    /// that fit in it are used, the one cut and the rest ignored
    /// (`ConfigSummary::truncated`). Then the keyboard interface is chosen
    /// (`keyboard_setup.rs`), reading report descriptors as needed.
    fn read_configuration(&mut self, index: usize) -> Result<ConfigSummary, Error> {
        let control = self.devices[index].mem.control;
        let n = self.control(
            index,
            SetupPacket::get_descriptor(DESC_CONFIGURATION, 0, 9),
            &[],
            "GET_DESCRIPTOR(config, 9)",
        )?;
        let mut header = [0u8; 9];
        control.read_bytes(0, &mut header[..n.min(9)]);
        let (_, total) = parse_config_header(&header[..n.min(9)])?;
        let want = usize::from(total).clamp(9, CONTROL_BUFFER_BYTES);
        let n = self.control(
            index,
            SetupPacket::get_descriptor(DESC_CONFIGURATION, 0, want as u16),
            &[],
            "GET_DESCRIPTOR(config)",
        )?;
        let mut summary = {
            // scoped: the copy is gone before the report descriptors are read
            let mut config = [0u8; CONTROL_BUFFER_BYTES];
            let n = n.min(want);
            control.read_bytes(0, &mut config[..n]);
            ConfigSummary::parse(&config[..n])?
        };
        self.choose_keyboard(index, &mut summary)?;
        Ok(summary)
    }

    /// SET_PROTOCOL(boot) for a boot keyboard, SET_IDLE(0), Configure
    /// Endpoint, LEDs. SET_CONFIGURATION was sent by `read_configuration`
    /// (`choose_keyboard`) before the report descriptors were read: a
    /// keyboard is always a HID interface.
    fn configure_keyboard(
        &mut self,
        index: usize,
        _configuration: u8,
        keyboard: InterruptInterface,
    ) -> Result<(), Error> {
        let speed = self.devices[index].speed;
        self.select_protocol(index, keyboard.interface);
        if let Err(e) = self.control(
            index,
            SetupPacket::set_idle(keyboard.interface),
            &[],
            "SET_IDLE",
        ) {
            self.note_error(e);
        }
        let dci = keyboard.endpoint * 2 + 1;
        let max_packet = keyboard.max_packet.clamp(1, 64);
        let interval = keyboard_interval(speed.id(), keyboard.interval, self.keyboard_poll_ms);
        self.configure_interrupt_in(index, dci, max_packet, interval, 8, "Configure Endpoint")?;
        self.devices[index].keyboard = Some(KeyboardEndpoint {
            interface: keyboard.interface,
            dci,
            max_packet,
            interval,
        });
        if let Some((setup, data, length)) = self.led_request(index, keyboard.interface)
            && let Err(e) = self.control(index, setup, &data[..length], "SET_REPORT (LEDs)")
        {
            self.note_error(e);
        }
        Ok(())
    }

    /// Forgets the device on a root port and everything behind it.
    pub(crate) fn detach(&mut self, port: u8) {
        let slot = self.ports[usize::from(port - 1)].slot;
        self.ports[usize::from(port - 1)].slot = 0;
        self.detach_slot(slot);
    }

    /// Forgets a device: first the devices behind it if it is a hub (the
    /// recursion is bounded by the 5 hub tiers of a route string), then
    /// releases its keys, Disable Slot, unlinks it from its parent and frees
    /// the slot's preallocated resources.
    pub(crate) fn detach_slot(&mut self, slot: u8) {
        let Some(index) = usize::from(slot)
            .checked_sub(1)
            .filter(|&i| i < self.devices.len())
        else {
            return;
        };
        if self.devices[index].state.is_none() {
            return;
        }
        self.cancel_attach_of(index);
        if let Some(hub) = self.devices[index].hub.take() {
            for child in hub.children {
                if child != 0 && child != slot {
                    self.detach_slot(child);
                }
            }
        }
        let mut previous = self.devices[index].previous_report;
        if self.devices[index].keyboard.is_some() {
            self.keyboard.release_all(&mut previous);
        }
        let at = self.devices[index].location;
        // Mark it free first so late events for it are rejected.
        self.devices[index].state = None;
        if !self.devices[index].slot_released {
            let slot_id = self.devices[index].slot_id;
            if let Err(e) = self.command(command::disable_slot(slot_id), "Disable Slot") {
                self.note_error(e);
            }
            self.mem.dcbaa.write64(usize::from(slot_id) * 8, 0);
        }
        self.devices[index].reset();
        self.relink(at, slot, 0, false);
    }
}

/// The EP0 context fields (§6.2.3): control, `max_packet`, its ring in
/// `mem` with dequeue cycle state `dcs`.
fn ep0_fields(mem: &DeviceMemory, max_packet: u16, dcs: bool) -> EndpointFields {
    EndpointFields {
        ep_type: EndpointType::Control,
        max_packet,
        interval: 0,
        dequeue: mem.ep0_ring.phys(),
        dcs,
        average_trb_length: 8,
        max_esit_payload: 0,
    }
}
