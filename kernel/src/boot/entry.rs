//! PVH entry: QEMU's `-kernel` loader enters `pvh_start` in 32-bit protected
//! mode with paging off and `ebx` = physical address of `hvm_start_info`
//! (Xen `arch-x86/hvm/start_info.h`). The stub zeroes `.bss`, identity-maps the
//! first 4 GiB with 2 MiB pages, enters long mode and calls `kmain` (in [`super`]).

use core::arch::global_asm;

/// `hvm_start_info.magic` (Xen public `start_info.h`).
pub const PVH_MAGIC: u32 = 0x336e_c578;

global_asm!(
    r#"
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
pvh_start:
    cli
    cld
    movl %ebx, %esi                 /* hvm_start_info */

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
    xorl %ebp, %ebp
    movl %esi, %edi
    call kmain
3:  cli
    hlt
    jmp 3b

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
    .balign 16
boot_stack: .skip 65536
boot_stack_top:
    "#,
    options(att_syntax)
);

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
    /// Physical address of the module list (`-initrd`), or 0.
    pub modlist_paddr: u64,
    /// Number of modules.
    pub nr_modules: u32,
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
                nr_modules: p.add(12).cast::<u32>().read_unaligned(),
                modlist_paddr: p.add(16).cast::<u64>().read_unaligned(),
                cmdline_paddr: p.add(24).cast::<u64>().read_unaligned(),
                rsdp_paddr: p.add(32).cast::<u64>().read_unaligned(),
                memmap_paddr: p.add(40).cast::<u64>().read_unaligned(),
                memmap_entries: p.add(48).cast::<u32>().read_unaligned(),
            })
        }
    }
}
