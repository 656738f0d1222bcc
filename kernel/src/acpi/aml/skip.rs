//! Stepping over an AML TermArg without evaluating it (ACPI 6.5 §20.2.5),
//! so that the namespace walk can pass OperationRegion offsets, CreateField
//! indices and the like. Every opcode listed has a fixed operand shape; any
//! other gives [`Error::UnknownOpcode`] rather than a guess. A name is taken
//! as an object reference, not a method call with arguments (its argument
//! count would need the method's definition): where that matters the walk
//! reads garbage next and stops with an error, it does not loop.

#![forbid(unsafe_code)]

use super::Error;
use super::stream::{Stream, starts_name};

/// The extended opcode prefix (§20.2.5.1).
pub(super) const EXT: u8 = 0x5B;

/// What follows an opcode, in order.
#[derive(Clone, Copy)]
enum Operand {
    Term,
    Target,
    Byte,
    Word,
}

use Operand::{Byte, Target, Term, Word};

/// The operands of a one-byte expression opcode (§20.2.5.4).
fn operands(op: u8) -> Option<&'static [Operand]> {
    Some(match op {
        // Add Concat Subtract Multiply ShiftLeft ShiftRight And Nand Or Nor
        // Xor ConcatRes Mod Index: Operand Operand Target.
        0x72 | 0x73 | 0x74 | 0x77 | 0x79..=0x7F | 0x84 | 0x85 | 0x88 => &[Term, Term, Target],
        // Divide: Dividend Divisor Remainder Quotient.
        0x78 => &[Term, Term, Target, Target],
        // Not FindSetLeftBit FindSetRightBit ToBuffer ToDecimalString
        // ToHexString ToInteger: Operand Target.
        0x80..=0x82 | 0x96..=0x99 => &[Term, Target],
        // LAnd LOr LEqual LGreater LLess.
        0x90 | 0x91 | 0x93..=0x95 => &[Term, Term],
        // LNot DerefOf RefOf SizeOf ObjectType Increment Decrement.
        0x92 | 0x83 | 0x71 | 0x87 | 0x8E | 0x75 | 0x76 => &[Term],
        // Store: TermArg SuperName; CopyObject: TermArg SimpleName.
        0x70 | 0x9D => &[Term, Target],
        // ToString: TermArg LengthArg Target.
        0x9C => &[Term, Term, Target],
        // Mid: TermArg TermArg TermArg Target.
        0x9E => &[Term, Term, Term, Target],
        // Match: SearchPkg MatchOpcode Operand MatchOpcode Operand StartIndex.
        0x89 => &[Term, Byte, Term, Byte, Term, Term],
        _ => return None,
    })
}

/// The operands of an extended (`0x5B`-prefixed) expression opcode.
fn ext_operands(op: u8) -> Option<&'static [Operand]> {
    Some(match op {
        // CondRefOf: SuperName Target.
        0x12 => &[Term, Target],
        // Acquire: MutexObject Timeout (word).
        0x23 => &[Term, Word],
        // Wait: EventObject Operand.
        0x25 => &[Term, Term],
        // FromBCD ToBCD: Operand Target.
        0x28 | 0x29 => &[Term, Target],
        // Revision Debug Timer: no operands.
        0x30 | 0x31 | 0x33 => &[],
        _ => return None,
    })
}

/// Steps over one TermArg (or a SuperName) at the stream's position.
/// `depth` bounds the nesting of expressions.
pub(super) fn term(s: &mut Stream, depth: usize) -> Result<(), Error> {
    let at = s.at;
    if depth == 0 {
        return Err(Error::TooDeep { at });
    }
    if s.integer()?.is_some() {
        return Ok(());
    }
    let op = s.peek()?;
    if starts_name(op) {
        return s.name().map(drop);
    }
    s.at += 1;
    let shape = match op {
        // LocalX, ArgX.
        0x60..=0x6E => return Ok(()),
        // String.
        0x0D => return s.skip_string(),
        // Buffer, Package, VarPackage: PkgLength-delimited.
        0x11..=0x13 => {
            let end = s.pkg_end()?;
            s.at = end;
            return Ok(());
        }
        EXT => {
            let ext = s.byte()?;
            ext_operands(ext).ok_or(Error::UnknownOpcode {
                at,
                op: u16::from(EXT) << 8 | u16::from(ext),
            })?
        }
        _ => operands(op).ok_or(Error::UnknownOpcode {
            at,
            op: u16::from(op),
        })?,
    };
    for operand in shape {
        match operand {
            Term => term(s, depth - 1)?,
            Target => target(s, depth - 1)?,
            Byte => s.skip(1)?,
            Word => s.skip(2)?,
        }
    }
    Ok(())
}

/// Steps over a Target: NullName, or a SuperName (§20.2.5.4).
pub(super) fn target(s: &mut Stream, depth: usize) -> Result<(), Error> {
    if s.peek()? == 0x00 {
        s.at += 1;
        Ok(())
    } else {
        term(s, depth)
    }
}

/// Steps over a DataRefObject, the value of a `Name` (§20.2.3).
pub(super) fn data_object(s: &mut Stream, depth: usize) -> Result<(), Error> {
    term(s, depth)
}
