//! A PCI function's INTx from the PCI root bridge's `_PRT` (ACPI 6.5
//! §6.2.13), the way Linux's `acpi_pci_irq_lookup` and
//! `acpi_pci_link_get_irq` find it: the root bridge is the Device whose
//! `_HID` or `_CID` is PNP0A03 (PCI) or PNP0A08 (PCI Express) and whose
//! `_SEG`/`_BBN` (default 0) match; its `_PRT` is a package of
//! `Package () { Address, Pin, Source, SourceIndex }`, where Address is
//! `0xSSSSFFFF` for device SSSS and any function, Pin 0-3 is INTA#-INTD#,
//! and Source is either 0 (SourceIndex is then the GSI, level triggered
//! and active low) or the name of an interrupt link device whose current
//! `_CRS` holds the interrupt (§6.2.13 and §6.2.2). A `_CRS` that is a
//! Method (QEMU pc's LNKA-LNKD read the PIIX route registers) is not run:
//! [`Error::CrsIsMethod`] says so and the caller uses the chipset wiring.

#![forbid(unsafe_code)]

use super::eval::{Context, Value};
use super::namespace::{self, Flow, Kind};
use super::stream::{Stream, starts_name};
use super::{Error, Irq, Path, Route};

/// EISAID("PNP0A03") and EISAID("PNP0A08") as AML encodes them (§19.3.4).
const PNP0A03: u64 = 0x030A_D041;
const PNP0A08: u64 = 0x080A_D041;
/// Most PCI root bridges looked at.
const MAX_ROOTS: usize = 8;
/// Most `_PRT` entries read.
const MAX_ENTRIES: usize = 1024;

/// Whether the literal at `s` (a `_HID` or `_CID` value) names a PCI root
/// bridge: an EISAID integer, a String, or (for `_CID`) a Package of them.
fn is_pci_root_id(s: &mut Stream, nested: bool) -> Result<bool, Error> {
    if let Some(v) = s.integer()? {
        return Ok(v == PNP0A03 || v == PNP0A08);
    }
    match s.byte()? {
        0x0D => {
            let start = s.at;
            s.skip_string()?;
            let id = &s.bytes[start..s.at - 1];
            Ok(id == b"PNP0A03" || id == b"PNP0A08")
        }
        0x12 if !nested => {
            let end = s.pkg_end()?;
            let mut body = s.split_to(end);
            body.skip(1)?;
            while !body.done() {
                if is_pci_root_id(&mut body, true)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        _ => Ok(false),
    }
}

/// The PCI root bridges: Devices with a literal PCI `_HID` or `_CID`.
fn root_bridges(tables: &[&[u8]]) -> Result<([Path; MAX_ROOTS], usize), Error> {
    let mut roots = [Path::ROOT; MAX_ROOTS];
    let mut n = 0;
    let mut failed = None;
    namespace::walk(tables, &mut |o| {
        let last = o.path.last();
        if o.kind != Kind::Name || (last != Some(*b"_HID") && last != Some(*b"_CID")) {
            return Flow::Continue;
        }
        let device = o.path.parent();
        match is_pci_root_id(&mut o.stream(tables), false) {
            Ok(true) if !roots[..n].contains(&device) => {
                if n == MAX_ROOTS {
                    failed = Some(Error::TooManyEntries);
                    return Flow::Stop;
                }
                roots[n] = device;
                n += 1;
            }
            Ok(_) => {}
            Err(e) => {
                failed = Some(e);
                return Flow::Stop;
            }
        }
        Flow::Continue
    })?;
    failed.map_or(Ok((roots, n)), Err)
}

/// An integer-valued optional object (`_SEG`, `_BBN`): 0 if absent.
fn integer_or_zero(ctx: &mut Context, path: &Path) -> Result<u64, Error> {
    ctx.reset();
    match ctx.named(path)? {
        None => Ok(0),
        Some(Value::Integer(v)) => Ok(v),
        Some(_) => Err(Error::NotAnIntegerObject(*path)),
    }
}

/// The root bridge of `bus` in segment 0. A root whose `_SEG` or `_BBN`
/// cannot be evaluated is passed over, as Linux's `acpi_pci_root_add`
/// refuses it; its error is returned if no other root matches.
fn root_of(ctx: &mut Context, bus: u8) -> Result<Path, Error> {
    let (roots, n) = root_bridges(ctx.tables)?;
    let mut failed = None;
    for root in &roots[..n] {
        let numbers = integer_or_zero(ctx, &root.child(*b"_SEG")?)
            .and_then(|seg| Ok((seg, integer_or_zero(ctx, &root.child(*b"_BBN")?)?)));
        match numbers {
            Ok((0, bbn)) if bbn == u64::from(bus) => return Ok(*root),
            Ok(_) => {}
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    Err(failed.unwrap_or(Error::NoRootBridge { bus }))
}

/// One `_PRT` entry's source: a link device, or none (SourceIndex is the
/// GSI).
type Source = Option<Path>;

/// The entry of `_PRT` package `pkg` (at `at` in `table`, names resolved
/// in `scope`) for `slot` and `pin`.
fn entry(
    tables: &[&[u8]],
    (table, at, scope): (usize, usize, Path),
    slot: u8,
    pin: u8,
) -> Result<Option<(Source, u64)>, Error> {
    let mut s = Stream::new(tables[table], table);
    s.at = at;
    let op = s.byte()?;
    let end = s.pkg_end()?;
    let mut body = s.split_to(end);
    if op == 0x12 {
        body.skip(1)?;
    } else if body.integer()?.is_none() {
        // VarPackage with a computed NumElements.
        return Err(Error::Unsupported { at, op: 0x13 });
    }
    for _ in 0..MAX_ENTRIES {
        if body.done() {
            return Ok(None);
        }
        let e = body.at;
        if body.byte()? != 0x12 {
            return Err(Error::BadEntry { at: e });
        }
        let end = body.pkg_end()?;
        let mut f = body.split_to(end);
        f.skip(1)?;
        let bad = Error::BadEntry { at: e };
        let address = f.integer()?.ok_or(bad)?;
        let p = f.integer()?.ok_or(bad)?;
        let source = if starts_name(f.peek()?) {
            Some(f.name()?)
        } else if f.integer()? == Some(0) {
            None
        } else {
            return Err(bad);
        };
        let index = f.integer()?.ok_or(bad)?;
        if address >> 16 != u64::from(slot) || p != u64::from(pin) {
            continue;
        }
        let link = match source {
            None => None,
            Some(name) => match namespace::search(tables, &scope, &name)? {
                Some(o) => Some(o.path),
                None => return Err(Error::NotFound(name.resolve(&scope)?)),
            },
        };
        return Ok(Some((link, index)));
    }
    Err(Error::TooManyEntries)
}

/// The current interrupt of link device `link`: its `_CRS` must be a
/// Buffer literal (a ResourceTemplate).
fn link_interrupt(tables: &[&[u8]], link: &Path) -> Result<Irq, Error> {
    let crs = link.child(*b"_CRS")?;
    let Some(o) = namespace::find(tables, &crs)? else {
        return Err(Error::NotFound(crs));
    };
    match o.kind {
        Kind::Name => super::resource::buffer_interrupt(&mut o.stream(tables)),
        _ => Err(Error::CrsIsMethod(*link)),
    }
}

/// Most PCI-to-PCI bridges between a root bus and a device.
pub(super) const MAX_BRIDGES: usize = 8;

/// The Device below `node` whose `_ADR` (§6.1.1: device << 16 | function)
/// is the literal `adr`.
fn child_with_adr(tables: &[&[u8]], node: &Path, adr: u64) -> Result<Option<Path>, Error> {
    let mut found = None;
    let mut failed = None;
    namespace::walk(tables, &mut |o| {
        if o.kind != Kind::Name || o.path.last() != Some(*b"_ADR") {
            return Flow::Continue;
        }
        let device = o.path.parent();
        if device.parent() != *node {
            return Flow::Continue;
        }
        match o.stream(tables).integer() {
            Ok(Some(v)) if v == adr => {
                found = Some(device);
                Flow::Stop
            }
            Ok(_) => Flow::Continue,
            Err(e) => {
                failed = Some(e);
                Flow::Stop
            }
        }
    })?;
    failed.map_or(Ok(found), Err)
}

/// The route `slot`/`pin` reach through the `_PRT` of `node`.
fn through_prt(ctx: &mut Context, node: &Path, slot: u8, pin: u8) -> Result<Route, Error> {
    let prt = node.child(*b"_PRT")?;
    ctx.reset();
    let pkg = match ctx.named(&prt)? {
        None => return Err(Error::NotFound(prt)),
        Some(Value::Package(table, at, scope)) => (table, at, scope),
        Some(_) => return Err(Error::NotAPackage(prt)),
    };
    let Some((link, index)) = entry(ctx.tables, pkg, slot, pin)? else {
        return Err(Error::NoEntry { slot, pin });
    };
    let irq = match &link {
        None => Irq {
            number: u32::try_from(index).map_err(|_| Error::BadGsi(index))?,
            isa: false,
            level: true,
            active_low: true,
        },
        Some(l) => link_interrupt(ctx.tables, l)?,
    };
    Ok(Route { link, irq })
}

/// The INTx route of device `slot`, pin `pin` (0-3 for INTA#-INTD#)
/// behind `bridges` (device, function of each PCI-to-PCI bridge from root
/// bus `bus` of segment 0 down; empty for a device on the root bus).
///
/// As Linux's `acpi_pci_irq_lookup`: the `_PRT` of the bridge right above
/// the device if the namespace describes that bridge (a Device with its
/// `_ADR`) with one; otherwise the pin is swizzled across the bridge
/// (PCI-to-PCI Bridge Architecture 1.2 §9.1: pin + device number mod 4, as
/// seen on the bridge's own bus) and the lookup repeats one level up, to
/// the root bridge's `_PRT`.
pub(super) fn route(
    tables: &[&[u8]],
    bus: u8,
    bridges: &[(u8, u8)],
    slot: u8,
    pin: u8,
) -> Result<Route, Error> {
    if bridges.len() > MAX_BRIDGES {
        return Err(Error::TooDeep { at: 0 });
    }
    let mut ctx = Context::new(tables)?;
    let root = root_of(&mut ctx, bus)?;
    // The ACPI node of each bridge, as far down as the namespace goes.
    let mut nodes = [None; MAX_BRIDGES];
    let mut node = Some(root);
    for (i, &(dev, func)) in bridges.iter().enumerate() {
        if let Some(n) = node {
            node = child_with_adr(tables, &n, u64::from(dev) << 16 | u64::from(func))?;
        }
        nodes[i] = node;
    }
    let (mut slot, mut pin) = (slot, pin);
    for (i, &(dev, _)) in bridges.iter().enumerate().rev() {
        if let Some(n) = nodes[i]
            && namespace::find(tables, &n.child(*b"_PRT")?)?.is_some()
        {
            return through_prt(&mut ctx, &n, slot, pin);
        }
        pin = (pin + slot % 4) % 4;
        slot = dev;
    }
    through_prt(&mut ctx, &root, slot, pin)
}
