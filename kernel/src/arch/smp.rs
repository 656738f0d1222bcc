//! Application processor bring-up: INIT-SIPI-SIPI into a real-mode trampoline
//! copied to 0x8000, which enters long mode on the boot page tables and calls
//! [`ap_entry`]. A CPU that does not answer within the bound is reported and
//! skipped.

use core::sync::atomic::{AtomicPtr, Ordering};

use super::cpu::{self, CpuState};

/// What an application processor does around its own bring-up, supplied by
/// the layers above at boot (arch names none of them).
pub struct ApHooks {
    /// True once the world is being stopped (a panic began): an AP that
    /// sees it parks before running anything.
    pub stopping: fn() -> bool,
    /// Parks this AP for good (it arrived after the stop began).
    pub park: fn(index: usize) -> !,
    /// Readies the scheduler on this CPU, before it is published online.
    pub init: fn(index: usize),
    /// Runs the CPU from then on (the scheduler).
    pub run: fn() -> !,
}

/// The hooks of the current `start_aps`, read by each arriving AP.
static HOOKS: AtomicPtr<ApHooks> = AtomicPtr::new(core::ptr::null_mut());

/// Physical page the trampoline is copied to (below 1 MiB, 4 KiB aligned).
const TRAMPOLINE: u64 = 0x8000;

/// Test switch (`trigger=ap-start`): panic while the first AP is still
/// starting, once it has reached [`ap_entry`] (see [`AP_HELD_BACK`]); that
/// AP holds back there until the panic has begun.
pub static PANIC_WHILE_STARTING: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Set by the AP that [`PANIC_WHILE_STARTING`] holds back once it waits in
/// [`ap_entry`]: the bootstrap CPU panics only then (1 s at most), so the
/// AP sees the panic within microseconds and parks before the report lists
/// the CPUs. Panicking right after the SIPIs raced the AP's way through the
/// trampoline against the report (seen with the debug kernel at
/// `opt-level = 1`: "cpu 1: starting" in 2 of 2 runs of tests/panic.rs).
static AP_HELD_BACK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

core::arch::global_asm!(
    r#"
    .section .text.trampoline, "ax"
    .global ap_trampoline_start, ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl 0x8000 + (tramp_gdt_ptr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(0x8000 + (tramp32 - ap_trampoline_start))
    .code32
tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl 0x8000 + (tramp_cr3 - ap_trampoline_start), %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x620, %eax
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    ljmpl $0x18, $(0x8000 + (tramp64 - ap_trampoline_start))
    .code64
tramp64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq 0x8000 + (tramp_stack - ap_trampoline_start), %rsp
    movq 0x8000 + (tramp_arg - ap_trampoline_start), %rdi
    movq 0x8000 + (tramp_entry - ap_trampoline_start), %rax
    xorl %ebp, %ebp
    callq *%rax
1:  cli
    hlt
    jmp 1b
    .balign 8
tramp_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
tramp_gdt_ptr:
    .word tramp_gdt_ptr - tramp_gdt - 1
    .long 0x8000 + (tramp_gdt - ap_trampoline_start)
    .balign 8
    .global tramp_cr3, tramp_stack, tramp_entry, tramp_arg
tramp_cr3:   .quad 0
tramp_stack: .quad 0
tramp_entry: .quad 0
tramp_arg:   .quad 0
ap_trampoline_end:
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static tramp_cr3: u8;
    static tramp_stack: u8;
    static tramp_entry: u8;
    static tramp_arg: u8;
}

/// Address in the copied trampoline of the variable `sym` of the original.
fn tramp_var(sym: *const u8) -> *mut u64 {
    let start = &raw const ap_trampoline_start;
    (TRAMPOLINE + (sym as u64 - start as u64)) as *mut u64
}

/// Starts every CPU in `apic_ids[1..]`, each running `hooks` around its
/// bring-up; returns how many came online. `meanwhile` runs once on this
/// CPU while the first of them comes up (right after its STARTUP IPIs; at
/// once if there is none): boot work that must be done before the others
/// run but does not need them, overlapped with the 3-7 ms an AP takes to
/// arrive under QEMU's TCG.
pub fn start_aps(apic_ids: &[u32], hooks: &'static ApHooks, meanwhile: impl FnOnce()) -> usize {
    let mut meanwhile = Some(meanwhile);
    HOOKS.store(core::ptr::from_ref(hooks).cast_mut(), Ordering::Release);
    let (start, end) = (&raw const ap_trampoline_start, &raw const ap_trampoline_end);
    let len = end as usize - start as usize;
    // SAFETY: 0x8000 is below 1 MiB, identity mapped and never handed out by
    // the frame allocator; the trampoline is position-dependent on it.
    unsafe {
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
        let (cr3, _) = x86_64::registers::control::Cr3::read();
        tramp_var(&raw const tramp_cr3).write_volatile(cr3.start_address().as_u64());
        tramp_var(&raw const tramp_entry).write_volatile(ap_entry as *const () as u64);
    }
    let mut online = 0;
    for (index, &apic_id) in apic_ids.iter().enumerate().skip(1) {
        let c = cpu::cpu(index);
        c.apic_id.store(apic_id, Ordering::Relaxed);
        c.set_state(CpuState::Starting);
        let stack = alloc::vec![0u8; 64 * 1024].leak();
        let top = (stack.as_ptr() as u64 + stack.len() as u64) & !0xf;
        // SAFETY: the trampoline variables are in the copied page; the AP
        // reads them only after the SIPI below.
        unsafe {
            tramp_var(&raw const tramp_stack).write_volatile(top);
            tramp_var(&raw const tramp_arg).write_volatile(index as u64);
        }
        super::apic::start_ap(apic_id, (TRAMPOLINE >> 12) as u8);
        if let Some(f) = meanwhile.take() {
            f();
        }
        if PANIC_WHILE_STARTING.load(Ordering::Relaxed) {
            let held = crate::time::deadline_after_us(1_000_000);
            while !AP_HELD_BACK.load(Ordering::SeqCst) && !crate::time::passed(held) {
                core::hint::spin_loop();
            }
            panic!("test: panic while cpu {index} is starting");
        }
        let deadline = crate::time::deadline_after_us(1_000_000);
        while c.state() == CpuState::Starting && !crate::time::passed(deadline) {
            core::hint::spin_loop();
        }
        if c.transition(CpuState::Starting, CpuState::Failed) {
            // It may still arrive late: it then sees `Failed` and halts. The
            // trampoline variables (its stack) must not change under it, so
            // no further AP is started.
            log::warn!(
                "cpu {index} (apic id {apic_id}) did not come up; not starting the {} after it",
                apic_ids.len() - index - 1
            );
            break;
        }
        online += 1;
    }
    if let Some(f) = meanwhile.take() {
        f();
    }
    online
}

/// Rust entry of an application processor (from the trampoline, on its stack).
extern "C" fn ap_entry(index: u64) -> ! {
    let index = index as usize;
    // SAFETY: `start_aps` stored a `&'static ApHooks` before the first SIPI.
    let Some(hooks) = (unsafe { HOOKS.load(Ordering::Acquire).as_ref() }) else {
        super::halt_forever();
    };
    if PANIC_WHILE_STARTING.load(Ordering::Relaxed) {
        // The test makes this CPU arrive after the panic began (the real
        // race goes either way: an AP fast enough to be online is stopped by
        // IPI like any other).
        AP_HELD_BACK.store(true, Ordering::SeqCst);
        let d = crate::time::deadline_after_us(2_000_000);
        while !(hooks.stopping)() && !crate::time::passed(d) {
            core::hint::spin_loop();
        }
    }
    if (hooks.stopping)() {
        // A panic began while this CPU was starting: the panic path sends
        // nothing to a starting CPU, so it stops itself, before anything runs.
        (hooks.park)(index);
    }
    if cpu::cpu(index).state() != CpuState::Starting {
        // Too late: the bootstrap CPU gave up on this CPU (see `start_aps`).
        super::halt_forever();
    }
    let apic_id = cpu::cpu(index).apic_id.load(Ordering::Relaxed);
    cpu::install(index, apic_id);
    super::gdt::init(cpu::this());
    super::idt::load();
    super::apic::init_cpu();
    (hooks.init)(index);
    if !cpu::this().transition(CpuState::Starting, CpuState::Online) {
        // Too late: the bootstrap CPU gave up on this CPU meanwhile.
        super::halt_forever();
    }
    // Either the panic CPU sees `Online` (and sends the stop IPI) or this CPU
    // sees the panic: `stop_others` fences between claiming the panic and
    // reading the states, this fence between the two here.
    core::sync::atomic::fence(Ordering::SeqCst);
    if (hooks.stopping)() {
        (hooks.park)(index);
    }
    // The boot flow of an AP has nothing left to do: hand the CPU over.
    (hooks.run)()
}
