//! The controller: bring-up (xHCI 1.2 §4.2), the one event-drain `poll()`,
//! interrupt acknowledgement (listings and counters: `status.rs`).

use core::ptr::NonNull;

use pc_keyboard::DecodedKey;

use crate::command::command_ring_start;
use crate::context::ContextLayout;
use crate::device::{DEVICE_REGION_BYTES, Device, DeviceMemory};
use crate::dma::DmaBuf;
use crate::error::Error;
use crate::hal::Hal;
use crate::hid::{KeyboardState, Layout, Repeat};
use crate::interrupt::InterruptAck;
use crate::regs::{
    CapabilityParameters1, DeviceContextBaseAddressArrayPointer, EventRingDequeuePointer,
    EventRingSegmentTableBaseAddress, EventRingSegmentTableSize, InterrupterModeration, Mmio,
    Registers, StructuralParameters1, UsbCommand, UsbStatus,
};
use crate::ring::{EventRing, ProducerRing};
use crate::types::*;

/// TRBs in the command ring.
pub(crate) const COMMAND_RING_TRBS: usize = 64;
/// TRBs in the (single-segment) event ring.
pub(crate) const EVENT_RING_TRBS: usize = 256;
/// Scratchpad buffers we are willing to provide (the spec allows 1023).
const MAX_SCRATCHPADS: usize = 1023;
/// Step of every busy-wait loop.
pub(crate) const WAIT_STEP_US: u64 = 10;
/// Halt (USBSTS.HCH after R/S is cleared): xHCI 1.2 §5.4.1 allows 16 ms,
/// Linux waits `XHCI_MAX_HALT_USEC` (32 ms).
const HALT_TIMEOUT_US: u64 = 50_000;
/// Reset (USBCMD.HCRST, then USBSTS.CNR, to clear) in interrupt mode: as
/// Linux's `XHCI_RESET_LONG_USEC` (10 s), for controllers that take
/// seconds. Each step is bounded on its own.
const RESET_TIMEOUT_US: u64 = 10_000_000;
/// The same in polled mode, the panic console's (and an early panic's
/// bring-up from scratch): 1 s a step, so the panic path never waits 10 s
/// per step. (The takeover's own budget, `TAKEOVER_BUDGET_US`, caps it
/// further.)
const POLLED_RESET_TIMEOUT_US: u64 = 1_000_000;
/// In polled mode, how often an idle `poll()` reads USBSTS: each read is an
/// emulator exit (a bus read on hardware), and the panic console polls in a
/// tight loop. A poll that finds an event in the (in-memory) event ring
/// always reads it first.
const IDLE_HEALTH_CHECK_US: u64 = 1_000;

/// Controller-level DMA memory, allocated once in [`Controller::new`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ControllerMemory {
    pub(crate) dcbaa: DmaBuf,
    pub(crate) scratchpad_array: Option<DmaBuf>,
    pub(crate) erst: DmaBuf,
    pub(crate) command_ring: DmaBuf,
    pub(crate) event_ring: DmaBuf,
}

/// Facts read from the capability registers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capabilities {
    pub(crate) version: u16,
    pub(crate) ports: u8,
    pub(crate) slots: u8,
    pub(crate) context: ContextLayout,
    pub(crate) scratchpads: u16,
    pub(crate) port_power_control: bool,
    pub(crate) usb3_ports: u32,
    pub(crate) slot_types: [u8; MAX_PORTS],
    /// Whether (and why) DMA memory stays below 4 GiB.
    pub(crate) dma_limit: DmaLimitReason,
    /// Quirks known by PCI ID.
    pub(crate) quirks: Quirks,
    /// Lowest and highest physical address of the DMA memory allocated.
    pub(crate) dma_span: (u64, u64),
}

/// What we track per root port.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PortState {
    /// Slot of the device on this port (0 = none).
    pub(crate) slot: u8,
    /// A Port Status Change event (or a rescan) asked us to look at it.
    pub(crate) changed: bool,
    /// Enumeration failed; wait for a disconnect before trying again.
    pub(crate) failed: bool,
    /// Waits for its turn to be attached (`attach.rs`), with the connect
    /// debounce (`Some(true)`) or without.
    pub(crate) waiting: Option<bool>,
}

/// A command in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingCommand {
    pub(crate) trb: u64,
    pub(crate) name: &'static str,
}

/// A command completion picked up by the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CommandDone {
    pub(crate) trb: u64,
    pub(crate) code: Result<crate::trb::CompletionCode, u8>,
    pub(crate) slot: u8,
}

/// Counters kept by the controller.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) rejected_events: u32,
    /// Source line of the check that rejected the last event (diagnostics).
    pub(crate) last_rejected_at: u32,
    /// The event being dispatched, and the last one rejected (diagnostics).
    pub(crate) current_event: [u32; 4],
    pub(crate) last_rejected: [u32; 4],
    pub(crate) event_ring_full: u32,
    /// An Event Ring Full event was seen and the recovery has not run yet.
    pub(crate) events_lost: bool,
    pub(crate) stale_completions: u32,
    pub(crate) errors_this_poll: u32,
    pub(crate) last_error: Option<Error>,
}

/// An xHCI controller driving USB boot keyboards.
///
/// Create it with [`Controller::new`], call [`Controller::poll`] whenever an
/// interrupt arrived (or in a loop when polled), read keys with
/// [`Controller::next_key`]. All memory is allocated in `new`.
pub struct Controller<H: Hal> {
    pub(crate) hal: H,
    pub(crate) regs: Registers,
    pub(crate) caps: Capabilities,
    pub(crate) mem: ControllerMemory,
    pub(crate) command_ring: ProducerRing,
    pub(crate) event_ring: EventRing,
    pub(crate) pending_command: Option<PendingCommand>,
    pub(crate) command_done: Option<CommandDone>,
    pub(crate) devices: [Device; MAX_DEVICES],
    pub(crate) ports: [PortState; MAX_PORTS],
    pub(crate) keyboard: KeyboardState,
    pub(crate) leds_dirty: bool,
    pub(crate) interrupts: bool,
    pub(crate) dead: bool,
    pub(crate) counters: Counters,
    /// Depth of nested waits, so enumeration is never started from inside one.
    pub(crate) in_wait: bool,
    pub(crate) interrupt_moderation: u16,
    /// [`Config::keyboard_poll_ms`].
    pub(crate) keyboard_poll_ms: u8,
    /// HAL time of the next USBSTS read of an idle polled-mode `poll()`.
    pub(crate) next_health_check_us: u64,
    /// Test hook called at each enumeration step (cleared by the takeover).
    pub(crate) enumeration_probe: Option<fn(EnumerationStep)>,
    /// HAL time by which every bounded wait ends, whatever its own timeout:
    /// the takeover's time budget (`None` outside the takeover).
    pub(crate) deadline_us: Option<u64>,
    /// The device being attached, stage by stage (`attach.rs`).
    pub(crate) attach: Option<crate::attach::Attach>,
}

// SAFETY: a controller exclusively owns its register window and DMA memory,
// which are physical resources reachable from any CPU; nothing in it is tied
// to the thread that created it. Moving it between CPUs is sound whenever the
// HAL itself may move (the kernel serialises access with its own lock).
unsafe impl<H: Hal + Send> Send for Controller<H> {}

impl<H: Hal> Controller<H> {
    /// Takes over and initialises the controller whose BAR0 is at `mmio_phys`.
    ///
    /// Does the USB legacy handoff (§4.22.1), halts and resets the controller,
    /// allocates every DMA buffer the driver will ever need (including
    /// per-device resources for [`MAX_DEVICES`] records), programs the command
    /// and event rings, starts it and scans the ports (devices already plugged
    /// in are enumerated by the first [`poll`](Self::poll)).
    ///
    /// # Safety
    ///
    /// `mmio_phys` must be the physical address of an xHCI controller's BAR0
    /// with memory decoding and bus mastering enabled, and no other code may
    /// drive this controller while the returned value exists.
    pub unsafe fn new(hal: H, mmio_phys: u64, config: Config) -> Result<Self, Error> {
        // SAFETY: the caller's contract (an xHCI BAR0, ours alone).
        let (regs, hcs1, hcc1) = unsafe { map_registers(&hal, mmio_phys) }?;
        let mut caps = Capabilities {
            version: regs.caplength().interface_version(),
            ports: hcs1.max_ports().min(MAX_PORTS as u8),
            slots: hcs1.max_device_slots().max(1),
            context: ContextLayout {
                size: if hcc1.context_size() { 64 } else { 32 },
            },
            scratchpads: 0,
            port_power_control: hcc1.port_power_control(),
            usb3_ports: 0,
            slot_types: [0; MAX_PORTS],
            dma_limit: DmaLimitReason::decide(hcc1.addressing_64bit(), &config),
            quirks: Quirks::of(config.pci_id),
            dma_span: (0, 0),
        };
        if hcs1.max_device_slots() == 0 {
            return Err(Error::Unsupported {
                what: "controller with no device slots",
            });
        }
        let xecp = hcc1.extended_capabilities_offset();
        crate::extcaps::legacy_handoff(&regs, &hal, xecp);
        crate::extcaps::supported_protocols(&regs, xecp, &mut caps);

        let scratchpads = usize::from(regs.hcsparams2().max_scratchpad_buffers());
        let scratchpads = scratchpads.min(MAX_SCRATCHPADS);
        caps.scratchpads = scratchpads as u16;
        let page_size = regs.pagesize().bytes();
        let mut dma = DmaAllocator::new(&hal, caps.dma_limit.max_address());
        let mem = ControllerMemory::allocate(&mut dma, caps.slots, scratchpads, page_size)?;
        let devices = allocate_devices(&mut dma)?;
        caps.dma_span = (dma.lowest, dma.highest);

        let mut controller = Self {
            hal,
            regs,
            caps,
            mem,
            command_ring: ProducerRing::new(COMMAND_RING_TRBS),
            event_ring: EventRing::new(EVENT_RING_TRBS),
            pending_command: None,
            command_done: None,
            devices,
            ports: [PortState::default(); MAX_PORTS],
            keyboard: KeyboardState::new(config.layout, config.repeat),
            leds_dirty: false,
            interrupts: config.interrupts,
            dead: false,
            counters: Counters::default(),
            in_wait: false,
            interrupt_moderation: config.interrupt_moderation,
            keyboard_poll_ms: config.keyboard_poll_ms,
            next_health_check_us: 0,
            enumeration_probe: None,
            deadline_us: None,
            attach: None,
        };
        controller.initialize()?;
        Ok(controller)
    }
}

/// Maps BAR0 twice: 4 KiB to read the capability registers, then as much as
/// the register blocks (and the extended capabilities) need. Returns the
/// registers with HCSPARAMS1 and HCCPARAMS1 as read.
///
/// # Safety
///
/// As [`Controller::new`]: `mmio_phys` is an xHCI controller's BAR0 that no
/// other code drives.
unsafe fn map_registers(
    hal: &impl Hal,
    mmio_phys: u64,
) -> Result<(Registers, StructuralParameters1, CapabilityParameters1), Error> {
    let probe = hal.map_mmio(mmio_phys, 0x1000);
    // SAFETY: the HAL maps 4 KiB of the BAR (caller guarantees it is an xHCI BAR0,
    // whose capability registers fit in 4 KiB).
    let probe = Registers::new(unsafe { Mmio::new(probe, 0x1000) });
    let hcs1 = probe.hcsparams1();
    if hcs1.is_all_ones() || probe.caplength().is_all_ones() {
        return Err(Error::ControllerGone);
    }
    let hcc1 = probe.hccparams1();
    let xecp = hcc1.extended_capabilities_offset();
    let size = probe
        .required_size(hcs1.max_ports(), hcs1.max_device_slots())
        .max(xecp + 0x1000)
        .max(0x1000)
        .next_multiple_of(0x1000);
    let base: NonNull<u8> = hal.map_mmio(mmio_phys, size);
    // SAFETY: as above, now with the size covering every register block we use.
    let regs = Registers::new(unsafe { Mmio::new(base, size) });
    Ok((regs, hcs1, hcc1))
}

impl ControllerMemory {
    /// Allocates the DCBAA for `slots` slot IDs (§6.1: MaxSlotsEn + 1
    /// entries, entry 0 the scratchpad array; at most 256 × 8 bytes),
    /// `scratchpads` scratchpad pages of `page_size` and their array
    /// (§4.20), the ERST and both rings.
    fn allocate<H: Hal>(
        dma: &mut DmaAllocator<'_, H>,
        slots: u8,
        scratchpads: usize,
        page_size: usize,
    ) -> Result<Self, Error> {
        let dcbaa = dma.alloc((usize::from(slots) + 1) * 8, 64)?;
        let scratchpad_array = if scratchpads > 0 {
            let array = dma.alloc(scratchpads * 8, 64)?;
            for i in 0..scratchpads {
                let page = dma.alloc(page_size, page_size)?;
                array.write64(i * 8, page.phys());
            }
            Some(array)
        } else {
            None
        };
        Ok(Self {
            dcbaa,
            scratchpad_array,
            erst: dma.alloc(64, 64)?,
            command_ring: dma.alloc(COMMAND_RING_TRBS * 16, 64)?,
            event_ring: dma.alloc(EVENT_RING_TRBS * 16, 64)?,
        })
    }
}

/// Allocates the memory of every device slot up front (hot-plug never allocates).
fn allocate_devices<H: Hal>(dma: &mut DmaAllocator<'_, H>) -> Result<[Device; MAX_DEVICES], Error> {
    let mut regions = [None; MAX_DEVICES];
    for region in regions.iter_mut() {
        *region = Some(
            DeviceMemory::carve(dma.alloc(DEVICE_REGION_BYTES, 4096)?).ok_or(Error::NoMemory)?,
        );
    }
    Ok(regions.map(|m| Device::new(m.expect("allocated above"))))
}

/// Every DMA allocation of [`Controller::new`] goes through here: the
/// controller's address limit is passed to the HAL (`max_address`: below
/// 4 GiB without AC64 or with a quirk, as Linux sets a 32-bit DMA mask in
/// `xhci_gen_setup`), what comes back is checked against it, and the span
/// of addresses handed out is recorded for [`Controller::info`].
struct DmaAllocator<'a, H: Hal> {
    hal: &'a H,
    max_address: u64,
    lowest: u64,
    highest: u64,
}

impl<'a, H: Hal> DmaAllocator<'a, H> {
    fn new(hal: &'a H, max_address: u64) -> Self {
        Self {
            hal,
            max_address,
            lowest: u64::MAX,
            highest: 0,
        }
    }

    /// One allocation: `Error::NoMemory` if the HAL has none left (below
    /// the limit), `Error::DmaAboveLimit` if it broke the limit.
    fn alloc(&mut self, size: usize, align: usize) -> Result<DmaBuf, Error> {
        let region = self
            .hal
            .dma_alloc(size, align, self.max_address)
            .ok_or(Error::NoMemory)?;
        let last = region.phys.checked_add(size.max(1) as u64 - 1);
        match last {
            Some(last) if last <= self.max_address && region.size >= size => {
                self.lowest = self.lowest.min(region.phys);
                self.highest = self.highest.max(last);
                Ok(DmaBuf::from_region(region))
            }
            _ => Err(Error::DmaAboveLimit {
                phys: region.phys,
                max_address: self.max_address,
            }),
        }
    }
}

impl<H: Hal> Controller<H> {
    /// Bounded busy-wait: `done` is checked every [`WAIT_STEP_US`] until
    /// `timeout_us` passed on the HAL clock (and at most that many steps, in
    /// case the clock does not move), or until the deadline of the takeover's
    /// time budget (`deadline_us`), whichever comes first. Once that deadline
    /// has passed, `done` is checked once and the wait fails at once. A
    /// timeout names `what` it waited for.
    pub(crate) fn wait_for(
        &mut self,
        timeout_us: u64,
        what: &'static str,
        mut done: impl FnMut(&mut Self) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let start = self.hal.now_us();
        let timeout_us = match self.deadline_us {
            Some(deadline) => timeout_us.min(deadline.saturating_sub(start)),
            None => timeout_us,
        };
        if done(self)? {
            return Ok(());
        }
        if timeout_us == 0 {
            return Err(Error::Timeout { what });
        }
        let max_steps = timeout_us / WAIT_STEP_US + 1;
        for _ in 0..max_steps {
            self.hal.delay_us(WAIT_STEP_US);
            if done(self)? {
                return Ok(());
            }
            if self.hal.now_us().saturating_sub(start) >= timeout_us {
                break;
            }
        }
        Err(Error::Timeout { what })
    }

    /// Checks USBSTS for a dead or failed controller.
    pub(crate) fn health(&self) -> Result<UsbStatus, Error> {
        let sts = self.regs.usbsts();
        if sts.is_all_ones() {
            return Err(Error::ControllerGone);
        }
        if sts.host_system_error() {
            return Err(Error::HostSystemError);
        }
        if sts.host_controller_error() {
            return Err(Error::HostControllerError);
        }
        Ok(sts)
    }

    /// Halts, resets and programs the controller using the memory allocated
    /// in `new` (also the full-reset path of the takeover and of
    /// `recover_or_die`: no allocation).
    ///
    /// Every key held on any keyboard is released first, even if the reset
    /// then fails: HCRST (§4.2) drops the devices, so their releases would
    /// never arrive. The lock keys (LEDs) are kept.
    pub(crate) fn initialize(&mut self) -> Result<(), Error> {
        self.keyboard.release_all_for_reset();
        for device in self.devices.iter_mut() {
            device.previous_report = [0; 8];
        }
        if self.regs.usbsts().is_all_ones() {
            return Err(Error::ControllerGone);
        }
        self.halt_and_reset()?;

        // Software state back to a clean slate; the key queue and LEDs survive.
        self.pending_command = None;
        self.command_done = None;
        for device in self.devices.iter_mut() {
            device.reset();
        }
        self.ports = [PortState::default(); MAX_PORTS];
        self.attach = None;

        // MaxSlotsEn (§5.4.7) = HCSPARAMS1.MaxSlots (`caps.slots`, §5.3.3):
        // slot IDs are 1..=slots, decoupled from the device records
        // (slots.rs), and the DCBAA has an entry for each.
        let config = self.regs.config();
        self.regs
            .write_config(config.set_max_device_slots_enabled(self.caps.slots));
        // DCBAA (§6.1): entry 0 is the scratchpad buffer array.
        self.mem.dcbaa.zero();
        if let Some(array) = self.mem.scratchpad_array {
            self.mem.dcbaa.write64(0, array.phys());
        }
        self.regs.write_dcbaap(
            DeviceContextBaseAddressArrayPointer::default().set_pointer(self.mem.dcbaa.phys()),
        );
        // Command ring (§4.9.3).
        self.command_ring = ProducerRing::reset(&mut self.mem.command_ring);
        self.regs
            .write_crcr(command_ring_start(&self.mem.command_ring));
        self.program_event_ring();
        self.set_interrupter(self.interrupts);
        // Run (§4.2).
        let run = UsbCommand::default()
            .set_run_stop(true)
            .set_interrupter_enable(self.interrupts)
            .set_host_system_error_enable(true);
        self.regs.write_usbcmd(run);
        self.wait_for(50_000, "controller start (USBSTS.HCH clear)", |c| {
            Ok(!c.regs.usbsts().hc_halted())
        })?;
        self.power_ports();
        for p in self.ports.iter_mut().take(usize::from(self.caps.ports)) {
            p.changed = true;
        }
        Ok(())
    }

    /// How long one step of a controller reset may take: 10 s in interrupt
    /// mode, 1 s in polled mode (see [`RESET_TIMEOUT_US`]).
    pub(crate) fn reset_timeout_us(&self) -> u64 {
        if self.interrupts {
            RESET_TIMEOUT_US
        } else {
            POLLED_RESET_TIMEOUT_US
        }
    }

    /// Halts the controller, then resets it (§4.2, §5.4.1): waits for CNR to
    /// clear before the first operational register write (§4.2: a controller
    /// just out of a chip hardware reset, or one reset by firmware, is not
    /// ready yet), clears R/S and waits for HCH, sets HCRST and waits for
    /// HCRST and CNR to clear (Linux `xhci_reset`, with its 1 ms after
    /// HCRST on Intel hosts: `Quirks::wait_after_reset`).
    fn halt_and_reset(&mut self) -> Result<(), Error> {
        let reset_timeout = self.reset_timeout_us();
        self.wait_for(reset_timeout, "controller ready (USBSTS.CNR)", |c| {
            Ok(!c.regs.usbsts().controller_not_ready())
        })
        .map_err(|_| Error::ControllerNotReady)?;
        // Halt (§4.2, §5.4.1: clear R/S, HCH within 16 ms).
        let cmd = self.regs.usbcmd();
        self.regs
            .write_usbcmd(cmd.set_run_stop(false).set_interrupter_enable(false));
        self.wait_for(HALT_TIMEOUT_US, "controller halt (USBSTS.HCH)", |c| {
            Ok(c.regs.usbsts().hc_halted())
        })?;
        // Reset (§4.2: HCRST, then wait for HCRST and CNR to clear).
        self.regs
            .write_usbcmd(UsbCommand::default().set_host_controller_reset(true));
        if self.caps.quirks.wait_after_reset {
            self.hal.delay_us(1000);
        }
        self.wait_for(reset_timeout, "controller reset (USBCMD.HCRST)", |c| {
            Ok(!c.regs.usbcmd().host_controller_reset())
        })?;
        self.wait_for(reset_timeout, "controller ready (USBSTS.CNR)", |c| {
            Ok(!c.regs.usbsts().controller_not_ready())
        })
        .map_err(|_| Error::ControllerNotReady)
    }

    /// Programs interrupter 0's event ring, one segment (§4.9.4, §6.5):
    /// ERSTSZ, ERDP, then ERSTBA (which makes the controller read the table),
    /// and the interrupt moderation.
    fn program_event_ring(&mut self) {
        self.mem.event_ring.zero();
        self.event_ring = EventRing::new(EVENT_RING_TRBS);
        self.mem.erst.zero();
        self.mem.erst.write64(0, self.mem.event_ring.phys());
        self.mem.erst.write32(8, EVENT_RING_TRBS as u32);
        self.regs
            .write_erstsz(EventRingSegmentTableSize::default().set_segments(1));
        self.regs.write_erdp(
            EventRingDequeuePointer::default()
                .set_dequeue_pointer(self.mem.event_ring.phys())
                .clear_event_handler_busy(),
        );
        self.regs.write_erstba(
            EventRingSegmentTableBaseAddress::default().set_pointer(self.mem.erst.phys()),
        );
        self.regs
            .write_imod(InterrupterModeration::default().set_interval(self.interrupt_moderation));
    }

    /// Powers every unpowered root port (§5.4.8: PP is RW only when
    /// HCCPARAMS1.PPC = 1) and gives them 20 ms.
    fn power_ports(&mut self) {
        if !self.caps.port_power_control {
            return;
        }
        for port in 1..=self.caps.ports {
            if !self.regs.portsc(port).port_power() {
                self.regs.write_portsc(port, |w| w.set_port_power(true));
            }
        }
        self.hal.delay_us(20_000);
    }

    /// Sets or clears IMAN.IE (and acknowledges a pending IP).
    pub(crate) fn set_interrupter(&self, enable: bool) {
        let iman = self.regs.iman();
        self.regs.write_iman(iman, |m| {
            m.set_interrupt_enable(enable).clear_interrupt_pending()
        });
    }

    /// Acknowledges an interrupt (USBSTS.EINT then IMAN.IP, both RW1C,
    /// §4.17.2) through the same code as [`InterruptAck`]. Returns whether
    /// this controller had interrupted. Does not touch the rings: call
    /// [`poll`](Self::poll) afterwards.
    pub fn ack_interrupt(&mut self) -> bool {
        // SAFETY: the handle lives only for this call, within `self`'s life,
        // for which `new`'s contract keeps the mapping valid.
        unsafe { InterruptAck::new(self.regs) }.acknowledge()
    }

    /// A lock-free handle that acknowledges this controller's interrupter 0
    /// (IMAN.IP, USBSTS.EINT) from an interrupt handler that cannot take the
    /// lock around the driver: an INTx line stays asserted until IP is
    /// cleared (xHCI 1.2 §4.17.2, §5.5.2.1).
    ///
    /// # Safety
    /// The register mapping this controller was created on must stay valid
    /// for every use of the handle, also after the controller is dropped or
    /// replaced (a kernel that maps BARs once and never unmaps them meets
    /// this).
    pub unsafe fn interrupt_ack(&self) -> InterruptAck {
        // SAFETY: the caller's contract.
        unsafe { InterruptAck::new(self.regs) }
    }

    /// THE event-drain routine, for interrupt mode (after `ack_interrupt`) and
    /// panic mode alike: drains the event ring, handles attach/detach
    /// (advancing the attach of a new device by the stages whose time has
    /// come, `attach.rs`: no time delay is waited out here, only bounded
    /// waits for completions), restarts halted keyboard endpoints, sends
    /// LED reports, runs key repeat and queues keys.
    ///
    /// An idle poll in polled mode reads no register (USBSTS once a
    /// millisecond), so a console may call it in a tight loop.
    pub fn poll(&mut self) -> PollSummary {
        let mut summary = PollSummary::default();
        self.counters.errors_this_poll = 0;
        self.counters.last_error = None;
        if self.dead {
            return summary;
        }
        let keys_before = self.keyboard.queue.total;
        if self.health_check_due()
            && let Err(e) = self.health()
        {
            self.note_error(e);
            self.recover_or_die(e);
            summary.errors = self.counters.errors_this_poll;
            summary.last_error = self.counters.last_error;
            return summary;
        }
        summary.events = self.process_events();
        for index in 0..usize::from(self.caps.ports) {
            let port = index as u8 + 1;
            if self.ports[index].changed && !self.attaching(crate::attach::Target::Root(port)) {
                self.ports[index].changed = false;
                let (attached, detached) = self.port_changed(port);
                summary.attached += attached;
                summary.detached += detached;
            }
        }
        if self.counters.events_lost {
            self.recover_lost_events();
        }
        let (attached, detached) = self.service_hubs();
        summary.attached += attached;
        summary.detached += detached;
        summary.attached += self.run_attach();
        self.restart_halted_endpoints();
        if self.leds_dirty {
            self.leds_dirty = false;
            self.send_leds();
        }
        let now = self.hal.now_us();
        self.keyboard.tick(now);
        summary.events += self.process_events();
        summary.keys = self.keyboard.queue.total.wrapping_sub(keys_before);
        summary.errors = self.counters.errors_this_poll;
        summary.last_error = self.counters.last_error;
        summary
    }

    /// Whether this `poll()` reads USBSTS ([`health`](Self::health)): always
    /// in interrupt mode and whenever an event waits in the event ring (its
    /// cycle bit is read from memory, no register access); in an idle polled
    /// mode, once per [`IDLE_HEALTH_CHECK_US`]. Then an idle poll of the
    /// panic console touches no register at all.
    fn health_check_due(&mut self) -> bool {
        let now = self.hal.now_us();
        let due = self.interrupts
            || now >= self.next_health_check_us
            || self.event_ring.peek(&self.mem.event_ring).is_some();
        if due {
            self.next_health_check_us = now.saturating_add(IDLE_HEALTH_CHECK_US);
        }
        due
    }

    /// After an Event Ring Full error (xHCI 1.2 §4.9.4) the controller
    /// dropped events until ERDP moved: the ring has been drained by now, so
    /// any completion may be lost. Every armed interrupt endpoint is stopped,
    /// rewound and re-armed, and every root and hub port is looked at again.
    /// (A command whose completion was lost times out and is aborted by its
    /// own bounded wait.)
    pub(crate) fn recover_lost_events(&mut self) {
        self.counters.events_lost = false;
        for device in self.devices.iter_mut() {
            if device.interrupt_endpoint().is_some() {
                device.intr_needs_restart = true;
            }
            if let Some(hub) = device.hub.as_mut() {
                hub.changed |= hub.all_ports();
            }
        }
        for p in self.ports.iter_mut().take(usize::from(self.caps.ports)) {
            p.changed = true;
        }
        self.note_error(Error::Unsupported {
            what: "events lost to a full event ring",
        });
    }

    /// Records an error for the poll summary.
    pub(crate) fn note_error(&mut self, e: Error) {
        self.counters.errors_this_poll = self.counters.errors_this_poll.saturating_add(1);
        self.counters.last_error = Some(e);
    }

    /// A failed controller: try one full re-initialisation, else mark it dead.
    pub(crate) fn recover_or_die(&mut self, _cause: Error) {
        if let Err(e) = self.initialize() {
            self.note_error(e);
            self.dead = true;
        }
    }

    /// The next decoded key, if any. Modifier and lock keys are not queued;
    /// arrows, F-keys etc. come as `DecodedKey::RawKey`.
    pub fn next_key(&mut self) -> Option<DecodedKey> {
        self.keyboard.queue.pop()
    }

    /// Changes key repeat (0 disables it).
    pub fn set_repeat(&mut self, delay_ms: u32, rate_hz: u32) {
        self.keyboard.set_repeat(Repeat { delay_ms, rate_hz });
    }

    /// Changes the keyboard layout.
    pub fn set_layout(&mut self, layout: Layout) {
        self.keyboard.set_layout(layout);
    }

    /// Test hook: queues a No Op command (xHCI 1.2 §4.6.2, §6.4.3.1) on the
    /// command ring and rings the host controller doorbell, without waiting.
    /// Its completion is consumed later by [`poll`](Self::poll) (or waited
    /// for / aborted by [`enter_polled_mode`](Self::enter_polled_mode)), so a
    /// CPU stopped right after this call leaves a command in flight.
    ///
    /// Fails if the controller is dead or another command is in flight.
    pub fn submit_noop_command(&mut self) -> Result<(), Error> {
        if self.dead {
            return Err(Error::Dead);
        }
        self.health()?;
        if self.pending_command.is_some() {
            return Err(Error::Unsupported {
                what: "a second command while one is in flight",
            });
        }
        let trb = self
            .command_ring
            .push(&mut self.mem.command_ring, crate::trb::command::noop());
        self.command_done = None;
        self.pending_command = Some(PendingCommand { trb, name: "No Op" });
        self.regs.ring_doorbell(0, 0);
        Ok(())
    }

    /// Test hook: `probe` is called at each [`EnumerationStep`] of enumerating
    /// a newly attached device (root port or behind a hub), on the CPU doing
    /// the enumeration. A probe that never returns simulates a CPU stopped
    /// mid-enumeration. [`enter_polled_mode`](Self::enter_polled_mode)
    /// removes the probe, so the re-enumeration it triggers runs unhooked.
    pub fn set_enumeration_probe(&mut self, probe: Option<fn(EnumerationStep)>) {
        self.enumeration_probe = probe;
    }

    /// Reports an enumeration step to the probe, if one is installed.
    pub(crate) fn probe(&self, step: EnumerationStep) {
        if let Some(probe) = self.enumeration_probe {
            probe(step);
        }
    }

    /// Is the controller still usable?
    pub fn is_dead(&self) -> bool {
        self.dead
    }
}
