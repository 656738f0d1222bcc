//! A reader of the AML subset that PCI interrupt routing uses (ACPI 6.5
//! §20, "ACPI Machine Language Specification"): enough to find the PCI root
//! bridge, evaluate its `_PRT` (§6.2.13) and read a link device's `_CRS`
//! (§6.4), in the shapes firmware writes them: `Name (_PRT, Package ...)`,
//! and `Method (_PRT) { If (PICM) { Return (AR00) } Return (PR00) }` with
//! the packages found by name (§5.3 search rules).
//!
//! It is not an interpreter (the Rust ones, `aml` 0.16 and `acpi` 6/7's
//! `aml`, need nightly): pure functions over the tables' bytes, no
//! allocation, every loop bounded by the bytes left or a step budget,
//! recursion by fixed depths. Whatever it does not understand is an
//! [`Error`] naming the offset or object, and the caller falls back to the
//! chipset's PIRQ wiring (`pci::intx`).

#![forbid(unsafe_code)]

use core::fmt;

mod eval;
mod namespace;
mod prt;
mod resource;
mod skip;
mod stream;
#[cfg(test)]
mod tests;

/// Most segments in a path.
pub const MAX_DEPTH: usize = 16;

/// An absolute namespace path (`\_SB_.PCI0._PRT`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Path {
    segs: [[u8; 4]; MAX_DEPTH],
    len: u8,
}

impl Path {
    /// The root, `\`.
    pub const ROOT: Path = Path {
        segs: [[0; 4]; MAX_DEPTH],
        len: 0,
    };

    /// The path `\segs[0].segs[1]...` (each segment padded with `_`
    /// to 4 characters as AML stores it).
    pub fn from_segments(segs: &[[u8; 4]]) -> Result<Path, Error> {
        let mut p = Path::ROOT;
        for s in segs {
            p.push(*s)?;
        }
        Ok(p)
    }

    /// Appends a segment.
    fn push(&mut self, seg: [u8; 4]) -> Result<(), Error> {
        let slot = self
            .segs
            .get_mut(usize::from(self.len))
            .ok_or(Error::TooDeep { at: 0 })?;
        *slot = seg;
        self.len += 1;
        Ok(())
    }

    /// Removes the last segment; false at the root.
    fn pop(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        self.len -= 1;
        self.segs[usize::from(self.len)] = [0; 4];
        true
    }

    /// This path with `seg` appended.
    fn child(&self, seg: [u8; 4]) -> Result<Path, Error> {
        let mut p = *self;
        p.push(seg)?;
        Ok(p)
    }

    /// The enclosing scope (the root's is the root).
    fn parent(&self) -> Path {
        let mut p = *self;
        p.pop();
        p
    }

    /// The last segment.
    fn last(&self) -> Option<[u8; 4]> {
        usize::from(self.len).checked_sub(1).map(|i| self.segs[i])
    }
}

/// `\_SB.PCI0.GSIH`: segments with their trailing `_` padding removed, as
/// ACPICA prints them.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\\")?;
        for (i, seg) in self.segs[..usize::from(self.len)].iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            let keep = 4 - seg[1..].iter().rev().take_while(|&&c| c == b'_').count();
            for &c in &seg[..keep] {
                write!(f, "{}", char::from(c))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An interrupt as `_PRT` or a `_CRS` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq {
    /// The GSI, or with `isa` the ISA IRQ (an IRQ descriptor's number,
    /// which the MADT's overrides map to a GSI).
    pub number: u32,
    /// From an IRQ descriptor (§6.4.2.1): an ISA IRQ number.
    pub isa: bool,
    /// Level (true) or edge triggered.
    pub level: bool,
    /// Active low (true) or high.
    pub active_low: bool,
}

/// Where a PCI INTx goes according to `_PRT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The link device the `_PRT` entry names, if not a GSI directly.
    pub link: Option<Path>,
    /// The interrupt.
    pub irq: Irq,
}

/// Why `_PRT` gave no route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes end inside an encoding.
    Truncated { at: usize },
    /// A PkgLength with reserved bits set or past its enclosing end.
    BadPkgLength { at: usize },
    /// A NameSeg with a character outside `A-Z`, `0-9`, `_`.
    BadNameAt { at: usize },
    /// A `^` prefix above the root.
    BadName,
    /// An opcode the namespace walk does not know.
    UnknownOpcode { at: usize, op: u16 },
    /// An opcode outside the evaluated subset.
    Unsupported { at: usize, op: u16 },
    /// Nesting, path length or call depth past the limits.
    TooDeep { at: usize },
    /// The evaluation step budget ran out (a loop of names?).
    TooManySteps { at: usize },
    /// More `_PRT` entries or root bridges than read.
    TooManyEntries,
    /// A name that resolves to no object.
    NotFound(Path),
    /// A field unit (hardware or NVS memory), which is not read.
    Field(Path),
    /// A condition that is not an integer.
    NotAnInteger { at: usize },
    /// `_SEG` or `_BBN` that is not an integer.
    NotAnIntegerObject(Path),
    /// A Local read before it was stored.
    Uninitialized { at: usize },
    /// A method that ends without `Return`.
    NoReturn { at: usize },
    /// No root bridge with that `_BBN` in segment 0.
    NoRootBridge { bus: u8 },
    /// `_PRT` is not a package.
    NotAPackage(Path),
    /// A `_PRT` entry that is not `Package () {Address, Pin, Source, Index}`.
    BadEntry { at: usize },
    /// No `_PRT` entry for this device and pin.
    NoEntry { slot: u8, pin: u8 },
    /// A GSI past 32 bits.
    BadGsi(u64),
    /// The link device's `_CRS` is a Method, which is not run.
    CrsIsMethod(Path),
    /// A `_CRS` that is not a Buffer.
    NotABuffer { at: usize },
    /// A resource descriptor shorter than its kind requires.
    BadDescriptor { at: usize },
    /// A `_CRS` with no interrupt descriptor.
    NoInterrupt,
    /// An interrupt descriptor with no interrupt (link disabled).
    LinkDisabled { at: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { at } => write!(f, "AML truncated at {at:#x}"),
            Self::BadPkgLength { at } => write!(f, "bad PkgLength at {at:#x}"),
            Self::BadNameAt { at } => write!(f, "bad NameString at {at:#x}"),
            Self::BadName => write!(f, "name above the root"),
            Self::UnknownOpcode { at, op } => write!(f, "unknown opcode {op:#x} at {at:#x}"),
            Self::Unsupported { at, op } => {
                write!(f, "opcode {op:#x} at {at:#x} is not evaluated")
            }
            Self::TooDeep { at } => write!(f, "nesting too deep at {at:#x}"),
            Self::TooManySteps { at } => write!(f, "evaluation too long at {at:#x}"),
            Self::TooManyEntries => write!(f, "too many entries"),
            Self::NotFound(p) => write!(f, "{p} not found"),
            Self::Field(p) => write!(f, "{p} is a field, which is not read"),
            Self::NotAnInteger { at } => write!(f, "not an integer at {at:#x}"),
            Self::NotAnIntegerObject(p) => write!(f, "{p} is not an integer"),
            Self::Uninitialized { at } => write!(f, "Local read before Store at {at:#x}"),
            Self::NoReturn { at } => write!(f, "method ends without Return at {at:#x}"),
            Self::NoRootBridge { bus } => write!(f, "no PCI root bridge for bus {bus}"),
            Self::NotAPackage(p) => write!(f, "{p} is not a package"),
            Self::BadEntry { at } => write!(f, "bad _PRT entry at {at:#x}"),
            Self::NoEntry { slot, pin } => {
                write!(
                    f,
                    "no _PRT entry for device {slot} INT{}",
                    char::from(b'A'.wrapping_add(*pin))
                )
            }
            Self::BadGsi(g) => write!(f, "GSI {g:#x} out of range"),
            Self::CrsIsMethod(p) => write!(f, "{p}._CRS is a Method"),
            Self::NotABuffer { at } => write!(f, "_CRS at {at:#x} is not a buffer"),
            Self::BadDescriptor { at } => write!(f, "bad resource descriptor at {at:#x}"),
            Self::NoInterrupt => write!(f, "_CRS has no interrupt"),
            Self::LinkDisabled { at } => write!(f, "link disabled (no IRQ at {at:#x})"),
        }
    }
}

/// The INTx route of PCI device `slot`, `pin` 0-3 (INTA#-INTD#), on root
/// bus `bus` of segment 0, from the `_PRT` in `tables` (the AML bodies of
/// the DSDT, then the SSDTs, without their headers).
pub fn pci_intx(tables: &[&[u8]], bus: u8, slot: u8, pin: u8) -> Result<Route, Error> {
    pci_intx_behind(tables, bus, &[], slot, pin)
}

/// Most PCI-to-PCI bridges [`pci_intx_behind`] follows.
pub const MAX_BRIDGES: usize = prt::MAX_BRIDGES;

/// As [`pci_intx`] for a device behind PCI-to-PCI `bridges` (the device
/// and function number of each, from root bus `bus` down): the `_PRT` of
/// the nearest bridge the namespace gives one, the pin swizzled across the
/// bridges without (PCI-to-PCI Bridge Architecture 1.2 §9.1).
pub fn pci_intx_behind(
    tables: &[&[u8]],
    bus: u8,
    bridges: &[(u8, u8)],
    slot: u8,
    pin: u8,
) -> Result<Route, Error> {
    if pin > 3 {
        return Err(Error::NoEntry { slot, pin });
    }
    prt::route(tables, bus, bridges, slot, pin)
}
