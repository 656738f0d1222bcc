//! The interactive shell (`shell> `), fed by the console input queue (serial
//! and USB keyboard).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::cpu;
use crate::lineedit::{ByteDecoder, Edit, LineEditor};
use crate::sched::JoinHandle;
use crate::sync::{Mutex, SpinLock};
use crate::{print, println};

/// The shell prompt.
pub const PROMPT: &str = "shell> ";

struct Echo;

impl core::fmt::Write for Echo {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::console::_print(format_args!("{s}"));
        Ok(())
    }
}

/// Runs the shell forever on the calling thread.
pub fn run() -> ! {
    let mut dec = ByteDecoder::new();
    let mut ed = alloc::boxed::Box::new(LineEditor::new());
    print!("{PROMPT}");
    loop {
        let b = crate::console::read_byte();
        let Some(k) = dec.feed(b) else { continue };
        match ed.key(k, &mut Echo) {
            Edit::Pending => continue,
            Edit::Cancelled => {}
            Edit::Done => {
                let line = alloc::string::String::from(ed.line());
                ed.clear();
                execute(&line);
            }
        }
        print!("{PROMPT}");
    }
}

/// Runs one shell command line.
pub fn execute(line: &str) {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else { return };
    let rest: Vec<&str> = words.collect();
    match cmd {
        "help" => help(),
        "echo" => println!("{}", line.trim_start()[4..].trim_start()),
        "uptime" => {
            let us = crate::time::now_us();
            println!("up {}.{:06} s", us / 1_000_000, us % 1_000_000);
        }
        "mem" => mem(),
        "cpus" => cpus(),
        "ps" => ps(),
        "spawn-load" => match rest.first().and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= 64 => spawn_load(n),
            _ => println!("usage: spawn-load N (N <= 64)"),
        },
        "kill-load" => kill_load(),
        "panic" => {
            let kind = rest.first().copied().unwrap_or("plain");
            if kind == "help" {
                for (k, d) in crate::panic::trigger::TRIGGERS {
                    println!("  panic {k:<8} {d}");
                }
            } else if let Err(e) = crate::panic::trigger::run(kind) {
                println!("panic: {e}");
            }
        }
        "bench" => crate::bench::run(),
        "lsusb" | "kbd" => match crate::usb::CONTROLLER.lock().as_ref() {
            Some(c) if cmd == "lsusb" => crate::usb::lsusb(&mut Echo, c),
            Some(c) => crate::usb::kbd(&mut Echo, c),
            None => println!("{cmd}: no USB controller"),
        },
        "reboot" => {
            println!("rebooting");
            crate::acpi::reset();
        }
        "poweroff" => {
            println!("powering off");
            crate::power::poweroff(true);
        }
        _ => println!("unknown command: {cmd}"),
    }
}

fn help() {
    println!("commands:");
    println!("  help                 this list");
    println!("  echo TEXT            print TEXT");
    println!("  uptime               time since boot");
    println!("  mem                  memory map and allocator use");
    println!("  cpus                 CPUs: APIC id, state, current thread, ticks");
    println!("  ps                   threads: state, CPU, run time");
    println!("  spawn-load N         start N busy threads hammering shared locks");
    println!("  kill-load            stop them");
    println!("  panic [KIND]         panic now (`panic help` lists kinds)");
    println!("  bench                lock, context switch and IPI figures");
    println!("  lsusb                USB controller, ports and devices");
    println!("  kbd                  keyboard layout, repeat, LEDs, counters");
    println!("  reboot, poweroff");
}

fn mem() {
    let f = crate::mm::FRAMES.lock();
    println!("physical memory map:");
    for r in &f.map[..f.map_len] {
        println!(
            "  {:#012x}-{:#012x} {:>8} KiB  {}",
            r.start,
            r.start + r.len,
            r.len / 1024,
            crate::mm::frame::kind_name(r.kind)
        );
    }
    println!(
        "frames: {} total, {} used, {} free (4 KiB each)",
        f.total,
        f.used,
        f.total - f.used
    );
    drop(f);
    let (hs, he) = crate::mm::heap::range();
    let st = crate::mm::heap::stats();
    println!(
        "heap: {:#x}-{:#x} ({} KiB), {} bytes in {} allocations",
        hs,
        he,
        (he - hs) / 1024,
        st.0,
        st.1
    );
}

fn cpus() {
    for c in cpu::all() {
        let t = c.current.load(Ordering::Acquire);
        let name = if t.is_null() {
            "-"
        } else {
            // SAFETY: `current` always points at a live thread.
            unsafe { (*t).name.as_str() }
        };
        println!(
            "cpu {}: apic {} {} thread {} ticks {} queued {}",
            c.index(),
            c.apic_id.load(Ordering::Relaxed),
            c.state().name(),
            name,
            c.ticks.load(Ordering::Relaxed),
            crate::sched::queue_len(c.index())
        );
    }
}

fn ps() {
    println!("  id  state     cpu  cpu-time(us)  switches  name");
    for t in crate::sched::threads() {
        println!(
            "{:>4}  {:<8} {:>4}  {:>12}  {:>8}  {}",
            t.id,
            t.state().name(),
            t.cpu.load(Ordering::Relaxed),
            crate::time::cycles_to_us(t.cpu_cycles.load(Ordering::Relaxed)),
            t.switches.load(Ordering::Relaxed),
            t.name
        );
    }
}

/// Shared state the load threads hammer.
static LOAD_SPIN: SpinLock<u64> = SpinLock::new(0);
static LOAD_MUTEX: Mutex<u64> = Mutex::new(0);
static LOAD_STOP: AtomicBool = AtomicBool::new(false);
static LOAD_ROUNDS: AtomicU64 = AtomicU64::new(0);
static LOAD: SpinLock<Vec<JoinHandle>> = SpinLock::new(Vec::new());

fn spawn_load(n: usize) {
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
    println!("started {n} load threads");
}

fn kill_load() {
    LOAD_STOP.store(true, Ordering::Relaxed);
    let handles: Vec<_> = core::mem::take(&mut *LOAD.lock());
    let n = handles.len();
    for h in handles {
        h.join();
    }
    println!(
        "stopped {n} load threads ({} rounds; spin {} mutex {})",
        LOAD_ROUNDS.load(Ordering::Relaxed),
        *LOAD_SPIN.lock(),
        *LOAD_MUTEX.lock()
    );
}
