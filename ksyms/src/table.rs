//! Reading a table in place: no allocation, no lock, every offset checked.

use crate::format::{HEADER_LEN, MAGIC, RECORD_LEN, VERSION, header, record};

/// Why a byte range is not a symbol table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the header.
    Truncated,
    /// The first eight bytes are not [`MAGIC`].
    BadMagic,
    /// Version 0: the section was reserved but the build did not fill it in
    /// (a kernel linked without the workspace's `build.rs`).
    Empty,
    /// A version this decoder does not know.
    UnknownVersion(u32),
    /// The records and names do not fit in the section.
    OutOfBounds,
}

/// A parsed symbol table borrowing the section's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    records: &'a [u8],
    strings: &'a [u8],
    base: u64,
}

fn u32_at(b: &[u8], offset: usize) -> Option<u32> {
    let bytes = b.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(b: &[u8], offset: usize) -> Option<u64> {
    let bytes = b.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

impl<'a> Table<'a> {
    /// Checks the header and that the records and names lie inside `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let head = bytes.get(..HEADER_LEN).ok_or(ParseError::Truncated)?;
        if head[..MAGIC.len()] != MAGIC {
            return Err(ParseError::BadMagic);
        }
        let field = |o| u32_at(head, o).ok_or(ParseError::Truncated);
        match field(header::VERSION)? {
            0 => return Err(ParseError::Empty),
            VERSION => {}
            v => return Err(ParseError::UnknownVersion(v)),
        }
        let count = field(header::COUNT)? as usize;
        let strings_len = field(header::STRINGS_LEN)? as usize;
        let base = u64_at(head, header::BASE).ok_or(ParseError::Truncated)?;
        let records_end = count
            .checked_mul(RECORD_LEN)
            .and_then(|r| r.checked_add(HEADER_LEN))
            .ok_or(ParseError::OutOfBounds)?;
        let strings_end = records_end
            .checked_add(strings_len)
            .ok_or(ParseError::OutOfBounds)?;
        Ok(Self {
            records: bytes
                .get(HEADER_LEN..records_end)
                .ok_or(ParseError::OutOfBounds)?,
            strings: bytes
                .get(records_end..strings_end)
                .ok_or(ParseError::OutOfBounds)?,
            base,
        })
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.records.len() / RECORD_LEN
    }

    /// True if the table holds no symbols.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn field(&self, index: usize, field: usize) -> Option<u32> {
        u32_at(
            self.records,
            index.checked_mul(RECORD_LEN)?.checked_add(field)?,
        )
    }

    fn start(&self, index: usize) -> Option<u64> {
        self.base
            .checked_add(self.field(index, record::START)?.into())
    }

    /// Symbol `index`: its start address, size and name; `None` if out of
    /// range or if its name lies outside the strings or is not UTF-8.
    pub fn get(&self, index: usize) -> Option<(u64, u64, &'a str)> {
        let start = self.start(index)?;
        let size = self.field(index, record::SIZE)?;
        let name_offset = self.field(index, record::NAME_OFFSET)? as usize;
        let name_len = self.field(index, record::NAME_LEN)? as usize;
        let name = self
            .strings
            .get(name_offset..name_offset.checked_add(name_len)?)?;
        Some((start, size.into(), core::str::from_utf8(name).ok()?))
    }

    /// The function containing `addr`: its name and `addr`'s offset into
    /// it. Binary search by start address; a table that is not sorted gives
    /// wrong names or none, never a fault.
    pub fn lookup(&self, addr: u64) -> Option<(&'a str, u64)> {
        // The first record starting after `addr`.
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.start(mid)? <= addr {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let (start, size, name) = self.get(low.checked_sub(1)?)?;
        let offset = addr.checked_sub(start)?;
        (offset < size).then_some((name, offset))
    }
}
