//! The kernel's implementation of the driver's [`xhci_kbd::Hal`]: DMA memory
//! from the frame allocator (identity mapped, so physical == virtual), or,
//! for a controller brought up at panic time, from a pool reserved at boot
//! below 4 GiB and handed out by a lock-free bump pointer. Either way every
//! region ends at or below the `max_address` the driver asks for (4 GiB - 1
//! for a controller that can only address 32 bits).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xhci_kbd::{DMA_32BIT_LIMIT, DmaRegion, Hal};

use crate::mm::{FRAMES, PAGE_SIZE};

/// Size of the pool reserved for panic-time controller bring-ups (shared by
/// every controller brought up from scratch).
pub const PANIC_POOL_SIZE: u64 = 1024 * 1024;

static POOL_BASE: AtomicU64 = AtomicU64::new(0);
static POOL_NEXT: AtomicU64 = AtomicU64::new(0);

/// `usb.dma32=1`: every controller is treated as one that can only address
/// 32 bits (the driver's `Config::force_32bit_dma`, the same as its quirk).
static FORCE_DMA32: AtomicBool = AtomicBool::new(false);
/// `usb.dmahigh=1` (a test knob): DMA memory from the frame allocator is
/// taken as high as the driver's limit allows, above 4 GiB when allowed.
static PREFER_HIGH: AtomicBool = AtomicBool::new(false);

/// Applies `usb.dma32=` and `usb.dmahigh=` (boot, before [`super::init`]).
pub fn set_dma_options(force_32bit: bool, prefer_high: bool) {
    FORCE_DMA32.store(force_32bit, Ordering::Relaxed);
    PREFER_HIGH.store(prefer_high, Ordering::Relaxed);
}

/// `usb.dma32=1` was given.
pub fn force_32bit_dma() -> bool {
    FORCE_DMA32.load(Ordering::Relaxed)
}

/// Reserves the panic-time DMA pool. Called once at boot, right after the
/// frame allocator is up, so that even an early panic finds it. It lies
/// below 4 GiB: a controller brought up from scratch at panic time may be
/// one that can only address 32 bits.
pub fn reserve_panic_pool() {
    if let Some(base) = FRAMES.lock().alloc_contiguous_below(
        (PANIC_POOL_SIZE / PAGE_SIZE) as usize,
        64 * 1024,
        DMA_32BIT_LIMIT,
    ) {
        POOL_BASE.store(base, Ordering::Relaxed);
        POOL_NEXT.store(base, Ordering::Relaxed);
    }
}

/// Bytes of the panic-time DMA pool handed out so far (lock-free).
pub fn panic_pool_used() -> u64 {
    POOL_NEXT.load(Ordering::Relaxed) - POOL_BASE.load(Ordering::Relaxed)
}

/// Where a [`KernelHal`] takes its DMA memory from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaSource {
    /// The frame allocator (normal operation).
    Frames,
    /// The boot-reserved pool (panic time: no lock, no allocator).
    PanicPool,
}

/// The HAL handed to the driver.
#[derive(Clone, Copy, Debug)]
pub struct KernelHal {
    /// DMA memory source.
    pub source: DmaSource,
}

/// Alignment that keeps a region of `size` bytes inside one 64 KiB window
/// (xHCI 1.2 §6, Table 6-1: no data structure may cross a 64 KiB boundary).
fn dma_align(size: usize, align: usize) -> u64 {
    let a = align.max(PAGE_SIZE as usize) as u64;
    if size <= 64 * 1024 {
        a.max((size as u64).next_power_of_two())
    } else {
        a
    }
}

fn zero(phys: u64, size: usize) {
    // SAFETY: freshly reserved, identity-mapped RAM owned by the caller.
    unsafe { core::ptr::write_bytes(phys as *mut u8, 0, size) };
}

// SAFETY: regions are zeroed, identity mapped (so `virt` == `phys`, RAM
// above 4 GiB included), cache-coherent (x86 RAM is write-back coherent with
// PCI DMA), aligned as requested, never freed, inside one 64 KiB window when
// at most 64 KiB (`dma_align`), and end at or below `max_address` (the
// frame allocator searches below it; the pool is below 4 GiB and checked). MMIO is mapped uncached. The clock is the TSC, which needs
// no interrupts and no locks. The panic pool takes no lock at all.
unsafe impl Hal for KernelHal {
    fn dma_alloc(&self, size: usize, align: usize, max_address: u64) -> Option<DmaRegion> {
        let a = dma_align(size, align);
        let phys = match self.source {
            DmaSource::Frames => {
                let frames = (size as u64).div_ceil(PAGE_SIZE) as usize;
                let mut allocator = FRAMES.lock();
                let phys = if PREFER_HIGH.load(Ordering::Relaxed) {
                    allocator.alloc_contiguous_high(frames, a, max_address)?
                } else {
                    allocator.alloc_contiguous_below(frames, a, max_address)?
                };
                drop(allocator);
                // The controller writes it: a dump must snapshot it.
                crate::dump::volatile::note(phys, frames as u64 * PAGE_SIZE);
                phys
            }
            DmaSource::PanicPool => {
                let base = POOL_BASE.load(Ordering::Relaxed);
                if base == 0 {
                    return None;
                }
                let next = POOL_NEXT.load(Ordering::Relaxed);
                let start = next.div_ceil(a) * a;
                let end = start.checked_add(size as u64)?;
                if end > base + PANIC_POOL_SIZE || end - 1 > max_address {
                    return None;
                }
                POOL_NEXT.store(end, Ordering::Relaxed);
                // In use now (an early panic's controller): a dump must
                // snapshot it. Unused, it is stable memory.
                crate::dump::volatile::note(start, size as u64);
                start
            }
        };
        zero(phys, size);
        Some(DmaRegion {
            phys,
            virt: NonNull::new(phys as *mut u8)?,
            size,
        })
    }

    fn map_mmio(&self, phys: u64, size: usize) -> NonNull<u8> {
        let v = crate::mm::paging::map_mmio(phys, size as u64);
        NonNull::new(v as *mut u8).unwrap_or(NonNull::dangling())
    }

    fn now_us(&self) -> u64 {
        crate::time::now_us()
    }

    /// Every bounded wait of the driver (command, reset, port reset; the
    /// panic takeover's among them) passes here: the watchdog is petted
    /// (rate-limited), so a slow controller ends in the driver's own
    /// timeout and a one-line reason, never in a watchdog reset. (Before the
    /// panic the watchdog is not armed and petting is a no-op.)
    fn delay_us(&self, us: u64) {
        crate::time::delay_us(us);
        crate::watchdog::pet();
    }
}
