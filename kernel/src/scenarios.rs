//! Kernel-side test scenarios, selected with `test=NAME` on the command line.
//! Each prints what it checked and exits QEMU through `isa-debug-exit`:
//! success only if every check held.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::arch::cpu::{self, CpuState};
use crate::println;
use crate::sched::Mutex;
use crate::sync::{RwLock, SpinLock};

/// Runs scenario `name`; never returns.
pub fn run(name: &str) -> ! {
    println!("scenario {name}: start");
    let ok = match name {
        "smp" => smp(),
        "locks" => locks(),
        "pingpong" => pingpong(),
        "spread" => spread(),
        "triple-fault" => triple_fault(),
        "dump-bench" => {
            if crate::dump::bench() {
                crate::panic::set_policy(crate::panic::Policy::Dump);
                panic!("dump-bench: measuring the polled dump");
            }
            false
        }
        "bench" => {
            crate::bench::run();
            true
        }
        "fb-lines" => fb_lines(),
        _ => {
            println!("scenario {name}: unknown scenario");
            false
        }
    };
    println!("scenario {name}: {}", if ok { "PASS" } else { "FAIL" });
    crate::power::poweroff(ok)
}

/// Times 100 lines on each screen: the VGA text buffer, the framebuffer
/// console (`fb=bochs` must have set it up) and the whole console path
/// (serial, VGA, framebuffer), each line ending in a scroll.
fn fb_lines() -> bool {
    use crate::time::{cycles_to_us, rdtsc};
    const LINES: usize = 100;
    const LINE: &str =
        "fb-lines: 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    if !crate::fb::active() {
        println!("fb-lines: no framebuffer console (boot with fb=bochs)");
        return false;
    }
    let time = |f: &dyn Fn()| {
        let t = rdtsc();
        crate::console::serialised(|| (0..LINES).for_each(|_| f()));
        cycles_to_us(rdtsc() - t)
    };
    let vga = time(&|| crate::vga::write_str(LINE));
    let fb = time(&|| crate::fb::write_str(LINE));
    let t = rdtsc();
    for i in 0..LINES {
        println!("fb-lines: console line {i:3}: 0123456789 abcdefghijklmnopqrstuvwxyz");
    }
    let all = cycles_to_us(rdtsc() - t);
    println!("fb-lines: {LINES} lines: vga {vga} us, framebuffer {fb} us, console {all} us");
    true
}

fn online() -> usize {
    cpu::all()
        .iter()
        .filter(|c| c.state() == CpuState::Online)
        .count()
}

fn smp() -> bool {
    let n = online();
    println!("cpus online: {n}");
    n == cpu::all().len()
}

/// Many threads on all CPUs increment lock-protected counters and a
/// per-thread counter; the totals must be exact.
fn locks() -> bool {
    const THREADS: usize = 16;
    const ROUNDS: u64 = 2_000;
    static SPIN: SpinLock<u64> = SpinLock::new(0);
    static MUTEX: Mutex<u64> = Mutex::new(0);
    static RW: RwLock<u64> = RwLock::new(0);
    let per_thread: Arc<Vec<AtomicU64>> =
        Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let cpus_seen = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (per_thread, cpus_seen) = (per_thread.clone(), cpus_seen.clone());
            crate::sched::spawn(&alloc::format!("stress/{i}"), move || {
                for r in 0..ROUNDS {
                    // Non-atomic read-modify-write under each lock.
                    {
                        let mut g = SPIN.lock();
                        let v = *g;
                        core::hint::spin_loop();
                        *g = v + 1;
                    }
                    {
                        let mut g = MUTEX.lock();
                        let v = *g;
                        *g = v + 1;
                    }
                    {
                        let mut g = RW.write();
                        *g += 1;
                    }
                    let _ = *RW.read();
                    per_thread[i].fetch_add(1, Ordering::Relaxed);
                    cpus_seen.fetch_or(1 << cpu::current_index(), Ordering::Relaxed);
                    if r % 64 == 0 {
                        crate::sched::yield_now();
                    }
                }
            })
        })
        .collect();
    // A stuck stress test is diagnosed by a panic: its report shows where
    // every CPU is, and the panic console can print their backtraces.
    let deadline = crate::time::deadline_after_us(30_000_000);
    while handles
        .iter()
        .any(|h| h.thread().state() != crate::sched::thread::ThreadState::Exited)
    {
        if crate::time::passed(deadline) {
            // SAFETY: only reads the raw lock's state for the report.
            let (owner, sleepers, waiters) = unsafe { MUTEX.raw() }.debug_state();
            panic!(
                "lock stress did not finish within 30 s (mutex owner {owner:#x}, {sleepers} sleepers, {waiters} waiting; spin lock {})",
                if SPIN.is_locked() { "held" } else { "free" }
            );
        }
        crate::sched::sleep_us(10_000);
    }
    for h in handles {
        h.join();
    }
    let expect = THREADS as u64 * ROUNDS;
    let per: u64 = per_thread.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let (s, m, w) = (*SPIN.lock(), *MUTEX.lock(), *RW.read());
    let seen = cpus_seen.load(Ordering::Relaxed).count_ones();
    println!(
        "lock stress: spin {s} mutex {m} rwlock {w} per-thread {per} expected {expect}; ran on {seen} cpus"
    );
    s == expect && m == expect && w == expect && per == expect
}

/// Two threads pinned to different CPUs hand a token back and forth through
/// wait queues.
fn pingpong() -> bool {
    use crate::sched::wait::WaitQueue;
    const ROUNDS: u64 = 200;
    static TOKEN: AtomicU64 = AtomicU64::new(0);
    static WQ_A: WaitQueue = WaitQueue::new();
    static WQ_B: WaitQueue = WaitQueue::new();
    let n = cpu::all().len();
    let (ca, cb) = (0, if n > 1 { 1 } else { 0 });
    let a = crate::sched::spawn_on("ping", Some(ca), || {
        for r in 0..ROUNDS {
            WQ_A.wait_until(|| TOKEN.load(Ordering::Acquire) == 2 * r);
            TOKEN.store(2 * r + 1, Ordering::Release);
            WQ_B.wake_one();
        }
    });
    let b = crate::sched::spawn_on("pong", Some(cb), || {
        for r in 0..ROUNDS {
            WQ_B.wait_until(|| TOKEN.load(Ordering::Acquire) == 2 * r + 1);
            TOKEN.store(2 * r + 2, Ordering::Release);
            WQ_A.wake_one();
        }
    });
    a.join();
    b.join();
    let t = TOKEN.load(Ordering::Relaxed);
    println!(
        "pingpong: {} rounds between cpu {ca} and cpu {cb}, token {t}",
        ROUNDS
    );
    t == 2 * ROUNDS
}

/// Busy threads are seen running on every CPU.
fn spread() -> bool {
    let n = cpu::all().len();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static STOP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    let handles: Vec<_> = (0..2 * n)
        .map(|i| {
            crate::sched::spawn(&alloc::format!("spin/{i}"), || {
                while !STOP.load(Ordering::Relaxed) {
                    SEEN.fetch_or(1 << cpu::current_index(), Ordering::Relaxed);
                    core::hint::spin_loop();
                }
            })
        })
        .collect();
    let deadline = crate::time::deadline_after_us(5_000_000);
    while SEEN.load(Ordering::Relaxed).count_ones() < n as u32 && !crate::time::passed(deadline) {
        crate::sched::sleep_us(10_000);
    }
    STOP.store(true, Ordering::Relaxed);
    for h in handles {
        h.join();
    }
    let seen = SEEN.load(Ordering::Relaxed).count_ones();
    println!("spread: busy threads ran on {seen} of {n} cpus");
    seen == n as u32
}

/// Deliberately triple-faults (to prove the harness reports it as a failure).
fn triple_fault() -> bool {
    println!("triple fault now");
    // SAFETY: deliberately unsound: an empty IDT makes the next exception a
    // triple fault, which resets the machine; that is the point.
    unsafe {
        let idt = x86_64::structures::DescriptorTablePointer {
            limit: 0,
            base: x86_64::VirtAddr::new(0),
        };
        x86_64::instructions::tables::lidt(&idt);
        core::arch::asm!("int3");
    }
    false
}
