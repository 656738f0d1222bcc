//! Bounds-checked volatile access to DMA memory obtained from the [`Hal`](crate::Hal).
//!
//! This is one of the few modules with `unsafe`: every access is checked
//! against the region's size, so the rest of the driver is safe code.

use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};

use crate::hal::DmaRegion;

/// A window into DMA memory: physical address, CPU pointer and length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DmaBuf {
    phys: u64,
    virt: NonNull<u8>,
    len: usize,
}

impl DmaBuf {
    /// Wraps memory returned by [`Hal::dma_alloc`](crate::Hal::dma_alloc).
    pub(crate) fn from_region(region: DmaRegion) -> Self {
        Self {
            phys: region.phys,
            virt: region.virt,
            len: region.size,
        }
    }

    /// Physical address of the first byte.
    pub(crate) fn phys(&self) -> u64 {
        self.phys
    }

    /// A sub-window; `None` when it does not fit.
    pub(crate) fn sub(&self, offset: usize, len: usize) -> Option<DmaBuf> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: offset <= len of a valid allocation, so the pointer stays inside it.
        let virt = unsafe { NonNull::new_unchecked(self.virt.as_ptr().add(offset)) };
        Some(DmaBuf {
            phys: self.phys + offset as u64,
            virt,
            len,
        })
    }

    /// Reads a little-endian u32 at `offset` (0 when out of range).
    pub(crate) fn read32(&self, offset: usize) -> u32 {
        if offset.checked_add(4).is_none_or(|e| e > self.len) || !offset.is_multiple_of(4) {
            return 0;
        }
        // SAFETY: in bounds and 4-aligned (regions are at least 16-aligned); the
        // memory is DMA memory that the device may change, hence volatile.
        unsafe { self.virt.as_ptr().add(offset).cast::<u32>().read_volatile() }
    }

    /// Writes a u32 at `offset` (ignored when out of range).
    pub(crate) fn write32(&self, offset: usize, value: u32) {
        if offset.checked_add(4).is_none_or(|e| e > self.len) || !offset.is_multiple_of(4) {
            return;
        }
        // SAFETY: in bounds and aligned, see `read32`; we own this memory.
        unsafe {
            self.virt
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value)
        }
    }

    /// Writes a u64 as two u32 (low first).
    pub(crate) fn write64(&self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }

    /// Reads one byte.
    pub(crate) fn read8(&self, offset: usize) -> u8 {
        if offset >= self.len {
            return 0;
        }
        // SAFETY: in bounds.
        unsafe { self.virt.as_ptr().add(offset).read_volatile() }
    }

    /// Copies bytes out of DMA memory into `out` (up to both lengths).
    pub(crate) fn read_bytes(&self, offset: usize, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len.saturating_sub(offset));
        for (i, b) in out.iter_mut().take(n).enumerate() {
            *b = self.read8(offset + i);
        }
        n
    }

    /// Writes one byte.
    pub(crate) fn write8(&self, offset: usize, value: u8) {
        if offset >= self.len {
            return;
        }
        // SAFETY: in bounds.
        unsafe { self.virt.as_ptr().add(offset).write_volatile(value) }
    }

    /// Zeroes the whole window.
    pub(crate) fn zero(&self) {
        let mut off = 0;
        while off + 4 <= self.len {
            self.write32(off, 0);
            off += 4;
        }
        while off < self.len {
            self.write8(off, 0);
            off += 1;
        }
        fence(Ordering::SeqCst);
    }
}

/// TRB memory of a ring, as the pure ring logic sees it.
impl crate::ring::TrbMemory for DmaBuf {
    fn trb_count(&self) -> usize {
        self.len / 16
    }
    fn read_trb(&self, index: usize) -> [u32; 4] {
        let o = index * 16;
        // Consumer side of xHCI 1.2 §4.9.4: dword 3 (with the cycle bit)
        // first, then the rest. Reading dword 0 first can pair a stale
        // parameter with a fresh cycle bit when the producer (the xHC, or
        // QEMU's non-atomic DMA write) writes the TRB meanwhile: the event
        // then names TRB pointer 0 and its completion is lost.
        let control = self.read32(o + 12);
        fence(Ordering::Acquire);
        [
            self.read32(o),
            self.read32(o + 4),
            self.read32(o + 8),
            control,
        ]
    }
    fn write_trb(&mut self, index: usize, trb: [u32; 4]) {
        let o = index * 16;
        self.write32(o, trb[0]);
        self.write32(o + 4, trb[1]);
        self.write32(o + 8, trb[2]);
        // xHCI 1.2 §4.9.2: the cycle bit in dword 3 hands the TRB over; the
        // other dwords must be visible first.
        fence(Ordering::Release);
        self.write32(o + 12, trb[3]);
        fence(Ordering::SeqCst);
    }
    fn phys_base(&self) -> u64 {
        self.phys
    }
}
