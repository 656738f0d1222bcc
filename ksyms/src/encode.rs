//! Building a table (host side, for `build.rs`).

use std::collections::HashMap;
use std::string::String;
use std::vec::Vec;

use crate::format::{HEADER_LEN, MAGIC, RECORD_LEN, VERSION, header, record};

/// One function: where it starts, how long it is, what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Start address.
    pub start: u64,
    /// Size in bytes (records of size 0 are dropped: they contain no address).
    pub size: u64,
    /// Name as it is to be printed.
    pub name: String,
}

/// Why symbols cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The functions span more than 4 GiB (starts are u32 offsets from the lowest).
    SpanTooLarge,
    /// A function larger than 4 GiB.
    SizeTooLarge(String),
    /// The names take more than 4 GiB.
    StringsTooLarge,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SpanTooLarge => write!(f, "the functions span more than 4 GiB"),
            Self::SizeTooLarge(name) => write!(f, "function {name} is larger than 4 GiB"),
            Self::StringsTooLarge => write!(f, "the names take more than 4 GiB"),
        }
    }
}

impl std::error::Error for EncodeError {}

fn put(out: &mut [u8], offset: usize, value: u32) {
    out[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

/// Encodes `symbols` (any order) into a table of [`crate::format`]'s
/// layout, exactly as long as it needs to be. Symbols of size 0 are
/// dropped; of several starting at one address the largest is kept; names
/// are stored once.
pub fn encode(symbols: &[Symbol]) -> Result<Vec<u8>, EncodeError> {
    let mut sorted: Vec<&Symbol> = symbols.iter().filter(|s| s.size > 0).collect();
    sorted.sort_by(|a, b| {
        (a.start, core::cmp::Reverse(a.size), &a.name).cmp(&(
            b.start,
            core::cmp::Reverse(b.size),
            &b.name,
        ))
    });
    sorted.dedup_by_key(|s| s.start);
    let base = sorted.first().map_or(0, |s| s.start);
    let mut strings: Vec<u8> = Vec::new();
    let mut offsets: HashMap<&str, u32> = HashMap::new();
    let mut out = std::vec![0u8; HEADER_LEN + sorted.len() * RECORD_LEN];
    for (i, s) in sorted.iter().enumerate() {
        let start = u32::try_from(s.start - base).map_err(|_| EncodeError::SpanTooLarge)?;
        let size = u32::try_from(s.size).map_err(|_| EncodeError::SizeTooLarge(s.name.clone()))?;
        let name_len = u32::try_from(s.name.len()).map_err(|_| EncodeError::StringsTooLarge)?;
        let name_offset = match offsets.get(s.name.as_str()) {
            Some(&o) => o,
            None => {
                let o = u32::try_from(strings.len()).map_err(|_| EncodeError::StringsTooLarge)?;
                strings.extend_from_slice(s.name.as_bytes());
                offsets.insert(&s.name, o);
                o
            }
        };
        let r = HEADER_LEN + i * RECORD_LEN;
        for (field, value) in [
            (record::START, start),
            (record::SIZE, size),
            (record::NAME_OFFSET, name_offset),
            (record::NAME_LEN, name_len),
        ] {
            put(&mut out, r + field, value);
        }
    }
    let count = u32::try_from(sorted.len()).map_err(|_| EncodeError::SpanTooLarge)?;
    let strings_len = u32::try_from(strings.len()).map_err(|_| EncodeError::StringsTooLarge)?;
    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    put(&mut out, header::VERSION, VERSION);
    put(&mut out, header::COUNT, count);
    out[header::BASE..header::BASE + 8].copy_from_slice(&base.to_le_bytes());
    put(&mut out, header::STRINGS_LEN, strings_len);
    out.extend_from_slice(&strings);
    Ok(out)
}
