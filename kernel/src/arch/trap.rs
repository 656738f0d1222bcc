//! Trap entry: the common stub saves every general register into a
//! [`TrapFrame`] on the current stack and calls [`trap_dispatch`].

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::cpu;
use super::idt::vector;

global_asm!(
    include_str!(concat!(env!("OUT_DIR"), "/vectors.s")),
    options(att_syntax)
);

global_asm!(
    r#"
    .section .text
    .global trap_common
trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call trap_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
    "#,
    options(att_syntax)
);

/// Registers saved by the entry stub plus the CPU's interrupt frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs, reason = "register names are self-describing")]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);

/// A device interrupt handler registered for one vector.
pub type DeviceHandler = fn(vector: u8);

static DEVICE_HANDLERS: [AtomicUsize; vector::DEVICE_COUNT as usize] =
    [const { AtomicUsize::new(0) }; vector::DEVICE_COUNT as usize];
static NEXT_DEVICE_VECTOR: AtomicUsize = AtomicUsize::new(0);

/// Allocates a device vector and installs `handler` for it.
pub fn register_device_handler(handler: DeviceHandler) -> Option<u8> {
    let slot = NEXT_DEVICE_VECTOR.fetch_add(1, Ordering::Relaxed);
    if slot >= DEVICE_HANDLERS.len() {
        return None;
    }
    DEVICE_HANDLERS[slot].store(handler as usize, Ordering::Release);
    Some(vector::DEVICE_BASE + slot as u8)
}

/// Human-readable name of an exception vector.
pub fn exception_name(v: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "divide error",
        "debug",
        "non-maskable interrupt",
        "breakpoint",
        "overflow",
        "bound range exceeded",
        "invalid opcode",
        "device not available",
        "double fault",
        "coprocessor segment overrun",
        "invalid TSS",
        "segment not present",
        "stack-segment fault",
        "general protection fault",
        "page fault",
        "reserved",
        "x87 floating-point",
        "alignment check",
        "machine check",
        "SIMD floating-point",
        "virtualization",
        "control protection",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "hypervisor injection",
        "VMM communication",
        "security exception",
        "reserved",
    ];
    NAMES.get(v as usize).copied().unwrap_or("interrupt")
}

/// A handler for one vector, registered at boot by the layer that owns it
/// (the panic path for exceptions, NMI and the stop IPI, the scheduler for
/// the timer): `arch` calls up only through this table.
pub type TrapHandler = fn(&mut TrapFrame);

/// Handlers by vector; 0 = none (an exception without a handler halts).
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
/// Runs after a timer, reschedule or device interrupt, once `irq_depth` is
/// back down (the scheduler's preemption point); 0 = none.
static IRQ_EXIT: AtomicUsize = AtomicUsize::new(0);

/// Run first by every trap on a CPU that a panic claimed while it was
/// halted in its idle loop ([`cpu::PerCpu::wake`]): the panic path's, which
/// parks it; 0 = none.
static CLAIMED_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the hook a claimed CPU's first trap runs (it does not return).
pub fn set_claimed_hook(hook: TrapHandler) {
    CLAIMED_HOOK.store(hook as usize, Ordering::Release);
}

/// Installs `handler` for `vector` (replacing any before it).
pub fn set_handler(vector: u8, handler: TrapHandler) {
    HANDLERS[vector as usize].store(handler as usize, Ordering::Release);
}

/// Installs `handler` for every CPU exception but the NMI (vectors 0-31).
pub fn set_exception_handler(handler: TrapHandler) {
    for v in 0..vector::FIRST_EXTERNAL {
        if v != vector::NMI {
            set_handler(v, handler);
        }
    }
}

/// Installs the hook run on the way out of a timer, reschedule or device
/// interrupt.
pub fn set_irq_exit(hook: fn()) {
    IRQ_EXIT.store(hook as usize, Ordering::Release);
}

/// A hook run first by the NMI handler (the debugger's break-in stop,
/// registered at boot): returns true if the NMI was its own. 0 = none.
static NMI_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the hook [`nmi_hook`] runs.
pub fn set_nmi_hook(hook: fn(&mut TrapFrame) -> bool) {
    NMI_HOOK.store(hook as usize, Ordering::Release);
}

/// Runs the registered NMI hook; true if it handled this NMI.
pub fn nmi_hook(frame: &mut TrapFrame) -> bool {
    let h = NMI_HOOK.load(Ordering::Acquire);
    // SAFETY: only `set_nmi_hook` stores here, a `fn(&mut TrapFrame) -> bool`.
    h != 0 && unsafe { core::mem::transmute::<usize, fn(&mut TrapFrame) -> bool>(h) }(frame)
}

/// [`request_break`] reasons (the debugger's `Why`, which names them).
/// Ctrl+Alt+Esc on a keyboard.
pub const BREAK_KEYBOARD: u8 = 1;
/// A serial BREAK on COM1.
pub const BREAK_SERIAL: u8 = 2;
/// `break` at `shell>`.
pub const BREAK_COMMAND: u8 = 3;
/// gdb asked to stop.
pub const BREAK_GDB: u8 = 6;

/// Why the next [`vector::BREAK`] was requested (0: none), for its handler.
static BREAK_REASON: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Asks to break into the debugger on this CPU with `reason` (its
/// meaning is the handler's; non-zero): sends [`vector::BREAK`] to this CPU
/// itself. Callable anywhere, also from an interrupt handler or under an
/// IRQ-safe lock: the IPI is taken once interrupts are on again, so the
/// debugger is never entered inside a critical section (the USB driver's
/// lock, the console's). The first reason wins until the handler takes it.
pub fn request_break(reason: u8) {
    let _ = BREAK_REASON.compare_exchange(0, reason, Ordering::AcqRel, Ordering::Relaxed);
    super::apic::send_ipi(cpu::current_index(), vector::BREAK);
}

/// Takes the reason [`request_break`] left (0: none: a stray IPI).
pub fn take_break_reason() -> u8 {
    BREAK_REASON.swap(0, Ordering::AcqRel)
}

fn handler(v: u8) -> Option<TrapHandler> {
    let h = HANDLERS[v as usize].load(Ordering::Acquire);
    // SAFETY: only `set_handler` stores into this table, and it stores
    // `TrapHandler` function pointers.
    (h != 0).then(|| unsafe { core::mem::transmute::<usize, TrapHandler>(h) })
}

/// Called by `trap_common` with interrupts disabled (all gates are interrupt gates).
#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let this = cpu::this();
    if this.wake() {
        let hook = CLAIMED_HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: only `set_claimed_hook` stores here, a `TrapHandler`.
            unsafe { core::mem::transmute::<usize, TrapHandler>(hook)(frame) };
        }
    }
    this.irq_depth.fetch_add(1, Ordering::Relaxed);
    let v = frame.vector as u8;
    match v {
        vector::RESCHEDULE => {
            super::apic::eoi();
            this.need_resched.store(true, Ordering::Relaxed);
        }
        vector::PANIC_TEST => {
            super::apic::eoi();
            panic!("test: panic inside an interrupt handler (vector {v:#x})");
        }
        vector::SPURIOUS => {}
        _ if (vector::DEVICE_BASE..vector::DEVICE_BASE + vector::DEVICE_COUNT).contains(&v) => {
            let h = DEVICE_HANDLERS[(v - vector::DEVICE_BASE) as usize].load(Ordering::Acquire);
            if h != 0 {
                // SAFETY: only `register_device_handler` stores into this
                // table, and it stores `DeviceHandler` function pointers.
                let f: DeviceHandler = unsafe { core::mem::transmute::<usize, DeviceHandler>(h) };
                f(v);
            }
            super::apic::eoi();
        }
        _ => match handler(v) {
            Some(h) => h(frame),
            // An exception nobody handles (before the panic path registered):
            // nothing above can be trusted yet.
            None if v < vector::FIRST_EXTERNAL => super::halt_forever(),
            None => super::apic::eoi(),
        },
    }
    this.irq_depth.fetch_sub(1, Ordering::Relaxed);
    if v == vector::TIMER || v == vector::RESCHEDULE || v >= vector::DEVICE_BASE {
        let hook = IRQ_EXIT.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: only `set_irq_exit` stores here, a `fn()` pointer.
            unsafe { core::mem::transmute::<usize, fn()>(hook)() };
        }
    }
}
