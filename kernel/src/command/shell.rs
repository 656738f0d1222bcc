//! The bodies of the commands only the shell (`shell> `) offers: they run
//! in a thread, may take locks and allocate.

use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::parse::load_count;
use super::{Args, Console};
use crate::sched::{JoinHandle, Mutex};
use crate::sync::SpinLock;

/// `echo TEXT`.
pub fn echo(args: &Args<'_>, w: &mut dyn Write, _: Console) {
    let _ = writeln!(w, "{}", args.rest());
}

/// `uptime`.
pub fn uptime(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    let us = crate::time::now_us();
    let _ = writeln!(w, "up {}.{:06} s", us / 1_000_000, us % 1_000_000);
    let n = crate::sched::freeze::break_ins();
    if n > 0 {
        let stopped = crate::time::cycles_to_us(crate::sched::freeze::stopped_cycles());
        let _ = writeln!(
            w,
            "stopped {}.{:06} s in {n} break-in(s) (not seen by the scheduler's clock)",
            stopped / 1_000_000,
            stopped % 1_000_000
        );
    }
}

/// `panic [KIND]`. At `db> ` after a break-in: the break-in becomes a
/// panic, on this CPU (the others stay stopped; locks are faked from then
/// on, as after any panic).
pub fn panic(args: &Args<'_>, w: &mut dyn Write, console: Console) {
    if console == Console::Panic {
        if crate::panic::panicking() {
            let _ = writeln!(w, "panic: this is a panic already");
            return;
        }
        panic!("break-in turned into a panic at db>");
    }
    let kind = args.first().unwrap_or("plain");
    if kind == "help" {
        for (k, d) in crate::panic::trigger::TRIGGERS {
            let _ = writeln!(w, "  panic {k:<8} {d}");
        }
    } else if let Err(e) = crate::panic::trigger::run(kind) {
        let _ = writeln!(w, "panic: {e}");
    }
}

/// `break`: into the debugger on this CPU (a self-IPI, so it enters from
/// a trap frame, outside any lock); returns after `continue`.
pub fn break_in(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    let _ = writeln!(w, "breaking in");
    crate::arch::trap::request_break(crate::arch::trap::BREAK_COMMAND);
}

/// `sleep MS`: sleeps this thread MS milliseconds (at most 60 s) and says
/// how long that took on the wall clock and how much of it the system
/// spent stopped in break-ins, which the scheduler's clock leaves out
/// (`sched::freeze`): wall = slept + stopped.
pub fn sleep(args: &Args<'_>, w: &mut dyn Write, _: Console) {
    let ms = match args.first().and_then(super::parse::parse_num) {
        Some(ms) if ms <= 60_000 => ms,
        _ => {
            let _ = writeln!(w, "usage: sleep MS (MS <= 60000)");
            return;
        }
    };
    let (t0, s0) = (crate::time::rdtsc(), crate::sched::freeze::stopped_cycles());
    crate::sched::sleep_us(ms * 1000);
    let wall = crate::time::cycles_to_us(crate::time::rdtsc() - t0) / 1000;
    let stopped = crate::time::cycles_to_us(crate::sched::freeze::stopped_cycles() - s0) / 1000;
    let _ = writeln!(
        w,
        "slept {ms} ms: {wall} ms on the wall clock, {stopped} ms of it stopped"
    );
}

/// `cli-spin SECS` (a test switch): another CPU spins with interrupts off
/// for SECS seconds (at most 600), as a driver stuck in a critical section
/// would. A break-in meanwhile stops it by NMI and refuses `continue`.
pub fn cli_spin(args: &Args<'_>, w: &mut dyn Write, _: Console) {
    let secs = match args.first().and_then(super::parse::parse_num) {
        Some(s) if s <= 600 => s,
        _ => {
            let _ = writeln!(w, "usage: cli-spin SECS (SECS <= 600)");
            return;
        }
    };
    let me = crate::arch::cpu::current_index();
    let Some(c) = crate::arch::cpu::all()
        .iter()
        .find(|c| c.index() != me && c.state() == crate::arch::cpu::CpuState::Online)
        .map(|c| c.index())
    else {
        let _ = writeln!(w, "cli-spin: needs a second CPU");
        return;
    };
    static SPINNING: AtomicBool = AtomicBool::new(false);
    SPINNING.store(false, Ordering::SeqCst);
    crate::sched::spawn_on("cli-spin", Some(c), move || {
        x86_64::instructions::interrupts::disable();
        SPINNING.store(true, Ordering::SeqCst);
        let deadline = crate::time::deadline_after_us(secs * 1_000_000);
        while !crate::time::passed(deadline) {
            core::hint::spin_loop();
        }
        x86_64::instructions::interrupts::enable();
    });
    let deadline = crate::time::deadline_after_us(2_000_000);
    while !SPINNING.load(Ordering::SeqCst) && !crate::time::passed(deadline) {
        crate::sched::yield_now();
    }
    if SPINNING.load(Ordering::SeqCst) {
        let _ = writeln!(w, "cpu {c} spins with interrupts off for {secs} s");
    } else {
        let _ = writeln!(w, "cli-spin: cpu {c} did not start spinning within 2 s");
    }
}

/// `bench` (prints on the console itself: `test=bench` runs it too).
pub fn bench(_: &Args<'_>, _: &mut dyn Write, _: Console) {
    crate::bench::run();
}

/// `mem` in the shell: the memory map and the heap.
pub fn mem(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    let f = crate::mm::FRAMES.lock();
    let _ = writeln!(w, "physical memory map:");
    for r in &f.map[..f.map_len] {
        let _ = writeln!(
            w,
            "  {:#012x}-{:#012x} {:>8} KiB  {}",
            r.start,
            r.start + r.len,
            r.len / 1024,
            crate::mm::frame::kind_name(r.kind)
        );
    }
    let _ = writeln!(
        w,
        "frames: {} total, {} used, {} free (4 KiB each)",
        f.total,
        f.used,
        f.total - f.used
    );
    drop(f);
    let (hs, he) = crate::mm::heap::range();
    let st = crate::mm::heap::stats();
    let _ = writeln!(
        w,
        "heap: {:#x}-{:#x} ({} KiB), {} bytes in {} allocations",
        hs,
        he,
        (he - hs) / 1024,
        st.0,
        st.1
    );
}

/// Shared state the load threads hammer.
static LOAD_SPIN: SpinLock<u64> = SpinLock::new(0);
static LOAD_MUTEX: Mutex<u64> = Mutex::new(0);
static LOAD_STOP: AtomicBool = AtomicBool::new(false);
static LOAD_ROUNDS: AtomicU64 = AtomicU64::new(0);
static LOAD: SpinLock<Vec<JoinHandle>> = SpinLock::new(Vec::new());

/// `spawn-load N`.
pub fn spawn_load(args: &Args<'_>, w: &mut dyn Write, _: Console) {
    let n = match load_count(args) {
        Ok(n) => n,
        Err(e) => {
            let _ = writeln!(w, "{e}");
            return;
        }
    };
    LOAD_STOP.store(false, Ordering::Relaxed);
    let mut handles = Vec::new();
    for i in 0..n {
        handles.push(crate::sched::spawn(&alloc::format!("load/{i}"), || {
            while !LOAD_STOP.load(Ordering::Relaxed) {
                *LOAD_SPIN.lock() += 1;
                *LOAD_MUTEX.lock() += 1;
                LOAD_ROUNDS.fetch_add(1, Ordering::Relaxed);
                for _ in 0..2000 {
                    core::hint::spin_loop();
                }
            }
        }));
    }
    LOAD.lock().extend(handles);
    let _ = writeln!(w, "started {n} load threads");
}

/// `kill-load`.
pub fn kill_load(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    LOAD_STOP.store(true, Ordering::Relaxed);
    let handles: Vec<_> = core::mem::take(&mut *LOAD.lock());
    let n = handles.len();
    for h in handles {
        h.join();
    }
    let _ = writeln!(
        w,
        "stopped {n} load threads ({} rounds; spin {} mutex {})",
        LOAD_ROUNDS.load(Ordering::Relaxed),
        *LOAD_SPIN.lock(),
        *LOAD_MUTEX.lock()
    );
}
