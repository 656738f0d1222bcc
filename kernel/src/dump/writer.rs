//! Writing a dump: the header as "in progress", the ELF core chunk by chunk
//! ([`DEPTH`](super::blk::DEPTH) requests in flight; memory that nothing changes during the dump is
//! written in place, memory that may change, see [`super::volatile`], from a
//! bounce-buffer snapshot, so the checksum always matches the disk),
//! progress in place, Ctrl-C and the watchdog between chunks, then the final
//! header (complete or aborted).
//!
//! Runs on the panic CPU alone: no locks (the frame bitmap is read without
//! its lock), no allocation (every buffer was reserved at boot).

use core::sync::atomic::Ordering;

use crashdump::elf::{CoreLayout, Source};
use crashdump::header::FLAG_FULL;
use crashdump::{CORE_OFFSET, Checksum, CpuRegs, Header, Regs, SECTOR, Segments, Status};

use super::blk::{CHUNK, DumpDisk, IoError, REQUEST};
use super::volatile::Volatile;
use super::{FAULT_STALL, watchdog};
use crate::arch::cpu::{self, MAX_CPUS};
use crate::mm::PAGE_SIZE;
use crate::panic::stop::SavedRegs;
use crate::pprintln;

/// How often the keyboard is polled for Ctrl-C between chunks. A poll
/// reads a dozen xHCI registers (each an exit to the emulator under TCG);
/// usb-kbd reports at most every 10 ms anyway.
const KEY_POLL_US: u64 = 10_000;
/// How often the progress line is rewritten.
const REPORT_US: u64 = 100_000;

/// Most `PT_LOAD` runs (more are bridged over RAM gaps or dropped).
const MAX_SEGMENTS: usize = 512;

/// How a dump ended.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// Every byte written, header complete.
    Complete {
        /// Core bytes.
        bytes: u64,
        /// Microseconds spent writing.
        us: u64,
    },
    /// Ctrl-C: header says aborted.
    Aborted,
    /// An I/O error or a disk too small (already reported).
    Failed,
}

struct Scratch {
    cpus: [CpuRegs; MAX_CPUS],
    segments: Segments<MAX_SEGMENTS>,
}

struct ScratchCell(core::cell::UnsafeCell<Scratch>);
// SAFETY: used only by the dump, which runs on one CPU at a time (the panic
// CPU, or the boot CPU in the benchmark before any panic).
unsafe impl Sync for ScratchCell {}

static SCRATCH: ScratchCell = ScratchCell(core::cell::UnsafeCell::new(Scratch {
    cpus: [CpuRegs {
        cpu: 0,
        regs: Regs {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            orig_rax: 0,
            rip: 0,
            cs: 0,
            rflags: 0,
            rsp: 0,
            ss: 0,
            fs_base: 0,
            gs_base: 0,
            ds: 0,
            es: 0,
            fs: 0,
            gs: 0,
        },
    }; MAX_CPUS],
    segments: Segments::new(),
}));

fn regs_of(r: &SavedRegs) -> Regs {
    Regs {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax: u64::MAX,
        rip: r.rip,
        cs: r.cs,
        rflags: r.rflags,
        rsp: r.rsp,
        ss: r.ss,
        fs_base: 0,
        gs_base: 0,
        ds: r.ss,
        es: r.ss,
        fs: 0,
        gs: 0,
    }
}

/// Registers of every CPU, the panic CPU first (gdb's current thread).
fn collect_cpus(out: &mut [CpuRegs; MAX_CPUS]) -> usize {
    let me = cpu::current_index();
    let regs = |r: Option<SavedRegs>| r.map(|r| regs_of(&r)).unwrap_or_default();
    let panic_regs = crate::panic::panicking().then(crate::panic::panic_regs);
    out[0] = CpuRegs {
        cpu: me as u32,
        regs: regs(panic_regs),
    };
    let mut n = 1;
    for c in cpu::all() {
        if c.index() != me && n < MAX_CPUS {
            // SAFETY: a stopped CPU wrote `saved` before publishing its state;
            // a CPU that never stopped has `valid == false`.
            let r = unsafe { *c.saved.get() };
            out[n] = CpuRegs {
                cpu: c.index() as u32,
                regs: regs(r.valid.then_some(r)),
            };
            n += 1;
        }
    }
    n
}

/// Memory runs: all usable RAM but page 0 (`full`) or what the kernel uses: frames not
/// free in the frame bitmap (allocated frames, heap, page tables, stacks,
/// the kernel image and the other boot reservations). Pages in `exclude`
/// (the dump's own bounce buffers, rewritten while it runs) are left out.
fn collect_segments(full: bool, exclude: &[(u64, u64)], segs: &mut Segments<MAX_SEGMENTS>) {
    segs.clear();
    // SAFETY: other CPUs are parked (or, in the benchmark, none allocates
    // frames meanwhile); read without the lock, which may be held by a
    // parked CPU.
    let frames = unsafe { &*crate::mm::FRAMES.data_ptr() };
    let map = &frames.map[..frames.map_len];
    let in_ram = |a: u64, b: u64| {
        map.iter()
            .any(|r| r.kind == 1 && a >= r.start && b <= r.start + r.len)
    };
    let excluded = |a: u64| exclude.iter().any(|&(s, e)| (s..e).contains(&a));
    for r in map.iter().filter(|r| r.kind == 1) {
        // Page 0 is left out: a null pointer to Rust, and nothing lives there.
        let start = (r.start.div_ceil(PAGE_SIZE) * PAGE_SIZE).max(PAGE_SIZE);
        let end = ((r.start + r.len) / PAGE_SIZE * PAGE_SIZE).min(crate::mm::frame::MAX_PHYS);
        let mut a = start;
        while a < end {
            if (full || frames.is_allocated(a)) && !excluded(a) {
                segs.push(a, PAGE_SIZE, in_ram);
            }
            a += PAGE_SIZE;
        }
    }
}

fn mib(b: u64) -> (u64, u64) {
    (b >> 20, ((b & 0xf_ffff) * 10) >> 20)
}

fn progress(done: u64, total: u64, start_tsc: u64) {
    let us = crate::time::cycles_to_us(crate::arch::rdtsc() - start_tsc).max(1);
    let rate_x10 = done * 10 / us; // bytes/us == MB/s
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    let (d, dd) = mib(done);
    let (t, td) = mib(total);
    crate::pprint!(
        "\rdump: {pct:3}% {d}.{dd}/{t}.{td} MiB {}.{} MB/s ",
        rate_x10 / 10,
        rate_x10 % 10
    );
}

/// What one request writes.
#[derive(Clone, Copy)]
enum Data {
    /// The ELF headers and notes, built in the bounce buffer.
    Headers,
    /// RAM that nothing changes during the dump, read by the device in place.
    InPlace(u64),
    /// RAM that may change (see [`Volatile`]), copied to the bounce buffer
    /// first.
    Snapshot(u64),
}

/// The core's requests in file order, `(file offset, length, data)`:
/// `layout`'s pieces of at most [`REQUEST`], memory split where volatile
/// memory starts or ends (page-granular, so every request is whole
/// sectors), copied parts at most [`CHUNK`] (a bounce buffer).
fn requests<'a>(
    layout: &'a CoreLayout<'a>,
    volatile: &'a Volatile,
) -> impl Iterator<Item = (u64, u64, Data)> + 'a {
    layout.pieces(REQUEST as u64).flat_map(move |piece| {
        let mut done = 0;
        core::iter::from_fn(move || {
            let rest = piece.len.checked_sub(done).filter(|&r| r > 0)?;
            let (len, data) = match piece.source {
                Source::Headers(_) => (rest, Data::Headers),
                Source::Memory(addr) => {
                    let a = addr + done;
                    let (n, changes) = volatile.leading(a, rest);
                    if changes {
                        (n.min(CHUNK as u64), Data::Snapshot(a))
                    } else {
                        (n, Data::InPlace(a))
                    }
                }
            };
            let off = piece.offset + done;
            done += len;
            Some((off, len, data))
        })
    })
}

/// What a benchmark's plain write ([`write_plain`]) writes.
#[derive(Clone, Copy, Debug)]
pub enum Plain {
    /// One run of RAM.
    Contiguous {
        /// Start (page aligned).
        addr: u64,
        /// Bytes (whole pages).
        len: u64,
    },
    /// The memory runs a minidump would hold right now (normal mode only:
    /// it takes the frame allocator's lock).
    MinidumpRuns,
}

/// A benchmark's baseline for a dump: `what`, laid out as a core and
/// written to the same place on the same disk in the same requests as a
/// dump (in place, [`REQUEST`] at most, the headers' space from a bounce
/// buffer), with no header content, checksum or copy. Returns `(bytes,
/// microseconds)`. One user at a time: the boot CPU before any panic, or the
/// panic CPU.
pub fn write_plain(disk: &mut DumpDisk, what: Plain) -> Result<(u64, u64), IoError> {
    // SAFETY: one user at a time (see above), as for a dump.
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    match what {
        Plain::Contiguous { addr, len } => {
            scratch.segments.clear();
            scratch.segments.push(addr, len, |_, _| false);
        }
        Plain::MinidumpRuns => {
            // Other CPUs allocate meanwhile: read under the lock.
            let _frames = crate::mm::FRAMES.lock();
            collect_segments(false, &disk.bounce_ranges(), &mut scratch.segments);
        }
    }
    let layout = CoreLayout::new(&[], "", scratch.segments.as_slice());
    let start = crate::arch::rdtsc();
    for piece in layout.pieces(REQUEST as u64) {
        let slot = loop {
            if let Some(s) = disk.free_slot() {
                break s;
            }
            disk.complete_one()?;
        };
        let at = CORE_OFFSET + piece.offset;
        match piece.source {
            Source::Headers(_) => disk.submit(slot, at, piece.len as usize)?,
            // SAFETY: usable RAM from the firmware map, identity mapped and
            // never freed; the device only reads it.
            Source::Memory(addr) => unsafe {
                let data = core::slice::from_raw_parts(addr as *const u8, piece.len as usize);
                disk.submit_memory(slot, at, data)?
            },
        }
    }
    disk.drain()?;
    let us = crate::time::cycles_to_us(crate::arch::rdtsc() - start);
    Ok((layout.total_size(), us))
}

/// Writes a dump to `disk`. Reports on the panic console as it goes.
pub fn write(disk: &mut DumpDisk, full: bool) -> Outcome {
    watchdog::pet();
    // SAFETY: one dump at a time on one CPU (see `ScratchCell`).
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    let ncpus = collect_cpus(&mut scratch.cpus);
    let bounce = disk.bounce_ranges();
    collect_segments(full, &bounce, &mut scratch.segments);
    watchdog::pet();
    let message = crate::panic::message();
    let cpus = &scratch.cpus[..ncpus];
    let layout = CoreLayout::new(cpus, message, scratch.segments.as_slice());
    let total = layout.total_size();
    let capacity = disk.capacity_bytes();
    if layout.headers_size() > CHUNK {
        pprintln!("dump: too many memory runs for the header buffer");
        return Outcome::Failed;
    }
    if disk.readonly() {
        pprintln!("dump: the dump disk is read-only");
        return Outcome::Failed;
    }
    if CORE_OFFSET + total > capacity {
        pprintln!(
            "dump: the core needs {} MiB but the dump disk holds {} MiB; nothing written",
            (CORE_OFFSET + total).div_ceil(1 << 20),
            capacity >> 20
        );
        return Outcome::Failed;
    }
    let mut header = Header::new(total, message);
    header.unix_time = super::rtc::unix_time();
    header.uptime_us = crate::time::cycles_to_us(crate::panic::PANIC_TSC.load(Ordering::Relaxed));
    header.cpus = ncpus as u32;
    header.panic_cpu = cpus[0].cpu;
    header.flags = if full { FLAG_FULL } else { 0 };
    pprintln!(
        "dump: {} core, {} MiB in {} runs, {} CPUs, to virtio-blk {} ({} MiB); Ctrl-C aborts",
        if full { "full" } else { "minimal" },
        total.div_ceil(1 << 20),
        scratch.segments.as_slice().len(),
        ncpus,
        disk.function,
        capacity >> 20
    );
    if let Err(e) = disk.write_sector(0, &header.encode()) {
        pprintln!("dump: writing the header: {e}");
        return Outcome::Failed;
    }

    let mut sum = Checksum::sampled();
    let mut written = 0u64;
    let mut status = Status::Complete;
    let mut error: Option<IoError> = None;
    let start = crate::arch::rdtsc();
    let mut last_report = 0u64;
    let volatile = Volatile::now();
    let mut next_key_poll = 0;
    let mut next_report = crate::time::deadline_after_us(REPORT_US);
    for (offset, len, data) in requests(&layout, &volatile) {
        if FAULT_STALL.load(Ordering::Relaxed) && written >= CHUNK as u64 {
            pprintln!();
            pprintln!(
                "dump: fault injection (dump.fault=stall): stalling without petting the watchdog"
            );
            loop {
                core::hint::spin_loop();
            }
        }
        let slot = loop {
            if let Some(s) = disk.free_slot() {
                break Ok(s);
            }
            if let Err(e) = disk.complete_one() {
                break Err(e);
            }
        };
        let slot = match slot {
            Ok(s) => s,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        let at = CORE_OFFSET + offset;
        let n = len as usize;
        let submitted = match data {
            Data::InPlace(addr) => {
                // SAFETY: `addr..addr + n` is usable RAM from the firmware
                // map, identity mapped and never freed, and nothing writes it
                // while the dump runs (the other CPUs are parked; it is not
                // volatile: no device and no code of the dump writes it), so
                // the checksum matches what the device reads.
                let data = unsafe { core::slice::from_raw_parts(addr as *const u8, n) };
                // SAFETY: as above; the RAM stays valid until the request completes.
                let r = unsafe { disk.submit_memory(slot, at, data) };
                // Summed while the device reads it (both only read).
                sum.update(data);
                r
            }
            Data::Headers | Data::Snapshot(_) => {
                let buf = &mut disk.buffer(slot)[..n];
                if let Data::Snapshot(addr) = data {
                    // SAFETY: `addr..addr + n` is usable RAM from the
                    // firmware map, identity mapped, and not one of the
                    // bounce buffers (left out of the dump).
                    unsafe {
                        core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), n)
                    };
                } else {
                    // Headers come as one piece (headers_size <= CHUNK, checked above).
                    let _ = layout.write_headers(buf);
                }
                let r = disk.submit(slot, at, n);
                // The slot's buffer is not rewritten before its request completes.
                sum.update(&disk.buffer(slot)[..n]);
                r
            }
        };
        if let Err(e) = submitted {
            error = Some(e);
            break;
        }
        written += len;
        // The watchdog, Ctrl-C and the progress line while the disk works.
        watchdog::pet();
        if crate::time::passed(next_key_poll) {
            if crate::panic::console::poll_abort_key() {
                status = Status::Aborted;
                break;
            }
            next_key_poll = crate::time::deadline_after_us(KEY_POLL_US);
        }
        if crate::time::passed(next_report) {
            progress(written, total, start);
            last_report = written;
            next_report = crate::time::deadline_after_us(REPORT_US);
        }
    }
    if let Err(e) = disk.drain() {
        error.get_or_insert(e);
    }
    let us = crate::time::cycles_to_us(crate::arch::rdtsc() - start);
    if last_report != written {
        progress(written, total, start);
    }
    pprintln!();
    if let Some(e) = error {
        status = Status::Aborted;
        pprintln!("dump: I/O error: {e}");
    }
    header.status = status;
    header.written = written;
    header.checksum = sum.value();
    watchdog::pet();
    if let Err(e) = disk.write_sector(0, &header.encode()) {
        pprintln!("dump: writing the final header: {e}");
        return Outcome::Failed;
    }
    let _ = SECTOR;
    match (status, error) {
        (Status::Complete, _) => {
            let rate_x10 = written * 10 / us.max(1);
            pprintln!(
                "dump: complete: {} bytes in {}.{:03} s ({}.{} MB/s), {} CPUs",
                written,
                us / 1_000_000,
                (us / 1000) % 1000,
                rate_x10 / 10,
                rate_x10 % 10,
                ncpus
            );
            Outcome::Complete { bytes: written, us }
        }
        (_, Some(_)) => {
            pprintln!("dump: failed after {written} bytes; header marked aborted");
            Outcome::Failed
        }
        _ => {
            pprintln!(
                "dump: aborted by Ctrl-C after {written} of {total} bytes; header marked aborted"
            );
            Outcome::Aborted
        }
    }
}
