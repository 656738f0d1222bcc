//! PCI: configuration space through the legacy 0xCF8/0xCFC mechanism (all of
//! q35's bus 0 and the first 256 bytes of every function), enumeration, BARs
//! and MSI-X / MSI set-up; `pci_types` decodes headers and BARs.
//!
//! The capability list is walked by [`caps::find_caps`], a pure function
//! over a configuration read (unit-tested on the host), bounded like Linux's
//! walk: `pci_types`' own iterator follows `next` pointers without a bound,
//! and a looped list would hang the panic path's MSI masking.

pub mod intx;
pub mod quirks;
pub mod scan;

/// The capability list walk and the MSI/MSI-X register bits it serves
/// (PCI Local Bus 3.0 §6.7, §6.8), free of hardware so it is unit-tested on
/// the host against a fake configuration space.
pub mod caps {
    #![forbid(unsafe_code)]

    /// Most capabilities one walk visits: Linux's `PCI_FIND_CAP_TTL`
    /// (drivers/pci/pci.c). The 192 bytes after the header hold at most 48
    /// dword-aligned capabilities, so a walk still going after 48 is a loop.
    pub const TTL: usize = 48;

    /// First offset after the type 0/1 header: a capability pointer below it
    /// is invalid (PCI Local Bus 3.0 §6.7).
    pub const FIRST_CAP_OFFSET: u8 = 0x40;

    /// Capability ID of MSI (PCI Local Bus 3.0 §6.8.1.1).
    pub const ID_MSI: u8 = 0x05;
    /// Capability ID of MSI-X (PCI Local Bus 3.0 §6.8.2.1).
    pub const ID_MSIX: u8 = 0x11;

    /// The dword holding Command (low half) and Status (high half).
    const STATUS_DWORD: u16 = 0x04;
    /// Status bit 4, Capabilities List (PCI Local Bus 3.0 §6.2.3), as a bit
    /// of the dword at 0x04.
    #[doc(alias = "PCI_STATUS_CAP_LIST")]
    const STATUS_CAP_LIST: u32 = 1 << (16 + 4);
    /// Capabilities Pointer of type 0 and type 1 headers (PCI Local Bus 3.0
    /// §6.7; CardBus bridges keep theirs at 0x14 and are not walked here).
    #[doc(alias = "PCI_CAPABILITY_LIST")]
    const CAP_POINTER: u16 = 0x34;

    /// MSI Message Control bit 0, MSI Enable (PCI Local Bus 3.0 §6.8.1.3), as
    /// a bit of the capability's first dword.
    pub const MSI_ENABLE: u32 = 1 << 16;
    /// MSI Message Control bit 7, 64 bit address capable (§6.8.1.3): the
    /// Message Upper Address register exists and Message Data is at 0x0C.
    pub const MSI_64BIT: u32 = 1 << (16 + 7);
    /// MSI-X Message Control bit 14, Function Mask (PCI Local Bus 3.0
    /// §6.8.2.3), as a bit of the capability's first dword.
    pub const MSIX_FUNCTION_MASK: u32 = 1 << (16 + 14);
    /// MSI-X Message Control bit 15, MSI-X Enable (§6.8.2.3).
    pub const MSIX_ENABLE: u32 = 1 << (16 + 15);

    /// Why a walk stopped.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum WalkEnd {
        /// The Capabilities List status bit is clear: no list.
        NoList,
        /// A `next` pointer of 0: the normal end.
        End,
        /// A pointer into the header (1..0x40): invalid, the walk stops.
        BadPointer(u8),
        /// A capability ID of 0xFF: the function reads as all ones (gone,
        /// or not answering), as Linux stops on.
        AllOnes,
        /// [`TTL`] capabilities visited: the list loops (or is garbage).
        Ttl,
    }

    /// Byte `offset` of configuration space through a dword read.
    fn read_byte(read: &impl Fn(u16) -> u32, offset: u16) -> u8 {
        (read(offset & !3) >> ((offset & 3) * 8)) as u8
    }

    /// Walks the capability list of a type 0/1 function, calling
    /// `f(offset, id)` for every capability, at most [`TTL`] of them.
    ///
    /// `read(offset)` returns the configuration dword at a dword-aligned
    /// `offset` below 0x100. Like Linux's `__pci_find_next_cap_ttl`: a
    /// pointer below 0x40 ends the walk, the two reserved low bits of a
    /// pointer are masked off ("software must mask these bits off", PCI
    /// Local Bus 3.0 §6.7), an ID of 0xFF ends it, and so does the TTL, so a
    /// looped list (a -> b -> a, or a capability pointing at itself)
    /// terminates after at most 48 visits and 1 + 1 + 48 reads.
    pub fn find_caps(read: impl Fn(u16) -> u32, mut f: impl FnMut(u8, u8)) -> WalkEnd {
        if read(STATUS_DWORD) & STATUS_CAP_LIST == 0 {
            return WalkEnd::NoList;
        }
        let mut pointer = read_byte(&read, CAP_POINTER);
        for _ in 0..TTL {
            if pointer == 0 {
                return WalkEnd::End;
            }
            if pointer < FIRST_CAP_OFFSET {
                return WalkEnd::BadPointer(pointer);
            }
            let offset = pointer & !3;
            let header = read(u16::from(offset));
            let id = header as u8;
            if id == 0xff {
                return WalkEnd::AllOnes;
            }
            f(offset, id);
            pointer = (header >> 8) as u8;
        }
        WalkEnd::Ttl
    }

    /// Where a function's interrupt capabilities are.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IrqCaps {
        /// Offset of the first MSI capability.
        pub msi: Option<u8>,
        /// Offset of the first MSI-X capability.
        pub msix: Option<u8>,
    }

    /// The first MSI and MSI-X capability of a function (a function has at
    /// most one of each), by the bounded walk [`find_caps`].
    pub fn irq_caps(read: impl Fn(u16) -> u32) -> IrqCaps {
        let mut found = IrqCaps::default();
        find_caps(read, |offset, id| match id {
            ID_MSI => {
                found.msi.get_or_insert(offset);
            }
            ID_MSIX => {
                found.msix.get_or_insert(offset);
            }
            _ => {}
        });
        found
    }

    /// The MSI-X Table Offset/Table BIR register (PCI Local Bus 3.0
    /// §6.8.2.4), the dword at capability offset 4.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MsixTable {
        /// BAR index (BIR, bits 2:0; 6 and 7 are reserved and name no BAR).
        pub bar: u8,
        /// Byte offset of the table in that BAR (QWORD aligned: bits 31:3).
        pub offset: u32,
    }

    impl MsixTable {
        /// Decodes the register.
        pub fn from_dword(v: u32) -> Self {
            Self {
                bar: (v & 7) as u8,
                offset: v & !7,
            }
        }
    }

    /// Why an MSI-X table cannot be used.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum MsixTableError {
        /// BIR 6 or 7: reserved, names no BAR (PCI Local Bus 3.0 §6.8.2.4).
        ReservedBir(u8),
        /// The BAR it names is absent or not a memory BAR.
        NotMemory(u8),
        /// Entry 0 (16 bytes at the table offset) lies beyond the BAR.
        BeyondBar {
            /// Table offset.
            offset: u32,
            /// BAR size.
            size: u64,
        },
    }

    impl core::fmt::Display for MsixTableError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                Self::ReservedBir(b) => write!(f, "table BIR {b} is reserved"),
                Self::NotMemory(b) => write!(f, "table BAR {b} is not a memory BAR"),
                Self::BeyondBar { offset, size } => {
                    write!(f, "table at {offset:#x} beyond its {size:#x}-byte BAR")
                }
            }
        }
    }

    /// Checks that entry 0 of `table` lies inside its BAR, given the size of
    /// the memory BAR it names (`bar_size(bar)`, `None` for none).
    pub fn check_msix_table(
        table: MsixTable,
        bar_size: impl FnOnce(u8) -> Option<u64>,
    ) -> Result<(), MsixTableError> {
        if table.bar > 5 {
            return Err(MsixTableError::ReservedBir(table.bar));
        }
        let size = bar_size(table.bar).ok_or(MsixTableError::NotMemory(table.bar))?;
        if u64::from(table.offset) + 16 > size {
            return Err(MsixTableError::BeyondBar {
                offset: table.offset,
                size,
            });
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::cell::Cell;
        use std::vec::Vec;

        /// Most reads a terminating walk may do (status, pointer, 48 headers);
        /// past it the fake panics instead of letting a broken walk hang.
        const READ_LIMIT: usize = 2 + TTL;

        /// A fake 256-byte configuration space with a capability list.
        struct Config {
            bytes: [u8; 256],
            reads: Cell<usize>,
        }

        impl Config {
            /// Status with the Capabilities List bit, pointer at 0x34, and
            /// `(offset, id, next)` capabilities.
            fn with_caps(first: u8, caps: &[(u8, u8, u8)]) -> Self {
                let mut bytes = [0u8; 256];
                bytes[0x06] = 0x10;
                bytes[0x34] = first;
                for &(offset, id, next) in caps {
                    bytes[offset as usize] = id;
                    bytes[offset as usize + 1] = next;
                }
                Self {
                    bytes,
                    reads: Cell::new(0),
                }
            }

            fn read(&self, offset: u16) -> u32 {
                let n = self.reads.get() + 1;
                self.reads.set(n);
                assert!(n <= READ_LIMIT, "the walk did not stop ({n} reads)");
                assert_eq!(offset & 3, 0, "unaligned read at {offset:#x}");
                let o = offset as usize;
                u32::from_le_bytes(self.bytes[o..o + 4].try_into().unwrap())
            }

            fn walk(&self) -> (Vec<(u8, u8)>, WalkEnd) {
                let mut seen = Vec::new();
                let end = find_caps(|o| self.read(o), |o, id| seen.push((o, id)));
                (seen, end)
            }
        }

        #[test]
        fn a_normal_list_is_walked_and_msi_msix_found() {
            // PM at 0x40 -> MSI at 0x50 -> vendor at 0x60 -> MSI-X at 0x70.
            let c = Config::with_caps(
                0x40,
                &[
                    (0x40, 0x01, 0x50),
                    (0x50, ID_MSI, 0x60),
                    (0x60, 0x09, 0x70),
                    (0x70, ID_MSIX, 0x00),
                ],
            );
            let (seen, end) = c.walk();
            assert_eq!(
                seen,
                [(0x40, 0x01), (0x50, ID_MSI), (0x60, 0x09), (0x70, ID_MSIX)]
            );
            assert_eq!(end, WalkEnd::End);
            let found = irq_caps(|o| c.read(o));
            assert_eq!(
                found,
                IrqCaps {
                    msi: Some(0x50),
                    msix: Some(0x70)
                }
            );
        }

        #[test]
        fn a_looped_list_terminates() {
            // MSI-X at 0x40 -> MSI at 0x50 -> back to 0x40.
            let c = Config::with_caps(0x40, &[(0x40, ID_MSIX, 0x50), (0x50, ID_MSI, 0x40)]);
            let (seen, end) = c.walk();
            assert_eq!(end, WalkEnd::Ttl);
            assert_eq!(seen.len(), TTL);
            assert_eq!(seen[..2], [(0x40, ID_MSIX), (0x50, ID_MSI)]);
            c.reads.set(0);
            let found = irq_caps(|o| c.read(o));
            assert_eq!(found.msix, Some(0x40));
            assert_eq!(found.msi, Some(0x50));
        }

        #[test]
        fn a_self_loop_terminates() {
            let c = Config::with_caps(0x48, &[(0x48, ID_MSI, 0x48)]);
            let (seen, end) = c.walk();
            assert_eq!(end, WalkEnd::Ttl);
            assert_eq!(seen.len(), TTL);
            assert!(seen.iter().all(|&s| s == (0x48, ID_MSI)));
        }

        #[test]
        fn pointers_into_the_header_stop_and_reserved_bits_are_masked() {
            let c = Config::with_caps(0x40, &[(0x40, 0x01, 0x10)]);
            assert_eq!(c.walk(), (vec![(0x40, 0x01)], WalkEnd::BadPointer(0x10)));
            let c = Config::with_caps(0x3c, &[]);
            assert_eq!(c.walk(), (vec![], WalkEnd::BadPointer(0x3c)));
            // Reserved low bits set: masked off, as the spec and Linux do.
            let c = Config::with_caps(0x53, &[(0x50, ID_MSI, 0x62), (0x60, ID_MSIX, 0)]);
            assert_eq!(
                c.walk(),
                (vec![(0x50, ID_MSI), (0x60, ID_MSIX)], WalkEnd::End)
            );
        }

        #[test]
        fn no_list_and_a_vanished_function_read_nothing_further() {
            let mut c = Config::with_caps(0x40, &[(0x40, ID_MSI, 0)]);
            c.bytes[0x06] = 0;
            assert_eq!(c.walk(), (vec![], WalkEnd::NoList));
            assert_eq!(c.reads.get(), 1);
            let c = Config {
                bytes: [0xff; 256],
                reads: Cell::new(0),
            };
            assert_eq!(c.walk(), (vec![], WalkEnd::AllOnes));
            assert_eq!(irq_caps(|o| c.read(o)), IrqCaps::default());
        }

        #[test]
        fn malformed_msix_tables_are_refused() {
            let t = |v| MsixTable::from_dword(v);
            assert_eq!(check_msix_table(t(0x3000), |_| Some(0x4000)), Ok(()));
            assert_eq!(
                check_msix_table(t(0x3006), |_| Some(0x4000)),
                Err(MsixTableError::ReservedBir(6))
            );
            assert_eq!(
                check_msix_table(t(0x3002), |_| None),
                Err(MsixTableError::NotMemory(2))
            );
            assert_eq!(
                check_msix_table(t(0x3ff8), |_| Some(0x4000)),
                Err(MsixTableError::BeyondBar {
                    offset: 0x3ff8,
                    size: 0x4000
                })
            );
            assert_eq!(check_msix_table(t(0x3ff0), |_| Some(0x4000)), Ok(()));
        }

        #[test]
        fn msix_table_register_decodes() {
            assert_eq!(
                MsixTable::from_dword(0x0000_3004),
                MsixTable {
                    bar: 4,
                    offset: 0x3000
                }
            );
        }
    }
}

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

    /// Memory BAR `slot`: (physical address, size). A BAR the firmware left
    /// unassigned (qboot assigns none for some devices) gets an address from
    /// [`assign_window`]; 0 is never returned as an address.
    pub fn mem_bar(d: &Device, slot: u8) -> Option<(u64, u64)> {
        let mut ep = EndpointHeader::from_header(PciHeader::new(d.address), PortAccess)?;
        let (address, size) = match ep.bar(slot, PortAccess)? {
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
        let found = caps::irq_caps(|offset| read_config(d.address, offset));
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

    /// Routes the function's INTx to `vector` through the IOAPIC input
    /// [`super::intx::route`] finds, level triggered as PCI requires.
    fn setup_intx(d: &Device, vector: u8) -> Result<super::intx::Route, IntxError> {
        // Interrupt Line (0x3C) and Interrupt Pin (0x3D), PCI 3.0 §6.2.4.
        let v = read_config(d.address, 0x3C);
        let func = super::intx::Function {
            bus: d.address.bus(),
            slot: d.address.device(),
            pin: (v >> 8) as u8,
            line: v as u8,
        };
        let route = super::intx::route(chipset(), func, |irq| {
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

    /// Masks the device's MSI-X (function mask) and disables its MSI (panic
    /// mode: polled, no interrupts). The capability walk is bounded
    /// ([`caps::find_caps`]), so a looped list cannot hang the panic takeover.
    pub fn disable_msi(d: &Device) {
        if EndpointHeader::from_header(PciHeader::new(d.address), PortAccess).is_none() {
            return;
        }
        let found = caps::irq_caps(|offset| read_config(d.address, offset));
        if let Some(at) = found.msix {
            update_config(d.address, u16::from(at), |c| c | caps::MSIX_FUNCTION_MASK);
        }
        if let Some(at) = found.msi {
            update_config(d.address, u16::from(at), |c| c & !caps::MSI_ENABLE);
        }
    }
}
