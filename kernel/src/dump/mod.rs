//! Crash dumps: a virtio-blk disk reserved at boot and written in polled
//! mode at panic time, an i6300esb watchdog armed at panic time, and the
//! ELF core format from the `crashdump` crate (`savecore` on the host reads
//! it back).
//!
//! Boot: [`init`] finds the disk and the watchdog and reserves every buffer.
//! Panic: [`arm_watchdog`] from the panic path, then [`run`] from the panic
//! console (`dump`, `dump full`) or the `panic=dump` policy.

pub mod blk;
pub mod hal;
pub mod rtc;
pub mod watchdog;
pub mod writer;

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use blk::DumpDisk;
pub use writer::Outcome;

use crate::pprintln;

/// `dump.fault=stall`: stop the dump after the first chunk without petting
/// the watchdog (to prove the watchdog resets a hung dump).
pub static FAULT_STALL: AtomicBool = AtomicBool::new(false);

struct DiskCell(UnsafeCell<Option<DumpDisk>>);
// SAFETY: written once by the boot CPU in `init` before any other user;
// afterwards used only by the dump, which runs on one CPU at a time (the
// panic CPU with every other CPU parked, or the benchmark scenario).
unsafe impl Sync for DiskCell {}

static DISK: DiskCell = DiskCell(UnsafeCell::new(None));
/// Bytes per second of the normal-mode benchmark write (0: not measured).
static BENCH_NORMAL_BPS: AtomicU64 = AtomicU64::new(0);

/// The dump disk.
///
/// # Safety
/// Single user: the panic CPU after the stop, or the boot-time benchmark.
unsafe fn disk() -> Option<&'static mut DumpDisk> {
    // SAFETY: forwarded to the caller.
    unsafe { (*DISK.0.get()).as_mut() }
}

/// Finds the dump disk and the watchdog. Boot, after PCI and the heap, before
/// interrupts are enabled.
pub fn init() {
    match DumpDisk::probe() {
        Ok(d) => {
            log::info!(
                "dump: virtio-blk {} ({} MiB) reserved for crash dumps",
                d.function,
                d.capacity_bytes() >> 20
            );
            // SAFETY: boot CPU, before anyone else can use the disk.
            unsafe { *DISK.0.get() = Some(d) };
        }
        Err(blk::ProbeError::NotFound) => {
            log::info!("dump: no virtio-blk disk: crash dumps disabled")
        }
        Err(e) => log::warn!("dump: dump disk unusable: {e:?}"),
    }
    watchdog::init();
}

/// Arms the watchdog (panic path, after the other CPUs stopped).
pub fn arm_watchdog() {
    watchdog::arm();
}

/// Writes a dump (minimal, or all RAM with `full`). Panic CPU only.
pub fn run(full: bool) -> Outcome {
    // SAFETY: called on the panic CPU with every other CPU parked.
    let Some(d) = (unsafe { disk() }) else {
        pprintln!(
            "dump: no dump device (attach a virtio-blk disk; the runner adds one unless --no-dump-disk)"
        );
        return Outcome::Failed;
    };
    let out = writer::write(d, full);
    if let Outcome::Complete { bytes, us } = out {
        let normal = BENCH_NORMAL_BPS.load(Ordering::Relaxed);
        if normal > 0 {
            let dump_bps = bytes * 1_000_000 / us.max(1);
            pprintln!(
                "dump-bench: polled dump {} KB/s, normal-mode sequential write {} KB/s, ratio {}.{:02}",
                dump_bps / 1000,
                normal / 1000,
                dump_bps * 100 / normal / 100,
                dump_bps * 100 / normal % 100
            );
        }
    }
    out
}

/// `test=dump-bench`: writes `MiB` sequentially in normal mode (scheduler
/// running, interrupts on), then panics with `panic=dump` so the polled dump
/// of about the same size runs in the same boot and prints the ratio.
pub fn bench() -> bool {
    // SAFETY: boot CPU running the scenario; no panic yet.
    let Some(d) = (unsafe { disk() }) else {
        crate::println!("dump-bench: no dump disk");
        return false;
    };
    let total: u64 = 32 << 20;
    for s in 0..blk::DEPTH {
        d.buffer(s).fill(0xa5);
    }
    let start = crate::arch::rdtsc();
    let mut off = 0u64;
    while off < total {
        let slot = loop {
            if let Some(s) = d.free_slot() {
                break s;
            }
            if let Err(e) = d.complete_one() {
                crate::println!("dump-bench: {e}");
                return false;
            }
        };
        if let Err(e) = d.submit(slot, crashdump::CORE_OFFSET + off, blk::CHUNK) {
            crate::println!("dump-bench: {e}");
            return false;
        }
        off += blk::CHUNK as u64;
    }
    if let Err(e) = d.drain() {
        crate::println!("dump-bench: {e}");
        return false;
    }
    let us = crate::time::cycles_to_us(crate::arch::rdtsc() - start).max(1);
    let bps = total * 1_000_000 / us;
    BENCH_NORMAL_BPS.store(bps, Ordering::Relaxed);
    crate::println!(
        "dump-bench: normal-mode sequential write: {} MiB in {} ms ({} KB/s)",
        total >> 20,
        us / 1000,
        bps / 1000
    );
    crate::panic::set_policy(crate::panic::Policy::Dump);
    panic!("dump-bench: measuring the polled dump");
}
