//! The ELF64 core file (`ET_CORE`, System V gABI; x86_64 psABI) as `gdb`
//! reads a Linux core: one `PT_NOTE` with an `NT_PRSTATUS` per CPU (the
//! first is the thread `gdb` selects, so the panic CPU goes first), a note
//! with the panic message, then one `PT_LOAD` per memory run at its virtual
//! address (the kernel is identity mapped, so `p_vaddr == p_paddr`).
//!
//! The writer produces the headers into a caller buffer and a plan of
//! [`Piece`]s: the kernel writes the headers, then each memory run in chunks,
//! straight from RAM.

use crate::{PAGE, Segment};

/// `e_machine` of x86_64.
pub const EM_X86_64: u16 = 62;
/// Note type of a thread's registers.
pub const NT_PRSTATUS: u32 = 1;
/// Note type of the panic message (owner [`PANIC_NOTE_NAME`]).
pub const NT_PANIC_MESSAGE: u32 = 0x5041_4e43;
/// Owner name of the panic-message note.
pub const PANIC_NOTE_NAME: &[u8] = b"PANICBENCH\0";
/// Size of x86_64 Linux `struct elf_prstatus`.
pub const PRSTATUS_SIZE: usize = 336;
/// Offset of `pr_reg` (`elf_gregset_t`) inside `elf_prstatus`.
const PR_REG_OFFSET: usize = 112;
/// Offset of `pr_pid` inside `elf_prstatus`.
const PR_PID_OFFSET: usize = 32;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const NHDR_SIZE: usize = 12;

/// x86_64 general registers in the order of Linux `struct user_regs_struct`
/// (`elf_gregset_t`), which is what `gdb` reads from `pr_reg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs, reason = "register names are self-describing")]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

impl Regs {
    /// The 27 registers in `user_regs_struct` order.
    pub fn to_array(&self) -> [u64; 27] {
        [
            self.r15,
            self.r14,
            self.r13,
            self.r12,
            self.rbp,
            self.rbx,
            self.r11,
            self.r10,
            self.r9,
            self.r8,
            self.rax,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.orig_rax,
            self.rip,
            self.cs,
            self.rflags,
            self.rsp,
            self.ss,
            self.fs_base,
            self.gs_base,
            self.ds,
            self.es,
            self.fs,
            self.gs,
        ]
    }
}

/// One CPU's registers for its `NT_PRSTATUS` note.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuRegs {
    /// CPU index; the note's `pr_pid` is `cpu + 1` (gdb shows it as the LWP).
    pub cpu: u32,
    /// Register state.
    pub regs: Regs,
}

/// The buffer given to [`CoreLayout::write_headers`] is too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// Bytes needed.
    pub needed: usize,
}

/// Where a piece of the core file comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The headers buffer, from this byte offset.
    Headers(usize),
    /// Memory at this address.
    Memory(u64),
}

/// A contiguous piece of the core file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Offset in the core file.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// Where the bytes come from.
    pub source: Source,
}

/// The layout of one core file.
#[derive(Clone, Copy, Debug)]
pub struct CoreLayout<'a> {
    cpus: &'a [CpuRegs],
    message: &'a [u8],
    segments: &'a [Segment],
}

fn note_size(name_len: usize, desc_len: usize) -> usize {
    NHDR_SIZE + name_len.next_multiple_of(4) + desc_len.next_multiple_of(4)
}

impl<'a> CoreLayout<'a> {
    /// A core with these CPUs (panic CPU first), message and memory runs.
    pub fn new(cpus: &'a [CpuRegs], message: &'a str, segments: &'a [Segment]) -> Self {
        Self {
            cpus,
            message: message.as_bytes(),
            segments,
        }
    }

    fn notes_size(&self) -> usize {
        self.cpus.len() * note_size(5, PRSTATUS_SIZE)
            + note_size(PANIC_NOTE_NAME.len(), self.message.len())
    }

    fn notes_offset(&self) -> usize {
        EHDR_SIZE + PHDR_SIZE * (1 + self.segments.len())
    }

    /// Size of the headers (ELF header, program headers, notes), padded to a
    /// page: the offset of the first memory byte.
    pub fn headers_size(&self) -> usize {
        ((self.notes_offset() + self.notes_size()) as u64).next_multiple_of(PAGE) as usize
    }

    /// Size of the whole core file.
    pub fn total_size(&self) -> u64 {
        self.headers_size() as u64 + self.segments.iter().map(|s| s.len).sum::<u64>()
    }

    /// Writes the headers (zero padded to [`Self::headers_size`]) into `out`.
    pub fn write_headers(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let size = self.headers_size();
        if out.len() < size {
            return Err(BufferTooSmall { needed: size });
        }
        let out = &mut out[..size];
        out.fill(0);
        let phnum = 1 + self.segments.len();
        // ELF header (gABI "ELF Header").
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // ELFDATA2LSB
        out[6] = 1; // EV_CURRENT
        put16(out, 16, 4); // ET_CORE
        put16(out, 18, EM_X86_64);
        put32(out, 20, 1);
        put64(out, 32, EHDR_SIZE as u64); // e_phoff
        put16(out, 52, EHDR_SIZE as u16);
        put16(out, 54, PHDR_SIZE as u16);
        put16(out, 56, phnum.min(0xffff) as u16);
        // PT_NOTE.
        let notes_off = self.notes_offset();
        write_phdr(
            out,
            EHDR_SIZE,
            4,
            0,
            notes_off as u64,
            0,
            self.notes_size() as u64,
            0,
            4,
        );
        // PT_LOADs.
        let mut data = self.headers_size() as u64;
        for (i, s) in self.segments.iter().enumerate() {
            write_phdr(
                out,
                EHDR_SIZE + PHDR_SIZE * (i + 1),
                1,
                7,
                data,
                s.addr,
                s.len,
                s.len,
                PAGE,
            );
            data += s.len;
        }
        // Notes.
        let mut at = notes_off;
        for c in self.cpus {
            let mut desc = [0u8; PRSTATUS_SIZE];
            // pr_info.si_signo = SIGSEGV for the panic CPU is tradition; use 0.
            put32(&mut desc, PR_PID_OFFSET, c.cpu + 1);
            for (i, r) in c.regs.to_array().iter().enumerate() {
                put64(&mut desc, PR_REG_OFFSET + 8 * i, *r);
            }
            at = note(out, at, b"CORE\0", NT_PRSTATUS, &desc);
        }
        note(out, at, PANIC_NOTE_NAME, NT_PANIC_MESSAGE, self.message);
        Ok(size)
    }

    /// The core file as pieces of at most `max` bytes (a multiple of the page
    /// size), in file order: the headers, then each memory run.
    pub fn pieces(&self, max: u64) -> impl Iterator<Item = Piece> + 'a {
        let max = max.max(PAGE);
        let headers = self.headers_size() as u64;
        let head = (0..headers.div_ceil(max)).map(move |i| {
            let off = i * max;
            Piece {
                offset: off,
                len: (headers - off).min(max),
                source: Source::Headers(off as usize),
            }
        });
        let mut file = headers;
        let segs = self.segments.iter().map(move |s| {
            let start = file;
            file += s.len;
            (start, *s)
        });
        let mem = segs.flat_map(move |(start, s)| {
            (0..s.len.div_ceil(max)).map(move |i| Piece {
                offset: start + i * max,
                len: (s.len - i * max).min(max),
                source: Source::Memory(s.addr + i * max),
            })
        });
        head.chain(mem)
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the Elf64_Phdr fields one to one"
)]
fn write_phdr(
    out: &mut [u8],
    at: usize,
    kind: u32,
    flags: u32,
    offset: u64,
    addr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
) {
    put32(out, at, kind);
    put32(out, at + 4, flags);
    put64(out, at + 8, offset);
    put64(out, at + 16, addr);
    put64(out, at + 24, addr);
    put64(out, at + 32, filesz);
    put64(out, at + 40, memsz);
    put64(out, at + 48, align);
}

fn note(out: &mut [u8], at: usize, name: &[u8], kind: u32, desc: &[u8]) -> usize {
    put32(out, at, name.len() as u32);
    put32(out, at + 4, desc.len() as u32);
    put32(out, at + 8, kind);
    let n = at + NHDR_SIZE;
    out[n..n + name.len()].copy_from_slice(name);
    let d = n + name.len().next_multiple_of(4);
    out[d..d + desc.len()].copy_from_slice(desc);
    d + desc.len().next_multiple_of(4)
}

/// A parsed core file's structure (for `savecore` and tests).
pub mod parse {
    use super::*;

    fn get16(b: &[u8], o: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
    }
    fn get32(b: &[u8], o: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
    }
    fn get64(b: &[u8], o: usize) -> Option<u64> {
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    }

    /// A program header.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Phdr {
        /// `p_type`.
        pub kind: u32,
        /// `p_offset`.
        pub offset: u64,
        /// `p_vaddr`.
        pub vaddr: u64,
        /// `p_filesz`.
        pub filesz: u64,
    }

    /// A note.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Note<'a> {
        /// Owner name without the NUL.
        pub name: &'a [u8],
        /// Type.
        pub kind: u32,
        /// Descriptor.
        pub desc: &'a [u8],
    }

    /// Checks the ELF header of a core and returns its program header count.
    pub fn phnum(core: &[u8]) -> Option<usize> {
        if core.get(..4)? != b"\x7fELF"
            || core[4] != 2
            || get16(core, 16)? != 4
            || get16(core, 18)? != EM_X86_64
        {
            return None;
        }
        Some(get16(core, 56)? as usize)
    }

    /// Program header `i`.
    pub fn phdr(core: &[u8], i: usize) -> Option<Phdr> {
        let at = get64(core, 32)? as usize + i * PHDR_SIZE;
        Some(Phdr {
            kind: get32(core, at)?,
            offset: get64(core, at + 8)?,
            vaddr: get64(core, at + 16)?,
            filesz: get64(core, at + 32)?,
        })
    }

    /// The notes of a `PT_NOTE` segment, in order.
    pub fn notes<'a>(core: &'a [u8], seg: &Phdr) -> impl Iterator<Item = Note<'a>> + 'a {
        let start = seg.offset as usize;
        let end = start + seg.filesz as usize;
        let mut at = start;
        core::iter::from_fn(move || {
            if at + NHDR_SIZE > end {
                return None;
            }
            let namesz = get32(core, at)? as usize;
            let descsz = get32(core, at + 4)? as usize;
            let kind = get32(core, at + 8)?;
            let n = at + NHDR_SIZE;
            let d = n + namesz.next_multiple_of(4);
            let name = core.get(n..n + namesz)?;
            let desc = core.get(d..d + descsz)?;
            at = d + descsz.next_multiple_of(4);
            Some(Note {
                name: name.strip_suffix(b"\0").unwrap_or(name),
                kind,
                desc,
            })
        })
    }

    /// `pr_pid` and the register array of an `NT_PRSTATUS` descriptor.
    pub fn prstatus(desc: &[u8]) -> Option<(u32, [u64; 27])> {
        if desc.len() != PRSTATUS_SIZE {
            return None;
        }
        let mut regs = [0; 27];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = get64(desc, PR_REG_OFFSET + 8 * i)?;
        }
        Some((get32(desc, PR_PID_OFFSET)?, regs))
    }
}

#[cfg(test)]
mod tests {
    use super::parse::*;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn elf_core_structure_parses_back() {
        let cpus: Vec<CpuRegs> = (0..4)
            .map(|i| CpuRegs {
                cpu: (i + 2) % 4,
                regs: Regs {
                    rip: 0x20_0000 + i as u64,
                    rsp: 0x1000 * i as u64,
                    rbp: 7,
                    r15: 15,
                    gs: 99,
                    ..Regs::default()
                },
            })
            .collect();
        let segs = [
            Segment {
                addr: 0x20_0000,
                len: 0x3000,
            },
            Segment {
                addr: 0x100_0000,
                len: 0x1_0000,
            },
        ];
        let l = CoreLayout::new(&cpus, "test: plain panic", &segs);
        let mut buf = vec![0u8; l.headers_size()];
        assert_eq!(
            l.write_headers(&mut buf[..10]),
            Err(BufferTooSmall {
                needed: l.headers_size()
            })
        );
        assert_eq!(l.write_headers(&mut buf).unwrap(), 4096);
        // Assemble the whole file through the piece plan, memory = address pattern.
        let mut file = vec![0u8; l.total_size() as usize];
        let mut expected_off = 0;
        for p in l.pieces(0x2000) {
            assert_eq!(p.offset, expected_off);
            assert!(p.len <= 0x2000);
            let dst = &mut file[p.offset as usize..(p.offset + p.len) as usize];
            match p.source {
                Source::Headers(o) => dst.copy_from_slice(&buf[o..o + p.len as usize]),
                Source::Memory(a) => dst
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b = ((a + i as u64) >> 12) as u8),
            }
            expected_off += p.len;
        }
        assert_eq!(expected_off, l.total_size());

        let n = phnum(&file).unwrap();
        assert_eq!(n, 3);
        let note_seg = phdr(&file, 0).unwrap();
        assert_eq!(note_seg.kind, 4);
        let notes: Vec<_> = notes(&file, &note_seg).collect();
        assert_eq!(notes.len(), 5);
        for (i, n) in notes[..4].iter().enumerate() {
            assert_eq!((n.name, n.kind), (&b"CORE"[..], NT_PRSTATUS));
            let (pid, regs) = prstatus(n.desc).unwrap();
            assert_eq!(pid, cpus[i].cpu + 1);
            assert_eq!(regs, cpus[i].regs.to_array());
            assert_eq!(regs[16], 0x20_0000 + i as u64, "rip is pr_reg[16]");
            assert_eq!(regs[4], 7, "rbp is pr_reg[4]");
        }
        assert_eq!(
            (notes[4].name, notes[4].kind, notes[4].desc),
            (
                &b"PANICBENCH"[..],
                NT_PANIC_MESSAGE,
                &b"test: plain panic"[..]
            )
        );
        for (i, s) in segs.iter().enumerate() {
            let p = phdr(&file, i + 1).unwrap();
            assert_eq!((p.kind, p.vaddr, p.filesz), (1, s.addr, s.len));
            assert_eq!(p.offset % PAGE, 0);
            let data = &file[p.offset as usize..(p.offset + p.filesz) as usize];
            assert_eq!(data[0], (s.addr >> 12) as u8);
            assert_eq!(data[data.len() - 1], ((s.end() - 1) >> 12) as u8);
        }
    }
}
