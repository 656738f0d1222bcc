//! Benchmarks printed in TSC cycles from one boot (`bench` in the shell or
//! `test=bench`): uncontended lock+unlock of every lock type (and the raw lock
//! with and without the after-panic slow path, and `spin::Mutex`), a context
//! switch, and a cross-CPU IPI round trip.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lock_api::RawMutex as _;

use crate::println;
use crate::sched::Mutex;
use crate::sync::raw::RawSpinImpl;
use crate::sync::{RwLock, SpinLock};
use crate::time::rdtsc;

const N: u64 = 20_000;

fn per_op(mut f: impl FnMut()) -> u64 {
    // Best of 5 runs of N operations.
    let mut best = u64::MAX;
    for _ in 0..5 {
        let t = rdtsc();
        for _ in 0..N {
            f();
        }
        best = best.min((rdtsc() - t) / N);
    }
    best
}

static PONG: AtomicBool = AtomicBool::new(false);
static PINGS: AtomicU64 = AtomicU64::new(0);

/// Installs the ping IPI's handler in `arch`'s trap table.
pub fn install_trap_handler() {
    use crate::arch::{apic, idt::vector, trap};
    trap::set_handler(vector::PING, |_| {
        apic::eoi();
        on_ping();
    });
}

/// IPI benchmark handler: acknowledges a ping.
fn on_ping() {
    PINGS.fetch_add(1, Ordering::Relaxed);
    PONG.store(true, Ordering::Release);
}

/// Median cycles of an IPI to `target` until its handler ran, or `None`.
pub fn ipi_round_trip(target: usize) -> Option<u64> {
    round_trips::<64>(target, 0)
}

/// Median cycles of an IPI to `target` after it sat halted (idle, `hlt`)
/// for `idle_us` each time: what the stop IPI of a panic meets, a CPU whose
/// emulator thread has gone to sleep (back-to-back pings find it awake).
pub fn ipi_round_trip_halted(target: usize, idle_us: u64) -> Option<u64> {
    round_trips::<16>(target, idle_us)
}

fn round_trips<const N: usize>(target: usize, idle_us: u64) -> Option<u64> {
    let mut samples = [0u64; N];
    for s in samples.iter_mut() {
        if idle_us > 0 {
            crate::time::delay_us(idle_us);
        }
        PONG.store(false, Ordering::Release);
        let t = rdtsc();
        crate::arch::apic::send_ipi(target, crate::arch::idt::vector::PING);
        let d = crate::time::deadline_after_us(100_000);
        while !PONG.load(Ordering::Acquire) {
            if crate::time::passed(d) {
                // The target runs with interrupts off (not halted): let the
                // late answer land before the caller tries again.
                let d = crate::time::deadline_after_us(2_000_000);
                while !PONG.load(Ordering::Acquire) && !crate::time::passed(d) {
                    core::hint::spin_loop();
                }
                return None;
            }
            core::hint::spin_loop();
        }
        *s = rdtsc() - t;
    }
    samples.sort_unstable();
    Some(samples[samples.len() / 2])
}

/// Runs every benchmark and prints one table.
pub fn run() {
    let spin = SpinLock::new(0u64);
    let mutex = Mutex::new(0u64);
    let rw = RwLock::new(0u64);
    let aware = RawSpinImpl::<true>::new();
    let plain = RawSpinImpl::<false>::new();
    let spin_crate = spin::Mutex::new(0u64);
    let c_aware = per_op(|| {
        aware.lock();
        // SAFETY: locked on the line above.
        unsafe { aware.unlock() };
    });
    let c_plain = per_op(|| {
        plain.lock();
        // SAFETY: locked on the line above.
        unsafe { plain.unlock() };
    });
    let c_spin = per_op(|| *spin.lock() += 1);
    let c_mutex = per_op(|| *mutex.lock() += 1);
    let c_rw_w = per_op(|| *rw.write() += 1);
    let c_rw_r = per_op(|| {
        core::hint::black_box(*rw.read());
    });
    let c_crate = per_op(|| *spin_crate.lock() += 1);
    println!(
        "benchmark (TSC cycles, {} MHz TSC)",
        crate::time::tsc_hz() / 1_000_000
    );
    println!("  raw lock+unlock, panic-aware slow path : {c_aware}");
    println!("  raw lock+unlock, no panic check        : {c_plain}");
    println!(
        "  ratio aware/plain                      : {:.2}",
        c_aware as f64 / c_plain.max(1) as f64
    );
    println!("  spin::Mutex lock+unlock                : {c_crate}");
    println!("  SpinLock (IRQ-safe) lock+unlock        : {c_spin}");
    println!("  Mutex (sleeping) lock+unlock           : {c_mutex}");
    println!("  RwLock write lock+unlock               : {c_rw_w}");
    println!("  RwLock read lock+unlock                : {c_rw_r}");
    println!(
        "  context switch (yield between 2 threads): {}",
        context_switch()
    );
    let n = crate::arch::cpu::all().len();
    match (n > 1).then(|| ipi_round_trip(1)).flatten() {
        Some(c) => println!("  IPI round trip cpu0->cpu1             : {c}"),
        None => println!("  IPI round trip                         : n/a (one CPU)"),
    }
    print_halted_ipi();
}

/// Prints the IPI round trip cpu0->cpu1 to a CPU halted 20 ms (median of
/// 16): the reference of the stop latency, also printed before a trigger
/// fires on `bench.ipi=1` so that both come from the same boot. A run in
/// which the target did not answer within 100 ms (it ran with interrupts
/// off, e.g. the USB thread's port debounce at boot) is tried again, up to
/// 10 times.
pub fn print_halted_ipi() {
    let n = crate::arch::cpu::all().len();
    let measured = (n > 1)
        .then(|| (0..10).find_map(|_| ipi_round_trip_halted(1, 20_000)))
        .flatten();
    match measured {
        Some(c) => println!("  IPI round trip cpu0->cpu1, halted 20 ms: {c}"),
        None if n > 1 => println!("  IPI round trip, halted                 : n/a (no answer)"),
        None => println!("  IPI round trip, halted                 : n/a (one CPU)"),
    }
}

/// Cycles per switch: two threads pinned to this CPU yield to each other.
fn context_switch() -> u64 {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static STOP: AtomicBool = AtomicBool::new(false);
    const SWITCHES: u64 = 2_000;
    COUNT.store(0, Ordering::Relaxed);
    STOP.store(false, Ordering::Relaxed);
    let me = crate::arch::cpu::current_index();
    let body = || {
        while !STOP.load(Ordering::Relaxed) {
            COUNT.fetch_add(1, Ordering::Relaxed);
            crate::sched::yield_now();
        }
    };
    let a = crate::sched::spawn_on("cs-a", Some(me), body);
    let b = crate::sched::spawn_on("cs-b", Some(me), body);
    let t = rdtsc();
    // Let them run: this thread yields too, so switches happen among three.
    while COUNT.load(Ordering::Relaxed) < SWITCHES {
        crate::sched::yield_now();
    }
    let cycles = rdtsc() - t;
    let count = COUNT.load(Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
    a.join();
    b.join();
    cycles / count.max(1)
}
