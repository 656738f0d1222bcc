//! The one trait the kernel implements: DMA memory, MMIO mapping and time.
//!
//! Everything the driver needs from its environment goes through [`Hal`]. The
//! driver allocates all its DMA memory in [`Controller::new`](crate::Controller::new)
//! and never later, so a kernel whose allocator is unusable (panic mode) can keep
//! calling [`Controller::poll`](crate::Controller::poll).

use core::ptr::NonNull;

/// A block of DMA-capable memory handed out by [`Hal::dma_alloc`].
///
/// The driver never frees it: a controller lives for as long as the kernel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaRegion {
    /// Bus/physical address the controller uses.
    pub phys: u64,
    /// Where the CPU reaches the same bytes (cache-coherent, e.g. write-back RAM on x86).
    pub virt: NonNull<u8>,
    /// Size in bytes (at least what was asked for).
    pub size: usize,
}

/// The highest physical address a controller without 64-bit addressing can
/// reach (HCCPARAMS1.AC64 = 0, xHCI 1.2 §5.3.6: the high dwords of every
/// 64-bit address register and field are then ignored), passed as
/// `max_address` to [`Hal::dma_alloc`].
pub const DMA_32BIT_LIMIT: u64 = 0xffff_ffff;

/// Services the kernel provides to the driver.
///
/// # Implementation safety
///
/// The implementer guarantees:
/// - [`dma_alloc`](Hal::dma_alloc) returns memory that is zeroed, aligned to
///   `align` (physically and virtually), at least `size` bytes long, whose
///   every byte has a physical address of at most `max_address`, cache
///   coherent with device DMA, never handed out to anybody else, never freed
///   while the controller exists, and — for `size <= 65536` — does **not cross a
///   64 KiB physical boundary** (xHCI 1.2 §6, Table 6-1: rings, contexts and
///   scratchpad buffers must not). `virt` and `phys` name the same bytes.
/// - [`map_mmio`](Hal::map_mmio) returns an uncached (UC or WC-free) mapping of
///   `size` bytes at physical address `phys`, valid for the life of the
///   controller.
/// - [`now_us`](Hal::now_us) is monotonic, counts microseconds and works with
///   interrupts disabled and other CPUs stopped (e.g. a calibrated TSC).
/// - [`delay_us`](Hal::delay_us) busy-waits at least roughly the given time
///   without needing interrupts, locks or allocation.
/// - None of the methods take locks that a stopped CPU might hold, so they
///   work in panic mode.
///
/// # Safety
///
/// Callers (this crate) only pass sizes and alignments that are powers of two
/// for alignment, and only access DMA memory within `size`.
pub unsafe trait Hal {
    /// Allocates zeroed DMA memory below a limit; `None` when out of memory
    /// (or out of memory below `max_address`).
    ///
    /// `max_address` is the highest physical address any byte of the region
    /// may have: [`DMA_32BIT_LIMIT`] for a controller that can only address
    /// 32 bits (HCCPARAMS1.AC64 = 0, xHCI 1.2 §5.3.6, or a controller with a
    /// quirk, as Linux's `XHCI_NO_64BIT_SUPPORT`), `u64::MAX` otherwise. The
    /// driver checks what it gets and fails with a clear error if a region
    /// ends above the limit.
    fn dma_alloc(&self, size: usize, align: usize, max_address: u64) -> Option<DmaRegion>;
    /// Maps `size` bytes of device registers at `phys`, uncached. Called twice
    /// by [`Controller::new`](crate::Controller::new): 4 KiB to read the
    /// capability registers, then the size actually needed (at most the BAR).
    fn map_mmio(&self, phys: u64, size: usize) -> NonNull<u8>;
    /// Monotonic time in microseconds.
    fn now_us(&self) -> u64;
    /// Busy-waits for about `us` microseconds.
    fn delay_us(&self, us: u64);
}
