//! Public value types: configuration, poll summaries, reports and introspection.
#![forbid(unsafe_code)]

use core::fmt;

use crate::error::Error;
use crate::hid::{Layout, Leds, Repeat};

/// Device records with preallocated resources. The controller's slot IDs
/// (1 to HCSPARAMS1.MaxSlots, up to 255) map to them; they are not record
/// numbers (`slots.rs`).
pub const MAX_DEVICES: usize = 8;
/// Root hub ports we track (HCSPARAMS1.MaxPorts is capped to this).
pub const MAX_PORTS: usize = 32;

/// Attach-time configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Key repeat delay/rate.
    pub repeat: Repeat,
    /// Keyboard layout.
    pub layout: Layout,
    /// `true`: enable interrupter 0 and USBCMD.INTE (MSI-driven).
    /// `false`: polled from the start (early panic).
    pub interrupts: bool,
    /// Interrupt moderation interval in 250 ns units (IMOD.IMODI, §5.5.2.2).
    pub interrupt_moderation: u16,
    /// Longest polling period of a keyboard's interrupt endpoint, in ms
    /// (Linux usbhid's `kbpoll`; default 1). A keyboard is polled every
    /// min(its bInterval, this), rounded down to the xHCI's 2^n × 125 µs
    /// (xHCI 1.2 §6.2.3.6): never slower than the device asks. 0: the
    /// device's own bInterval. Read when a keyboard is configured.
    pub keyboard_poll_ms: u8,
    /// PCI vendor and device ID of the controller, for the quirks known by
    /// ID: ASMedia controllers that set HCCPARAMS1.AC64 but cannot address
    /// 64 bits (Linux `XHCI_NO_64BIT_SUPPORT` in `xhci-pci.c`). `None`: no
    /// quirk applies.
    pub pci_id: Option<(u16, u16)>,
    /// Keep all DMA memory below 4 GiB whatever HCCPARAMS1.AC64 says, as
    /// for a controller with the `XHCI_NO_64BIT_SUPPORT` quirk (a kernel
    /// option, for controllers whose quirk is not known yet).
    pub force_32bit_dma: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            repeat: Repeat::default(),
            layout: Layout::Us104,
            interrupts: true,
            interrupt_moderation: 4000,
            keyboard_poll_ms: 1,
            pci_id: None,
            force_32bit_dma: false,
        }
    }
}

/// ASMedia (vendor 0x1b21) xHCI controllers that set HCCPARAMS1.AC64 but
/// fail with DMA above 4 GiB: ASM1042A (0x1142), ASM1142 (0x1242), ASM2142
/// (0x2142) and ASM3242 (0x3242), as Linux `xhci_pci_quirks` sets
/// `XHCI_NO_64BIT_SUPPORT` for them (`drivers/usb/host/xhci-pci.c`).
pub const NO_64BIT_DMA_QUIRKS: [(u16, u16); 4] = [
    (0x1b21, 0x1142),
    (0x1b21, 0x1242),
    (0x1b21, 0x2142),
    (0x1b21, 0x3242),
];

/// Etron EJ168 (0x1b6f:0x7023) and EJ188 (0x1b6f:0x7052): Linux's
/// `XHCI_ETRON_HOST` (`xhci-pci.c`). They fail control transfers whose TD
/// straddles a Link TRB, so EP0's ring is padded with No-Op TRBs first
/// (Linux `xhci_queue_ctrl_tx`), and, as `XHCI_NO_SOFT_RETRY`, they get no
/// soft retry after a transaction error.
pub const ETRON_QUIRKS: [(u16, u16); 2] = [(0x1b6f, 0x7023), (0x1b6f, 0x7052)];

/// Controller quirks the driver applies, from [`Config::pci_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Quirks {
    /// A control TD must not straddle EP0's Link TRB ([`ETRON_QUIRKS`]).
    pub(crate) control_td_before_link: bool,
    /// No soft retry after a transaction error ([`ETRON_QUIRKS`]).
    pub(crate) no_soft_retry: bool,
    /// 1 ms before any register access after setting USBCMD.HCRST: Linux
    /// `xhci_reset` waits so on `XHCI_INTEL_HOST` (every Intel xHCI,
    /// [`VENDOR_INTEL`]: "without this delay, the subsequent HC register
    /// access may result in a system hang very rarely"); kept for a
    /// controller whose PCI ID is not known.
    pub(crate) wait_after_reset: bool,
}

/// Intel's PCI vendor ID.
pub(crate) const VENDOR_INTEL: u16 = 0x8086;

impl Quirks {
    /// The quirks of the controller with PCI ID `pci_id`.
    pub(crate) fn of(pci_id: Option<(u16, u16)>) -> Self {
        let etron = pci_id.is_some_and(|id| ETRON_QUIRKS.contains(&id));
        Self {
            control_td_before_link: etron,
            no_soft_retry: etron,
            wait_after_reset: pci_id.is_none_or(|(vendor, _)| vendor == VENDOR_INTEL),
        }
    }
}

/// Why a controller's DMA memory is kept below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaLimitReason {
    /// The controller can address 64 bits: no limit.
    None,
    /// HCCPARAMS1.AC64 is clear (xHCI 1.2 §5.3.6).
    NoAc64,
    /// A PCI ID in [`NO_64BIT_DMA_QUIRKS`].
    Quirk,
    /// [`Config::force_32bit_dma`].
    Forced,
}

impl DmaLimitReason {
    /// Decides from HCCPARAMS1.AC64 and the configuration (Linux
    /// `xhci_gen_setup`: `XHCI_NO_64BIT_SUPPORT` clears AC64, then the DMA
    /// mask is 32 bits unless AC64 is set).
    pub(crate) fn decide(ac64: bool, config: &Config) -> Self {
        if !ac64 {
            DmaLimitReason::NoAc64
        } else if config
            .pci_id
            .is_some_and(|id| NO_64BIT_DMA_QUIRKS.contains(&id))
        {
            DmaLimitReason::Quirk
        } else if config.force_32bit_dma {
            DmaLimitReason::Forced
        } else {
            DmaLimitReason::None
        }
    }

    /// The `max_address` passed to [`Hal::dma_alloc`](crate::Hal::dma_alloc).
    pub(crate) fn max_address(self) -> u64 {
        match self {
            DmaLimitReason::None => u64::MAX,
            _ => crate::hal::DMA_32BIT_LIMIT,
        }
    }
}

impl fmt::Display for DmaLimitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DmaLimitReason::None => "64-bit",
            DmaLimitReason::NoAc64 => "32-bit: AC64 clear",
            DmaLimitReason::Quirk => "32-bit: quirk",
            DmaLimitReason::Forced => "32-bit: forced",
        })
    }
}

/// What one `poll()` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollSummary {
    /// Events consumed from the event ring.
    pub events: u32,
    /// Keys added to the queue.
    pub keys: u32,
    /// Devices that were enumerated.
    pub attached: u32,
    /// Devices that went away.
    pub detached: u32,
    /// Rejected events, failed transfers and enumeration errors.
    pub errors: u32,
    /// The last error seen in this poll, if any.
    pub last_error: Option<Error>,
}

/// USB speed of a port (PORTSC Port Speed default IDs, xHCI 1.2 §7.2.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// Full speed, 12 Mb/s.
    Full,
    /// Low speed, 1.5 Mb/s.
    Low,
    /// High speed, 480 Mb/s.
    High,
    /// SuperSpeed, 5 Gb/s.
    Super,
    /// SuperSpeedPlus or unknown.
    Other(u8),
}

impl Speed {
    pub(crate) fn from_id(id: u8) -> Self {
        match id {
            1 => Speed::Full,
            2 => Speed::Low,
            3 => Speed::High,
            4 => Speed::Super,
            n => Speed::Other(n),
        }
    }

    pub(crate) fn id(self) -> u8 {
        match self {
            Speed::Full => 1,
            Speed::Low => 2,
            Speed::High => 3,
            Speed::Super => 4,
            Speed::Other(n) => n,
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Full => f.write_str("full"),
            Speed::Low => f.write_str("low"),
            Speed::High => f.write_str("high"),
            Speed::Super => f.write_str("super"),
            Speed::Other(n) => write!(f, "speed{n}"),
        }
    }
}

/// A step of enumerating a newly attached device, reported to the probe set
/// with [`Controller::set_enumeration_probe`](crate::Controller::set_enumeration_probe)
/// (a test hook: the kernel uses it to stop a CPU in the middle of enumeration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnumerationStep {
    /// Enable Slot completed; the slot is recorded as enumerating.
    SlotEnabled,
    /// Address Device completed (xHCI 1.2 §4.3.4).
    Addressed,
    /// The device descriptor was read and parsed.
    DescriptorRead,
    /// The device is configured (keyboard or hub) or left alone; the slot
    /// state is about to leave `Enumerating`.
    Configured,
}

/// Lifecycle of a device slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Being enumerated.
    Enumerating,
    /// A configured boot keyboard receiving reports.
    Keyboard,
    /// Addressed, not a keyboard; left alone, listed without a slot (the
    /// slot is given back to the controller).
    Ignored,
    /// Enumeration failed after its retries; the device is listed without a
    /// slot and its port is tried again when it changes (a replug, a port
    /// the controller or hub disabled, a warm reset).
    Failed,
    /// A configured hub (USB 2.0 ch. 11) whose ports we watch.
    Hub,
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceState::Enumerating => "enumerating",
            DeviceState::Keyboard => "keyboard",
            DeviceState::Ignored => "ignored",
            DeviceState::Failed => "failed",
            DeviceState::Hub => "hub",
        })
    }
}

/// One device, for `lsusb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Root hub port (1-based).
    pub port: u8,
    /// Route string below the root port (xHCI 1.2 §8.9): one hub port per
    /// 4-bit tier, 0 for a device on a root port.
    pub route: u32,
    /// Slot of the hub the device is plugged into (0: a root port).
    pub parent_slot: u8,
    /// Port of that hub (0: a root port).
    pub parent_port: u8,
    /// Downstream ports of a hub (0 for other devices).
    pub hub_ports: u8,
    /// Port speed.
    pub speed: Speed,
    /// xHCI slot ID (0 if none).
    pub slot: u8,
    /// idVendor.
    pub vendor: u16,
    /// idProduct.
    pub product: u16,
    /// Device class, or the first interface's class when the device class is 0.
    pub class: u8,
    /// State.
    pub state: DeviceState,
    /// Is it a boot keyboard we drive?
    pub is_keyboard: bool,
    /// Reports received (keyboards).
    pub reports: u32,
    /// Transfer errors (keyboards).
    pub errors: u32,
    /// Polling period of the keyboard's interrupt endpoint in µs, as
    /// programmed (0 for other devices).
    pub poll_us: u32,
    /// A keyboard read in the report protocol through its report
    /// descriptor (HID 1.11 §6.2.2), not in the boot protocol.
    pub report_protocol: bool,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.port)?;
        for tier in 0..5 {
            match (self.route >> (4 * tier)) & 0xf {
                0 => break,
                hub_port => write!(f, ".{hub_port}")?,
            }
        }
        write!(
            f,
            " slot {} {:04x}:{:04x} class {:#04x} {} speed, {}",
            self.slot, self.vendor, self.product, self.class, self.speed, self.state
        )?;
        if self.state == DeviceState::Hub {
            write!(f, " ({} ports)", self.hub_ports)?;
        }
        if self.is_keyboard {
            write!(
                f,
                " ({} reports, {} errors, polled every {} us)",
                self.reports, self.errors, self.poll_us
            )?;
            if self.report_protocol {
                write!(f, ", report protocol")?;
            }
        }
        Ok(())
    }
}

/// Controller facts for a shell command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerInfo {
    /// HCIVERSION, BCD (0x0100 = 1.0, 0x0120 = 1.2).
    pub version: u16,
    /// Root hub ports used (MaxPorts capped to [`MAX_PORTS`]).
    pub ports: u8,
    /// Device slots enabled (MaxSlotsEn).
    pub slots: u8,
    /// Context size in bytes (32 or 64).
    pub context_size: u8,
    /// Scratchpad buffers given to the controller.
    pub scratchpad_buffers: u16,
    /// Interrupt-driven (false after `enter_polled_mode` or with `interrupts: false`).
    pub interrupt_mode: bool,
    /// The controller failed and is no longer used.
    pub dead: bool,
    /// Events rejected as invalid (bad pointers, ids, types).
    pub rejected_events: u32,
    /// Line in `events.rs`/`transfer.rs` of the check that rejected the
    /// last event (0: none), for bug reports.
    pub last_rejected_at: u32,
    /// The raw TRB of the last rejected event.
    pub last_rejected: [u32; 4],
    /// Which ports are USB 3 (bit n-1 = port n), from the Supported Protocol capability.
    pub usb3_ports: u32,
    /// Whether (and why) DMA memory is kept below 4 GiB.
    pub dma_limit: DmaLimitReason,
    /// Lowest physical address of the driver's DMA memory.
    pub dma_lowest: u64,
    /// Highest physical address of the driver's DMA memory (its last byte).
    pub dma_highest: u64,
}

impl fmt::Display for ControllerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "xHCI {:x}.{:02x}, {} ports, {} slots, {}-byte contexts, {} scratchpads, {} mode{}, {} rejected events",
            self.version >> 8,
            self.version & 0xff,
            self.ports,
            self.slots,
            self.context_size,
            self.scratchpad_buffers,
            if self.interrupt_mode {
                "interrupt"
            } else {
                "polled"
            },
            if self.dead { ", DEAD" } else { "" },
            self.rejected_events
        )?;
        if self.rejected_events > 0 {
            let t = self.last_rejected;
            write!(
                f,
                " (last at line {}: {:08x} {:08x} {:08x} {:08x})",
                self.last_rejected_at, t[0], t[1], t[2], t[3]
            )?;
        }
        write!(
            f,
            ", DMA {:#x}-{:#x} ({})",
            self.dma_lowest, self.dma_highest, self.dma_limit
        )
    }
}

/// Keyboard settings and counters for `kbd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyboardStats {
    /// Current layout.
    pub layout: Layout,
    /// Repeat settings.
    pub repeat: Repeat,
    /// LED / lock state.
    pub leds: Leds,
    /// Keyboards attached.
    pub keyboards: u8,
    /// Reports received, all keyboards.
    pub reports: u32,
    /// ErrorRollOver reports ignored.
    pub rollover_reports: u32,
    /// Transfer errors on keyboard endpoints.
    pub transfer_errors: u32,
    /// Keys queued in total.
    pub keys_queued: u32,
    /// Keys dropped because the queue was full.
    pub keys_dropped: u32,
    /// Keys waiting in the queue.
    pub keys_pending: u32,
}

impl fmt::Display for KeyboardStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "layout {}, repeat {} ms / {} Hz, leds num={} caps={} scroll={}, {} keyboard(s), {} reports, {} rollover, {} errors, {} keys ({} dropped, {} pending)",
            self.layout,
            self.repeat.delay_ms,
            self.repeat.rate_hz,
            u8::from(self.leds.num_lock),
            u8::from(self.leds.caps_lock),
            u8::from(self.leds.scroll_lock),
            self.keyboards,
            self.reports,
            self.rollover_reports,
            self.transfer_errors,
            self.keys_queued,
            self.keys_dropped,
            self.keys_pending
        )
    }
}

/// What `enter_polled_mode` found and repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TakeoverReport {
    /// No CPU was inside the driver ([`Left::Whole`](crate::Left::Whole)):
    /// the state was kept as it was, nothing repaired.
    pub kept_whole: bool,
    /// The event ring dequeue state was re-derived and differed from software state.
    pub event_ring_repaired: bool,
    /// Events drained during the takeover.
    pub events_drained: u32,
    /// A command was outstanding and completed during the bounded wait.
    pub command_completed: bool,
    /// A command was aborted with CRCR.CA.
    pub command_aborted: bool,
    /// The command ring was reset to a clean state.
    pub command_ring_reset: bool,
    /// Keyboard endpoints stopped, re-initialised and re-armed.
    pub endpoints_restarted: u8,
    /// Devices that were mid-enumeration and were restarted.
    pub enumerations_restarted: u8,
    /// Hubs whose status-change endpoint was restarted and ports rescanned.
    pub hubs_restarted: u8,
    /// The key queue indices were torn and were reset.
    pub key_queue_reset: bool,
    /// Keys typed before the takeover (still queued, or drained from the
    /// event ring), dropped.
    pub keys_dropped: usize,
    /// A full controller reset and re-initialisation was needed.
    pub full_reset: bool,
    /// Why the full reset was needed or, when `dead`, why the controller
    /// was given up (a bounded wait that ran out names what it waited for).
    pub reset_reason: Option<Error>,
    /// The controller is dead: nothing more will come from it.
    pub dead: bool,
}

/// One line, shortest first: the whole report of a takeover of an
/// untouched driver is `state kept (no CPU was inside the driver)`; every
/// byte of it is printed before the panic prompt.
impl fmt::Display for TakeoverReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dead {
            // one line, with the reason
            write!(f, "controller DEAD")?;
            return match (self.full_reset, self.reset_reason) {
                (true, Some(e)) => write!(f, ", full reset failed ({e})"),
                (false, Some(e)) => write!(f, " ({e})"),
                (true, None) => write!(f, ", full reset failed"),
                (false, None) => write!(f, " (already dead before the takeover)"),
            };
        }
        let mut first = true;
        let mut item = |f: &mut fmt::Formatter<'_>, what: fmt::Arguments<'_>| {
            if !core::mem::take(&mut first) {
                f.write_str(", ")?;
            }
            f.write_fmt(what)
        };
        if self.kept_whole {
            item(f, format_args!("state kept (no CPU was inside the driver)"))?;
        }
        if self.events_drained > 0 {
            item(f, format_args!("{} events drained", self.events_drained))?;
        }
        if self.event_ring_repaired {
            item(f, format_args!("event ring state repaired"))?;
        }
        if self.command_completed {
            item(f, format_args!("pending command completed"))?;
        }
        if self.command_aborted {
            item(f, format_args!("command aborted"))?;
        }
        if self.command_ring_reset {
            item(f, format_args!("command ring reset"))?;
        }
        if self.endpoints_restarted > 0 {
            item(
                f,
                format_args!(
                    "{} keyboard endpoint(s) restarted",
                    self.endpoints_restarted
                ),
            )?;
        }
        if self.enumerations_restarted > 0 {
            item(
                f,
                format_args!("{} enumeration(s) restarted", self.enumerations_restarted),
            )?;
        }
        if self.hubs_restarted > 0 {
            item(f, format_args!("{} hub(s) rescanned", self.hubs_restarted))?;
        }
        if self.key_queue_reset {
            item(f, format_args!("key queue reset"))?;
        }
        if self.keys_dropped > 0 {
            item(
                f,
                format_args!("{} earlier key(s) dropped", self.keys_dropped),
            )?;
        }
        if self.full_reset {
            match self.reset_reason {
                Some(e) => item(f, format_args!("FULL RESET ({e})"))?,
                None => item(f, format_args!("FULL RESET"))?,
            }
        }
        if first {
            f.write_str("nothing to repair")?;
        }
        Ok(())
    }
}
