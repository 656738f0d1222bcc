//! The dump disk: a virtio-blk PCI function driven by `virtio-drivers` in
//! polled mode (no interrupts), created at boot so that every DMA buffer
//! (virtqueue, bounce buffers, request and response) exists before a panic.
//! Every request is submitted without blocking and waited for against a TSC
//! deadline: a device that stops answering gives an error naming the sector.

use core::fmt;

use virtio_drivers::device::blk::{BlkReq, BlkResp, RespStatus, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};

use super::hal::{PortCam, VirtioHal};
use crate::mm::{FRAMES, PAGE_SIZE};

/// Bytes per bounce buffer (the most one copied request writes).
pub const CHUNK: usize = 256 << 10;
/// Most bytes one in-place request writes. Each request costs the emulator
/// a fixed ~25 us (measured under TCG: 256 KiB requests 4.6 GB/s, 1 MiB
/// 6.7 GB/s, 4 MiB 8 GB/s).
pub const REQUEST: usize = 4 << 20;
/// Requests in flight at once (one bounce buffer each).
pub const DEPTH: usize = 4;
/// Longest wait for one request.
pub const IO_TIMEOUT_US: u64 = 5_000_000;

/// A failed or timed-out request.
#[derive(Clone, Copy, Debug)]
pub enum IoError {
    /// The device did not complete the request in time.
    Timeout {
        /// First sector of the request.
        sector: u64,
        /// Sectors in the request.
        count: u64,
    },
    /// The device or the queue reported an error.
    Failed {
        /// First sector of the request.
        sector: u64,
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
            Self::Timeout { sector, count } => write!(
                f,
                "write of sectors {sector}..{} timed out after {} ms",
                sector + count,
                IO_TIMEOUT_US / 1000
            ),
            Self::Failed { sector, error } => write!(f, "write at sector {sector} failed: {error}"),
            Self::OutOfRange { sector, capacity } => {
                write!(
                    f,
                    "write at sector {sector} is beyond the end of the disk ({capacity} sectors)"
                )
            }
            Self::Broken => write!(f, "the dump device timed out earlier and is not used again"),
        }
    }
}

/// A request in flight.
#[derive(Clone, Copy)]
struct InFlight {
    token: u16,
    sector: u64,
    /// The data being written: the slot's bounce buffer or memory written
    /// in place.
    data: *const u8,
    len: usize,
}

impl InFlight {
    /// The data passed to `write_blocks_nb`, for `complete_write_blocks`.
    ///
    /// # Safety
    /// `data..data + len` was valid when submitted and stays so: bounce
    /// buffers and RAM written in place are never freed.
    unsafe fn data(&self) -> &[u8] {
        // SAFETY: forwarded to the caller.
        unsafe { core::slice::from_raw_parts(self.data, self.len) }
    }
}

struct Slot {
    req: BlkReq,
    resp: BlkResp,
    busy: Option<InFlight>,
    buf: &'static mut [u8],
}

/// The dump disk.
pub struct DumpDisk {
    blk: VirtIOBlk<VirtioHal, PciTransport>,
    slots: [Slot; DEPTH],
    /// One sector for the header.
    sector_buf: &'static mut [u8],
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

impl DumpDisk {
    /// Finds the first virtio-blk PCI function (legacy id 0x1001 or modern
    /// 0x1042, both with virtio 1.0 capabilities) and brings it up, polled.
    pub fn probe() -> Result<Self, ProbeError> {
        let d =
            crate::pci::find(|d| d.vendor == 0x1af4 && (d.device == 0x1001 || d.device == 0x1042))
                .ok_or(ProbeError::NotFound)?;
        crate::pci::enable(&d);
        let function = DeviceFunction {
            bus: d.address.bus(),
            device: d.address.device(),
            function: d.address.function(),
        };
        let mut root = PciRoot::new(PortCam);
        assign_bars(&mut root, function);
        crate::pci::enable(&d);
        let transport = PciTransport::new::<VirtioHal, _>(&mut root, function).map_err(|e| {
            log::warn!("dump: virtio PCI transport at {function}: {e}");
            ProbeError::Init("virtio PCI transport")
        })?;
        let mut blk = VirtIOBlk::<VirtioHal, _>::new(transport).map_err(|e| {
            log::warn!("dump: virtio-blk at {function}: {e}");
            ProbeError::Init("virtio-blk")
        })?;
        blk.disable_interrupts();
        let slot = || -> Result<Slot, ProbeError> {
            Ok(Slot {
                req: BlkReq::default(),
                resp: BlkResp::default(),
                busy: None,
                buf: alloc_buf(CHUNK).ok_or(ProbeError::NoMemory)?,
            })
        };
        let slots = [slot()?, slot()?, slot()?, slot()?];
        let sector_buf = alloc_buf(SECTOR_SIZE).ok_or(ProbeError::NoMemory)?;
        Ok(Self {
            blk,
            slots,
            sector_buf,
            broken: false,
            function,
        })
    }

    /// Disk size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.blk.capacity() * SECTOR_SIZE as u64
    }

    /// True if the device refuses writes.
    pub fn readonly(&self) -> bool {
        self.blk.readonly()
    }

    /// The bounce buffer of a free slot, if any (fill it, then [`Self::submit`]).
    pub fn free_slot(&mut self) -> Option<usize> {
        self.slots.iter().position(|s| s.busy.is_none())
    }

    /// The bounce buffers' address ranges (left out of dumps).
    pub fn bounce_ranges(&self) -> [(u64, u64); DEPTH] {
        core::array::from_fn(|i| {
            let b = &self.slots[i].buf;
            (b.as_ptr() as u64, b.as_ptr() as u64 + b.len() as u64)
        })
    }

    /// Bounce buffer `slot`.
    pub fn buffer(&mut self, slot: usize) -> &mut [u8] {
        self.slots[slot].buf
    }

    /// True if a request is in flight.
    pub fn busy(&self) -> bool {
        self.slots.iter().any(|s| s.busy.is_some())
    }

    /// Starts writing `len` bytes of bounce buffer `slot` at byte `offset`
    /// (rounded up to whole sectors).
    pub fn submit(&mut self, slot: usize, offset: u64, len: usize) -> Result<(), IoError> {
        let len = len
            .next_multiple_of(SECTOR_SIZE)
            .min(self.slots[slot].buf.len());
        let data = self.slots[slot].buf[..len].as_ptr();
        // SAFETY: the bounce buffer is owned by this disk and never freed.
        unsafe { self.submit_from(slot, offset, data, len) }
    }

    /// Starts writing `data` (whole sectors) in place at byte `offset`,
    /// using `slot`'s request and response (its bounce buffer is not used).
    ///
    /// # Safety
    /// `data` must stay valid, identity-mapped RAM until the request
    /// completes (the dump writes RAM that is never freed).
    pub unsafe fn submit_memory(
        &mut self,
        slot: usize,
        offset: u64,
        data: &[u8],
    ) -> Result<(), IoError> {
        if !data.len().is_multiple_of(SECTOR_SIZE) {
            return Err(IoError::Failed {
                sector: offset / SECTOR_SIZE as u64,
                error: virtio_drivers::Error::InvalidParam,
            });
        }
        // SAFETY: forwarded to the caller.
        unsafe { self.submit_from(slot, offset, data.as_ptr(), data.len()) }
    }

    /// # Safety
    /// `data..data + len` stays valid until the request completes.
    unsafe fn submit_from(
        &mut self,
        slot: usize,
        offset: u64,
        data: *const u8,
        len: usize,
    ) -> Result<(), IoError> {
        if self.broken {
            return Err(IoError::Broken);
        }
        let sector = offset / SECTOR_SIZE as u64;
        let capacity = self.blk.capacity();
        if sector + (len / SECTOR_SIZE) as u64 > capacity {
            return Err(IoError::OutOfRange { sector, capacity });
        }
        let s = &mut self.slots[slot];
        let f = InFlight {
            token: 0,
            sector,
            data,
            len,
        };
        // SAFETY: `req` and `resp` live in this `DumpDisk` (never moved once
        // stored in its static), the data stays valid (caller); none is
        // touched until the request completes in `complete_one`, which
        // passes the same three back.
        let token = unsafe {
            self.blk
                .write_blocks_nb(sector as usize, &mut s.req, f.data(), &mut s.resp)
        }
        .map_err(|error| IoError::Failed { sector, error })?;
        s.busy = Some(InFlight { token, ..f });
        Ok(())
    }

    /// Waits (bounded) for one request in flight to complete.
    pub fn complete_one(&mut self) -> Result<(), IoError> {
        let deadline = crate::time::deadline_after_us(IO_TIMEOUT_US);
        loop {
            if let Some(token) = self.blk.peek_used() {
                let found = self
                    .slots
                    .iter()
                    .enumerate()
                    .find_map(|(i, s)| s.busy.filter(|b| b.token == token).map(|f| (i, f)));
                let Some((i, f)) = found else {
                    self.broken = true;
                    return Err(IoError::Failed {
                        sector: 0,
                        error: virtio_drivers::Error::WrongToken,
                    });
                };
                let s = &mut self.slots[i];
                s.busy = None;
                let sector = f.sector;
                // SAFETY: the same buffers as passed to `write_blocks_nb` for this token.
                let r = unsafe {
                    self.blk
                        .complete_write_blocks(token, &s.req, f.data(), &mut s.resp)
                };
                return match r {
                    Ok(()) if s.resp.status() == RespStatus::OK => Ok(()),
                    Ok(()) => Err(IoError::Failed {
                        sector,
                        error: virtio_drivers::Error::IoError,
                    }),
                    Err(error) => Err(IoError::Failed { sector, error }),
                };
            }
            if crate::time::passed(deadline) {
                self.broken = true;
                let (sector, len) = self
                    .slots
                    .iter()
                    .filter_map(|s| s.busy)
                    .map(|b| (b.sector, b.len))
                    .min()
                    .unwrap_or((0, 0));
                return Err(IoError::Timeout {
                    sector,
                    count: (len / SECTOR_SIZE) as u64,
                });
            }
            core::hint::spin_loop();
        }
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
        // Borrow slot 0's request/response with the dedicated sector buffer.
        self.sector_buf.copy_from_slice(data);
        if self.broken {
            return Err(IoError::Broken);
        }
        let sector = offset / SECTOR_SIZE as u64;
        let s = &mut self.slots[0];
        // SAFETY: as `submit`; `sector_buf` is owned by this `DumpDisk`.
        let token = unsafe {
            self.blk
                .write_blocks_nb(sector as usize, &mut s.req, self.sector_buf, &mut s.resp)
        }
        .map_err(|error| IoError::Failed { sector, error })?;
        let deadline = crate::time::deadline_after_us(IO_TIMEOUT_US);
        while self.blk.peek_used() != Some(token) {
            if crate::time::passed(deadline) {
                self.broken = true;
                return Err(IoError::Timeout { sector, count: 1 });
            }
            core::hint::spin_loop();
        }
        // SAFETY: the same buffers as passed to `write_blocks_nb` above.
        unsafe {
            self.blk
                .complete_write_blocks(token, &s.req, self.sector_buf, &mut s.resp)
        }
        .map_err(|error| IoError::Failed { sector, error })?;
        if s.resp.status() != RespStatus::OK {
            return Err(IoError::Failed {
                sector,
                error: virtio_drivers::Error::IoError,
            });
        }
        Ok(())
    }
}
