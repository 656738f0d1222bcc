//! Kernel symbols for backtraces: the runner hands the kernel ELF itself to
//! the kernel as a PVH module (`-initrd`), and this module reads its
//! `.symtab`/`.strtab` in place, with every offset bounds-checked. No
//! allocation: usable from the panic path.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

static IMAGE: AtomicU64 = AtomicU64::new(0);
static IMAGE_LEN: AtomicU64 = AtomicU64::new(0);

/// Registers the kernel ELF image (identity mapped, reserved from the frame allocator).
pub fn init(addr: u64, len: u64) {
    IMAGE.store(addr, Ordering::Relaxed);
    IMAGE_LEN.store(len, Ordering::Relaxed);
}

fn image() -> Option<&'static [u8]> {
    let (a, l) = (
        IMAGE.load(Ordering::Relaxed),
        IMAGE_LEN.load(Ordering::Relaxed),
    );
    if a == 0 || l < 64 {
        return None;
    }
    // SAFETY: `init` registered a mapped, reserved module range that is never
    // written after boot.
    Some(unsafe { core::slice::from_raw_parts(a as *const u8, l as usize) })
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// True if a kernel ELF with a symbol table was handed over.
pub fn available() -> bool {
    tables().is_some()
}

/// (symtab offset, symtab size, strtab offset, strtab size)
fn tables() -> Option<(&'static [u8], usize, usize, usize, usize)> {
    let b = image()?;
    if b.get(0..4)? != b"\x7fELF" || *b.get(4)? != 2 {
        return None;
    }
    let shoff = u64_at(b, 0x28)? as usize;
    let shentsize = u16_at(b, 0x3A)? as usize;
    let shnum = u16_at(b, 0x3C)? as usize;
    if shentsize < 64 {
        return None;
    }
    for i in 0..shnum.min(1024) {
        let sh = shoff.checked_add(i.checked_mul(shentsize)?)?;
        if u32_at(b, sh + 4)? == 2 {
            // SHT_SYMTAB
            let off = u64_at(b, sh + 0x18)? as usize;
            let size = u64_at(b, sh + 0x20)? as usize;
            let link = u32_at(b, sh + 0x28)? as usize;
            let lsh = shoff.checked_add(link.checked_mul(shentsize)?)?;
            let soff = u64_at(b, lsh + 0x18)? as usize;
            let ssize = u64_at(b, lsh + 0x20)? as usize;
            return Some((b, off, size, soff, ssize));
        }
    }
    None
}

/// The function containing `addr`: its (mangled) name and the offset.
pub fn lookup(addr: u64) -> Option<(&'static str, u64)> {
    let (b, off, size, soff, ssize) = tables()?;
    let strtab = b.get(soff..soff.checked_add(ssize)?)?;
    let mut best: Option<(u64, u32)> = None;
    for i in 0..size / 24 {
        let e = off + i * 24;
        let info = *b.get(e + 4)?;
        if info & 0xf != 2 {
            continue; // STT_FUNC only
        }
        let value = u64_at(b, e + 8)?;
        let sz = u64_at(b, e + 16)?;
        if addr >= value
            && (addr < value.saturating_add(sz.max(1)))
            && best.is_none_or(|(v, _)| value > v)
        {
            best = Some((value, u32_at(b, e)?));
        }
    }
    let (value, name_off) = best?;
    let rest = strtab.get(name_off as usize..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some((core::str::from_utf8(&rest[..end]).ok()?, addr - value))
}

/// Address of the function named `name` (demangled path suffix match), for tests.
pub fn find(name: &str) -> Option<u64> {
    let (b, off, size, soff, ssize) = tables()?;
    let strtab = b.get(soff..soff.checked_add(ssize)?)?;
    for i in 0..size / 24 {
        let e = off + i * 24;
        let rest = strtab.get(u32_at(b, e)? as usize..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        if rest[..end] == *name.as_bytes() {
            return u64_at(b, e + 8);
        }
    }
    None
}

/// A demangled symbol name (legacy and v0 Rust mangling, through
/// `rustc-demangle`, which needs no allocation), without the hash suffix.
pub struct Demangled<'a>(pub &'a str);

impl fmt::Display for Demangled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", rustc_demangle::demangle(self.0))
    }
}
