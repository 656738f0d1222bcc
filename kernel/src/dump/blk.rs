//! The dump disk: a virtio-blk PCI function in polled mode (no interrupts),
//! created at boot so that every DMA buffer (virtqueue, bounce buffers,
//! request headers) exists before a panic.
//!
//! `virtio-drivers` gives the PCI transport and the split virtqueue; the
//! block requests themselves (virtio 1.2 §5.2.6: a device-readable header,
//! the data, a device-written status byte) are built here, because its
//! `VirtIOBlk` takes one data buffer per request and has only a flush that
//! waits without bound. A request here gathers up to [`MAX_PARTS`] pieces of
//! memory that follow each other on the disk (scatter-gather: a dump's
//! memory runs, its snapshots of volatile memory and its ELF headers go out
//! in requests of up to [`REQUEST`] bytes whatever the runs look like), and
//! every request, writes and flushes alike, is waited for against a TSC
//! deadline: a device that stops answering gives an error naming the
//! sectors, never a hang.

use core::fmt;

use bitflags::bitflags;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};

use super::hal::{PortCam, VirtioHal};
use crate::mm::{FRAMES, PAGE_SIZE};

/// Bytes per sector (virtio 1.2 §5.2.6: sector numbers count 512 bytes).
pub const SECTOR_SIZE: usize = 512;
/// Bytes per bounce buffer: the most one request copies (snapshots of
/// volatile memory and the ELF headers).
pub const CHUNK: usize = 256 << 10;
/// Most bytes one request writes. Each request costs the emulator a fixed
/// ~25 us (measured under TCG: 256 KiB requests 4.6 GB/s, 1 MiB 6.7 GB/s,
/// 4 MiB 8 GB/s).
pub const REQUEST: u64 = 4 << 20;
/// Requests in flight at once (one bounce buffer each).
pub const DEPTH: usize = 4;
/// Descriptors in the virtqueue: every request in flight can use
/// [`MAX_PARTS`] data descriptors plus its header and status (no indirect
/// descriptors: they would need an allocation per request).
const QUEUE_SIZE: usize = 64;
/// Most data pieces in one request.
pub const MAX_PARTS: usize = QUEUE_SIZE / DEPTH - 2;
/// Longest wait for one write.
pub const IO_TIMEOUT_US: u64 = 5_000_000;
/// Longest wait for a flush (the host may have to write back every byte of
/// a full dump).
pub const FLUSH_TIMEOUT_US: u64 = 30_000_000;

/// The virtqueue of a virtio-blk device without `VIRTIO_BLK_F_MQ`.
const QUEUE: u16 = 0;

bitflags! {
    /// Feature bits we accept (virtio 1.2 §5.2.3, §6).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        /// `size_max` holds the largest data segment.
        const SIZE_MAX = 1 << 1;
        /// `seg_max` holds the most data segments per request.
        const SEG_MAX = 1 << 2;
        /// The device is read-only.
        const RO = 1 << 5;
        /// The device has a write cache and takes `VIRTIO_BLK_T_FLUSH`.
        const FLUSH = 1 << 9;
        /// Virtio 1.0 or later (must be accepted when offered).
        const VERSION_1 = 1 << 32;
    }
}

/// Request types (virtio 1.2 §5.2.6).
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
/// Status values the device writes (virtio 1.2 §5.2.6).
const S_OK: u8 = 0;
/// Configuration space offsets (virtio 1.2 §5.2.4).
const CFG_CAPACITY: usize = 0;
const CFG_SIZE_MAX: usize = 8;
const CFG_SEG_MAX: usize = 12;

/// What a request does, for errors.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Writes `count` sectors from `sector`.
    Write {
        /// First sector.
        sector: u64,
        /// Sectors.
        count: u64,
    },
    /// Flushes the device's write cache.
    Flush,
    /// A request the device returned that the driver did not submit.
    Unknown,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Write { sector, count } => {
                write!(f, "write of sectors {sector}..{}", sector + count)
            }
            Self::Flush => write!(f, "flush"),
            Self::Unknown => write!(f, "request"),
        }
    }
}

/// A failed or timed-out request.
#[derive(Clone, Copy, Debug)]
pub enum IoError {
    /// The device did not complete the request in time.
    Timeout {
        /// The oldest request in flight.
        op: Op,
        /// How long it was waited for.
        ms: u64,
    },
    /// The device completed the request with an error status.
    Status {
        /// The request.
        op: Op,
        /// `VIRTIO_BLK_S_*` (1: I/O error, 2: unsupported).
        status: u8,
    },
    /// The virtqueue refused the request or returned an unknown one.
    Queue {
        /// The request.
        op: Op,
        /// What went wrong.
        error: virtio_drivers::Error,
    },
    /// The request lies beyond the end of the disk.
    OutOfRange {
        /// First sector of the request.
        sector: u64,
        /// Disk size in sectors.
        capacity: u64,
    },
    /// An earlier timeout left requests with the device: it is not used again.
    Broken,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Timeout { op, ms } => write!(f, "{op} timed out after {ms} ms"),
            Self::Status { op, status } => {
                let what = match status {
                    1 => "I/O error",
                    2 => "unsupported",
                    _ => "unknown status",
                };
                write!(f, "{op} failed: device status {status} ({what})")
            }
            Self::Queue { op, error } => write!(f, "{op} failed: {error}"),
            Self::OutOfRange { sector, capacity } => write!(
                f,
                "write at sector {sector} is beyond the end of the disk ({capacity} sectors)"
            ),
            Self::Broken => write!(f, "the dump device timed out earlier and is not used again"),
        }
    }
}

/// One data piece of a request: RAM written in place or a slice of the
/// slot's bounce buffer.
#[derive(Clone, Copy)]
struct Part {
    data: *const u8,
    len: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Building,
    /// With the device; the virtqueue token.
    InFlight(u16),
}

struct Slot {
    /// The request header (virtio 1.2 §5.2.6: type, reserved, sector, little
    /// endian); the device reads it. In the page after the bounce buffer,
    /// with the status: what the device touches stays out of the kernel's
    /// statics.
    header: &'static mut [u8; 16],
    /// The status byte; the device writes it.
    status: &'static mut [u8; 1],
    /// The slot's DMA memory (bounce buffer, header and status), left out of
    /// dumps.
    dma: (u64, u64),
    parts: [Part; MAX_PARTS],
    nparts: usize,
    /// Where the request writes, in bytes from the start of the disk.
    offset: u64,
    /// Bytes the request writes.
    len: u64,
    /// Bytes of `buf` the request uses.
    bounce_used: usize,
    op: Op,
    state: State,
    /// Bounce buffer, [`CHUNK`] bytes.
    buf: &'static mut [u8],
}

/// The device-readable buffers of a request: its header, then its data.
fn inputs<'a>(header: &'a [u8; 16], parts: &[Part]) -> ([&'a [u8]; MAX_PARTS + 1], usize) {
    let mut ins: [&[u8]; MAX_PARTS + 1] = [&[]; MAX_PARTS + 1];
    ins[0] = header;
    for (i, p) in parts.iter().enumerate() {
        // SAFETY: every part is RAM that stays valid while its request
        // exists (`push_memory`'s contract) or a slice of a bounce buffer,
        // which is never freed.
        ins[i + 1] = unsafe { core::slice::from_raw_parts(p.data, p.len) };
    }
    (ins, parts.len() + 1)
}

/// What the request being built can still take.
#[derive(Clone, Copy, Debug)]
pub struct Room {
    /// Bytes (whole sectors).
    pub bytes: u64,
    /// Bytes of the bounce buffer.
    pub bounce: usize,
    /// Bytes one piece may hold (the device's `size_max`, whole sectors, at
    /// least [`CHUNK`]).
    pub piece: u64,
}

/// The dump disk.
pub struct DumpDisk {
    transport: PciTransport,
    queue: VirtQueue<VirtioHal, QUEUE_SIZE>,
    slots: [Slot; DEPTH],
    /// Disk size in sectors.
    capacity: u64,
    features: Features,
    /// Most data pieces per request (the device's `seg_max`, at most
    /// [`MAX_PARTS`]).
    max_parts: usize,
    /// Most bytes per data piece (the device's `size_max`).
    max_piece: u64,
    broken: bool,
    /// PCI function, for reports.
    pub function: DeviceFunction,
}

/// Why no dump disk was set up.
#[derive(Debug)]
pub enum ProbeError {
    /// No virtio-blk function on the PCI bus.
    NotFound,
    /// The transport or the device did not initialise.
    Init(&'static str),
    /// No memory for the bounce buffers.
    NoMemory,
}

/// Where unassigned 64-bit memory BARs go: far above RAM (the frame
/// allocator covers 16 GiB at most) and below the 40 physical address bits of
/// QEMU's default CPU. QEMU decodes PCI memory anywhere RAM is not.
const BAR64_WINDOW: u64 = 0x40_0000_0000;

/// Assigns 64-bit memory BARs the firmware left at 0 (qboot assigns none
/// of them; virtio's modern registers live in a 64-bit BAR). Boot time.
fn assign_bars(root: &mut PciRoot<PortCam>, f: DeviceFunction) {
    use virtio_drivers::transport::pci::bus::{BarInfo, MemoryBarType};
    let Ok(bars) = root.bars(f) else { return };
    let mut next = BAR64_WINDOW;
    for (i, bar) in bars.iter().enumerate() {
        if let Some(BarInfo::Memory {
            address_type: MemoryBarType::Width64,
            address: 0,
            size,
            ..
        }) = bar
        {
            let size = (*size).max(PAGE_SIZE);
            let addr = next.next_multiple_of(size);
            root.set_bar_64(f, i as u8, addr);
            log::info!("dump: assigned BAR {i} of {f} at {addr:#x} ({size:#x} bytes)");
            next = addr + size;
        }
    }
}

fn alloc_buf(bytes: usize) -> Option<&'static mut [u8]> {
    let pages = bytes.div_ceil(PAGE_SIZE as usize);
    let phys = FRAMES.lock().alloc_contiguous(pages, PAGE_SIZE)?;
    // SAFETY: freshly allocated identity-mapped frames, owned for ever by the
    // dump disk (never freed); zeroed before the slice is formed.
    unsafe {
        core::ptr::write_bytes(phys as *mut u8, 0, pages * PAGE_SIZE as usize);
        Some(core::slice::from_raw_parts_mut(phys as *mut u8, bytes))
    }
}

const SECTOR: u64 = SECTOR_SIZE as u64;

impl DumpDisk {
    /// Finds the first virtio-blk PCI function (legacy id 0x1001 or modern
    /// 0x1042, both with virtio 1.0 capabilities) and brings it up, polled:
    /// feature negotiation and one virtqueue (virtio 1.2 §3.1.1, §5.2.5).
    pub fn probe() -> Result<Self, ProbeError> {
        let d =
            crate::pci::find(|d| d.vendor == 0x1af4 && (d.device == 0x1001 || d.device == 0x1042))
                .ok_or(ProbeError::NotFound)?;
        let function = DeviceFunction {
            bus: d.address.bus(),
            device: d.address.device(),
            function: d.address.function(),
        };
        let mut root = PciRoot::new(PortCam);
        // The BARs are sized (and assigned where the firmware did not) with
        // decoding off, as Linux's `__pci_read_base` does: here and in
        // `PciTransport::new`, which sizes the capabilities' BAR once per
        // capability (it only computes their addresses).
        let transport = crate::pci::with_decoding_off(&d, || {
            assign_bars(&mut root, function);
            PciTransport::new::<VirtioHal, _>(&mut root, function)
        });
        crate::pci::enable(&d);
        let mut transport = transport.map_err(|e| {
            log::warn!("dump: virtio PCI transport at {function}: {e}");
            ProbeError::Init("virtio PCI transport")
        })?;
        let features = transport.begin_init(Features::all());
        if !features.contains(Features::VERSION_1) {
            return Err(ProbeError::Init("not a virtio 1.0 device"));
        }
        let config = |offset| transport.read_config_space::<u32>(offset);
        let read = || -> virtio_drivers::Result<(u64, u32, u32)> {
            let capacity =
                u64::from(config(CFG_CAPACITY)?) | u64::from(config(CFG_CAPACITY + 4)?) << 32;
            Ok((capacity, config(CFG_SIZE_MAX)?, config(CFG_SEG_MAX)?))
        };
        let (capacity, size_max, seg_max) = transport
            .read_consistent(read)
            .map_err(|_| ProbeError::Init("virtio-blk configuration"))?;
        let max_piece = if features.contains(Features::SIZE_MAX) {
            u64::from(size_max) / SECTOR * SECTOR
        } else {
            u64::MAX
        };
        if max_piece < CHUNK as u64 {
            // A bounce buffer (the ELF headers) must fit one piece.
            return Err(ProbeError::Init("size_max below 256 KiB"));
        }
        let max_parts = if features.contains(Features::SEG_MAX) {
            (seg_max as usize).clamp(1, MAX_PARTS)
        } else {
            MAX_PARTS
        };
        let mut queue = VirtQueue::new(&mut transport, QUEUE, false, false).map_err(|e| {
            log::warn!("dump: virtio-blk at {function}: a {QUEUE_SIZE}-entry virtqueue: {e}");
            ProbeError::Init("virtqueue")
        })?;
        transport.finish_init();
        queue.set_dev_notify(false);
        let slot = || -> Result<Slot, ProbeError> {
            let mem = alloc_buf(CHUNK + PAGE_SIZE as usize).ok_or(ProbeError::NoMemory)?;
            let dma = (mem.as_ptr() as u64, mem.as_ptr() as u64 + mem.len() as u64);
            let (buf, tail) = mem.split_at_mut(CHUNK);
            let (header, tail) = tail.split_at_mut(16);
            let (Ok(header), Ok(status)) = (header.try_into(), (&mut tail[..1]).try_into()) else {
                return Err(ProbeError::NoMemory);
            };
            Ok(Slot {
                header,
                status,
                dma,
                parts: [Part {
                    data: core::ptr::null(),
                    len: 0,
                }; MAX_PARTS],
                nparts: 0,
                offset: 0,
                len: 0,
                bounce_used: 0,
                op: Op::Flush,
                state: State::Idle,
                buf,
            })
        };
        let slots = [slot()?, slot()?, slot()?, slot()?];
        Ok(Self {
            transport,
            queue,
            slots,
            capacity,
            features,
            max_parts,
            max_piece,
            broken: false,
            function,
        })
    }

    /// Disk size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * SECTOR
    }

    /// True if the device refuses writes.
    pub fn readonly(&self) -> bool {
        self.features.contains(Features::RO)
    }

    /// True if `slot` holds no request (then [`Self::begin`] one in it).
    pub fn is_free(&self, slot: usize) -> bool {
        self.slots[slot].state == State::Idle
    }

    /// The slots' DMA memory: bounce buffers, request headers and status
    /// bytes (left out of dumps: rewritten while a dump runs).
    pub fn bounce_ranges(&self) -> [(u64, u64); DEPTH] {
        core::array::from_fn(|i| self.slots[i].dma)
    }

    /// True if a request is in flight.
    pub fn busy(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, State::InFlight(_)))
    }

    /// Starts building a write at byte `offset` in `slot` (a request being
    /// built there is dropped). False if the slot has a request with the
    /// device or `offset` is not a whole sector.
    pub fn begin(&mut self, slot: usize, offset: u64) -> bool {
        let s = &mut self.slots[slot];
        if matches!(s.state, State::InFlight(_)) || !offset.is_multiple_of(SECTOR) {
            return false;
        }
        s.state = State::Building;
        s.offset = offset;
        s.len = 0;
        s.nparts = 0;
        s.bounce_used = 0;
        true
    }

    /// What the request being built in `slot` can still take.
    pub fn room(&self, slot: usize) -> Room {
        let s = &self.slots[slot];
        Room {
            bytes: REQUEST - s.len,
            bounce: s.buf.len() - s.bounce_used,
            piece: self.max_piece,
        }
    }

    /// Appends `len` bytes at `data` to the request in `slot`, merged with
    /// the last piece when they follow it in memory. False (nothing added)
    /// if they do not fit or are not whole sectors.
    fn push(&mut self, slot: usize, data: *const u8, len: usize) -> bool {
        let max_parts = self.max_parts;
        let max_piece = self.max_piece;
        let s = &mut self.slots[slot];
        if s.state != State::Building
            || len == 0
            || !len.is_multiple_of(SECTOR_SIZE)
            || s.len + len as u64 > REQUEST
        {
            return false;
        }
        match s.parts[..s.nparts].last_mut() {
            Some(last)
                if last.data.wrapping_add(last.len) == data
                    && (last.len + len) as u64 <= max_piece =>
            {
                last.len += len;
            }
            _ if s.nparts < max_parts && len as u64 <= max_piece => {
                s.parts[s.nparts] = Part { data, len };
                s.nparts += 1;
            }
            _ => return false,
        }
        s.len += len as u64;
        true
    }

    /// Appends `data` (whole sectors of RAM, written in place) to the
    /// request in `slot`. False if it does not fit ([`Self::room`]).
    ///
    /// # Safety
    /// `data` must stay valid, identity-mapped RAM until the request
    /// completes (the dump writes RAM that is never freed).
    pub unsafe fn push_memory(&mut self, slot: usize, data: &[u8]) -> bool {
        self.push(slot, data.as_ptr(), data.len())
    }

    /// Appends the next `len` bytes (whole sectors) of `slot`'s bounce
    /// buffer to its request and returns them to be filled before
    /// [`Self::submit`]; `None` if they do not fit ([`Self::room`]).
    pub fn push_bounce(&mut self, slot: usize, len: usize) -> Option<&mut [u8]> {
        let s = &mut self.slots[slot];
        let at = s.bounce_used;
        if len > s.buf.len() - at {
            return None;
        }
        // The piece and the slice handed out come from one raw pointer.
        let data = s.buf.as_mut_ptr().wrapping_add(at);
        if !self.push(slot, data, len) {
            return None;
        }
        self.slots[slot].bounce_used += len;
        // SAFETY: `data..data + len` lies in the slot's bounce buffer
        // (checked above), owned by this disk and never freed; no other
        // slice of it is alive while `self` is borrowed, and the device reads
        // it only once the request is submitted.
        Some(unsafe { core::slice::from_raw_parts_mut(data, len) })
    }

    /// Data piece `i` of `slot`'s request, in disk order (for a checksum
    /// once it is submitted: the device only reads it): RAM that is never
    /// freed, or a part of the slot's bounce buffer.
    ///
    /// # Safety
    /// The slice must not be used once the slot's next request is begun
    /// ([`Self::begin`]): its bounce buffer is then written again.
    pub unsafe fn piece(&self, slot: usize, i: usize) -> Option<&'static [u8]> {
        let s = &self.slots[slot];
        let p = s.parts[..s.nparts].get(i)?;
        // SAFETY: as in `inputs`; the caller does not use it past the
        // slot's next request.
        Some(unsafe { core::slice::from_raw_parts(p.data, p.len) })
    }

    /// Hands the request built in `slot` to the device. An empty request
    /// is dropped.
    pub fn submit(&mut self, slot: usize) -> Result<(), IoError> {
        let s = &mut self.slots[slot];
        if s.state != State::Building {
            return Ok(());
        }
        if s.nparts == 0 {
            s.state = State::Idle;
            return Ok(());
        }
        let sector = s.offset / SECTOR;
        let count = s.len / SECTOR;
        if sector + count > self.capacity {
            s.state = State::Idle;
            return Err(IoError::OutOfRange {
                sector,
                capacity: self.capacity,
            });
        }
        self.send(slot, T_OUT, Op::Write { sector, count })
    }

    /// Puts `slot`'s request (`kind`, its pieces) on the virtqueue and
    /// notifies the device.
    fn send(&mut self, slot: usize, kind: u32, op: Op) -> Result<(), IoError> {
        let s = &mut self.slots[slot];
        if self.broken {
            s.state = State::Idle;
            return Err(IoError::Broken);
        }
        s.header[..4].copy_from_slice(&kind.to_le_bytes());
        s.header[4..8].fill(0);
        let sector = match op {
            Op::Write { sector, .. } => sector,
            Op::Flush | Op::Unknown => 0,
        };
        s.header[8..].copy_from_slice(&sector.to_le_bytes());
        *s.status = [0xff];
        s.op = op;
        let (ins, n) = inputs(s.header, &s.parts[..s.nparts]);
        // SAFETY: the header, status and bounce buffer are the slot's DMA
        // memory (never freed) and RAM pieces
        // stay valid (`push_memory`); none is written until the request
        // completes in `reap`, which passes the same buffers back.
        let token = unsafe { self.queue.add(&ins[..n], &mut [&mut s.status[..]]) };
        let token = match token {
            Ok(t) => t,
            Err(error) => {
                s.state = State::Idle;
                return Err(IoError::Queue { op, error });
            }
        };
        s.state = State::InFlight(token);
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
        Ok(())
    }

    /// Takes one completed request off the used ring, if there is one: its
    /// slot is free again.
    pub fn reap(&mut self) -> Option<Result<(), IoError>> {
        let token = self.queue.peek_used()?;
        let Some(i) = self
            .slots
            .iter()
            .position(|s| s.state == State::InFlight(token))
        else {
            self.broken = true;
            return Some(Err(IoError::Queue {
                op: Op::Unknown,
                error: virtio_drivers::Error::WrongToken,
            }));
        };
        let s = &mut self.slots[i];
        let (ins, n) = inputs(s.header, &s.parts[..s.nparts]);
        // SAFETY: the same buffers as `send` passed for this token.
        let popped = unsafe {
            self.queue
                .pop_used(token, &ins[..n], &mut [&mut s.status[..]])
        };
        s.state = State::Idle;
        // SAFETY: the device wrote the status byte before it published the
        // used element (read after `pop_used`).
        let status = unsafe { core::ptr::read_volatile(&s.status[0]) };
        Some(match popped {
            Err(error) => Err(IoError::Queue { op: s.op, error }),
            Ok(_) if status != S_OK => Err(IoError::Status { op: s.op, status }),
            Ok(_) => Ok(()),
        })
    }

    /// Waits until the device completed a request (not taken off the ring:
    /// [`Self::reap`]), at most until TSC `deadline`, which is `timeout_us`
    /// from when the wait began (for the error). The watchdog is petted
    /// meanwhile (rate-limited): every wait here is bounded, so a slow or
    /// dead disk ends in an error the console reports, never in a reset. A
    /// timeout leaves requests with the device: the disk is not used again.
    pub fn wait_until(&mut self, deadline: u64, timeout_us: u64) -> Result<(), IoError> {
        while self.queue.peek_used().is_none() {
            if crate::time::passed(deadline) {
                self.broken = true;
                let op = self
                    .slots
                    .iter()
                    .filter(|s| matches!(s.state, State::InFlight(_)))
                    .min_by_key(|s| s.offset)
                    .map_or(Op::Unknown, |s| s.op);
                return Err(IoError::Timeout {
                    op,
                    ms: timeout_us / 1000,
                });
            }
            crate::watchdog::pet();
            core::hint::spin_loop();
        }
        Ok(())
    }

    /// Waits, at most `timeout_us`, for one request in flight to complete.
    fn complete_within(&mut self, timeout_us: u64) -> Result<(), IoError> {
        let deadline = crate::time::deadline_after_us(timeout_us);
        loop {
            if let Some(r) = self.reap() {
                return r;
            }
            self.wait_until(deadline, timeout_us)?;
        }
    }

    /// Waits (bounded) for one request in flight to complete.
    pub fn complete_one(&mut self) -> Result<(), IoError> {
        self.complete_within(IO_TIMEOUT_US)
    }

    /// Waits for every request in flight.
    pub fn drain(&mut self) -> Result<(), IoError> {
        let mut first = Ok(());
        while self.busy() && !self.broken {
            if let Err(e) = self.complete_one()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// Writes one sector synchronously (bounded) at byte `offset`.
    pub fn write_sector(&mut self, offset: u64, data: &[u8; SECTOR_SIZE]) -> Result<(), IoError> {
        self.drain()?;
        if self.broken {
            return Err(IoError::Broken);
        }
        let buf = if self.begin(0, offset) {
            self.push_bounce(0, SECTOR_SIZE)
        } else {
            None
        };
        let Some(buf) = buf else {
            return Err(IoError::Queue {
                op: Op::Write {
                    sector: offset / SECTOR,
                    count: 1,
                },
                error: virtio_drivers::Error::InvalidParam,
            });
        };
        buf.copy_from_slice(data);
        self.submit(0)?;
        self.complete_one()
    }

    /// Makes every completed write durable (`VIRTIO_BLK_T_FLUSH`, virtio
    /// 1.2 §5.2.6.2), waiting at most [`FLUSH_TIMEOUT_US`] and petting the
    /// watchdog meanwhile (the host may write back a gigabyte). A device
    /// without a write cache (no `VIRTIO_BLK_F_FLUSH`) needs none: false.
    pub fn flush(&mut self) -> Result<bool, IoError> {
        if !self.features.contains(Features::FLUSH) {
            return Ok(false);
        }
        self.drain()?;
        if self.broken {
            return Err(IoError::Broken);
        }
        if !self.begin(0, 0) {
            return Err(IoError::Queue {
                op: Op::Flush,
                error: virtio_drivers::Error::InvalidParam,
            });
        }
        self.send(0, T_FLUSH, Op::Flush)?;
        self.complete_within(FLUSH_TIMEOUT_US)?;
        Ok(true)
    }
}
