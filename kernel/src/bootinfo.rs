//! What the boot loader tells the kernel, from either boot protocol: the
//! memory map, the ACPI RSDP, the command line, a framebuffer. PVH (QEMU's `-kernel`, Xen `arch-x86/hvm/start_info.h`) and
//! Multiboot2 (GRUB, on BIOS and UEFI PCs; "Multiboot2 Specification
//! version 2.0", §3.6 "Boot information format").
//!
//! Parsing is pure and bounds-checked over byte slices, host-tested: a
//! malformed boot information structure gives an error or drops the tag,
//! never a fault. The kernel reads the physical memory into slices (see
//! `boot/mod.rs`).

#![forbid(unsafe_code)]

/// `eax` at entry from a Multiboot2 loader (§3.3).
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
/// `hvm_start_info.magic` (Xen public `start_info.h`).
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// Most memory map entries kept.
pub const MAX_REGIONS: usize = 64;
/// Longest command line kept (longer ones are cut at a word boundary).
pub const CMDLINE_MAX: usize = 512;

/// One memory map entry (E820 types: 1 usable, 3 ACPI reclaimable, ...;
/// Multiboot2 §3.6.8 uses the same numbers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRegion {
    /// Start address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Type.
    pub kind: u32,
}

/// A linear framebuffer with direct RGB colour (Multiboot2 §3.6.12,
/// `framebuffer_type` 1): each colour as (field position, mask size) in bits.
/// The framebuffer console's input (`fb::FramebufferInfo`).
#[doc(alias = "multiboot_tag_framebuffer")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framebuffer {
    /// Physical address.
    pub phys: u64,
    /// Bytes per row.
    pub pitch: u32,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bits per pixel.
    pub bpp: u8,
    /// Red (position, size).
    pub red: (u8, u8),
    /// Green (position, size).
    pub green: (u8, u8),
    /// Blue (position, size).
    pub blue: (u8, u8),
}

/// Which protocol booted the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// PVH (`-kernel` in QEMU).
    #[default]
    Pvh,
    /// Multiboot2 (GRUB).
    Multiboot2,
}

/// Everything the kernel takes from its boot loader.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// How it booted.
    pub protocol: Protocol,
    /// Memory map (the first [`MAX_REGIONS`] entries).
    pub regions: [MemRegion; MAX_REGIONS],
    /// Entries in `regions`.
    pub region_count: usize,
    /// Physical address of an ACPI RSDP (for Multiboot2: of the loader's
    /// copy inside the boot information), 0 if none was given.
    pub rsdp: u64,
    /// The command line.
    cmdline: CmdLine,
    /// A direct-RGB linear framebuffer, if the loader set one up.
    pub framebuffer: Option<Framebuffer>,
    /// True when the loader left the screen in EGA text mode (VGA text at
    /// 0xB8000 is visible); PVH boots are always in text mode.
    pub text_mode: bool,
    /// The boot information's own physical range, to keep it reserved while
    /// it is read (the RSDP copy lives there).
    pub info_range: (u64, u64),
    /// Tags or entries that were malformed and skipped.
    pub skipped: u32,
}

#[derive(Clone, Debug)]
struct CmdLine {
    buf: [u8; CMDLINE_MAX],
    len: usize,
}

impl Default for CmdLine {
    fn default() -> Self {
        Self {
            buf: [0; CMDLINE_MAX],
            len: 0,
        }
    }
}

impl Default for BootInfo {
    fn default() -> Self {
        Self {
            protocol: Protocol::Pvh,
            regions: [MemRegion::default(); MAX_REGIONS],
            region_count: 0,
            rsdp: 0,
            cmdline: CmdLine::default(),
            framebuffer: None,
            text_mode: false,
            info_range: (0, 0),
            skipped: 0,
        }
    }
}

impl BootInfo {
    /// The command line (empty if none, or not UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline.buf[..self.cmdline.len]).unwrap_or("")
    }

    /// Keeps `bytes` (up to a NUL) as the command line, cut at the last
    /// whole word that fits.
    pub fn set_cmdline(&mut self, bytes: &[u8]) {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let mut s = &bytes[..end];
        if s.len() > CMDLINE_MAX {
            let cut = s[..CMDLINE_MAX]
                .iter()
                .rposition(|&b| b == b' ')
                .unwrap_or(0);
            s = &s[..cut];
        }
        self.cmdline.buf[..s.len()].copy_from_slice(s);
        self.cmdline.len = s.len();
    }

    /// Adds a memory map entry (dropped past [`MAX_REGIONS`]).
    pub fn push_region(&mut self, r: MemRegion) {
        if self.region_count < MAX_REGIONS {
            self.regions[self.region_count] = r;
            self.region_count += 1;
        } else {
            self.skipped += 1;
        }
    }

    /// The memory map.
    pub fn regions(&self) -> &[MemRegion] {
        &self.regions[..self.region_count]
    }
}

/// Why a boot information structure was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// Shorter than its header, or its `total_size` runs past what was given.
    Truncated,
    /// No end tag.
    NoEndTag,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "the Multiboot2 information is truncated",
            Self::NoEndTag => "the Multiboot2 information has no end tag",
        })
    }
}

fn u8_at(b: &[u8], o: usize) -> Option<u8> {
    b.get(o).copied()
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Multiboot2 tag types the kernel reads (§3.6).
mod tag {
    pub const END: u32 = 0;
    pub const CMDLINE: u32 = 1;
    pub const MMAP: u32 = 6;
    pub const FRAMEBUFFER: u32 = 8;
    pub const ACPI_OLD: u32 = 14;
    pub const ACPI_NEW: u32 = 15;
}

/// The total size of a Multiboot2 information structure, from its first
/// eight bytes (§3.6.1), so the caller knows how much to read.
pub fn multiboot2_size(head: &[u8]) -> Option<usize> {
    let n = u32_at(head, 0)? as usize;
    (n >= 16).then_some(n)
}

/// Parses a Multiboot2 information structure `mbi`, found at physical
/// address `phys` (§3.6). Unknown tags are skipped; a malformed known tag is
/// skipped and counted in [`BootInfo::skipped`].
pub fn parse_multiboot2(mbi: &[u8], phys: u64) -> Result<BootInfo, BootInfoError> {
    let total = multiboot2_size(mbi).ok_or(BootInfoError::Truncated)?;
    let mbi = mbi.get(..total).ok_or(BootInfoError::Truncated)?;
    let mut bi = BootInfo {
        protocol: Protocol::Multiboot2,
        info_range: (phys, total as u64),
        ..BootInfo::default()
    };
    let (mut rsdp_old, mut rsdp_new) = (0, 0);
    let mut at = 8;
    loop {
        let (Some(ty), Some(size)) = (u32_at(mbi, at), u32_at(mbi, at + 4)) else {
            return Err(BootInfoError::NoEndTag);
        };
        let size = size as usize;
        if ty == tag::END {
            break;
        }
        let Some(body) = (size >= 8).then(|| mbi.get(at..at + size)).flatten() else {
            return Err(BootInfoError::NoEndTag);
        };
        let ok = match ty {
            tag::CMDLINE => {
                bi.set_cmdline(&body[8..]);
                true
            }
            tag::MMAP => memory_map(body, &mut bi),
            tag::FRAMEBUFFER => framebuffer(body, &mut bi),
            tag::ACPI_OLD if body.len() >= 8 + 20 => {
                rsdp_old = phys + at as u64 + 8;
                true
            }
            tag::ACPI_NEW if body.len() >= 8 + 36 => {
                rsdp_new = phys + at as u64 + 8;
                true
            }
            tag::ACPI_OLD | tag::ACPI_NEW => false,
            _ => true,
        };
        bi.skipped += u32::from(!ok);
        at = (at + size).next_multiple_of(8);
    }
    // The XSDT (ACPI 2.0+) when the loader gave one.
    bi.rsdp = if rsdp_new != 0 { rsdp_new } else { rsdp_old };
    Ok(bi)
}

/// Tag 6 (§3.6.8): `entry_size`, `entry_version`, then the entries.
fn memory_map(body: &[u8], bi: &mut BootInfo) -> bool {
    let Some(entry) = u32_at(body, 8).map(|e| e as usize) else {
        return false;
    };
    if entry < 24 {
        return false;
    }
    let mut o = 16;
    while o + entry <= body.len() {
        if let (Some(start), Some(len), Some(kind)) =
            (u64_at(body, o), u64_at(body, o + 8), u32_at(body, o + 16))
        {
            bi.push_region(MemRegion { start, len, kind });
        }
        o += entry;
    }
    true
}

/// Tag 8 (§3.6.12): only direct RGB (type 1) is usable as a console; EGA
/// text (type 2) means VGA text is on screen.
fn framebuffer(body: &[u8], bi: &mut BootInfo) -> bool {
    let field = |o| u8_at(body, o);
    let (Some(phys), Some(pitch), Some(width), Some(height), Some(bpp), Some(kind)) = (
        u64_at(body, 8),
        u32_at(body, 16),
        u32_at(body, 20),
        u32_at(body, 24),
        field(28),
        field(29),
    ) else {
        return false;
    };
    match kind {
        1 => {
            let (Some(rp), Some(rs), Some(gp), Some(gs), Some(bp), Some(bs)) = (
                field(32),
                field(33),
                field(34),
                field(35),
                field(36),
                field(37),
            ) else {
                return false;
            };
            bi.framebuffer = Some(Framebuffer {
                phys,
                pitch,
                width,
                height,
                bpp,
                red: (rp, rs),
                green: (gp, gs),
                blue: (bp, bs),
            });
            true
        }
        2 => {
            bi.text_mode = true;
            true
        }
        // Indexed colour: not supported as a console.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a Multiboot2 information structure from (type, body) tags.
    fn mbi(tags: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0u8; 8];
        for (ty, body) in tags {
            let size = 8 + body.len();
            v.extend_from_slice(&ty.to_le_bytes());
            v.extend_from_slice(&(size as u32).to_le_bytes());
            v.extend_from_slice(body);
            while !v.len().is_multiple_of(8) {
                v.push(0);
            }
        }
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&8u32.to_le_bytes());
        let n = v.len() as u32;
        v[..4].copy_from_slice(&n.to_le_bytes());
        v
    }

    fn mmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&24u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for &(s, l, k) in entries {
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&l.to_le_bytes());
            b.extend_from_slice(&k.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        b
    }

    fn rgb_fb() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfd00_0000u64.to_le_bytes());
        b.extend_from_slice(&4096u32.to_le_bytes());
        b.extend_from_slice(&1024u32.to_le_bytes());
        b.extend_from_slice(&768u32.to_le_bytes());
        b.extend_from_slice(&[32, 1, 0, 0, 16, 8, 8, 8, 0, 8]);
        b
    }

    #[test]
    fn reads_the_tags_grub_gives() {
        let mut rsdp2 = b"RSD PTR ".to_vec();
        rsdp2.resize(36, 0);
        let v = mbi(&[
            (tag::CMDLINE, b"trigger=plain quiet\0".to_vec()),
            (
                tag::MMAP,
                mmap(&[
                    (0, 0x9f000, 1),
                    (0x100000, 0x7ee0000, 1),
                    (0xfffc0000, 0x40000, 2),
                ]),
            ),
            (tag::FRAMEBUFFER, rgb_fb()),
            (tag::ACPI_OLD, vec![0; 20]),
            (tag::ACPI_NEW, rsdp2),
            (99, vec![1, 2, 3]),
        ]);
        let bi = parse_multiboot2(&v, 0x10000).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot2);
        assert_eq!(bi.cmdline(), "trigger=plain quiet");
        assert_eq!(bi.regions().len(), 3);
        assert_eq!(
            bi.regions()[1],
            MemRegion {
                start: 0x100000,
                len: 0x7ee0000,
                kind: 1
            }
        );
        let fb = bi.framebuffer.unwrap();
        assert_eq!(
            (fb.phys, fb.pitch, fb.width, fb.height, fb.bpp),
            (0xfd00_0000, 4096, 1024, 768, 32)
        );
        assert_eq!((fb.red, fb.green, fb.blue), ((16, 8), (8, 8), (0, 8)));
        // The RSDP is the v2 copy's address inside the information.
        let off = (bi.rsdp - 0x10000) as usize;
        assert_eq!(&v[off..off + 8], b"RSD PTR ");
        assert_eq!(bi.skipped, 0);
        assert_eq!(bi.info_range, (0x10000, v.len() as u64));
    }

    #[test]
    fn only_an_old_rsdp_is_used_when_there_is_no_new_one() {
        let v = mbi(&[(tag::ACPI_OLD, b"RSD PTR 012345678901".to_vec())]);
        let bi = parse_multiboot2(&v, 0x1000).unwrap();
        assert_eq!(bi.rsdp, 0x1000 + 16);
        assert!(bi.framebuffer.is_none() && !bi.text_mode);
    }

    #[test]
    fn ega_text_framebuffer_means_vga_text() {
        let mut fb = rgb_fb();
        fb[21] = 2;
        let bi = parse_multiboot2(&mbi(&[(tag::FRAMEBUFFER, fb)]), 0).unwrap();
        assert!(bi.text_mode && bi.framebuffer.is_none());
    }

    #[test]
    fn malformed_information_is_refused_or_skipped_never_a_fault() {
        assert_eq!(
            parse_multiboot2(&[], 0).unwrap_err(),
            BootInfoError::Truncated
        );
        let mut v = mbi(&[(tag::CMDLINE, b"x\0".to_vec())]);
        let n = v.len();
        v[..4].copy_from_slice(&(n as u32 + 64).to_le_bytes());
        assert_eq!(
            parse_multiboot2(&v, 0).unwrap_err(),
            BootInfoError::Truncated
        );
        // A tag whose size runs past the end, and no end tag.
        let mut v = vec![0u8; 24];
        v[..4].copy_from_slice(&24u32.to_le_bytes());
        v[8..12].copy_from_slice(&tag::MMAP.to_le_bytes());
        v[12..16].copy_from_slice(&4000u32.to_le_bytes());
        assert_eq!(
            parse_multiboot2(&v, 0).unwrap_err(),
            BootInfoError::NoEndTag
        );
        // Malformed known tags are skipped and counted.
        let mut short_mmap = mmap(&[]);
        short_mmap[..4].copy_from_slice(&8u32.to_le_bytes());
        let v = mbi(&[
            (tag::MMAP, short_mmap),
            (tag::FRAMEBUFFER, vec![0; 10]),
            (tag::ACPI_NEW, vec![0; 4]),
        ]);
        let bi = parse_multiboot2(&v, 0).unwrap();
        assert_eq!(bi.skipped, 3);
        assert_eq!((bi.region_count, bi.rsdp), (0, 0));
        // Every truncation of a good structure is handled.
        let good = mbi(&[
            (tag::CMDLINE, b"a b c\0".to_vec()),
            (tag::MMAP, mmap(&[(0, 4096, 1)])),
            (tag::FRAMEBUFFER, rgb_fb()),
        ]);
        for n in 0..good.len() {
            let _ = parse_multiboot2(&good[..n], 0);
        }
    }

    #[test]
    fn a_long_command_line_is_cut_at_a_word() {
        let mut line = b"quiet ".repeat(100);
        line.push(0);
        let bi = parse_multiboot2(&mbi(&[(tag::CMDLINE, line)]), 0).unwrap();
        assert!(bi.cmdline().len() <= CMDLINE_MAX);
        assert!(bi.cmdline().split(' ').all(|w| w == "quiet"));
    }

    #[test]
    fn memory_map_entries_past_the_table_are_counted() {
        let entries: Vec<_> = (0..MAX_REGIONS as u64 + 3)
            .map(|i| (i << 20, 4096, 1))
            .collect();
        let bi = parse_multiboot2(&mbi(&[(tag::MMAP, mmap(&entries))]), 0).unwrap();
        assert_eq!(bi.region_count, MAX_REGIONS);
        assert_eq!(bi.skipped, 3);
    }
}
