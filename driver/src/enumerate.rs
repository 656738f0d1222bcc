//! Attach and detach: port reset, Enable Slot, Address Device, descriptors,
//! configuration of a boot keyboard (xHCI 1.2 §4.3, USB 2.0 §9.1.2, HID 1.11 §7.2).
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

/// Port reset completion (USB 2.0 §7.1.7.5 TDRST is 10-20 ms; be generous).
const PORT_RESET_TIMEOUT_US: u64 = 500_000;
/// Reset recovery before the first request (USB 2.0 §7.1.7.5 TRSTRCY).
pub(crate) const RESET_RECOVERY_US: u64 = 10_000;

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
        let slot = index as u8 + 1;
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

    /// Handles a port whose status changed. Returns (attached, detached).
    pub(crate) fn port_changed(&mut self, port: u8) -> (u32, u32) {
        let portsc = self.regs.portsc(port);
        if portsc.is_all_ones() {
            return (0, 0);
        }
        if portsc.has_changes() {
            self.regs.write_portsc(port, |w| w.clear_changes(portsc));
        }
        let connected = portsc.current_connect_status();
        let state = &mut self.ports[usize::from(port - 1)];
        let mut detached = 0;
        if state.slot != 0 && (!connected || portsc.connect_status_change()) {
            self.detach(port);
            detached = 1;
        }
        let state = &mut self.ports[usize::from(port - 1)];
        if !connected {
            state.failed = false;
            return (0, detached);
        }
        if state.slot != 0 || state.failed {
            return (0, detached);
        }
        match self.attach(port) {
            Ok(()) => (1, detached),
            Err(e) => {
                self.note_error(e);
                self.ports[usize::from(port - 1)].failed = true;
                (0, detached)
            }
        }
    }

    /// Resets a root port and waits for it to be enabled (§4.3.1).
    fn reset_port(&mut self, port: u8) -> Result<(), Error> {
        self.regs.write_portsc(port, |w| w.set_port_reset());
        self.wait_for(PORT_RESET_TIMEOUT_US, "port reset (PORTSC.PRC)", |c| {
            let sc = c.regs.portsc(port);
            Ok(sc.is_all_ones()
                || sc.port_reset_change()
                || (sc.port_enabled() && !sc.port_reset()))
        })?;
        let sc = self.regs.portsc(port);
        if sc.port_reset_change() {
            self.regs
                .write_portsc(port, |w| w.clear_port_reset_change());
        }
        if !sc.port_enabled() || !sc.current_connect_status() {
            return Err(Error::Timeout {
                what: "port enable after reset",
            });
        }
        Ok(())
    }

    /// Enumerates the device on a root port.
    fn attach(&mut self, port: u8) -> Result<(), Error> {
        let is_usb3 = self.caps.usb3_ports & (1 << (port - 1)) != 0;
        // USB 3 ports enable themselves after link training; USB 2 ports need a reset.
        if !is_usb3 || !self.regs.portsc(port).port_enabled() {
            self.reset_port(port)?;
        }
        self.hal.delay_us(RESET_RECOVERY_US);
        let speed = Speed::from_id(self.regs.portsc(port).port_speed());
        self.enumerate(Location::root(port), speed).map(|_| ())
    }

    /// Enable Slot, Address Device, descriptors and configuration of a device
    /// at `at` (a root port or a hub port that was just reset). The slot is
    /// recorded in the root port table or in the parent hub before anything
    /// can fail, so a detach or a takeover always finds it. Returns the slot.
    pub(crate) fn enumerate(&mut self, at: Location, speed: Speed) -> Result<u8, Error> {
        let root = usize::from(at.root_port);
        if !(1..=usize::from(self.caps.ports)).contains(&root) {
            return Err(Error::NoSlot);
        }
        let slot_type = self.caps.slot_types[root - 1];
        let done = self.command(command::enable_slot(slot_type), "Enable Slot")?;
        let Some(index) = usize::from(done.slot)
            .checked_sub(1)
            .filter(|&i| i < usize::from(self.caps.slots))
        else {
            return Err(Error::NoSlot);
        };
        if self.devices[index].state.is_some() {
            // the controller handed out a slot we think is in use: refuse it
            let _ = self.command(command::disable_slot(done.slot), "Disable Slot");
            return Err(Error::NoSlot);
        }
        self.devices[index].reset();
        let device = &mut self.devices[index];
        device.state = Some(DeviceState::Enumerating);
        device.port = at.root_port;
        device.speed = speed;
        device.location = at;
        self.link_child(at, done.slot);
        self.probe(EnumerationStep::SlotEnabled);
        match self.configure_device(index) {
            Ok(state) => {
                self.devices[index].state = Some(state);
                if state == DeviceState::Keyboard {
                    self.queue_interrupt(index);
                }
                Ok(done.slot)
            }
            Err(e) => {
                // keep it listed as failed until it is unplugged
                self.devices[index].state = Some(DeviceState::Failed);
                self.devices[index].hub = None;
                Err(e)
            }
        }
    }

    /// Records `slot` as the device at `at` (root port table or parent hub).
    fn link_child(&mut self, at: Location, slot: u8) {
        if at.parent_slot == 0 {
            self.ports[usize::from(at.root_port - 1)].slot = slot;
        } else if let Some(hub) = usize::from(at.parent_slot)
            .checked_sub(1)
            .and_then(|i| self.devices.get_mut(i))
            .and_then(|d| d.hub.as_mut())
            && let Some(child) = hub
                .children
                .get_mut(usize::from(at.parent_port).wrapping_sub(1))
        {
            *child = slot;
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
            tt_hub_slot: at.tt_hub_slot,
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

    /// Address Device, descriptors, and for a keyboard or hub its configuration.
    fn configure_device(&mut self, index: usize) -> Result<DeviceState, Error> {
        let slot_fields = self.address_device(index)?;
        self.probe(EnumerationStep::Addressed);
        self.update_max_packet0(index, slot_fields)?;
        let descriptor = self.read_device_descriptor(index)?;
        self.devices[index].descriptor = descriptor;
        self.devices[index].class = descriptor.class;
        self.probe(EnumerationStep::DescriptorRead);

        let summary = self.read_configuration(index)?;
        if descriptor.class == 0 {
            self.devices[index].class = summary.first_interface_class;
        }
        let state = if let Some(keyboard) = summary.keyboard {
            self.configure_keyboard(index, summary.value, keyboard)?;
            DeviceState::Keyboard
        } else if let (Some(hub), CLASS_HUB | 0) = (summary.hub, descriptor.class) {
            self.configure_hub(index, summary.value, hub)?;
            DeviceState::Hub
        } else {
            DeviceState::Ignored
        };
        self.probe(EnumerationStep::Configured);
        Ok(state)
    }

    /// Fills the input context with the slot and EP0 at the speed's default
    /// max packet size (§4.3.3), points the DCBAA entry at the device
    /// context and issues Address Device. Returns the slot fields used.
    fn address_device(&mut self, index: usize) -> Result<SlotFields, Error> {
        let slot = index as u8 + 1;
        let context = self.caps.context;
        let mem = self.devices[index].mem;
        let max_packet0 = self.devices[index].speed.default_max_packet0();
        context.input_control(&mem.input_context, 0b11, 0);
        let slot_fields = self.slot_fields(index, 1);
        context.write_slot(&mem.input_context, slot_fields);
        let dcs = self.devices[index].ep0.cycle();
        context.write_endpoint(&mem.input_context, 1, ep0_fields(&mem, max_packet0, dcs));
        self.mem
            .dcbaa
            .write64(usize::from(slot) * 8, mem.device_context.phys());
        self.command(
            command::address_device(mem.input_context.phys(), slot),
            "Address Device",
        )?;
        Ok(slot_fields)
    }

    /// Reads the first 8 bytes of the device descriptor for bMaxPacketSize0
    /// (USB 2.0 §9.6.1) and, if it differs from the speed's default, tells
    /// the controller with Evaluate Context (§4.6.7).
    fn update_max_packet0(&mut self, index: usize, slot_fields: SlotFields) -> Result<(), Error> {
        let slot = index as u8 + 1;
        let context = self.caps.context;
        let mem = self.devices[index].mem;
        let speed = self.devices[index].speed;
        let n = self.control(
            index,
            SetupPacket::get_descriptor(DESC_DEVICE, 0, 8),
            &[],
            "GET_DESCRIPTOR(device, 8)",
        )?;
        let mut prefix = [0u8; 8];
        mem.control.read_bytes(0, &mut prefix[..n.min(8)]);
        let reported = parse_device_prefix(&prefix[..n.min(8)])?;
        let actual = if matches!(speed, Speed::Super | Speed::Other(_)) {
            1u16 << reported.min(9)
        } else {
            u16::from(reported).clamp(8, 64)
        };
        if actual == speed.default_max_packet0() {
            return Ok(());
        }
        context.input_control(&mem.input_context, 0b10, 0);
        context.write_slot(&mem.input_context, slot_fields);
        context.write_endpoint(&mem.input_context, 1, ep0_fields(&mem, actual, true));
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
        if let Err(e) = self.command(command::disable_slot(slot), "Disable Slot") {
            self.note_error(e);
        }
        self.mem.dcbaa.write64(usize::from(slot) * 8, 0);
        self.devices[index].reset();
        if at.parent_slot == 0 {
            if let Some(p) = self
                .ports
                .get_mut(usize::from(at.root_port).wrapping_sub(1))
                && p.slot == slot
            {
                p.slot = 0;
            }
        } else if let Some(hub) = usize::from(at.parent_slot)
            .checked_sub(1)
            .and_then(|i| self.devices.get_mut(i))
            .and_then(|d| d.hub.as_mut())
            && let Some(child) = hub
                .children
                .get_mut(usize::from(at.parent_port).wrapping_sub(1))
            && *child == slot
        {
            *child = 0;
        }
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
