//! The interrupt in a resource template (ACPI 6.5 §6.4): the first IRQ
//! descriptor (§6.4.2.1) or Extended Interrupt descriptor (§6.4.3.6), as
//! Linux's `acpi_pci_link_check_current` takes the first interrupt of a
//! link device's `_CRS`.

#![forbid(unsafe_code)]

use super::stream::Stream;
use super::{Error, Irq};

/// Small item names (§6.4.2): IRQ and End Tag.
const SMALL_IRQ: u8 = 0x04;
const SMALL_END: u8 = 0x0F;
/// Large item name (§6.4.3): Extended Interrupt.
const LARGE_EXTENDED_INTERRUPT: u8 = 0x09;

/// The interrupt of the Buffer literal at `s` (its 0x11 opcode): reads
/// PkgLength, BufferSize and the descriptors up to the End Tag.
pub(super) fn buffer_interrupt(s: &mut Stream) -> Result<Irq, Error> {
    let at = s.at;
    if s.byte()? != 0x11 {
        return Err(Error::NotABuffer { at });
    }
    let end = s.pkg_end()?;
    let mut body = s.split_to(end);
    let size = body.integer()?.ok_or(Error::NotABuffer { at })?;
    let size = usize::try_from(size).map_err(|_| Error::NotABuffer { at })?;
    // A BufferSize past the initializer is zero-filled (§19.6.10): no
    // descriptor lies there.
    body.end = body.end.min(body.at.saturating_add(size));
    descriptors(&mut body)
}

/// The first interrupt among the descriptors of `s`.
fn descriptors(s: &mut Stream) -> Result<Irq, Error> {
    while !s.done() {
        let at = s.at;
        let tag = s.byte()?;
        if tag & 0x80 == 0 {
            let len = usize::from(tag & 0x07);
            match (tag >> 3) & 0x0F {
                SMALL_END => break,
                SMALL_IRQ if len >= 2 => return small_irq(s, len, at),
                _ => s.skip(len)?,
            }
        } else {
            let len = s.le(2)? as usize;
            if tag & 0x7F == LARGE_EXTENDED_INTERRUPT {
                return extended_interrupt(s, len, at);
            }
            s.skip(len)?;
        }
    }
    Err(Error::NoInterrupt)
}

/// IRQ descriptor: a 16-bit mask of ISA IRQs and, if 3 bytes long, flags
/// (bit 0 edge, bit 3 active low); without flags: edge, active high.
fn small_irq(s: &mut Stream, len: usize, at: usize) -> Result<Irq, Error> {
    let mask = s.le(2)? as u16;
    let flags = if len >= 3 { s.byte()? } else { 0x01 };
    s.skip(len.saturating_sub(3))?;
    if mask == 0 {
        return Err(Error::LinkDisabled { at });
    }
    Ok(Irq {
        number: mask.trailing_zeros(),
        isa: true,
        level: flags & 0x01 == 0,
        active_low: flags & 0x08 != 0,
    })
}

/// Extended Interrupt descriptor: flags (bit 1 edge, bit 2 active low),
/// a count and 32-bit GSIs.
fn extended_interrupt(s: &mut Stream, len: usize, at: usize) -> Result<Irq, Error> {
    if len < 6 {
        return Err(Error::BadDescriptor { at });
    }
    let mut d = s.split_to(
        s.at.checked_add(len)
            .filter(|&e| e <= s.end)
            .ok_or(Error::Truncated { at })?,
    );
    let flags = d.byte()?;
    let count = d.byte()?;
    if count == 0 {
        return Err(Error::LinkDisabled { at });
    }
    Ok(Irq {
        number: d.le(4)? as u32,
        isa: false,
        level: flags & 0x02 == 0,
        active_low: flags & 0x04 != 0,
    })
}
