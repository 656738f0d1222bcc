//! Memory that may change while a dump is being written. The dump copies
//! such memory into a bounce buffer (a snapshot that matches the checksum)
//! and lets the disk read everything else in place, without a copy.
//!
//! Once the other CPUs are parked, RAM changes only through the dumping CPU
//! and through devices: the kernel's `.data` and `.bss` (statics of the
//! console, the drivers, the frame bitmap, the IST stacks), the dumping
//! CPU's stack, and the DMA areas of the devices still in use (the xHCI
//! controller polled for Ctrl-C, the dump disk's queue). The DMA areas and
//! the statics are recorded here when they are reserved; the stack is taken
//! at dump time; the bounce buffers themselves are left out of the dump. If
//! the table overflows, or a CPU stopped half-way through recording, all
//! memory counts as volatile (every byte copied).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Recorded ranges (DMA allocations are coarse: a few per USB device).
const MAX: usize = 256;
/// Stack around the dumping CPU's stack pointer treated as volatile when it
/// is not inside a thread stack (boot, AP and interrupt stacks).
const STACK_WINDOW: u64 = 128 * 1024;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));
static RANGES: [(AtomicU64, AtomicU64); MAX] = [EMPTY; MAX];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static OVERFLOW: AtomicBool = AtomicBool::new(false);

/// Records `[start, start + len)` as memory a device or the panic path may
/// write during a dump. Lock-free; any CPU, any time.
pub fn note(start: u64, len: u64) {
    if len == 0 {
        return;
    }
    let i = COUNT.fetch_add(1, Ordering::Relaxed);
    let Some((s, e)) = RANGES.get(i) else {
        OVERFLOW.store(true, Ordering::Relaxed);
        return;
    };
    s.store(start, Ordering::Relaxed);
    // The end is published last: an entry with end 0 is not complete yet.
    e.store(start.saturating_add(len), Ordering::Release);
}

/// The volatile memory at the start of a dump.
pub struct Volatile {
    stack: (u64, u64),
    all: bool,
}

impl Volatile {
    /// Takes the dumping CPU's stack: its thread's stack if the stack
    /// pointer lies in it, else a window around the stack pointer.
    pub fn now() -> Self {
        let rsp: u64;
        // SAFETY: reads the stack pointer only.
        unsafe {
            core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
        };
        let t = crate::sched::current_ptr();
        let (lo, hi) = if t.is_null() {
            (0, 0)
        } else {
            // SAFETY: a non-null current thread stays alive while it runs
            // (its CPU's `current` keeps it), and this CPU is running it.
            unsafe { (*t).stack_range() }
        };
        let stack = if (lo..hi).contains(&rsp) {
            (lo, hi)
        } else {
            (
                rsp.saturating_sub(STACK_WINDOW),
                rsp.saturating_add(STACK_WINDOW),
            )
        };
        Self {
            stack,
            all: OVERFLOW.load(Ordering::Relaxed),
        }
    }

    /// Whether `[addr, addr + len)` may change while the dump runs.
    pub fn overlaps(&self, addr: u64, len: u64) -> bool {
        let end = addr.saturating_add(len);
        let hit = |s: u64, e: u64| addr < e && s < end;
        if self.all || hit(self.stack.0, self.stack.1) {
            return true;
        }
        let n = COUNT.load(Ordering::Relaxed).min(MAX);
        RANGES[..n].iter().any(|(s, e)| {
            let e = e.load(Ordering::Acquire);
            e == 0 || hit(s.load(Ordering::Relaxed), e)
        })
    }
}
