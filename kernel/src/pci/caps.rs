//! The capability list walk and the MSI/MSI-X register bits it serves
//! (PCI Local Bus 3.0 §6.7, §6.8), free of hardware so it is unit-tested on
//! the host against a fake configuration space.
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
