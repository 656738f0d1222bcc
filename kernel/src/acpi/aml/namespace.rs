//! The namespace as the tables declare it, found by walking their object
//! lists (ACPI 6.5 §20.2.5.1-§20.2.5.2) without building it: every lookup
//! is one bounded pass over the tables' bytes, which needs no allocation
//! and is fast enough for the few lookups an INTx route takes.
//!
//! The walk descends into `Scope` and `Device` bodies and records `Name`,
//! `Method` and `Device` objects and the units of `Field`, `IndexField`
//! and `BankField`; it steps over every other named-object opcode by its
//! PkgLength or its fixed operands (OperationRegion, Mutex, CreateXField,
//! External...). Code at namespace level (`If`,
//! `While`) is not run and the objects it would create are not seen; the
//! bodies of `Processor`, `PowerResource` and `ThermalZone` are skipped.

#![forbid(unsafe_code)]

use super::skip::{self, EXT};
use super::stream::{NameString, Stream};
use super::{Error, Path};

/// Most nested Scope/Device bodies followed (real tables nest under 10;
/// each level is a few KiB of stack in a debug build).
const MAX_NESTING: usize = 16;
/// Most nested expressions in an operand stepped over (real ones: 1-3).
pub(super) const MAX_EXPRESSION: usize = 16;

/// What a named object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `Device` (§19.6.31): its body is the object list.
    Device,
    /// `Name` (§19.6.90): `at..end` is the DataRefObject.
    Name,
    /// `Method` (§19.6.85) taking `args` arguments: `at..end` is the body.
    Method { args: u8 },
    /// A field unit of `Field`, `IndexField` or `BankField` (§19.6.48):
    /// hardware or memory that is not read here.
    Field,
}

/// A named object and where its bytes are.
#[derive(Clone, Copy, Debug)]
pub(super) struct Object {
    /// Its absolute path.
    pub path: Path,
    /// What it is.
    pub kind: Kind,
    /// Index of the table in the slice walked.
    pub table: usize,
    /// Start of its value or body.
    pub at: usize,
    /// One past its last byte.
    pub end: usize,
}

impl Object {
    /// A stream over its value or body.
    pub fn stream<'a>(&self, tables: &[&'a [u8]]) -> Stream<'a> {
        let mut s = Stream::new(tables[self.table], self.table);
        s.at = self.at;
        s.end = self.end;
        s
    }
}

/// Whether the walk goes on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Stop,
}

/// Calls `visit` on every Device, Name and Method of every table, in
/// table order, until it returns [`Flow::Stop`].
pub(super) fn walk(tables: &[&[u8]], visit: &mut dyn FnMut(&Object) -> Flow) -> Result<(), Error> {
    for (table, bytes) in tables.iter().enumerate() {
        let mut s = Stream::new(bytes, table);
        if objects(&mut s, &Path::ROOT, MAX_NESTING, table, visit)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// The object at `path`, if the tables declare it.
pub(super) fn find(tables: &[&[u8]], path: &Path) -> Result<Option<Object>, Error> {
    let mut found = None;
    walk(tables, &mut |o| {
        if o.path == *path {
            found = Some(*o);
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    Ok(found)
}

/// The object `name` denotes in `scope`: a single unprefixed NameSeg is
/// looked for in `scope`, then in each parent up to the root (§5.3,
/// "Namespace search rules"); any other name is taken as written.
pub(super) fn search(
    tables: &[&[u8]],
    scope: &Path,
    name: &NameString,
) -> Result<Option<Object>, Error> {
    let mut p = name.resolve(scope)?;
    if !name.searches_up() {
        return find(tables, &p);
    }
    let seg = name.segs()[0];
    let mut at = *scope;
    loop {
        if let Some(o) = find(tables, &p)? {
            return Ok(Some(o));
        }
        if !at.pop() {
            return Ok(None);
        }
        p = at;
        p.push(seg)?;
    }
}

/// Walks an object list (TermList at namespace level) up to `s.end`.
fn objects(
    s: &mut Stream,
    scope: &Path,
    nesting: usize,
    table: usize,
    visit: &mut dyn FnMut(&Object) -> Flow,
) -> Result<Flow, Error> {
    if nesting == 0 {
        return Err(Error::TooDeep { at: s.at });
    }
    while !s.done() {
        let at = s.at;
        let op = s.byte()?;
        let flow = match op {
            // Scope: PkgLength NameString TermList.
            0x10 => {
                let end = s.pkg_end()?;
                let mut body = s.split_to(end);
                let path = body.name()?.resolve(scope)?;
                objects(&mut body, &path, nesting - 1, table, visit)?
            }
            // Name: NameString DataRefObject.
            0x08 => {
                let path = s.name()?.resolve(scope)?;
                let value = s.at;
                skip::data_object(s, MAX_EXPRESSION)?;
                visit(&Object {
                    path,
                    kind: Kind::Name,
                    table,
                    at: value,
                    end: s.at,
                })
            }
            // Method: PkgLength NameString MethodFlags TermList.
            0x14 => {
                let end = s.pkg_end()?;
                let mut body = s.split_to(end);
                let path = body.name()?.resolve(scope)?;
                let flags = body.byte()?;
                visit(&Object {
                    path,
                    kind: Kind::Method { args: flags & 7 },
                    table,
                    at: body.at,
                    end,
                })
            }
            EXT => ext_object(s, scope, nesting, table, visit)?,
            _ => {
                other_object(s, at, op)?;
                Flow::Continue
            }
        };
        if flow == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// The one-byte opcodes stepped over at namespace level.
fn other_object(s: &mut Stream, at: usize, op: u8) -> Result<(), Error> {
    match op {
        // Alias: NameString NameString.
        0x06 => {
            s.name()?;
            s.name().map(drop)
        }
        // External: NameString ObjectType ArgumentCount.
        0x15 => {
            s.name()?;
            s.skip(2)
        }
        // If, Else, While: not run at load time here.
        0xA0..=0xA2 => {
            s.at = s.pkg_end()?;
            Ok(())
        }
        // Noop.
        0xA3 => Ok(()),
        // CreateDWordField, CreateWordField, CreateByteField,
        // CreateBitField, CreateQWordField: SourceBuff Index NameString.
        0x8A..=0x8D | 0x8F => {
            skip::term(s, MAX_EXPRESSION)?;
            skip::term(s, MAX_EXPRESSION)?;
            s.name().map(drop)
        }
        _ => Err(Error::UnknownOpcode {
            at,
            op: u16::from(op),
        }),
    }
}

/// The extended (`0x5B`-prefixed) opcodes at namespace level.
fn ext_object(
    s: &mut Stream,
    scope: &Path,
    nesting: usize,
    table: usize,
    visit: &mut dyn FnMut(&Object) -> Flow,
) -> Result<Flow, Error> {
    let at = s.at - 1;
    let op = s.byte()?;
    match op {
        // Device: PkgLength NameString TermList.
        0x82 => {
            let end = s.pkg_end()?;
            let mut body = s.split_to(end);
            let path = body.name()?.resolve(scope)?;
            let device = Object {
                path,
                kind: Kind::Device,
                table,
                at: body.at,
                end,
            };
            if visit(&device) == Flow::Stop {
                return Ok(Flow::Stop);
            }
            return objects(&mut body, &path, nesting - 1, table, visit);
        }
        // Field, IndexField, BankField: their units are named objects.
        0x81 | 0x86 | 0x87 => return field_units(s, scope, op, table, visit),
        // Processor, PowerResource, ThermalZone: PkgLength-delimited.
        0x83..=0x85 => s.at = s.pkg_end()?,
        // OperationRegion: NameString RegionSpace Offset Length.
        0x80 => {
            s.name()?;
            s.skip(1)?;
            skip::term(s, MAX_EXPRESSION)?;
            skip::term(s, MAX_EXPRESSION)?;
        }
        // Mutex: NameString SyncFlags.
        0x01 => {
            s.name()?;
            s.skip(1)?;
        }
        // Event: NameString.
        0x02 => drop(s.name()?),
        // CreateField: SourceBuff BitIndex NumBits NameString.
        0x13 => {
            for _ in 0..3 {
                skip::term(s, MAX_EXPRESSION)?;
            }
            s.name()?;
        }
        // DataRegion: NameString Signature OemId OemTableId.
        0x88 => {
            s.name()?;
            for _ in 0..3 {
                skip::term(s, MAX_EXPRESSION)?;
            }
        }
        _ => {
            return Err(Error::UnknownOpcode {
                at,
                op: u16::from(EXT) << 8 | u16::from(op),
            });
        }
    }
    Ok(Flow::Continue)
}

/// The units of a Field (PkgLength NameString FieldFlags FieldList),
/// IndexField (PkgLength NameString NameString FieldFlags FieldList) or
/// BankField (PkgLength NameString NameString BankValue FieldFlags
/// FieldList), §20.2.5.2: each NamedField (NameSeg, bit length) is an
/// object of the current scope.
fn field_units(
    s: &mut Stream,
    scope: &Path,
    op: u8,
    table: usize,
    visit: &mut dyn FnMut(&Object) -> Flow,
) -> Result<Flow, Error> {
    let end = s.pkg_end()?;
    let mut body = s.split_to(end);
    body.name()?;
    if op != 0x81 {
        body.name()?;
    }
    if op == 0x87 {
        skip::term(&mut body, MAX_EXPRESSION)?;
    }
    body.skip(1)?;
    while !body.done() {
        let at = body.at;
        match body.peek()? {
            // ReservedField: 0x00 PkgLength.
            0x00 => {
                body.at += 1;
                body.pkg_length()?;
            }
            // AccessField: 0x01 AccessType AccessAttrib.
            0x01 => body.skip(3)?,
            // ExtendedAccessField: 0x03 AccessType Attrib AccessLength.
            0x03 => body.skip(4)?,
            // ConnectField: 0x02 (NameString | BufferData).
            0x02 => {
                body.at += 1;
                skip::term(&mut body, MAX_EXPRESSION)?;
            }
            c if super::stream::is_lead_name_char(c) => {
                let seg = body.name()?;
                if seg.len != 1 || seg.root || seg.up != 0 {
                    return Err(Error::BadNameAt { at });
                }
                body.pkg_length()?;
                let unit = Object {
                    path: seg.resolve(scope)?,
                    kind: Kind::Field,
                    table,
                    at,
                    end: body.at,
                };
                if visit(&unit) == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
            other => {
                return Err(Error::UnknownOpcode {
                    at,
                    op: u16::from(other),
                });
            }
        }
    }
    Ok(Flow::Continue)
}
