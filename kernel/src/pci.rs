//! PCI: configuration space through the legacy 0xCF8/0xCFC mechanism (all of
//! q35's bus 0 and the first 256 bytes of every function), enumeration, BARs
//! and MSI-X / MSI set-up; `pci_types` decodes headers and BARs.
//!
//! The capability list is walked by [`caps::find_caps`], a pure function
//! over a configuration read (unit-tested on the host), bounded like Linux's
//! walk: `pci_types`' own iterator follows `next` pointers without a bound,
//! and a looped list would hang the panic path's MSI masking.

pub mod caps;
pub mod intx;
pub mod quirks;
pub mod scan;

#[cfg(target_os = "none")]
pub use hw::*;

/// The hardware side: port I/O, enumeration, BARs, interrupts.
#[cfg(target_os = "none")]
mod hw {
    use alloc::vec::Vec;

    use pci_types::{Bar, ConfigRegionAccess, EndpointHeader, PciAddress, PciHeader};

    use super::caps;
    use crate::arch::port::{inl, outl};
    use crate::sync::SpinLock;

    /// Serialises the two-step 0xCF8/0xCFC access between CPUs.
    static CONFIG_LOCK: SpinLock<()> = SpinLock::new(());

    /// Runs one configuration access: under [`CONFIG_LOCK`] in normal
    /// operation; without any lock once a panic has stopped the other CPUs,
    /// so that the panic path (the USB takeover masks MSI-X, an early panic
    /// finds and enables the controller) takes no lock at all. Nothing can
    /// interleave then: the panic CPU is the only one running, and every access
    /// writes 0xCF8 before it touches 0xCFC, so an access a stopped CPU left
    /// half done does not matter.
    fn config_access<R>(access: impl FnOnce() -> R) -> R {
        if crate::sync::raw::scheduler_stopped() {
            access()
        } else {
            let _g = CONFIG_LOCK.lock();
            access()
        }
    }

    /// Configuration access through ports 0xCF8/0xCFC.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct PortAccess;

    fn config_address(a: PciAddress, offset: u16) -> u32 {
        0x8000_0000
            | (a.bus() as u32) << 16
            | (a.device() as u32) << 11
            | (a.function() as u32) << 8
            | (offset as u32 & 0xfc)
    }

    impl ConfigRegionAccess for PortAccess {
        unsafe fn read(&self, address: PciAddress, offset: u16) -> u32 {
            // SAFETY: the PCI configuration mechanism #1 ports.
            config_access(|| unsafe {
                outl(0xCF8, config_address(address, offset));
                inl(0xCFC)
            })
        }

        unsafe fn write(&self, address: PciAddress, offset: u16, value: u32) {
            // SAFETY: as `read`; the caller owns the semantics of the write.
            config_access(|| unsafe {
                outl(0xCF8, config_address(address, offset));
                outl(0xCFC, value);
            })
        }
    }

    /// Reads the configuration dword at `offset` of function `a` (dword aligned:
    /// the port mechanism ignores the low two bits).
    fn read_config(a: PciAddress, offset: u16) -> u32 {
        // SAFETY: a configuration read; the registers read through this (the
        // status and capability registers) have no read side effects (PCI Local
        // Bus 3.0 §6.2.3, §6.7, §6.8).
        unsafe { PortAccess.read(a, offset) }
    }

    /// Writes the configuration dword at `offset` of function `a`. Only for
    /// the MSI/MSI-X registers of a capability the bounded walk found.
    fn write_config(a: PciAddress, offset: u16, value: u32) {
        // SAFETY: callers only write the Message Control and message
        // registers of an MSI/MSI-X capability found by `caps::irq_caps`
        // (PCI Local Bus 3.0 §6.8), whose effects they own.
        unsafe { PortAccess.write(a, offset, value) }
    }

    /// Read-modify-write of the configuration dword at `offset` of function
    /// `a` (same restriction as [`write_config`]).
    fn update_config(a: PciAddress, offset: u16, f: impl FnOnce(u32) -> u32) {
        write_config(a, offset, f(read_config(a, offset)));
    }

    /// A PCI function found by [`scan`].
    #[derive(Clone, Copy, Debug)]
    pub struct Device {
        /// Bus/device/function.
        pub address: PciAddress,
        /// Vendor id.
        pub vendor: u16,
        /// Device id.
        pub device: u16,
        /// Base class.
        pub class: u8,
        /// Sub class.
        pub subclass: u8,
        /// Programming interface.
        pub prog_if: u8,
    }

    /// Most PCI functions remembered by [`init`]; a machine with more gets
    /// the rest found by a fresh walk each time (slow, but correct).
    const MAX_FUNCTIONS: usize = 128;

    /// The functions found by [`init`], in bus order, and whether the table
    /// holds all of them.
    struct Found {
        devices: [Option<Device>; MAX_FUNCTIONS],
        complete: bool,
    }

    /// Written once by [`init`] on the boot CPU, before any other CPU runs;
    /// read without a lock afterwards (the panic path included): `Once::get`
    /// never waits.
    static FOUND: spin::Once<Found> = spin::Once::new();

    /// Walks the buses once and remembers every function: boot looks for
    /// the dump disk, the watchdog, the framebuffer and the xHCI
    /// controllers, and each walk costs 32 configuration reads per bus at
    /// least (two port I/O exits each under a hypervisor). Boot CPU, before
    /// the other CPUs start.
    pub fn init() {
        FOUND.call_once(|| {
            let mut f = Found {
                devices: [None; MAX_FUNCTIONS],
                complete: true,
            };
            let mut n = 0;
            walk(|d| {
                if n == MAX_FUNCTIONS {
                    f.complete = false;
                    return true;
                }
                f.devices[n] = Some(d);
                n += 1;
                false
            });
            f
        });
    }

    /// Visits every function until `f` returns true: from the table of
    /// [`init`] when it holds them all, else by walking the buses.
    /// Allocates nothing and takes no lock (usable on the panic path).
    fn visit(mut f: impl FnMut(Device) -> bool) {
        match FOUND.get() {
            Some(found) if found.complete => {
                for d in found.devices.iter().flatten() {
                    if f(*d) {
                        return;
                    }
                }
            }
            _ => walk(f),
        }
    }

    /// Which buses [`walk`] probes (`pci.scan=all`: every one); set at boot
    /// before [`init`].
    static SCAN_ALL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    /// Makes walks probe every bus number, not only bus 0 and the buses
    /// behind its bridges (`pci.scan=all`, for peer root buses).
    pub fn set_scan_all(all: bool) {
        SCAN_ALL.store(all, core::sync::atomic::Ordering::Relaxed);
    }

    /// Walks every function ([`super::scan::walk`]: bus 0 and the buses
    /// behind its bridges, or all 256) until `f` returns true.
    fn walk(mut f: impl FnMut(Device) -> bool) {
        let buses = if SCAN_ALL.load(core::sync::atomic::Ordering::Relaxed) {
            super::scan::Buses::All
        } else {
            super::scan::Buses::Bridged
        };
        let address = |at: super::scan::Bdf| PciAddress::new(0, at.bus, at.dev, at.func);
        super::scan::walk(
            |at, offset| read_config(address(at), offset),
            buses,
            |at| {
                let address = address(at);
                let h = PciHeader::new(address);
                let (vendor, device) = h.id(PortAccess);
                let (_, class, subclass, prog_if) = h.revision_and_class(PortAccess);
                f(Device {
                    address,
                    vendor,
                    device,
                    class,
                    subclass,
                    prog_if,
                })
            },
        );
    }

    /// Every PCI function.
    pub fn scan() -> Vec<Device> {
        let mut out = Vec::new();
        visit(|d| {
            out.push(d);
            false
        });
        out
    }

    /// The first function matching `pred`, without allocating (panic path).
    pub fn find(pred: impl Fn(&Device) -> bool) -> Option<Device> {
        let mut found = None;
        visit(|d| {
            let hit = pred(&d);
            if hit {
                found = Some(d);
            }
            hit
        });
        found
    }

    /// Enables memory decoding and bus mastering (DMA).
    pub fn enable(d: &Device) {
        let mut h = PciHeader::new(d.address);
        h.update_command(PortAccess, |c| {
            c | pci_types::CommandRegister::MEMORY_ENABLE
                | pci_types::CommandRegister::BUS_MASTER_ENABLE
                | pci_types::CommandRegister::IO_ENABLE
        });
    }

    /// Runs `f`, which sizes BARs, with the function's memory and I/O
    /// decoding off, and turns back on what was on (Linux
    /// `__pci_read_base`, `PCI_COMMAND_DECODE_ENABLE`). Sizing writes
    /// all-ones to a BAR and then its address back: while the function
    /// decodes, each of those writes moves the BAR, and under QEMU every move
    /// is a change of the memory map (the dump disk's probe after SeaBIOS,
    /// which leaves decoding on, spent about 60 ms of TCG time on them).
    pub fn with_decoding_off<R>(d: &Device, f: impl FnOnce() -> R) -> R {
        use pci_types::CommandRegister;
        let decode = CommandRegister::MEMORY_ENABLE | CommandRegister::IO_ENABLE;
        let mut h = PciHeader::new(d.address);
        let was = h.command(PortAccess) & decode;
        if was.is_empty() {
            return f();
        }
        h.update_command(PortAccess, |c| c - decode);
        let r = f();
        h.update_command(PortAccess, |c| c | was);
        r
    }

    /// Memory BAR `slot`: (physical address, size), sized with decoding off
    /// ([`with_decoding_off`]). A BAR the firmware left unassigned (qboot
    /// assigns none for some devices) gets an address from
    /// [`assign_window`]; 0 is never returned as an address.
    pub fn mem_bar(d: &Device, slot: u8) -> Option<(u64, u64)> {
        let mut ep = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess)?;
        let (address, size) = match with_decoding_off(d, || ep.bar(slot, PortAccess))? {
            Bar::Memory32 { address, size, .. } => (address as u64, size as u64),
            Bar::Memory64 { address, size, .. } => (address, size),
            Bar::Io { .. } => return None,
        };
        if address != 0 {
            return Some((address, size));
        }
        let addr = assign_window(size)?;
        // SAFETY: `addr` is a free, size-aligned range in the PCI hole below the
        // IOAPIC; memory decoding is enabled only afterwards by `enable`.
        unsafe { ep.write_bar(slot, PortAccess, addr as usize) }.ok()?;
        log::info!(
            "pci {:02x}:{:02x}.{}: assigned BAR{slot} at {addr:#x} ({size:#x} bytes)",
            d.address.bus(),
            d.address.device(),
            d.address.function()
        );
        Some((addr, size))
    }

    /// Hands out size-aligned MMIO windows above every BAR the firmware
    /// assigned, from 0xE000_0000 up to the IOAPIC/LAPIC area at 0xFEC0_0000.
    fn assign_window(size: u64) -> Option<u64> {
        static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
        const START: u64 = 0xE000_0000;
        const END: u64 = 0xFEC0_0000;
        if NEXT.load(core::sync::atomic::Ordering::Relaxed) == 0 {
            let mut top = START;
            visit(|d| {
                if let Some(ep) = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess)
                {
                    for slot in 0..6u8 {
                        // Only a BAR that already points into the window
                        // is sized: sizing writes all-ones to a BAR and
                        // back (two changes of the memory map each, under
                        // a hypervisor, for a device that decodes) and
                        // qboot leaves the window empty.
                        let raw = read_config(d.address, 0x10 + 4 * u16::from(slot));
                        if !(START..END).contains(&u64::from(raw & !0xf)) {
                            continue;
                        }
                        if let Some(Bar::Memory32 { address, size, .. }) = ep.bar(slot, PortAccess)
                        {
                            let (a, s) = (address as u64, size as u64);
                            if (START..END).contains(&a) {
                                top = top.max(a + s);
                            }
                        }
                    }
                }
                false
            });
            NEXT.store(top, core::sync::atomic::Ordering::Relaxed);
        }
        let size = size.max(4096).next_power_of_two();
        let base = NEXT
            .load(core::sync::atomic::Ordering::Relaxed)
            .div_ceil(size)
            * size;
        if base + size > END {
            return None;
        }
        NEXT.store(base + size, core::sync::atomic::Ordering::Relaxed);
        Some(base)
    }

    /// Which interrupt mechanism a device got.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum IrqKind {
        /// MSI-X table entry 0.
        MsiX,
        /// MSI.
        Msi,
        /// Legacy INTx through the IOAPIC.
        IntX,
        /// Nothing could be set up.
        None,
    }

    impl IrqKind {
        /// Name for reports.
        pub fn name(self) -> &'static str {
            match self {
                Self::MsiX => "MSI-X",
                Self::Msi => "MSI",
                Self::IntX => "INTx",
                Self::None => "none",
            }
        }
    }

    /// What [`setup_interrupt`] set up.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Interrupt {
        /// The mechanism.
        pub kind: IrqKind,
        /// For INTx: the IOAPIC input and how it was found.
        pub route: Option<super::intx::Route>,
    }

    /// MSI message address for the bootstrap CPU (Intel SDM Vol. 3A §11.11.1).
    fn msi_address() -> u64 {
        let id = crate::arch::cpu::cpu(0)
            .apic_id
            .load(core::sync::atomic::Ordering::Relaxed) as u64;
        0xFEE0_0000 | (id & 0xff) << 12
    }

    /// `bb:dd.f` of a function, for messages.
    struct Name(PciAddress);

    impl core::fmt::Display for Name {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let a = self.0;
            write!(f, "{:02x}:{:02x}.{}", a.bus(), a.device(), a.function())
        }
    }

    /// Routes the device's interrupt to `vector` on CPU 0: MSI-X, else MSI,
    /// else INTx through the IOAPIC (PCI Local Bus 3.0 §6.8: a function
    /// with both uses one; Linux `pci_alloc_irq_vectors` tries them in this
    /// order). `msi` false (a controller with broken MSI, or the command
    /// line) goes straight to INTx. A malformed MSI-X capability is
    /// reported and MSI tried instead; an INTx without a route is reported
    /// and gives [`IrqKind::None`] (the caller then polls).
    pub fn setup_interrupt(d: &Device, vector: u8, msi: bool) -> Interrupt {
        let none = Interrupt {
            kind: IrqKind::None,
            route: None,
        };
        if EndpointHeader::from_header(PciHeader::new(d.address), PortAccess).is_none() {
            return none;
        }
        let found = irq_caps(d);
        if msi && let Some(at) = found.msix {
            match setup_msix(d, at, vector) {
                Ok(()) => {
                    return Interrupt {
                        kind: IrqKind::MsiX,
                        route: None,
                    };
                }
                Err(e) => log::warn!("pci {}: MSI-X not usable: {e}; trying MSI", Name(d.address)),
            }
        }
        if msi && let Some(at) = found.msi {
            setup_msi(d, at, vector);
            return Interrupt {
                kind: IrqKind::Msi,
                route: None,
            };
        }
        match setup_intx(d, vector) {
            Ok(route) => Interrupt {
                kind: IrqKind::IntX,
                route: Some(route),
            },
            Err(e) => {
                log::warn!("pci {}: no interrupt: {e}", Name(d.address));
                none
            }
        }
    }

    /// Programs MSI-X table entry 0 with `vector` and enables MSI-X
    /// (PCI Local Bus 3.0 §6.8.2). The table must lie in a memory BAR.
    fn setup_msix(d: &Device, at: u8, vector: u8) -> Result<(), caps::MsixTableError> {
        let table = caps::MsixTable::from_dword(read_config(d.address, u16::from(at) + 4));
        let mut bar = None;
        caps::check_msix_table(table, |slot| {
            bar = mem_bar(d, slot);
            bar.map(|(_, size)| size)
        })?;
        let Some((base, size)) = bar else {
            return Err(caps::MsixTableError::NotMemory(table.bar));
        };
        let entry = crate::mm::paging::map_mmio(base, size) + u64::from(table.offset);
        // SAFETY: MSI-X table entry 0 (PCI Local Bus 3.0 §6.8.2.6-9), inside
        // the BAR just mapped: address lo/hi, data, vector control (bit 0 =
        // masked).
        unsafe {
            let e = entry as *mut u32;
            e.write_volatile(msi_address() as u32);
            e.add(1).write_volatile((msi_address() >> 32) as u32);
            e.add(2).write_volatile(vector as u32);
            e.add(3).write_volatile(0);
        }
        update_config(d.address, u16::from(at), |c| {
            (c & !caps::MSIX_FUNCTION_MASK) | caps::MSIX_ENABLE
        });
        Ok(())
    }

    /// Programs the MSI capability at `at` with `vector` and enables it.
    fn setup_msi(d: &Device, at: u8, vector: u8) {
        let at = u16::from(at);
        let control = read_config(d.address, at);
        // Message Address, Upper Address (64-bit capable only) and Data
        // (PCI Local Bus 3.0 §6.8.1.4-6).
        let address = msi_address();
        write_config(d.address, at + 4, address as u32);
        let data_at = if control & caps::MSI_64BIT != 0 {
            write_config(d.address, at + 8, (address >> 32) as u32);
            at + 0xC
        } else {
            at + 8
        };
        write_config(d.address, data_at, vector as u32);
        update_config(d.address, at, |c| c | caps::MSI_ENABLE);
    }

    /// The chipset whose PIRQ wiring [`super::intx::route`] knows, with its
    /// route registers: QEMU q35's ICH9 LPC (00:1f.0, 8086:2918) or pc's
    /// PIIX3/PIIX4 ISA bridge (8086:7000, 8086:7110).
    fn chipset() -> Option<super::intx::Chipset> {
        let bridge = find(|d| {
            d.vendor == 0x8086
                && d.address.bus() == 0
                && matches!(d.device, 0x2918 | 0x7000 | 0x7110)
        })?;
        let lo = read_config(bridge.address, 0x60).to_le_bytes();
        Some(if bridge.device == 0x2918 {
            let hi = read_config(bridge.address, 0x68).to_le_bytes();
            super::intx::Chipset::Ich9 {
                pirq: [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]],
            }
        } else {
            super::intx::Chipset::Piix { pirq: lo }
        })
    }

    /// The PCI-to-PCI bridges (PCI class 06:04) above `bus`: the root bus
    /// number (the first bus no bridge leads to) and the device and
    /// function of each bridge from there down, at most
    /// [`crate::acpi::aml::MAX_BRIDGES`].
    fn bridges_above(bus: u8) -> (u8, [(u8, u8); crate::acpi::aml::MAX_BRIDGES], usize) {
        let mut chain = [(0, 0); crate::acpi::aml::MAX_BRIDGES];
        let (mut bus, mut n) = (bus, 0);
        while n < chain.len()
            && let Some(b) = find(|d| {
                d.class == 0x06
                    && d.subclass == 0x04
                    && d.address.bus() < bus
                    // Secondary Bus Number (PCI-to-PCI Bridge 1.2 §3.2.5.4).
                    && (read_config(d.address, 0x18) >> 8) as u8 == bus
            })
        {
            chain[n] = (b.address.device(), b.address.function());
            bus = b.address.bus();
            n += 1;
        }
        chain[..n].reverse();
        (bus, chain, n)
    }

    /// The function's `_PRT` route ([`crate::acpi::aml::pci_intx_behind`]),
    /// or `None` with the reason logged (the chipset wiring is used then).
    fn prt_route(d: &Device, pin: u8) -> Option<crate::acpi::aml::Route> {
        let tables = crate::acpi::aml_tables();
        let a = d.address;
        let (root, chain, n) = bridges_above(a.bus());
        let pin = pin.wrapping_sub(1);
        match crate::acpi::aml::pci_intx_behind(&tables, root, &chain[..n], a.device(), pin) {
            Ok(r) => Some(r),
            Err(e) => {
                log::info!("pci {}: _PRT not used: {e}", Name(a));
                None
            }
        }
    }

    /// Routes the function's INTx to `vector` through the IOAPIC input
    /// [`super::intx::route`] finds (`_PRT` first), with the trigger mode
    /// and polarity it gives.
    fn setup_intx(d: &Device, vector: u8) -> Result<super::intx::Route, IntxError> {
        // Interrupt Line (0x3C) and Interrupt Pin (0x3D), PCI 3.0 §6.2.4.
        let v = read_config(d.address, 0x3C);
        let func = super::intx::Function {
            bus: d.address.bus(),
            slot: d.address.device(),
            pin: (v >> 8) as u8,
            line: v as u8,
        };
        let prt = (1..=4)
            .contains(&func.pin)
            .then(|| prt_route(d, func.pin))
            .flatten();
        let route = super::intx::route(prt, chipset(), func, |irq| {
            super::intx::isa_irq(irq, crate::acpi::isa_override(irq))
        })
        .map_err(IntxError::Route)?;
        let t = route.trigger;
        crate::arch::apic::route_gsi(route.gsi, vector, t.level, t.active_low)
            .map_err(IntxError::IoApic)?;
        // Command bit 10, Interrupt Disable (PCI 3.0 §6.2.2): cleared, so
        // the function may assert INTx (a firmware may leave it set).
        let mut h = PciHeader::new(d.address);
        h.update_command(PortAccess, |c| {
            c - pci_types::CommandRegister::INTERRUPT_DISABLE
        });
        Ok(route)
    }

    /// Why an INTx could not be routed.
    enum IntxError {
        Route(super::intx::RouteError),
        IoApic(crate::arch::apic::RouteError),
    }

    impl core::fmt::Display for IntxError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                Self::Route(e) => write!(f, "INTx: {e}"),
                Self::IoApic(e) => write!(f, "INTx: {e}"),
            }
        }
    }

    /// Intel EHCI/xHCI port switching for xHCI function `d`
    /// ([`super::quirks::switch_intel_ports`], Linux
    /// `usb_enable_intel_xhci_ports`), reported when it did something.
    pub fn switch_intel_ports(d: &Device) {
        struct Config(PciAddress);
        impl super::quirks::ConfigSpace for Config {
            fn read(&mut self, offset: u16) -> u32 {
                read_config(self.0, offset)
            }
            fn write(&mut self, offset: u16, value: u32) {
                // SAFETY: only the Intel port routing registers (0xD0,
                // 0xD8) of an Intel xHCI function, from the masks its BIOS
                // set: what Linux writes at the same point.
                unsafe { PortAccess.write(self.0, offset, value) }
            }
        }
        let sub = read_config(d.address, 0x2C);
        let id = super::quirks::Identity {
            vendor: d.vendor,
            device: d.device,
            subsystem_vendor: sub as u16,
            subsystem_device: (sub >> 16) as u16,
        };
        let ehci = find(|e| {
            e.vendor == super::quirks::VENDOR_INTEL
                && e.class == 0x0c
                && e.subclass == 0x03
                && e.prog_if == 0x20
        })
        .is_some();
        if let Some(done) = super::quirks::switch_intel_ports(&mut Config(d.address), id, ehci) {
            log::info!(
                "pci {}: Intel port switching: SuperSpeed ports {:#x}, USB 2.0 ports {:#x} to xHCI",
                Name(d.address),
                done.superspeed,
                done.usb2
            );
        }
    }

    /// Where the device's MSI and MSI-X capabilities are (none for a
    /// function without a type 0 header). The walk is bounded
    /// ([`caps::find_caps`]): a looped list cannot hang it.
    pub fn irq_caps(d: &Device) -> caps::IrqCaps {
        if EndpointHeader::from_header(PciHeader::new(d.address), PortAccess).is_none() {
            return caps::IrqCaps::default();
        }
        caps::irq_caps(|offset| read_config(d.address, offset))
    }

    /// Masks the device's MSI-X (function mask) and disables its MSI (panic
    /// mode: polled, no interrupts), at the capabilities [`irq_caps`] found
    /// at boot: the panic takeover walks no list.
    pub fn disable_msi(d: &Device, found: caps::IrqCaps) {
        if let Some(at) = found.msix {
            update_config(d.address, u16::from(at), |c| c | caps::MSIX_FUNCTION_MASK);
        }
        if let Some(at) = found.msi {
            update_config(d.address, u16::from(at), |c| c & !caps::MSI_ENABLE);
        }
    }
}
