//! The table's layout: every field little-endian, every offset relative to
//! the start of the `.ksyms` section.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | [`MAGIC`] |
//! | 8 | 4 | version: 0 = reserved, not yet filled in; [`VERSION`] = filled in |
//! | 12 | 4 | `count`: number of records |
//! | 16 | 8 | `base`: the address every record's start is relative to |
//! | 24 | 4 | `strings_len`: bytes of names after the records |
//! | 28 | 4 | reserved, 0 |
//! | 32 | 16 x `count` | records, by ascending start: start - `base` (u32), size (u32), name offset into the strings (u32), name length (u32) |
//! | 32 + 16 x `count` | `strings_len` | names, UTF-8, demangled without the hash, not NUL-terminated, shared between records |
//!
//! The rest of the section, up to its size in the linker script, is zeros.

/// The first eight bytes of the section, written by the linker script
/// (`kernel/linker.ld`) and kept by the encoder.
pub const MAGIC: [u8; 8] = *b"KSYMTAB\0";
/// The version of a filled-in table.
pub const VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 32;
/// Bytes per record.
pub const RECORD_LEN: usize = 16;

/// Byte offsets of the header's fields.
pub(crate) mod header {
    pub(crate) const VERSION: usize = 8;
    pub(crate) const COUNT: usize = 12;
    pub(crate) const BASE: usize = 16;
    pub(crate) const STRINGS_LEN: usize = 24;
}

/// Byte offsets of a record's fields.
pub(crate) mod record {
    pub(crate) const START: usize = 0;
    pub(crate) const SIZE: usize = 4;
    pub(crate) const NAME_OFFSET: usize = 8;
    pub(crate) const NAME_LEN: usize = 12;
}
