//! Writing a dump: the header as "in progress", then the ELF core in
//! requests gathered from the pieces that follow each other on the disk
//! ([`DEPTH`] in flight; memory that nothing changes during
//! the dump is read by the device in place, memory that may change, see
//! [`super::volatile`], from a bounce-buffer snapshot, so the checksum always
//! matches the disk), the checksum computed while waiting for the disk,
//! progress in place, Ctrl-C and the watchdog between requests; then a
//! flush, the final header (complete or aborted) and a flush.
//!
//! Runs on the panic CPU alone: no locks (the frame bitmap is read without
//! its lock), no allocation (every buffer was reserved at boot).

use core::sync::atomic::Ordering;

use crashdump::elf::{CoreLayout, Source};
use crashdump::header::FLAG_FULL;
use crashdump::{CORE_OFFSET, Checksum, CpuRegs, Header, Regs, Segments, Status};

use super::FAULT_STALL;
use super::blk::{CHUNK, DEPTH, DumpDisk, IO_TIMEOUT_US, IoError, SECTOR_SIZE};
use super::volatile::{self, Volatile};
use crate::arch::cpu::{self, MAX_CPUS};
use crate::arch::regs::SavedRegs;
use crate::mm::PAGE_SIZE;
use crate::pprintln;
use crate::watchdog;

/// How often the keyboard is polled for Ctrl-C between requests, the first
/// time one interval after the dump starts. A poll reads registers of the
/// xHCI controller and of the UART: exits to the emulator that, while the
/// disk is busy, wait for its I/O thread (measured under TCG: up to 0.8 ms
/// per poll, against ~22 us when the disk is idle). usb-kbd reports at most
/// every 10 ms anyway.
const KEY_POLL_US: u64 = 10_000;
/// How often the progress line is rewritten.
const REPORT_US: u64 = 100_000;

const SECTOR: u64 = SECTOR_SIZE as u64;

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
    volatile: [(u64, u64); volatile::CAPACITY],
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
    volatile: [(0, 0); volatile::CAPACITY],
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
fn collect_cpus(out: &mut [CpuRegs; MAX_CPUS], panic_regs: Option<SavedRegs>) -> usize {
    let me = cpu::current_index();
    let regs = |r: Option<SavedRegs>| r.map(|r| regs_of(&r)).unwrap_or_default();
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
    // Guard pages (below the boot and panic stacks) are unmapped: reading
    // one would fault.
    let excluded =
        |a: u64| crate::mm::guard::is_guard(a) || exclude.iter().any(|&(s, e)| (s..e).contains(&a));
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

/// How the flush before the final header went, for the report.
struct Flushed(Option<u64>);

impl core::fmt::Display for Flushed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(us) => write!(
                f,
                "flushed in {}.{:03} s",
                us / 1_000_000,
                (us / 1000) % 1000
            ),
            None => write!(f, "no flush needed (the device has no write cache)"),
        }
    }
}

fn mib(b: u64) -> (u64, u64) {
    (b >> 20, ((b & 0xf_ffff) * 10) >> 20)
}

fn progress(done: u64, total: u64, start_tsc: u64) {
    let us = crate::time::cycles_to_us(crate::time::rdtsc() - start_tsc).max(1);
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

/// Where a piece of the core comes from.
#[derive(Clone, Copy)]
enum Data {
    /// The ELF headers and notes, built in a bounce buffer.
    Headers,
    /// RAM that nothing changes during the dump, read by the device in place.
    InPlace(u64),
    /// RAM that may change (see [`Volatile`]), copied to a bounce buffer
    /// first.
    Snapshot(u64),
}

/// A piece of the core: file offset, bytes, source.
type Piece = (u64, u64, Data);

/// The core's pieces in file order: the headers, then the memory runs,
/// split where volatile memory starts or ends (page-granular, so every
/// piece is whole sectors) so that only volatile pages are copied. With no
/// `volatile` (a benchmark's plain write) all memory is written in place.
fn pieces<'a>(
    layout: &'a CoreLayout<'a>,
    volatile: Option<&'a Volatile>,
) -> impl Iterator<Item = Piece> + 'a {
    layout.pieces(u64::MAX).flat_map(move |piece| {
        let mut done = 0;
        core::iter::from_fn(move || {
            let rest = piece.len.checked_sub(done).filter(|&r| r > 0)?;
            let (len, data) = match (piece.source, volatile) {
                (Source::Headers(_), _) => (rest, Data::Headers),
                (Source::Memory(addr), None) => (rest, Data::InPlace(addr)),
                (Source::Memory(addr), Some(volatile)) => {
                    let a = addr + done;
                    match volatile.leading(a, rest) {
                        (n, true) => (n, Data::Snapshot(a)),
                        (n, false) => (n, Data::InPlace(a)),
                    }
                }
            };
            let off = piece.offset + done;
            done += len;
            Some((off, len, data))
        })
    })
}

/// Builds the next request in the free `slot`: the pieces that follow on
/// the disk, `pending` (what the previous request could not take) first,
/// as far as one request takes them ([`DumpDisk::room`]); snapshots are
/// copied and the headers written into the slot's bounce buffer. Returns
/// the bytes gathered: 0 when every piece has been written, or (with
/// `pending` set) if nothing could be gathered, which the caller reports.
fn gather(
    disk: &mut DumpDisk,
    slot: usize,
    layout: &CoreLayout<'_>,
    pending: &mut Option<Piece>,
    pieces: &mut impl Iterator<Item = Piece>,
) -> u64 {
    let Some(first) = pending.take().or_else(|| pieces.next()) else {
        return 0;
    };
    if !disk.begin(slot, CORE_OFFSET + first.0) {
        *pending = Some(first);
        return 0;
    }
    let mut gathered = 0;
    let mut next = Some(first);
    while let Some((off, len, data)) = next {
        let room = disk.room(slot);
        let limit = room.bytes.min(room.piece);
        let take = match data {
            // The headers come whole (at most a bounce buffer, checked by
            // `write`, and every piece of an empty request takes that much).
            Data::Headers if len <= limit && len <= room.bounce as u64 => len,
            Data::Headers => 0,
            Data::InPlace(_) => len.min(limit),
            Data::Snapshot(_) => len.min(limit).min(room.bounce as u64),
        } / SECTOR
            * SECTOR;
        let n = take as usize;
        let added = take > 0
            && match data {
                Data::Headers => disk
                    .push_bounce(slot, n)
                    .is_some_and(|buf| layout.write_headers(buf).is_ok()),
                Data::InPlace(addr) => {
                    // SAFETY: `addr..addr + n` is usable RAM from the
                    // firmware map, identity mapped and never freed, and
                    // nothing writes it while the dump runs (the other CPUs
                    // are parked; it is not volatile: no device and no code
                    // of the dump writes it), so the checksum matches what
                    // the device reads.
                    unsafe {
                        let data = core::slice::from_raw_parts(addr as *const u8, n);
                        disk.push_memory(slot, data)
                    }
                }
                Data::Snapshot(addr) => disk.push_bounce(slot, n).is_some_and(|buf| {
                    // SAFETY: `addr..addr + n` is usable RAM from the
                    // firmware map, identity mapped, and not one of the
                    // bounce buffers (left out of the dump).
                    unsafe {
                        core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), n)
                    };
                    true
                }),
            };
        if !added {
            *pending = Some((off, len, data));
            break;
        }
        gathered += take;
        next = if take < len {
            let data = match data {
                Data::InPlace(a) => Data::InPlace(a + take),
                Data::Snapshot(a) => Data::Snapshot(a + take),
                Data::Headers => Data::Headers,
            };
            Some((off + take, len - take, data))
        } else {
            pieces.next()
        };
    }
    gathered
}

/// Bytes checksummed per step while the dump waits for the disk: 64 pages,
/// about 6 us under TCG (each first touch of a page costs ~100 ns), so that
/// a completed request is replaced almost at once.
const SUM_STEP: usize = 256 << 10;

/// Requests submitted but not yet checksummed, oldest first. The core's
/// checksum is computed while the dump waits for the disk (both only read
/// the data), in steps between looks at the used ring, so that summing
/// never delays the next request; a slot is not reused before its request is
/// summed (its bounce buffer would be rewritten).
struct Backlog {
    sum: Checksum,
    slots: [usize; DEPTH],
    len: usize,
    /// The next piece of the oldest request to sum.
    piece: usize,
    /// What is left of the piece being summed.
    rest: &'static [u8],
}

impl Backlog {
    fn new() -> Self {
        Self {
            sum: Checksum::sampled(),
            slots: [0; DEPTH],
            len: 0,
            piece: 0,
            rest: &[],
        }
    }

    /// Adds the request just submitted in `slot`.
    fn push(&mut self, slot: usize) {
        self.slots[self.len] = slot;
        self.len += 1;
    }

    /// True if `slot`'s request is not summed yet.
    fn holds(&self, slot: usize) -> bool {
        self.slots[..self.len].contains(&slot)
    }

    /// Sums up to [`SUM_STEP`] bytes of the oldest request; false if every
    /// request is summed.
    fn step(&mut self, disk: &DumpDisk) -> bool {
        if self.rest.is_empty() {
            if self.len == 0 {
                return false;
            }
            // SAFETY: `rest` is used only until the request is summed, and
            // its slot is not begun again before that (`next_slot`).
            match unsafe { disk.piece(self.slots[0], self.piece) } {
                Some(p) => {
                    self.rest = p;
                    self.piece += 1;
                }
                None => {
                    self.slots.copy_within(1..self.len, 0);
                    self.len -= 1;
                    self.piece = 0;
                }
            }
            return true;
        }
        let (now, later) = self.rest.split_at(SUM_STEP.min(self.rest.len()));
        self.sum.update(now);
        self.rest = later;
        true
    }

    /// Sums every request left and returns the checksum.
    fn finish(&mut self, disk: &DumpDisk) -> u64 {
        while self.step(disk) {}
        self.sum.value()
    }
}

/// A free slot whose request is summed: takes completions off the used
/// ring and sums the backlog until there is one, waiting at most
/// [`IO_TIMEOUT_US`] for each completion.
fn next_slot(disk: &mut DumpDisk, backlog: &mut Backlog) -> Result<usize, IoError> {
    let mut deadline = crate::time::deadline_after_us(IO_TIMEOUT_US);
    loop {
        if let Some(slot) = (0..DEPTH).find(|&s| disk.is_free(s) && !backlog.holds(s)) {
            return Ok(slot);
        }
        if let Some(done) = disk.reap() {
            done?;
            deadline = crate::time::deadline_after_us(IO_TIMEOUT_US);
        } else if !backlog.step(disk) {
            disk.wait_until(deadline, IO_TIMEOUT_US)?;
        }
    }
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
    /// The memory runs a minidump would hold right now (under the frame
    /// allocator's lock: after a panic, a faked acquisition if a stopped CPU
    /// holds it).
    MinidumpRuns,
}

/// A benchmark's baseline for a dump: `what`, laid out as a core and
/// written to the same place on the same disk in requests gathered as a
/// dump's (memory in place, the headers from a bounce buffer), with no
/// CPU notes, checksum or copy. Returns `(bytes, microseconds)`. One user at
/// a time: the boot CPU before any panic, or the panic CPU.
pub fn write_plain(disk: &mut DumpDisk, what: Plain) -> Result<(u64, u64), IoError> {
    // SAFETY: one user at a time (see above), as for a dump.
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    match what {
        Plain::Contiguous { addr, len } => {
            scratch.segments.clear();
            scratch.segments.push(addr, len, |_, _| false);
        }
        Plain::MinidumpRuns => {
            // In normal mode other CPUs allocate meanwhile: read under the lock.
            let _frames = crate::mm::FRAMES.lock();
            collect_segments(false, &disk.bounce_ranges(), &mut scratch.segments);
        }
    }
    let layout = CoreLayout::new(&[], "", scratch.segments.as_slice());
    let start = crate::time::rdtsc();
    let mut pieces = pieces(&layout, None);
    let mut pending = None;
    let mut unsummed = Backlog::new();
    loop {
        let slot = next_slot(disk, &mut unsummed)?;
        if gather(disk, slot, &layout, &mut pending, &mut pieces) == 0 {
            break;
        }
        disk.submit(slot)?;
    }
    disk.drain()?;
    let us = crate::time::cycles_to_us(crate::time::rdtsc() - start);
    Ok((layout.total_size(), us))
}

/// What the panic path hands the dump: the dump names nothing above it.
pub struct Context<'a> {
    /// The panic message (the core's note and the header).
    pub message: &'a str,
    /// Registers of the panicking CPU (this one), if it is a panic.
    pub regs: Option<SavedRegs>,
    /// TSC at the panic (the header's uptime).
    pub tsc: u64,
    /// Polled between requests: true aborts the dump (Ctrl-C).
    pub abort: fn() -> bool,
}

/// Writes a dump to `disk`. Reports on the panic console as it goes.
pub fn write(disk: &mut DumpDisk, full: bool, ctx: &Context<'_>) -> Outcome {
    watchdog::pet();
    // SAFETY: one dump at a time on one CPU (see `ScratchCell`).
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    let ncpus = collect_cpus(&mut scratch.cpus, ctx.regs);
    let bounce = disk.bounce_ranges();
    collect_segments(full, &bounce, &mut scratch.segments);
    watchdog::pet();
    let cpus = &scratch.cpus[..ncpus];
    let layout = CoreLayout::new(cpus, ctx.message, scratch.segments.as_slice());
    let total = layout.total_size();
    if !fits(disk, &layout) {
        return Outcome::Failed;
    }
    let mut header = Header::new(total, ctx.message);
    header.unix_time = super::rtc::unix_time();
    header.uptime_us = crate::time::cycles_to_us(ctx.tsc);
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
        disk.capacity_bytes() >> 20
    );
    if let Err(e) = disk.write_sector(0, &header.encode()) {
        pprintln!("dump: writing the header: {e}");
        return Outcome::Failed;
    }
    let volatile = Volatile::now(&mut scratch.volatile);
    let streamed = stream(disk, &layout, &volatile, ctx.abort);
    finish(disk, header, streamed, ncpus)
}

/// True when the core fits the header buffer and the disk (else says why).
fn fits(disk: &DumpDisk, layout: &CoreLayout<'_>) -> bool {
    let (total, capacity) = (layout.total_size(), disk.capacity_bytes());
    if layout.headers_size() > CHUNK {
        pprintln!("dump: too many memory runs for the header buffer");
        return false;
    }
    if disk.readonly() {
        pprintln!("dump: the dump disk is read-only");
        return false;
    }
    if CORE_OFFSET + total > capacity {
        pprintln!(
            "dump: the core needs {} MiB but the dump disk holds {} MiB; nothing written",
            (CORE_OFFSET + total).div_ceil(1 << 20),
            capacity >> 20
        );
        return false;
    }
    true
}

/// How streaming the core ended.
struct Streamed {
    written: u64,
    total: u64,
    status: Status,
    error: Option<IoError>,
    /// Ended early without an error or an abort (not expected).
    short: bool,
    checksum: u64,
    us: u64,
}

/// Streams the core's pieces to the disk, [`DEPTH`] requests in flight,
/// petting the watchdog, polling `abort` and reporting progress between
/// requests; then sums the last requests and waits for the disk.
fn stream(
    disk: &mut DumpDisk,
    layout: &CoreLayout<'_>,
    volatile: &Volatile,
    abort: fn() -> bool,
) -> Streamed {
    let total = layout.total_size();
    let mut backlog = Backlog::new();
    let mut written = 0u64;
    let mut status = Status::Complete;
    let mut error: Option<IoError> = None;
    let start = crate::time::rdtsc();
    let mut last_report = 0u64;
    let mut next_key_poll = crate::time::deadline_after_us(KEY_POLL_US);
    let mut next_report = crate::time::deadline_after_us(REPORT_US);
    let mut pieces = pieces(layout, Some(volatile));
    let mut pending = None;
    loop {
        if FAULT_STALL.load(Ordering::Relaxed) && written >= CHUNK as u64 {
            stall();
        }
        let slot = match next_slot(disk, &mut backlog) {
            Ok(s) => s,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        let n = gather(disk, slot, layout, &mut pending, &mut pieces);
        if n == 0 {
            break;
        }
        if let Err(e) = disk.submit(slot) {
            error = Some(e);
            break;
        }
        backlog.push(slot);
        written += n;
        // The watchdog, Ctrl-C and the progress line while the disk works.
        watchdog::pet();
        if crate::time::passed(next_key_poll) {
            if abort() {
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
    let checksum = backlog.finish(disk);
    if let Err(e) = disk.drain() {
        error.get_or_insert(e);
    }
    // Not expected: `gather` takes a piece into an empty request.
    let short = status == Status::Complete && error.is_none() && written != total;
    if short {
        status = Status::Aborted;
    }
    let us = crate::time::cycles_to_us(crate::time::rdtsc() - start);
    if last_report != written {
        progress(written, total, start);
    }
    pprintln!();
    Streamed {
        written,
        total,
        status,
        error,
        short,
        checksum,
        us,
    }
}

/// `dump.fault=stall`: hangs without petting the watchdog.
fn stall() -> ! {
    pprintln!();
    pprintln!("dump: fault injection (dump.fault=stall): stalling without petting the watchdog");
    loop {
        core::hint::spin_loop();
    }
}

/// Flushes the core, writes the final header (complete or aborted), flushes
/// again and reports.
fn finish(disk: &mut DumpDisk, mut header: Header, s: Streamed, ncpus: usize) -> Outcome {
    let Streamed {
        written,
        total,
        mut status,
        mut error,
        short,
        checksum,
        us,
    } = s;
    // The core is durable before the header says it is complete (virtio
    // 1.2 §5.2.6.2: a completed write may sit in the device's cache).
    // Timed apart: it is the host's write-back, not the dump's.
    let flush_start = crate::time::rdtsc();
    let mut flushed = false;
    if error.is_none() && status == Status::Complete {
        match disk.flush() {
            Ok(f) => flushed = f,
            Err(e) => error = Some(e),
        }
    }
    let flush_us = crate::time::cycles_to_us(crate::time::rdtsc() - flush_start);
    if let Some(e) = error {
        status = Status::Aborted;
        pprintln!("dump: I/O error: {e}");
    } else if short {
        pprintln!("dump: could not build a request after {written} of {total} bytes");
    }
    header.status = status;
    header.written = written;
    header.checksum = checksum;
    watchdog::pet();
    if let Err(e) = disk
        .write_sector(0, &header.encode())
        .and_then(|()| disk.flush())
    {
        pprintln!("dump: writing the final header: {e}");
        return Outcome::Failed;
    }
    match (status, error) {
        (Status::Complete, _) => {
            let rate_x10 = written * 10 / us.max(1);
            pprintln!(
                "dump: complete: {} bytes in {}.{:03} s ({}.{} MB/s), {}, {} CPUs",
                written,
                us / 1_000_000,
                (us / 1000) % 1000,
                rate_x10 / 10,
                rate_x10 % 10,
                Flushed(flushed.then_some(flush_us)),
                ncpus
            );
            Outcome::Complete { bytes: written, us }
        }
        (_, e) if e.is_some() || short => {
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
