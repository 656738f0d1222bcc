//! The kernel heap: `talc` on the kernel's own panic-aware lock.

use talc::TalcLock;
use talc::source::Manual;

use crate::sync::irq::RawIrqSpin;

#[global_allocator]
static HEAP: TalcLock<RawIrqSpin, Manual> = TalcLock::new(Manual);

static mut HEAP_RANGE: (u64, u64) = (0, 0);

/// Gives the heap `[base, base + size)`.
pub fn init(base: u64, size: u64) {
    // SAFETY: the range is identity mapped RAM reserved for the heap by the
    // caller (taken from the frame allocator), used by nothing else.
    unsafe {
        HEAP.lock().claim(base as *mut u8, size as usize);
        HEAP_RANGE = (base, base + size);
    }
}

/// Heap bounds (for `mem` and the dump).
pub fn range() -> (u64, u64) {
    // SAFETY: written once at boot before other CPUs start.
    unsafe { HEAP_RANGE }
}

/// Bytes allocated and number of live allocations.
pub fn stats() -> (usize, usize) {
    let c = *HEAP.lock().counters();
    (c.allocated_bytes, c.allocation_count)
}
