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
pub mod volatile;
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

/// `test=dump-bench`: writes [`BENCH_BYTES`] of RAM sequentially in normal
/// mode (scheduler running, interrupts on) three times and keeps the
/// median, then panics with `panic=dump` so the polled dump runs in the same
/// boot and prints the ratio.
pub fn bench() -> bool {
    // SAFETY: boot CPU running the scenario; no panic yet.
    let Some(d) = (unsafe { disk() }) else {
        crate::println!("dump-bench: no dump disk");
        return false;
    };
    let Some(source) = bench_source() else {
        crate::println!(
            "dump-bench: no {} MiB run of RAM to write",
            BENCH_BYTES >> 20
        );
        return false;
    };
    let mut rates = [0u64; 3];
    for r in &mut rates {
        match sequential_write(d, source) {
            Ok(us) => *r = BENCH_BYTES * 1_000_000 / us.max(1),
            Err(e) => {
                crate::println!("dump-bench: {e}");
                return false;
            }
        }
    }
    rates.sort_unstable();
    let bps = rates[1];
    BENCH_NORMAL_BPS.store(bps, Ordering::Relaxed);
    crate::println!(
        "dump-bench: normal-mode sequential write: {} MiB x 3, median {} KB/s (min {}, max {})",
        BENCH_BYTES >> 20,
        bps / 1000,
        rates[0] / 1000,
        rates[2] / 1000
    );
    crate::panic::set_policy(crate::panic::Policy::Dump);
    panic!("dump-bench: measuring the polled dump");
}

/// Bytes of one normal-mode benchmark write.
const BENCH_BYTES: u64 = 64 << 20;

/// A run of [`BENCH_BYTES`] of usable RAM above 1 MiB: the benchmark writes
/// RAM as it is (the device only reads it), like a normal-mode write of
/// distinct pages, rather than one hot buffer over and over.
fn bench_source() -> Option<u64> {
    let frames = crate::mm::FRAMES.lock();
    frames.map[..frames.map_len]
        .iter()
        .filter(|r| r.kind == 1)
        .map(|r| {
            (
                r.start.max(1 << 20).next_multiple_of(1 << 20),
                r.start + r.len,
            )
        })
        .find(|&(s, e)| s + BENCH_BYTES <= e)
        .map(|(s, _)| s)
}

/// Writes [`BENCH_BYTES`] of RAM from `source` at the core's offset, the same
/// requests as a dump (in place, [`blk::DEPTH`] in flight); returns the
/// microseconds taken.
fn sequential_write(d: &mut DumpDisk, source: u64) -> Result<u64, blk::IoError> {
    let start = crate::arch::rdtsc();
    let mut off = 0u64;
    while off < BENCH_BYTES {
        let slot = loop {
            if let Some(s) = d.free_slot() {
                break s;
            }
            d.complete_one()?;
        };
        // SAFETY: usable, identity-mapped RAM that is never freed; the
        // device only reads it.
        let data = unsafe { core::slice::from_raw_parts((source + off) as *const u8, blk::CHUNK) };
        // SAFETY: as above; valid until the request completes.
        unsafe { d.submit_memory(slot, crashdump::CORE_OFFSET + off, data) }?;
        off += blk::CHUNK as u64;
    }
    d.drain()?;
    Ok(crate::time::cycles_to_us(crate::arch::rdtsc() - start))
}
