//! Evaluating the small subset of AML that `_PRT`, `_HID`, `_BBN` and
//! `_SEG` use in practice (ACPI 6.5 §19.6): an object's value is a
//! constant, a String, a Buffer or Package literal, or a Method of no
//! arguments whose body is `If`/`Else`, `Return` and `Store` to a Local,
//! with conditions built from `LEqual`, `LNot`, `LAnd`... over integers and
//! named integers. Anything else is [`Error::Unsupported`].
//!
//! `_PIC` (§5.8.1) is not run; evaluation proceeds as if `\_PIC(1)` (APIC
//! mode) had been called: every object `\_PIC` stores its argument into
//! (`Store (Arg0, PICM)`, `PICF = Arg0`) reads as 1. Linux calls
//! `\_PIC(1)` before it evaluates any `_PRT` (`acpi_bus_init_irq`); the
//! kernel has no interpreter to call it with, and on QEMU `_PIC` does
//! nothing else.

#![forbid(unsafe_code)]

use super::namespace::{self, Kind, MAX_EXPRESSION, Object};
use super::stream::{Stream, starts_name};
use super::{Error, Path};

/// Most nested method evaluations (a `_PRT` returning a method's result).
const MAX_CALLS: usize = 4;
/// Most statements and expressions evaluated for one value.
const MAX_STEPS: usize = 4096;
/// Most objects `_PIC` is seen storing its argument into.
const MAX_PIC: usize = 4;
/// Most nested expressions and `If` blocks, so that recursion stays
/// within the boot stack `usb::init` runs on whatever the table holds (a
/// debug build takes under 128 KiB at this depth; `_PRT` as firmware
/// writes it needs 3-5 levels).
const MAX_NESTING: usize = 10;

/// An AML value, by where its bytes are.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    /// An Integer.
    Integer(u64),
    /// A String (its characters are not needed).
    String,
    /// A Package or VarPackage literal: table, the opcode's offset, and the
    /// scope its names are resolved in.
    Package(usize, usize, Path),
    /// A Buffer literal (read where needed by [`super::resource`]).
    Buffer,
    /// A Device (a name that denotes one).
    Device,
}

/// What evaluation needs besides the tables.
pub(super) struct Context<'t, 'a> {
    /// The tables, DSDT first.
    pub tables: &'t [&'a [u8]],
    /// The objects `\_PIC` stores its argument into.
    pic: [Option<Path>; MAX_PIC],
    /// Evaluation steps left.
    steps: usize,
    /// Expressions and blocks being evaluated, one inside the other.
    nesting: usize,
}

impl<'t, 'a> Context<'t, 'a> {
    /// A context over `tables`, with `\_PIC`'s targets found.
    pub fn new(tables: &'t [&'a [u8]]) -> Result<Self, Error> {
        let mut c = Self {
            tables,
            pic: [None; MAX_PIC],
            steps: MAX_STEPS,
            nesting: 0,
        };
        let pic = Path::ROOT.child(*b"_PIC")?;
        if let Some(o) = namespace::find(tables, &pic)? {
            c.find_pic_targets(&o)?;
        }
        Ok(c)
    }

    /// Records each `Store (Arg0, Name)` among `_PIC`'s top-level
    /// statements. Other statements are stepped over (`If` blocks, Noop,
    /// expressions); at one the scan cannot step over (a method call with
    /// arguments) it stops, keeping what it found.
    fn find_pic_targets(&mut self, pic: &Object) -> Result<(), Error> {
        let mut s = pic.stream(self.tables);
        let mut n = 0;
        while !s.done() && n < MAX_PIC {
            let op = s.byte()?;
            if op == 0x70 && s.peek()? == 0x68 && s.peek2().is_some_and(starts_name) {
                s.at += 1;
                let name = s.name()?;
                if let Some(o) = namespace::search(self.tables, &pic.path, &name)? {
                    self.pic[n] = Some(o.path);
                    n += 1;
                }
                continue;
            }
            let stepped = match op {
                0xA0..=0xA2 => s.pkg_end().map(|end| s.at = end),
                0xA3 => Ok(()),
                _ => {
                    s.at -= 1;
                    super::skip::term(&mut s, MAX_EXPRESSION)
                }
            };
            if stepped.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Fresh step budget for the next value.
    pub fn reset(&mut self) {
        self.steps = MAX_STEPS;
        self.nesting = 0;
    }

    /// Runs `f` one nesting level deeper: [`Error::TooDeep`] past
    /// [`MAX_NESTING`].
    fn nested<T>(
        &mut self,
        at: usize,
        f: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.nesting >= MAX_NESTING {
            return Err(Error::TooDeep { at });
        }
        self.nesting += 1;
        let r = f(self);
        self.nesting -= 1;
        r
    }

    fn step(&mut self, at: usize) -> Result<(), Error> {
        self.steps = self
            .steps
            .checked_sub(1)
            .ok_or(Error::TooManySteps { at })?;
        Ok(())
    }

    /// The value of object `o`: a Name's value, or a Method's result.
    pub fn object(&mut self, o: &Object, calls: usize) -> Result<Value, Error> {
        let mut s = o.stream(self.tables);
        match o.kind {
            Kind::Name => self.term(&mut s, &o.path.parent(), &mut [None; 8], calls),
            Kind::Method { args: 0 } if calls > 0 => self.method(&mut s, &o.path, calls - 1),
            Kind::Method { args: 0 } => Err(Error::TooDeep { at: o.at }),
            Kind::Method { .. } => Err(Error::Unsupported { at: o.at, op: 0x14 }),
            Kind::Device => Ok(Value::Device),
            Kind::Field => Err(Error::Field(o.path)),
        }
    }

    /// The value of the object at `path`, `None` if there is none.
    pub fn named(&mut self, path: &Path) -> Result<Option<Value>, Error> {
        match namespace::find(self.tables, path)? {
            Some(o) => self.object(&o, MAX_CALLS).map(Some),
            None => Ok(None),
        }
    }

    /// Runs a method body: `If`/`Else`, `Return`, `Store` to a Local, Noop.
    fn method(&mut self, s: &mut Stream, scope: &Path, calls: usize) -> Result<Value, Error> {
        let mut locals = [None; 8];
        match self.statements(s, scope, &mut locals, calls)? {
            Some(v) => Ok(v),
            None => Err(Error::NoReturn { at: s.at }),
        }
    }

    fn statements(
        &mut self,
        s: &mut Stream,
        scope: &Path,
        locals: &mut [Option<Value>; 8],
        calls: usize,
    ) -> Result<Option<Value>, Error> {
        while !s.done() {
            let at = s.at;
            self.step(at)?;
            match s.byte()? {
                // If: PkgLength Predicate TermList [Else: PkgLength TermList].
                0xA0 => {
                    let end = s.pkg_end()?;
                    let mut body = s.split_to(end);
                    let taken = self.integer(&mut body, scope, locals, calls)? != 0;
                    let mut other = None;
                    if !s.done() && s.peek()? == 0xA1 {
                        s.at += 1;
                        let end = s.pkg_end()?;
                        other = Some(s.split_to(end));
                    }
                    let branch = if taken { Some(body) } else { other };
                    if let Some(mut b) = branch
                        && let Some(v) =
                            self.nested(at, |c| c.statements(&mut b, scope, locals, calls))?
                    {
                        return Ok(Some(v));
                    }
                }
                // Return: ArgObject.
                0xA4 => return self.term(s, scope, locals, calls).map(Some),
                // Store: TermArg SuperName, to a Local only.
                0x70 => {
                    let v = self.term(s, scope, locals, calls)?;
                    match s.byte()? {
                        l @ 0x60..=0x67 => locals[usize::from(l - 0x60)] = Some(v),
                        _ => return Err(Error::Unsupported { at, op: 0x70 }),
                    }
                }
                0xA3 => {}
                op => {
                    return Err(Error::Unsupported {
                        at,
                        op: u16::from(op),
                    });
                }
            }
        }
        Ok(None)
    }

    /// Evaluates a TermArg that must give an Integer.
    fn integer(
        &mut self,
        s: &mut Stream,
        scope: &Path,
        locals: &mut [Option<Value>; 8],
        calls: usize,
    ) -> Result<u64, Error> {
        let at = s.at;
        match self.term(s, scope, locals, calls)? {
            Value::Integer(v) => Ok(v),
            _ => Err(Error::NotAnInteger { at }),
        }
    }

    /// Evaluates one TermArg.
    pub fn term(
        &mut self,
        s: &mut Stream,
        scope: &Path,
        locals: &mut [Option<Value>; 8],
        calls: usize,
    ) -> Result<Value, Error> {
        let at = s.at;
        if self.nesting >= MAX_NESTING {
            return Err(Error::TooDeep { at });
        }
        self.nesting += 1;
        let r = self.term_here(s, scope, locals, calls);
        self.nesting -= 1;
        r
    }

    /// [`Context::term`] at the current nesting level.
    fn term_here(
        &mut self,
        s: &mut Stream,
        scope: &Path,
        locals: &mut [Option<Value>; 8],
        calls: usize,
    ) -> Result<Value, Error> {
        let at = s.at;
        self.step(at)?;
        if let Some(v) = s.integer()? {
            return Ok(Value::Integer(v));
        }
        let op = s.peek()?;
        if starts_name(op) {
            let name = s.name()?;
            return self.name(&name, scope, at, calls);
        }
        s.at += 1;
        let table = s.table;
        let bool_value = |b: bool| Ok(Value::Integer(if b { u64::MAX } else { 0 }));
        match op {
            0x0D => s.skip_string().map(|()| Value::String),
            0x11 => {
                s.at = s.pkg_end()?;
                Ok(Value::Buffer)
            }
            0x12 | 0x13 => {
                s.at = s.pkg_end()?;
                Ok(Value::Package(table, at, *scope))
            }
            0x60..=0x67 => locals[usize::from(op - 0x60)].ok_or(Error::Uninitialized { at }),
            // LNot, possibly the first byte of LNotEqual/LLessEqual/
            // LGreaterEqual (LNot LEqual/LGreater/LLess).
            0x92 => bool_value(self.integer(s, scope, locals, calls)? == 0),
            0x90 | 0x91 | 0x93..=0x95 => {
                let a = self.integer(s, scope, locals, calls)?;
                let b = self.integer(s, scope, locals, calls)?;
                bool_value(match op {
                    0x90 => a != 0 && b != 0,
                    0x91 => a != 0 || b != 0,
                    0x93 => a == b,
                    0x94 => a > b,
                    _ => a < b,
                })
            }
            _ => Err(Error::Unsupported {
                at,
                op: u16::from(op),
            }),
        }
    }

    /// The value of a name used as a TermArg: `\_PIC`'s targets read 1,
    /// other names are looked up (§5.3) and evaluated.
    fn name(
        &mut self,
        name: &super::stream::NameString,
        scope: &Path,
        at: usize,
        calls: usize,
    ) -> Result<Value, Error> {
        let Some(o) = namespace::search(self.tables, scope, name)? else {
            return Err(Error::NotFound(name.resolve(scope)?));
        };
        if self.pic.contains(&Some(o.path)) {
            return Ok(Value::Integer(1));
        }
        match o.kind {
            Kind::Device => Ok(Value::Device),
            _ if calls == 0 => Err(Error::TooDeep { at }),
            _ => self.object(&o, calls - 1),
        }
    }
}
