//! Memory that may change while a dump is being written. The dump copies
//! such memory into a bounce buffer (a snapshot that matches the checksum)
//! and lets the disk read everything else in place, without a copy.
//!
//! Once the other CPUs are parked, RAM changes only through the dumping CPU
//! and through devices: the kernel's `.data` and `.bss` (statics of the
//! console and the drivers; not the frame bitmap, as nothing allocates after
//! a panic, nor the IST stacks of parked CPUs), the dumping CPU's stacks
//! (the one it runs on and its IST stacks), and the DMA areas of the devices
//! still in use (the xHCI controller polled for Ctrl-C, the panic-time DMA
//! pool once an early panic uses it, the dump disk's queue). The DMA areas
//! and the statics are recorded here when they are reserved; the stacks are
//! taken at dump time; the bounce buffers themselves are left out of the
//! dump. A memory run is cut into pieces where volatile memory starts or
//! ends, so only volatile pages are copied. If the table overflows, or a
//! CPU stopped half-way through recording, all memory counts as volatile
//! (every byte copied).

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

/// Records `[start, end)` but the `holes` in it (disjoint ranges, any order)
/// as volatile.
pub fn note_except(start: u64, end: u64, holes: &mut [(u64, u64)]) {
    let end = end.max(start);
    holes.sort_unstable();
    let mut at = start;
    for &(s, e) in holes.iter() {
        let (s, e) = (s.clamp(at, end), e.clamp(at, end));
        note(at, s - at);
        at = e;
    }
    note(at, end - at);
}

/// Entries of the table a dump prepares with [`Volatile::now`]: the
/// recorded ranges, the dumping CPU's four stacks and the framebuffer
/// console's shadow.
pub const CAPACITY: usize = MAX + 5;

/// The volatile memory at the start of a dump: every range widened to whole
/// pages, sorted and merged, in a table the dump provides.
pub struct Volatile<'a> {
    merged: &'a [(u64, u64)],
    all: bool,
}

impl<'a> Volatile<'a> {
    /// Takes the recorded ranges, the framebuffer console's shadow and the
    /// dumping CPU's stacks into `table`:
    /// its thread's stack or the panic stack if the stack pointer lies in
    /// it, else a window
    /// around the stack pointer; and its three IST stacks (an NMI or a
    /// machine check on this CPU would write one while the dump runs).
    pub fn now(table: &'a mut [(u64, u64); CAPACITY]) -> Self {
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
        } else if let Some(top) = crate::mm::panic_stack::top()
            && crate::mm::panic_stack::contains(rsp)
        {
            (top - crate::mm::panic_stack::SIZE, top)
        } else {
            (
                rsp.saturating_sub(STACK_WINDOW),
                rsp.saturating_add(STACK_WINDOW),
            )
        };
        let n = COUNT.load(Ordering::Relaxed).min(MAX);
        // An entry without its end: a CPU stopped half-way through `note`.
        let torn = RANGES[..n]
            .iter()
            .any(|(_, e)| e.load(Ordering::Acquire) == 0);
        let me = crate::arch::cpu::current_index();
        let ist = |slot| crate::arch::gdt::ist_stack_range(me, slot);
        let page = crate::mm::PAGE_SIZE;
        let recorded = RANGES[..n]
            .iter()
            .map(|(s, e)| (s.load(Ordering::Relaxed), e.load(Ordering::Acquire)));
        // The framebuffer console's shadow (heap) changes with every line
        // the dump prints.
        let shadow = crate::fb::shadow_range().unwrap_or((0, 0));
        let stacks = [stack, ist(0), ist(1), ist(2), shadow];
        for (slot, (s, e)) in table.iter_mut().zip(recorded.chain(stacks)) {
            *slot = (s / page * page, e.saturating_add(page - 1) / page * page);
        }
        let used = crashdump::segments::merge(&mut table[..n + stacks.len()]);
        Self {
            merged: &table[..used],
            all: torn || OVERFLOW.load(Ordering::Relaxed),
        }
    }

    /// Splits `[addr, addr + len)` (whole pages): the length of its leading
    /// part that is all volatile or all stable, and whether it is volatile.
    /// A dump copies only the volatile parts, so that a 4 MiB request that
    /// holds one page of a DMA ring does not become a 4 MiB copy.
    pub fn leading(&self, addr: u64, len: u64) -> (u64, bool) {
        if self.all {
            return (len, true);
        }
        crashdump::segments::leading(addr, len, self.merged)
    }
}
