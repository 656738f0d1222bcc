//! The panic path's own stack, reserved at boot with a guard page below it.
//!
//! A panic may be raised on an IST stack (#DF, #MC, an unexpected NMI: 16 KiB
//! each, no guard) or on a thread stack close to its end; the report, the
//! panic console, the USB takeover and the dump then need room. The panic
//! CPU switches to this stack at panic entry. Its lowest page is unmapped
//! (split out of the identity map's 2 MiB page), so an overflow faults at
//! once instead of overwriting whatever lies below; the dump leaves that
//! page out.

use core::sync::atomic::{AtomicU64, Ordering};

use super::PAGE_SIZE;

/// Usable size of the panic stack.
pub const SIZE: u64 = 128 * 1024;

/// Physical (= virtual) address of the guard page; the stack follows it.
/// 0: none reserved.
static GUARD: AtomicU64 = AtomicU64::new(0);

/// Reserves the stack and unmaps its guard page. Boot, once, before the
/// other CPUs start.
pub fn reserve() {
    let pages = (SIZE / PAGE_SIZE + 1) as usize;
    let Some(base) = super::FRAMES.lock().alloc_contiguous(pages, PAGE_SIZE) else {
        log::warn!("panic stack: no memory; panics run on the stack they were raised on");
        return;
    };
    if !super::guard::unmap(base) {
        log::warn!("panic stack: could not unmap the guard page at {base:#x}");
        return;
    }
    GUARD.store(base, Ordering::Relaxed);
    log::info!(
        "panic stack: {:#x}-{:#x}, guard page at {base:#x}",
        base + PAGE_SIZE,
        base + PAGE_SIZE + SIZE
    );
}

/// The guard page, if the stack was reserved.
pub fn guard_page() -> Option<u64> {
    Some(GUARD.load(Ordering::Relaxed)).filter(|&g| g != 0)
}

/// The stack's top (16-byte aligned), if it was reserved.
pub fn top() -> Option<u64> {
    guard_page().map(|g| g + PAGE_SIZE + SIZE)
}

/// True if `addr` lies on the panic stack (its guard page excluded).
pub fn contains(addr: u64) -> bool {
    guard_page().is_some_and(|g| (g + PAGE_SIZE..g + PAGE_SIZE + SIZE).contains(&addr))
}
