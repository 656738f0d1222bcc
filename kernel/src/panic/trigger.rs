//! Panic triggers for tests and people: `panic [KIND]` in the shell or
//! `trigger=KIND` on the kernel command line.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::arch::cpu;
use crate::arch::idt::vector;

pub use super::trigger_list::TRIGGERS;

/// A panic message whose formatting panics (`fmt`).
struct PanickingMessage;

impl core::fmt::Display for PanickingMessage {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        panic!("test: panic inside the formatting of the panic message")
    }
}

/// Frame pointers `badstack` gives the other CPUs, in turn: not canonical,
/// unmapped, misaligned, a frame that points at itself, device memory
/// (the LAPIC). `bt N` must say why each walk ended, and never fault.
fn bad_frame_pointer(i: usize) -> u64 {
    static SELF_LOOP: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
    let looped = SELF_LOOP.as_ptr() as u64;
    SELF_LOOP[0].store(looped, Ordering::SeqCst);
    SELF_LOOP[1].store(run as *const () as u64, Ordering::SeqCst);
    match i % 5 {
        0 => 0xdead_0000_dead_0000,
        1 => 0x0000_4000_dead_b000,
        2 => looped + 3,
        3 => looped,
        _ => 0xfee0_0000,
    }
}

/// Runs `f` on another CPU holding the first USB controller's driver lock, and spins there
/// forever (interrupts off: the panic must stop that CPU by NMI). Returns
/// once `f` ran.
fn hold_usb_lock(f: fn(&mut xhci_kbd::Controller<crate::usb::hal::KernelHal>)) {
    static HELD: AtomicBool = AtomicBool::new(false);
    let Some(c) = other_cpu() else { return };
    crate::sched::spawn_on("usb-holder", Some(c), move || {
        let mut g = crate::usb::CONTROLLERS[0].lock();
        if let Some(ctl) = g.as_mut() {
            f(ctl);
        }
        HELD.store(true, Ordering::SeqCst);
        loop {
            core::hint::spin_loop();
        }
    });
    wait_until(5_000_000, || HELD.load(Ordering::SeqCst));
}

/// Yields until `done()` or `us` microseconds passed (a helper CPU that
/// never gets going must not hang the trigger: the panic follows anyway).
fn wait_until(us: u64, done: impl Fn() -> bool) {
    let d = crate::time::deadline_after_us(us);
    while !done() && !crate::time::passed(d) {
        crate::sched::yield_now();
    }
}

fn other_cpu() -> Option<usize> {
    let me = cpu::current_index();
    cpu::all()
        .iter()
        .filter(|c| c.state() == cpu::CpuState::Online)
        .map(|c| c.index())
        .find(|&i| i != me)
}

/// Runs trigger `kind`; returns an error message for an unknown kind.
pub fn run(kind: &str) -> Result<(), &'static str> {
    match kind {
        "" | "plain" => plain(),
        "lock" => lock(),
        "irq" => irq(),
        "ap" => ap(),
        "all" => all(),
        "cli" => cli(),
        "nested" => nested(),
        "fault" => fault(),
        "early" => early(),
        "fmt" => fmt(),
        "deaf" => deaf(),
        "ap-start" => Err("ap-start works on the kernel command line only (trigger=ap-start)"),
        "nmi" => nmi(),
        "usb-lock" => usb_lock(),
        "usb-cmd" => usb_cmd(),
        "usb-enum" => usb_enum(),
        "usb-irq" => usb_irq(),
        "badstack" => badstack(),
        _ => Err("unknown panic kind (try `panic help`)"),
    }
}

/// `plain`: panic!() in the calling thread.
fn plain() -> ! {
    panic!("test: plain panic")
}

/// `lock`: another CPU holds the log lock the panic path needs.
fn lock() -> ! {
    static HELD: AtomicBool = AtomicBool::new(false);
    if let Some(c) = other_cpu() {
        crate::sched::spawn_on("lock-holder", Some(c), || {
            let _g = crate::console::LOG.lock();
            HELD.store(true, Ordering::SeqCst);
            loop {
                core::hint::spin_loop();
            }
        });
        wait_until(2_000_000, || HELD.load(Ordering::SeqCst));
    }
    panic!("test: panic while another CPU holds the log lock");
}

/// `irq`: panic inside an interrupt handler.
fn irq() -> ! {
    crate::arch::apic::send_ipi(cpu::current_index(), vector::PANIC_TEST);
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// `ap`: panic on an application processor.
fn ap() -> ! {
    let Some(c) = other_cpu() else {
        panic!("test: panic on the only CPU (no AP online)")
    };
    crate::sched::spawn_on("ap-panic", Some(c), move || {
        panic!("test: panic on application processor {c}")
    });
    loop {
        crate::sched::sleep_us(1_000_000);
    }
}

/// `all`: every CPU panics at once.
fn all() -> ! {
    static GO: AtomicBool = AtomicBool::new(false);
    static READY: AtomicU32 = AtomicU32::new(0);
    let me = cpu::current_index();
    let mut want = 0;
    for c in cpu::all() {
        if c.index() != me && c.state() == cpu::CpuState::Online {
            want += 1;
            let i = c.index();
            crate::sched::spawn_on("panic-all", Some(i), move || {
                x86_64::instructions::interrupts::disable();
                READY.fetch_add(1, Ordering::SeqCst);
                while !GO.load(Ordering::SeqCst) {
                    core::hint::spin_loop();
                }
                panic!("test: simultaneous panic on cpu {i}");
            });
        }
    }
    wait_until(2_000_000, || READY.load(Ordering::SeqCst) >= want);
    x86_64::instructions::interrupts::disable();
    GO.store(true, Ordering::SeqCst);
    panic!("test: simultaneous panic on cpu {me}");
}

/// `cli`: another CPU spins forever with interrupts disabled.
fn cli() -> ! {
    static SPINNING: AtomicBool = AtomicBool::new(false);
    if let Some(c) = other_cpu() {
        crate::sched::spawn_on("cli-spinner", Some(c), || {
            x86_64::instructions::interrupts::disable();
            SPINNING.store(true, Ordering::SeqCst);
            loop {
                core::hint::spin_loop();
            }
        });
        wait_until(2_000_000, || SPINNING.load(Ordering::SeqCst));
    }
    panic!("test: panic while another CPU spins with interrupts disabled");
}

/// `nested`: a second panic inside the panic path.
fn nested() -> ! {
    super::NESTED_TRIGGER.store(true, Ordering::SeqCst);
    panic!("test: first panic (a nested one follows)");
}

/// `fault`: a page fault in kernel code.
fn fault() -> ! {
    let p = 0x0000_4000_dead_b000u64 as *const u64;
    // SAFETY: deliberately unsound: this address is not mapped, and the
    // page fault it raises is the point of the trigger.
    let v = unsafe { p.read_volatile() };
    panic!("test: read of an unmapped address returned {v:#x}");
}

/// `early`: panic during early boot (kernel command line only).
fn early() -> ! {
    panic!("test: early boot panic")
}

/// `fmt`: a panic inside the formatting of the panic message.
fn fmt() -> ! {
    panic!(
        "test: the message of this panic panics: {}",
        PanickingMessage
    )
}

/// `deaf`: another CPU ignores the stop IPI and the NMI (it does not stop).
fn deaf() -> ! {
    static SPINNING: AtomicBool = AtomicBool::new(false);
    if let Some(c) = other_cpu() {
        crate::sched::spawn_on("deaf", Some(c), move || {
            x86_64::instructions::interrupts::disable();
            super::stop::DEAF_CPU.store(c as u32, Ordering::SeqCst);
            SPINNING.store(true, Ordering::SeqCst);
            loop {
                core::hint::spin_loop();
            }
        });
        wait_until(2_000_000, || SPINNING.load(Ordering::SeqCst));
    }
    panic!("test: panic while another CPU ignores the stop IPI and the NMI");
}

/// `nmi`: an unexpected NMI: the panic is raised on the NMI's IST stack.
fn nmi() -> ! {
    crate::arch::apic::send_nmi(cpu::current_index());
    loop {
        core::hint::spin_loop();
    }
}

/// `usb-lock`: another CPU holds the USB driver lock.
fn usb_lock() -> ! {
    hold_usb_lock(|_| {});
    panic!("test: panic while another CPU holds the USB driver lock");
}

/// `usb-cmd`: another CPU stopped with an xHCI command in flight.
fn usb_cmd() -> ! {
    hold_usb_lock(|c| {
        if let Err(e) = c.submit_noop_command() {
            log::warn!("usb-cmd: no command submitted: {e}");
        }
    });
    panic!("test: panic while another CPU has an xHCI command in flight");
}

/// `usb-enum`: panic while another CPU is enumerating a hot-plugged keyboard.
fn usb_enum() -> ! {
    crate::usb::stall_next_enumeration();
    crate::println!("usb-enum: plug in a USB keyboard now");
    let d = crate::time::deadline_after_us(120_000_000);
    while !crate::usb::enumeration_stalled() && !crate::time::passed(d) {
        crate::sched::sleep_us(10_000);
    }
    panic!(
        "test: panic while another CPU is enumerating a keyboard (stalled: {})",
        crate::usb::enumeration_stalled()
    );
}

/// `usb-irq`: panic inside the xHCI interrupt handler (on the next key).
/// Armed once the USB keyboards have been quiet for 100 ms: typed at the
/// shell, the Enter of `panic usb-irq` is still down, and the interrupt of
/// its release was the one that panicked, while the key pressed next
/// waited in QEMU's usb-kbd queue and came out as the first key at `db>`
/// (the hang matrix's `usb-irq/breakin` cells, every one of them).
fn usb_irq() -> ! {
    crate::usb::wait_quiet(100_000, 2_000_000);
    crate::usb::PANIC_IN_IRQ.store(true, Ordering::SeqCst);
    crate::println!("usb-irq: press a key on the USB keyboard");
    loop {
        crate::sched::sleep_us(1_000_000);
    }
}

/// `badstack`: the other CPUs spin with corrupted frame pointers (for `bt N`).
fn badstack() -> ! {
    static READY: AtomicU32 = AtomicU32::new(0);
    let me = cpu::current_index();
    let mut want = 0;
    for (k, c) in cpu::all()
        .iter()
        .filter(|c| c.index() != me && c.state() == cpu::CpuState::Online)
        .enumerate()
    {
        want += 1;
        let bad = bad_frame_pointer(k);
        crate::sched::spawn_on("bad-stack", Some(c.index()), move || {
            x86_64::instructions::interrupts::disable();
            READY.fetch_add(1, Ordering::SeqCst);
            // SAFETY: deliberately unsound: corrupts this thread's frame
            // pointer and spins for ever with interrupts off (the panic
            // stops this CPU by NMI and saves the bad `rbp`).
            unsafe {
                core::arch::asm!("mov rbp, {0}", "2:", "pause", "jmp 2b", in(reg) bad, options(noreturn))
            }
        });
    }
    wait_until(2_000_000, || READY.load(Ordering::SeqCst) >= want);
    panic!("test: panic while the other CPUs have corrupted frame pointers");
}
