//! Crash dumps: a virtio-blk disk reserved at boot and written in polled
//! mode at panic time (the [`crate::watchdog`] armed meanwhile), in the
//! ELF core format from the `crashdump` crate (`savecore` on the host reads
//! it back).
//!
//! Boot: [`init`] finds the disk and reserves every buffer. Panic: [`run`]
//! from the debugger (`dump`, `dump full`) or the `panic=dump` policy, with
//! a [`writer::Context`] from the panic path.

pub mod blk;
pub mod hal;
pub mod rtc;
pub mod volatile;
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
/// Bytes per second of the normal-mode contiguous benchmark write (0: not
/// measured).
static BENCH_NORMAL_BPS: AtomicU64 = AtomicU64::new(0);
/// Bytes per second of the normal-mode write of a minidump's runs.
static BENCH_RUNS_BPS: AtomicU64 = AtomicU64::new(0);

/// The dump disk.
///
/// # Safety
/// Single user: the panic CPU after the stop, or the boot-time benchmark.
unsafe fn disk() -> Option<&'static mut DumpDisk> {
    // SAFETY: forwarded to the caller.
    unsafe { (*DISK.0.get()).as_mut() }
}

/// Finds the dump disk. Boot, after PCI and the heap, before
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
}

/// Writes a dump (minimal, or all RAM with `full`). Panic CPU only.
pub fn run(full: bool, ctx: &writer::Context<'_>) -> Outcome {
    // SAFETY: called on the panic CPU with every other CPU parked.
    let Some(d) = (unsafe { disk() }) else {
        pprintln!(
            "dump: no dump device (attach a virtio-blk disk; the runner adds one unless --no-dump-disk)"
        );
        return Outcome::Failed;
    };
    if BENCH_NORMAL_BPS.load(Ordering::Relaxed) > 0 {
        return bench_after_panic(d, full, ctx);
    }
    writer::write(d, full, ctx)
}

fn ratio(a: u64, b: u64) -> (u64, u64) {
    let r = a * 100 / b.max(1);
    (r / 100, r % 100)
}

/// Median of [`REPS`] rates (bytes per second) measured by `f` on `d`, each
/// run starting with the disk's cache flushed (untimed): every write, plain
/// or dump, finds the host's page cache in the same state (a dump ends with
/// a flush).
fn median<E>(
    d: &mut DumpDisk,
    mut f: impl FnMut(&mut DumpDisk) -> Result<u64, E>,
) -> Result<u64, E> {
    let mut rates = [0u64; REPS];
    for r in &mut rates {
        crate::watchdog::pet();
        // A failed flush leaves the disk broken: the write reports it.
        let _ = d.flush();
        *r = f(d)?;
    }
    rates.sort_unstable();
    Ok(rates[REPS / 2])
}

fn rate(bytes: u64, us: u64) -> u64 {
    bytes * 1_000_000 / us.max(1)
}

/// The panic half of `test=dump-bench`: the contiguous write again, now
/// polled with the world stopped (the I/O path alone), then [`REPS`] dumps,
/// each followed by a polled write of the same memory runs (a control in the
/// same conditions); medians, and the ratios.
fn bench_after_panic(d: &mut DumpDisk, full: bool, ctx: &writer::Context<'_>) -> Outcome {
    let normal = BENCH_NORMAL_BPS.load(Ordering::Relaxed);
    let runs = BENCH_RUNS_BPS.load(Ordering::Relaxed);
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
    // The dumps, each followed by a polled write of the same runs: a control
    // taken in the same conditions, interleaved.
    let mut out = Outcome::Failed;
    let mut dumps = [0u64; REPS];
    let mut plain = [0u64; REPS];
    for (dump, plain) in dumps.iter_mut().zip(&mut plain) {
        let _ = d.flush();
        out = writer::write(d, full, ctx);
        let Outcome::Complete { bytes, us } = out else {
            return out;
        };
        *dump = rate(bytes, us);
        let _ = d.flush();
        *plain = match writer::write_plain(d, writer::Plain::MinidumpRuns) {
            Ok((bytes, us)) => rate(bytes, us),
            Err(e) => {
                pprintln!("dump-bench: polled-mode write of the same runs: {e}");
                return Outcome::Failed;
            }
        };
    }
    dumps.sort_unstable();
    plain.sort_unstable();
    let (dump, plain) = (dumps[REPS / 2], plain[REPS / 2]);
    let (i, f) = ratio(dump, runs);
    let (ci, cf) = ratio(dump, normal);
    let (pi, pf) = ratio(dump, plain);
    pprintln!(
        "dump-bench: polled dump {} KB/s, normal-mode write of the same runs {} KB/s, ratio {i}.{f:02}; \
         of {} MiB contiguous {} KB/s, ratio {ci}.{cf:02}",
        dump / 1000,
        runs / 1000,
        BENCH_BYTES >> 20,
        normal / 1000,
    );
    pprintln!(
        "dump-bench: control: polled-mode write of the same runs between the dumps {} KB/s, dump ratio {pi}.{pf:02}",
        plain / 1000
    );
    out
}

/// `test=dump-bench`, the normal-mode half (scheduler running, interrupts
/// on), each measurement [`REPS`] times, medians: [`BENCH_BYTES`] of
/// contiguous RAM written sequentially, and the memory runs a minidump would
/// hold written the same way ([`writer::write_plain`]). The scenario then
/// panics with `panic=dump`, so that the contiguous write in polled mode and
/// the dumps run in the same boot ([`bench_after_panic`]) and print their
/// ratios; false if nothing could be measured.
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
    let runs = median(d, |d| {
        writer::write_plain(d, writer::Plain::MinidumpRuns).map(|(b, us)| rate(b, us))
    });
    let runs = match runs {
        Ok(r) => r,
        Err(e) => {
            crate::println!("dump-bench: {e}");
            return false;
        }
    };
    BENCH_NORMAL_BPS.store(bps, Ordering::Relaxed);
    BENCH_RUNS_BPS.store(runs, Ordering::Relaxed);
    crate::println!(
        "dump-bench: normal-mode sequential write: {} MiB contiguous x {REPS}, median {} KB/s; \
         the minidump's runs x {REPS}, median {} KB/s",
        BENCH_BYTES >> 20,
        bps / 1000,
        runs / 1000
    );
    true
}

/// Runs of each measurement (odd: the median is one of them). A write takes
/// about 10 ms and single runs vary by 2x under TCG.
const REPS: usize = 11;

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

/// Median bytes per second of [`REPS`] writes of [`BENCH_BYTES`] of
/// contiguous RAM.
fn median_write_rate(d: &mut DumpDisk) -> Result<u64, BenchError> {
    let addr = bench_source().ok_or(BenchError::NoSource)?;
    let what = writer::Plain::Contiguous {
        addr,
        len: BENCH_BYTES,
    };
    median(d, |d| {
        let (bytes, us) = writer::write_plain(d, what).map_err(BenchError::Io)?;
        Ok(rate(bytes, us))
    })
}
