//! The AML encoding's building blocks over a byte slice: PkgLength,
//! NameString and the integer constants (ACPI 6.5 §20.2.2-§20.2.4), each
//! read with bounds checks so that a truncated table gives an [`Error`].

#![forbid(unsafe_code)]

use super::{Error, MAX_DEPTH, Path};

/// A position in one AML stream (a table's body, after its header).
#[derive(Clone, Copy)]
pub(super) struct Stream<'a> {
    /// The whole stream: offsets in errors are into it.
    pub bytes: &'a [u8],
    /// The next byte to read.
    pub at: usize,
    /// One past the last byte this stream may read (a PkgLength's end).
    pub end: usize,
    /// Which of the tables walked `bytes` is.
    pub table: usize,
}

/// A NameString as encoded (§20.2.2): `\` (root), `^` prefixes, segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NameString {
    /// Starts with RootChar `\`.
    pub root: bool,
    /// Number of ParentPrefixChar `^`.
    pub up: u8,
    /// The name segments, `len` of them.
    pub segs: [[u8; 4]; MAX_DEPTH],
    /// Number of segments (0 for NullName).
    pub len: u8,
}

impl NameString {
    /// The segments.
    pub fn segs(&self) -> &[[u8; 4]] {
        &self.segs[..usize::from(self.len)]
    }

    /// A single segment with no prefix: the only form that searches the
    /// parent scopes (§5.3, "Namespace search rules").
    pub fn searches_up(&self) -> bool {
        !self.root && self.up == 0 && self.len == 1
    }

    /// The absolute path this name denotes in `scope` (no search).
    pub fn resolve(&self, scope: &Path) -> Result<Path, Error> {
        let mut p = if self.root { Path::ROOT } else { *scope };
        for _ in 0..self.up {
            if !p.pop() {
                return Err(Error::BadName);
            }
        }
        for s in self.segs() {
            p.push(*s)?;
        }
        Ok(p)
    }
}

/// A NameSeg's first character: `A-Z` or `_` (§20.2.2 LeadNameChar).
pub(super) fn is_lead_name_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'_'
}

/// The first byte of a NameString: a NameSeg, `\`, `^`, DualNamePrefix,
/// MultiNamePrefix (not NullName: 0x00 is ZeroOp where a TermArg is read).
pub(super) fn starts_name(b: u8) -> bool {
    is_lead_name_char(b) || matches!(b, b'\\' | b'^' | 0x2E | 0x2F)
}

impl<'a> Stream<'a> {
    /// A stream over all of `bytes`, table number `table`.
    pub fn new(bytes: &'a [u8], table: usize) -> Self {
        Self {
            bytes,
            at: 0,
            end: bytes.len(),
            table,
        }
    }

    /// Whether the stream is used up.
    pub fn done(&self) -> bool {
        self.at >= self.end
    }

    /// The next byte, not consumed.
    pub fn peek(&self) -> Result<u8, Error> {
        if self.at < self.end {
            self.bytes
                .get(self.at)
                .copied()
                .ok_or(Error::Truncated { at: self.at })
        } else {
            Err(Error::Truncated { at: self.at })
        }
    }

    /// The byte after the next one, not consumed.
    pub fn peek2(&self) -> Option<u8> {
        (self.at + 1 < self.end)
            .then(|| self.bytes.get(self.at + 1).copied())
            .flatten()
    }

    /// Reads one byte.
    pub fn byte(&mut self) -> Result<u8, Error> {
        let b = self.peek()?;
        self.at += 1;
        Ok(b)
    }

    /// Reads `n` bytes, little endian (n <= 8).
    pub fn le(&mut self, n: usize) -> Result<u64, Error> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.byte()?) << (8 * i);
        }
        Ok(v)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Error> {
        match self.at.checked_add(n) {
            Some(to) if to <= self.end => {
                self.at = to;
                Ok(())
            }
            _ => Err(Error::Truncated { at: self.at }),
        }
    }

    /// Reads a PkgLength's value (§20.2.4): a byte count from its first
    /// byte, or in a FieldList a bit count.
    pub fn pkg_length(&mut self) -> Result<usize, Error> {
        let start = self.at;
        let lead = self.byte()?;
        let follow = usize::from(lead >> 6);
        if follow == 0 {
            return Ok(usize::from(lead & 0x3F));
        }
        if lead & 0x30 != 0 {
            // Bits 5:4 of a multi-byte lead byte are reserved, zero.
            return Err(Error::BadPkgLength { at: start });
        }
        let mut len = usize::from(lead & 0x0F);
        for i in 0..follow {
            len |= usize::from(self.byte()?) << (4 + 8 * i);
        }
        Ok(len)
    }

    /// Reads a PkgLength and returns the end offset it gives, counted from
    /// the PkgLength's first byte and checked against the enclosing end.
    pub fn pkg_end(&mut self) -> Result<usize, Error> {
        let start = self.at;
        let len = self.pkg_length()?;
        match start.checked_add(len) {
            Some(end) if end <= self.end && end >= self.at => Ok(end),
            _ => Err(Error::BadPkgLength { at: start }),
        }
    }

    /// A sub-stream from here to `end`; this stream moves past it.
    pub fn split_to(&mut self, end: usize) -> Stream<'a> {
        let sub = Stream { end, ..*self };
        self.at = end;
        sub
    }

    fn seg(&mut self) -> Result<[u8; 4], Error> {
        let at = self.at;
        let mut s = [0; 4];
        for (i, c) in s.iter_mut().enumerate() {
            *c = self.byte()?;
            let ok = if i == 0 {
                is_lead_name_char(*c)
            } else {
                is_lead_name_char(*c) || c.is_ascii_digit()
            };
            if !ok {
                return Err(Error::BadNameAt { at });
            }
        }
        Ok(s)
    }

    /// Reads a NameString (§20.2.2), NullName included.
    pub fn name(&mut self) -> Result<NameString, Error> {
        let mut n = NameString {
            root: false,
            up: 0,
            segs: [[0; 4]; MAX_DEPTH],
            len: 0,
        };
        if self.peek()? == b'\\' {
            self.at += 1;
            n.root = true;
        } else {
            while self.peek()? == b'^' {
                self.at += 1;
                n.up =
                    n.up.checked_add(1)
                        .ok_or(Error::BadNameAt { at: self.at })?;
            }
        }
        let at = self.at;
        let count = match self.peek()? {
            0x00 => {
                self.at += 1;
                0
            }
            0x2E => {
                self.at += 1;
                2
            }
            0x2F => {
                self.at += 1;
                self.byte()?
            }
            _ => 1,
        };
        if usize::from(count) > MAX_DEPTH {
            return Err(Error::TooDeep { at });
        }
        for i in 0..usize::from(count) {
            n.segs[i] = self.seg()?;
        }
        n.len = count;
        Ok(n)
    }

    /// Reads a constant integer if one is next: ZeroOp, OneOp, OnesOp,
    /// BytePrefix, WordPrefix, DWordPrefix, QWordPrefix (§20.2.3).
    pub fn integer(&mut self) -> Result<Option<u64>, Error> {
        let size = match self.peek()? {
            0x00 | 0x01 => return self.byte().map(|b| Some(u64::from(b))),
            0xFF => {
                self.at += 1;
                return Ok(Some(u64::MAX));
            }
            0x0A => 1,
            0x0B => 2,
            0x0C => 4,
            0x0E => 8,
            _ => return Ok(None),
        };
        self.at += 1;
        self.le(size).map(Some)
    }

    /// Skips a String (§20.2.3: `0x0D`, ASCII characters, NUL) after its
    /// prefix byte.
    pub fn skip_string(&mut self) -> Result<(), Error> {
        while self.byte()? != 0 {}
        Ok(())
    }
}
