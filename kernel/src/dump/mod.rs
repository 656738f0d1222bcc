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
    let normal = BENCH_NORMAL_BPS.load(Ordering::Relaxed);
    if normal > 0 {
        return bench_after_panic(d, full, normal);
    }
    writer::write(d, full)
}

fn ratio(a: u64, b: u64) -> (u64, u64) {
    let r = a * 100 / b.max(1);
    (r / 100, r % 100)
}

/// The panic half of `test=dump-bench`: the same sequential write as in
/// normal mode, now polled with the world stopped (the I/O path alone), then
/// three dumps; medians, and both ratios to the normal-mode write.
fn bench_after_panic(d: &mut DumpDisk, full: bool, normal: u64) -> Outcome {
    watchdog::pet();
    match median_write_rate(d) {
        Ok(polled) => {
            let (i, f) = ratio(polled, normal);
            pprintln!(
                "dump-bench: polled-mode sequential write {} KB/s, ratio {i}.{f:02} to normal mode",
                polled / 1000
            );
        }
        Err(e) => pprintln!("dump-bench: polled-mode write: {e}"),
    }
    let mut rates = [0u64; 3];
    let mut out = Outcome::Failed;
    for r in &mut rates {
        watchdog::pet();
        out = writer::write(d, full);
        let Outcome::Complete { bytes, us } = out else {
            return out;
        };
        *r = bytes * 1_000_000 / us.max(1);
    }
    rates.sort_unstable();
    let (i, f) = ratio(rates[1], normal);
    pprintln!(
        "dump-bench: polled dump {} KB/s, normal-mode sequential write {} KB/s, ratio {i}.{f:02}",
        rates[1] / 1000,
        normal / 1000,
    );
    out
}

/// `test=dump-bench`: writes [`BENCH_BYTES`] of RAM sequentially in normal
/// mode (scheduler running, interrupts on) three times and keeps the
/// median, then panics with `panic=dump`, so that the same write in polled
/// mode and three dumps run in the same boot ([`bench_after_panic`]) and
/// print their ratios.
pub fn bench() -> bool {
    // SAFETY: boot CPU running the scenario; no panic yet.
    let Some(d) = (unsafe { disk() }) else {
        crate::println!("dump-bench: no dump disk");
        return false;
    };
    let bps = match median_write_rate(d) {
        Ok(bps) => bps,
        Err(e) => {
            crate::println!("dump-bench: {e}");
            return false;
        }
    };
    BENCH_NORMAL_BPS.store(bps, Ordering::Relaxed);
    crate::println!(
        "dump-bench: normal-mode sequential write: {} MiB x 3, median {} KB/s",
        BENCH_BYTES >> 20,
        bps / 1000
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
    // SAFETY: the firmware map never changes after boot; read without the
    // lock (this also runs on the panic path, see `mm::frame::is_ram`).
    let frames = unsafe { &*crate::mm::FRAMES.data_ptr() };
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

/// Why the benchmark write did not run.
enum BenchError {
    /// No run of [`BENCH_BYTES`] of RAM.
    NoSource,
    /// The disk failed.
    Io(blk::IoError),
}

impl core::fmt::Display for BenchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSource => write!(f, "no {} MiB run of RAM to write", BENCH_BYTES >> 20),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Median bytes per second of three [`sequential_write`]s.
fn median_write_rate(d: &mut DumpDisk) -> Result<u64, BenchError> {
    let source = bench_source().ok_or(BenchError::NoSource)?;
    let mut rates = [0u64; 3];
    for r in &mut rates {
        let us = sequential_write(d, source).map_err(BenchError::Io)?;
        *r = BENCH_BYTES * 1_000_000 / us.max(1);
    }
    rates.sort_unstable();
    Ok(rates[1])
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
