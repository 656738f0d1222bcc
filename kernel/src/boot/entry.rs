//! The entry from either boot loader, both in 32-bit protected mode with
//! paging off:
//!
//! - PVH: QEMU's `-kernel` loader enters `pvh_start` (the ELF note) with `ebx`
//!   = physical address of `hvm_start_info` (Xen `arch-x86/hvm/start_info.h`).
//! - Multiboot2: GRUB (BIOS or UEFI, after `ExitBootServices`) enters the
//!   same `pvh_start` (the header's entry address tag, Multiboot2 §3.1.6)
//!   with `eax` = 0x36d76289 and `ebx` = the boot information (§3.2).
//!
//! The stub keeps `ebx` and `eax`, zeroes `.bss`, identity-maps the first
//! 4 GiB with 2 MiB pages, enters long mode and calls `kmain(ebx, eax)` (in
//! [`super`]), which tells the two apart by the magic values.

use core::arch::global_asm;

use crate::bootinfo::{self, BootInfo, BootInfoError, MemRegion, PVH_MAGIC};

global_asm!(
    r#"
    /* Multiboot2 header (Multiboot2 §3.1): in the first 32 KiB of the file,
       8-aligned. Tags: the entry address, a preferred framebuffer
       (optional: a loader that cannot set one boots anyway), the end. */
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xE85250D6                /* magic */
    .long 0                         /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xE85250D6 + (mb2_header_end - mb2_header))
    .balign 8
    .word 3, 0                      /* entry address tag */
    .long 12
    .long pvh_start
    .balign 8
    .word 5, 1                      /* framebuffer tag, optional */
    .long 20
    .long 1024, 768, 32
    .balign 8
    .word 0, 0                      /* end tag */
    .long 8
mb2_header_end:

    .section .note.Xen, "a", @note
    .balign 4
    .long 4            /* namesz: "Xen\0" */
    .long 4            /* descsz */
    .long 18           /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global pvh_start
    .type pvh_start, @function
pvh_start:
    cli
    cld
    movl %ebx, %esi                 /* hvm_start_info or Multiboot2 information */
    movl %eax, %ebp                 /* Multiboot2 magic (anything else for PVH) */

    movl $__bss_start, %edi         /* zero .bss (page tables and stacks live there) */
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    movl $boot_pdpt, %eax           /* PML4[0] -> PDPT */
    orl $3, %eax
    movl %eax, boot_pml4

    movl $boot_pd, %eax             /* PDPT[0..4] -> four page directories */
    orl $3, %eax
    xorl %ecx, %ecx
1:  movl %eax, boot_pdpt(,%ecx,8)
    addl $4096, %eax
    incl %ecx
    cmpl $4, %ecx
    jb 1b

    movl $0x83, %eax                /* 2048 x 2 MiB pages: present, writable, huge */
    xorl %ecx, %ecx
2:  movl %eax, boot_pd(,%ecx,8)
    addl $0x200000, %eax
    incl %ecx
    cmpl $2048, %ecx
    jb 2b

    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x620, %eax                /* PAE | OSFXSR | OSXMMEXCPT */
    movl %eax, %cr4
    movl $0xC0000080, %ecx          /* EFER.LME */
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax           /* PG | WP | PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $pvh_long_mode

    .code64
pvh_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    leaq boot_stack_top(%rip), %rsp
    movl %esi, %edi
    movl %ebp, %esi
    xorl %ebp, %ebp
    call kmain
3:  cli
    hlt
    jmp 3b
    .size pvh_start, . - pvh_start

    .section .rodata
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        /* 64-bit code */
    .quad 0x00CF92000000FFFF        /* data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .quad boot_gdt

    .section .bss
    .balign 4096
    .global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * 4
    .balign 4096
    .global boot_stack_guard
boot_stack_guard: .skip 4096        /* unmapped at boot: an overflow faults */
boot_stack: .skip 262144
boot_stack_top:
    "#,
    options(att_syntax)
);

/// The boot information handed over at entry: `info` from `ebx`, `magic`
/// from `eax`.
///
/// # Safety
/// Called once by `kmain` with the registers from entry; the first 4 GiB
/// are identity mapped and nothing has been allocated over the loader's
/// structures yet.
pub unsafe fn boot_info(info: u32, magic: u32) -> Result<BootInfo, &'static str> {
    if magic == bootinfo::MULTIBOOT2_MAGIC {
        // SAFETY: forwarded: `info` is the Multiboot2 information (§3.2).
        return unsafe { multiboot2(u64::from(info)) }.map_err(|e| match e {
            BootInfoError::Truncated => "Multiboot2 information truncated",
            BootInfoError::NoEndTag => "Multiboot2 information without an end tag",
        });
    }
    // SAFETY: forwarded: not Multiboot2, so `info` is `hvm_start_info`.
    let Some(si) = (unsafe { StartInfo::read(u64::from(info)) }) else {
        return Err("neither PVH (bad hvm_start_info magic) nor Multiboot2 (bad eax)");
    };
    // SAFETY: the addresses come from a start_info with a good magic.
    Ok(unsafe { pvh(&si, u64::from(info)) })
}

/// # Safety
/// `phys` is the identity-mapped Multiboot2 information.
unsafe fn multiboot2(phys: u64) -> Result<BootInfo, BootInfoError> {
    // SAFETY: the caller's guarantee; the first 8 bytes hold its size, then
    // the whole structure is read (at most 1 MiB: a larger size is refused).
    let head = unsafe { core::slice::from_raw_parts(phys as *const u8, 8) };
    let size = bootinfo::multiboot2_size(head).ok_or(BootInfoError::Truncated)?;
    if size > 1 << 20 {
        return Err(BootInfoError::Truncated);
    }
    // SAFETY: as above, `size` bytes from the loader.
    let mbi = unsafe { core::slice::from_raw_parts(phys as *const u8, size) };
    bootinfo::parse_multiboot2(mbi, phys)
}

/// # Safety
/// `si` was read from the identity-mapped `hvm_start_info` at `phys`.
unsafe fn pvh(si: &StartInfo, phys: u64) -> BootInfo {
    let mut bi = BootInfo::default();
    bi.rsdp = si.rsdp_paddr;
    bi.text_mode = true;
    bi.info_range = (phys, 56);
    for i in 0..si.memmap_entries as u64 {
        let e = si.memmap_paddr + i * 24;
        // SAFETY: the PVH memory map has `memmap_entries` 24-byte entries.
        let r = unsafe {
            MemRegion {
                start: (e as *const u64).read_unaligned(),
                len: ((e + 8) as *const u64).read_unaligned(),
                kind: ((e + 16) as *const u32).read_unaligned(),
            }
        };
        bi.push_region(r);
    }
    if si.cmdline_paddr != 0 {
        // SAFETY: a NUL-terminated string; at most CMDLINE_MAX + 1 bytes read.
        let line = unsafe {
            core::slice::from_raw_parts(si.cmdline_paddr as *const u8, bootinfo::CMDLINE_MAX + 1)
        };
        bi.set_cmdline(line);
    }
    bi
}

/// The parts of `hvm_start_info` the kernel uses (Xen `start_info.h`, version 1).
#[derive(Clone, Copy, Debug, Default)]
pub struct StartInfo {
    /// Physical address of the kernel command line (NUL-terminated), or 0.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, or 0.
    pub rsdp_paddr: u64,
    /// Physical address of the E820-style memory map.
    pub memmap_paddr: u64,
    /// Number of 24-byte memory map entries.
    pub memmap_entries: u32,
}

impl StartInfo {
    /// Reads `hvm_start_info` at `paddr`.
    ///
    /// # Safety
    /// `paddr` must be the identity-mapped address handed over in `ebx` at entry.
    pub unsafe fn read(paddr: u64) -> Option<Self> {
        let p = paddr as *const u8;
        // SAFETY: the caller guarantees `p` points at a valid, mapped start_info
        // of at least 56 bytes (version 1 layout); unaligned reads are used.
        unsafe {
            let magic = p.cast::<u32>().read_unaligned();
            if magic != PVH_MAGIC {
                return None;
            }
            Some(Self {
                cmdline_paddr: p.add(24).cast::<u64>().read_unaligned(),
                rsdp_paddr: p.add(32).cast::<u64>().read_unaligned(),
                memmap_paddr: p.add(40).cast::<u64>().read_unaligned(),
                memmap_entries: p.add(48).cast::<u32>().read_unaligned(),
            })
        }
    }
}
