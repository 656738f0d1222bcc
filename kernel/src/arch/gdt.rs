//! Per-CPU GDT and TSS with separate IST stacks for NMI, double fault and
//! machine check (Intel SDM Vol. 3A §6.14.5).

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, SegmentSelector};

use super::cpu::{IST_STACK_SIZE, MAX_CPUS, PerCpu};

/// IST slot (1-based in the IDT, 0-based in the TSS) for the NMI handler.
pub const IST_NMI: u16 = 0;
/// IST slot for the double-fault handler.
pub const IST_DOUBLE_FAULT: u16 = 1;
/// IST slot for the machine-check handler.
pub const IST_MACHINE_CHECK: u16 = 2;

#[repr(C, align(16))]
struct IstStacks([[[u8; IST_STACK_SIZE]; 3]; MAX_CPUS]);

static mut IST_STACKS: IstStacks = IstStacks([[[0; IST_STACK_SIZE]; 3]; MAX_CPUS]);

/// Top of CPU `cpu`'s IST stack `slot` (for reports and dumps).
pub fn ist_stack_range(cpu: usize, slot: usize) -> (u64, u64) {
    // SAFETY: only the address is taken, never a reference.
    let base = unsafe { (&raw const IST_STACKS.0[cpu][slot]) as u64 };
    (base, base + IST_STACK_SIZE as u64)
}

/// Every CPU's IST stacks, `[start, end)`.
pub fn ist_stacks() -> (u64, u64) {
    let base = (&raw const IST_STACKS) as u64;
    (base, base + core::mem::size_of::<IstStacks>() as u64)
}

/// Builds and loads this CPU's GDT and TSS. Runs once per CPU at bring-up.
pub fn init(cpu: &'static PerCpu) {
    let idx = cpu.index();
    // SAFETY: each CPU initialises only its own GDT/TSS, once, before any
    // interrupt can use them; the IST stacks of `idx` belong to this CPU.
    unsafe {
        let tss = &mut *cpu.tss.get();
        for slot in 0..3 {
            let (_, top) = ist_stack_range(idx, slot);
            tss.interrupt_stack_table[slot] = VirtAddr::new(top);
        }
        let gdt = &mut *cpu.gdt.get();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(&*cpu.tss.get()));
        gdt.load_unsafe();
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        load_tss(tss_sel);
        let _: SegmentSelector = tss_sel;
    }
}
