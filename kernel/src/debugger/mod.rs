//! The debugger's console (`db> `): after a panic on the panic CPU alone,
//! in a break-in ([`breakin`]) on the CPU that broke in, with every other
//! CPU stopped; no allocation and no interrupts. Input is polled from the
//! USB keyboards (taken over after a panic, held in polled mode in a
//! break-in), the serial port and the PS/2 keyboard
//! ([`crate::panic::input`]); output goes to serial and the screen. The
//! commands are [`crate::command::COMMANDS`]. Between key polls the loop
//! serves gdb on COM2 ([`crate::gdb`]).
//!
//! The panic path reaches it through the hook [`crate::panic::set_console`],
//! registered at boot: the panic layer names nothing above it.

pub mod breakin;
mod world;

pub use breakin::{
    Why, active, enter, install_trap_handlers, request_resume, resume_alone, resume_or_reason,
};
pub use world::{answer_stop_in_trap, frame_of, step_held};

use core::sync::atomic::Ordering;

use crate::arch::cpu::{self, CpuState};
use crate::command::Console;
use crate::console::PanicWriter;
use crate::lineedit::{Edit, LineEditor};
use crate::panic::input::Inputs;
use crate::{pprint, pprintln};

const PROMPT: &str = "db> ";

/// Runs the panic console forever.
pub fn run() -> ! {
    crate::watchdog::pet();
    // SAFETY: we are the panic CPU and every other CPU is parked.
    unsafe { crate::usb::panic_takeover(&mut PanicWriter) };
    crate::watchdog::pet();
    let ready = crate::time::rdtsc();
    crate::panic::PROMPT_TSC.store(ready, Ordering::Relaxed);
    let since = ready.saturating_sub(crate::panic::PANIC_TSC.load(Ordering::Relaxed));
    pprintln!("panic-to-prompt: {} us", crate::time::cycles_to_us(since));
    warn_running_cpus();
    loop {
        session(false);
    }
}

/// The `db> ` loop. In a break-in (`resumable`) it returns when a resume
/// is requested, with the CPU to single-step; after a panic it never ends.
fn session(resumable: bool) -> Option<usize> {
    let mut inputs = Inputs::new();
    let mut ed = LineEditor::new();
    crate::gdb::start();
    if resumable {
        pprintln!("break-in console: type `help` for commands, `continue` to resume");
    } else {
        pprintln!("panic console: type `help` for commands");
    }
    pprint!("{PROMPT}");
    loop {
        crate::watchdog::pet();
        // SAFETY: the only running CPU (every other one parked or held);
        // not re-entered.
        unsafe { crate::gdb::poll() };
        if resumable && let Some(step) = crate::sched::freeze::take_resume() {
            return step;
        }
        let Some(k) = inputs.poll() else {
            if let Some((attached, keyboards)) = take_attached() {
                pprintln!("\nusb: {attached} device(s) attached; {keyboards} keyboard(s) ready");
                ed.redraw(PROMPT, &mut PanicWriter);
            }
            core::hint::spin_loop();
            continue;
        };
        match ed.key(k, &mut PanicWriter) {
            Edit::Pending => continue,
            Edit::Cancelled => {}
            Edit::Done => {
                let mut line = [0u8; crate::lineedit::LINE_MAX];
                let n = ed.line().len();
                line[..n].copy_from_slice(ed.line().as_bytes());
                ed.clear();
                execute(core::str::from_utf8(&line[..n]).unwrap_or(""));
            }
        }
        if resumable && let Some(step) = crate::sched::freeze::take_resume() {
            return step;
        }
        pprint!("{PROMPT}");
    }
}

/// Devices attached since the last look, by whichever owns USB now.
fn take_attached() -> Option<(u32, usize)> {
    if crate::panic::panicking() {
        // SAFETY: the panic CPU, after the takeover in `run`.
        unsafe { crate::usb::panic_take_attached() }
    } else {
        crate::usb::breakin::take_attached()
    }
}

/// Names, above the prompt, every CPU that answered neither the stop IPI
/// nor the NMI: it may still be running (wedged in SMM or in hardware) while
/// locks are faked around it.
fn warn_running_cpus() {
    for c in cpu::all() {
        if c.index() != cpu::current_index() && c.state() == CpuState::Online {
            pprintln!(
                "WARNING: cpu {} did not stop; it may still be running, and locks are faked around it",
                c.index()
            );
        }
    }
}

fn execute(line: &str) {
    crate::command::execute(Console::Panic, line, &mut PanicWriter);
}
