//! The bodies of the commands both consoles offer. Each reads the kernel in
//! the way its [`Console`] allows: under the locks in the shell, without any
//! lock or allocation in the panic console.
//!
//! `Console::Panic` is passed only by the panic console's loop, which runs on
//! the panic CPU with every other CPU parked and after the USB takeover: the
//! `SAFETY` comments below rest on that.

use core::fmt::Write;
use core::sync::atomic::Ordering;

use super::parse::{Args, Console};
use crate::arch::cpu::{self, CpuState};
use crate::sched::thread::Thread;
use crate::usb::hal::KernelHal;
use xhci_kbd::Controller;

/// `cpus`. The shell shows each CPU's thread and run queue; the panic
/// console how each CPU was stopped and where (RIP and symbol), and after
/// a panic when the stop was sent and each CPU entered its handler and
/// parked.
pub fn cpus(_: &Args<'_>, w: &mut dyn Write, console: Console) {
    let me = cpu::current_index();
    for c in cpu::all() {
        let i = c.index();
        let apic = c.apic_id.load(Ordering::Relaxed);
        let ticks = c.ticks.load(Ordering::Relaxed);
        match console {
            Console::Shell => {
                let t = crate::sched::running_on(i);
                let name = if t.is_null() {
                    "-"
                } else {
                    // SAFETY: `current` always points at a live thread.
                    unsafe { (*t).name.as_str() }
                };
                let _ = writeln!(
                    w,
                    "cpu {i}: apic {apic} {} thread {name} ticks {ticks} queued {}",
                    c.state().name(),
                    crate::sched::queue_len(i)
                );
            }
            Console::Panic => {
                let state = match c.state() {
                    _ if i == me && !crate::panic::panicking() => "broke in (this CPU)",
                    _ if i == me => "panicked (this CPU)",
                    CpuState::Online => "did not stop (may still be running)",
                    s => s.name(),
                };
                let _ = write!(w, "cpu {i}: apic {apic} {state}");
                let rip = super::debug::saved_regs(i).map_or(0, |r| r.rip);
                if rip != 0 {
                    let _ = write!(w, " at RIP {rip:#x}");
                    if let Some((n, off)) = crate::panic::symbols::lookup(rip) {
                        let _ = write!(w, " {n}+{off:#x}");
                    }
                }
                let _ = writeln!(w, " ticks {ticks}");
            }
        }
    }
    if console == Console::Panic && crate::panic::panicking() {
        crate::panic::stop::print_times(w);
    }
}

/// `ps`. The shell copies the thread list under its lock and shows context
/// switches too; the panic console walks the list without the lock and
/// reports entries that failed validation.
pub fn ps(_: &Args<'_>, w: &mut dyn Write, console: Console) {
    match console {
        Console::Shell => {
            let _ = writeln!(w, "  id  state     cpu  cpu-time(us)  switches  name");
            for t in crate::sched::threads() {
                thread_row(w, &t, true);
            }
        }
        Console::Panic => {
            let _ = writeln!(w, "  id  state     cpu  cpu-time(us)  name");
            // SAFETY: panic console: after the panic stop no other CPU runs.
            let walk =
                unsafe { crate::sched::for_each_thread_unlocked(|t| thread_row(w, t, false)) };
            if walk.skipped + walk.unlisted > 0 {
                let _ = writeln!(
                    w,
                    "  ({} entries failed validation and were skipped, {} threads beyond the table)",
                    walk.skipped, walk.unlisted
                );
            }
        }
    }
}

fn thread_row(w: &mut dyn Write, t: &Thread, switches: bool) {
    let _ = write!(
        w,
        "{:>4}  {:<8} {:>4}  {:>12}  ",
        t.id,
        t.state().name(),
        t.cpu.load(Ordering::Relaxed),
        crate::time::cycles_to_us(t.cpu_cycles.load(Ordering::Relaxed)),
    );
    if switches {
        let _ = write!(w, "{:>8}  ", t.switches.load(Ordering::Relaxed));
    }
    let _ = writeln!(w, "{}", t.name);
}

/// What [`with_controllers`] runs on each controller (output, index, driver).
type OnController<'a> = dyn FnMut(&mut dyn Write, usize, &Controller<KernelHal>) + 'a;

/// Runs `f` on every USB controller: each under its lock in the shell, as
/// taken over at panic in the panic console. Returns how many there were
/// (none: says so).
fn with_controllers(
    name: &str,
    w: &mut dyn Write,
    console: Console,
    f: &mut OnController<'_>,
) -> usize {
    let mut each = |i: usize, c: &Controller<KernelHal>| f(&mut *w, i, c);
    let n = match console {
        Console::Shell => crate::usb::each_controller(&mut each),
        // SAFETY: panic console, other CPUs parked, after the takeover.
        Console::Panic if crate::panic::panicking() => unsafe {
            crate::usb::panic_each_controller(&mut each)
        },
        // A break-in: the controllers whose locks it took (the others were
        // named when it began: their lock is held by a stopped CPU).
        Console::Panic => crate::usb::breakin::each_controller(&mut each),
    };
    if n == 0 {
        let _ = writeln!(w, "{name}: no USB controller");
    }
    n
}

/// `lsusb`: every controller with its devices.
pub fn lsusb(args: &Args<'_>, w: &mut dyn Write, console: Console) {
    with_controllers(args.name(), w, console, &mut |mut w, i, c| {
        crate::usb::lsusb(&mut w, i, c)
    });
}

/// `kbd`: the keyboards of every controller.
pub fn kbd(args: &Args<'_>, w: &mut dyn Write, console: Console) {
    let mut stats = [None; crate::usb::MAX_CONTROLLERS];
    let n = with_controllers(args.name(), w, console, &mut |_, i, c| {
        stats[i] = Some(c.keyboard_stats());
    });
    if n > 0 {
        let mut w = w;
        crate::usb::kbd(&mut w, &stats);
    }
}

/// `reboot`.
pub fn reboot(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    let _ = writeln!(w, "rebooting");
    crate::acpi::reset();
}

/// `poweroff`.
pub fn poweroff(_: &Args<'_>, w: &mut dyn Write, console: Console) {
    if console == Console::Panic {
        // Where ACPI power-off fails (it then halts), an armed watchdog
        // would reset the machine the user asked to switch off.
        crate::watchdog::disarm();
    }
    let _ = writeln!(w, "powering off");
    crate::power::poweroff(true);
}
