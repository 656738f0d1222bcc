//! The build side: read the linked kernel ELF's function symbols and fill
//! in its reserved `.ksyms` section (ELF-64 little-endian only, System V
//! gABI "Sections" and "Symbol Table").

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::encode::{EncodeError, Symbol, encode};
use crate::format::MAGIC;

/// The section the linker script reserves for the table.
pub const SECTION: &str = ".ksyms";

/// `SHT_SYMTAB`.
const SHT_SYMTAB: u32 = 2;
/// `STT_FUNC`.
const STT_FUNC: u8 = 2;
/// Bytes per `Elf64_Sym`.
const SYM_LEN: usize = 24;

/// Why the table could not be embedded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbedError {
    /// Not an ELF-64 little-endian file, or a header points outside it.
    Malformed(String),
    /// No `.ksyms` section (the linker script does not reserve it).
    NoSection,
    /// The section does not start with [`MAGIC`].
    NoMagic,
    /// The symbols could not be encoded.
    Encode(EncodeError),
    /// The table is larger than the section.
    TooLarge {
        /// Bytes the table needs.
        needed: usize,
        /// Bytes the section has.
        capacity: usize,
    },
}

impl core::fmt::Display for EmbedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "not a usable ELF-64 file: {why}"),
            Self::NoSection => write!(f, "the kernel ELF has no {SECTION} section"),
            Self::NoMagic => write!(f, "the {SECTION} section does not start with the magic"),
            Self::Encode(e) => write!(f, "encoding the symbols: {e}"),
            Self::TooLarge { needed, capacity } => write!(
                f,
                "the symbol table needs {needed} bytes but {SECTION} has {capacity}: \
                 raise KSYMS_SIZE in kernel/linker.ld"
            ),
        }
    }
}

impl std::error::Error for EmbedError {}

fn malformed(why: &str) -> EmbedError {
    EmbedError::Malformed(why.to_string())
}

fn bytes_at(b: &[u8], offset: u64, len: u64) -> Result<&[u8], EmbedError> {
    let start = usize::try_from(offset).map_err(|_| malformed("offset"))?;
    let len = usize::try_from(len).map_err(|_| malformed("length"))?;
    start
        .checked_add(len)
        .and_then(|end| b.get(start..end))
        .ok_or_else(|| malformed(&format!("{len} bytes at {start:#x} lie outside the file")))
}

fn u16_at(b: &[u8], offset: u64) -> Result<u16, EmbedError> {
    Ok(u16::from_le_bytes(
        bytes_at(b, offset, 2)?.try_into().expect("2 bytes"),
    ))
}
fn u32_at(b: &[u8], offset: u64) -> Result<u32, EmbedError> {
    Ok(u32::from_le_bytes(
        bytes_at(b, offset, 4)?.try_into().expect("4 bytes"),
    ))
}
fn u64_at(b: &[u8], offset: u64) -> Result<u64, EmbedError> {
    Ok(u64::from_le_bytes(
        bytes_at(b, offset, 8)?.try_into().expect("8 bytes"),
    ))
}

/// One section header's fields that matter here.
#[derive(Clone, Copy, Debug)]
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

fn sections(elf: &[u8]) -> Result<Vec<Section>, EmbedError> {
    if elf.get(..4) != Some(b"\x7fELF".as_slice())
        || elf.get(4) != Some(&2)
        || elf.get(5) != Some(&1)
    {
        return Err(malformed("no ELF-64 little-endian header"));
    }
    let shoff = u64_at(elf, 0x28)?;
    let shentsize = u64::from(u16_at(elf, 0x3a)?);
    let shnum = u64::from(u16_at(elf, 0x3c)?);
    if shentsize < 0x40 {
        return Err(malformed("section headers shorter than Elf64_Shdr"));
    }
    (0..shnum)
        .map(|i| {
            let h = shoff + i * shentsize;
            Ok(Section {
                name: u32_at(elf, h)?,
                kind: u32_at(elf, h + 4)?,
                offset: u64_at(elf, h + 0x18)?,
                size: u64_at(elf, h + 0x20)?,
                link: u32_at(elf, h + 0x28)?,
            })
        })
        .collect()
}

fn c_string(table: &[u8], offset: u32) -> Result<&str, EmbedError> {
    let rest = table
        .get(offset as usize..)
        .ok_or_else(|| malformed("name outside its string table"))?;
    let end = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| malformed("unterminated name"))?;
    core::str::from_utf8(&rest[..end]).map_err(|_| malformed("name not UTF-8"))
}

/// The file offset and size of the section named `name`, if any.
fn find_section(elf: &[u8], name: &str) -> Result<Option<(u64, u64)>, EmbedError> {
    let all = sections(elf)?;
    let shstrndx = usize::from(u16_at(elf, 0x3e)?);
    let names = all
        .get(shstrndx)
        .ok_or_else(|| malformed("no section name table"))?;
    let names = bytes_at(elf, names.offset, names.size)?;
    for s in &all {
        if c_string(names, s.name)? == name {
            return Ok(Some((s.offset, s.size)));
        }
    }
    Ok(None)
}

/// Every defined function symbol with a size in `.symtab`, named as the
/// kernel prints it (Rust names demangled, without the hash).
pub fn functions(elf: &[u8]) -> Result<Vec<Symbol>, EmbedError> {
    let all = sections(elf)?;
    let Some(symtab) = all.iter().find(|s| s.kind == SHT_SYMTAB) else {
        return Ok(Vec::new());
    };
    let strtab = all
        .get(symtab.link as usize)
        .ok_or_else(|| malformed("symbol table without a string table"))?;
    let strtab = bytes_at(elf, strtab.offset, strtab.size)?;
    let syms = bytes_at(elf, symtab.offset, symtab.size)?;
    let mut out = Vec::new();
    for sym in syms.chunks_exact(SYM_LEN) {
        let info = sym[4];
        let shndx = u16_at(sym, 6)?;
        let value = u64_at(sym, 8)?;
        let size = u64_at(sym, 16)?;
        if info & 0xf != STT_FUNC || shndx == 0 || size == 0 {
            continue;
        }
        let name = c_string(strtab, u32_at(sym, 0)?)?;
        out.push(Symbol {
            start: value,
            size,
            name: format!("{:#}", rustc_demangle::demangle(name)),
        });
    }
    Ok(out)
}

/// What [`embed`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// File offset of the section (the only bytes [`embed`] writes).
    pub offset: usize,
    /// Functions in the table.
    pub symbols: usize,
    /// Bytes of the section the table uses.
    pub used: usize,
    /// Bytes of the section.
    pub capacity: usize,
}

/// Fills `elf`'s `.ksyms` section with the table of its own functions, in
/// place: only the section's bytes change; the file's length and every
/// address stay as they are. Running it
/// again on its own output changes nothing.
pub fn embed(elf: &mut [u8]) -> Result<Embedded, EmbedError> {
    let (offset, size) = find_section(elf, SECTION)?.ok_or(EmbedError::NoSection)?;
    if bytes_at(elf, offset, size)?.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err(EmbedError::NoMagic);
    }
    let symbols = functions(elf)?;
    let table = encode(&symbols).map_err(EmbedError::Encode)?;
    let (offset, capacity) = (offset as usize, size as usize);
    if table.len() > capacity {
        return Err(EmbedError::TooLarge {
            needed: table.len(),
            capacity,
        });
    }
    let section = &mut elf[offset..offset + capacity];
    section[..table.len()].copy_from_slice(&table);
    section[table.len()..].fill(0);
    Ok(Embedded {
        offset,
        symbols: crate::Table::parse(&table).map_or(0, |t| t.len()),
        used: table.len(),
        capacity,
    })
}
