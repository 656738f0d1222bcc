//! Guard pages: single 4 KiB pages unmapped from the identity map right below
//! a stack, so that an overflow faults at once instead of silently
//! overwriting what lies below (the boot stack sits above the boot page
//! tables). Code that walks all of RAM (the crash dump) asks [`is_guard`]
//! and leaves them out: reading one would fault.

use core::sync::atomic::{AtomicU64, Ordering};

/// Most guard pages: the boot stack's and the panic stack's.
const MAX_GUARDS: usize = 4;

/// Page addresses of the guard pages; 0: free slot.
static GUARDS: [AtomicU64; MAX_GUARDS] = [const { AtomicU64::new(0) }; MAX_GUARDS];

/// Unmaps the page at `addr` (page aligned) and records it as a guard page.
/// Boot only, before the other CPUs start ([`super::paging::unmap_guard_page`]).
/// Returns false, with the page still mapped, if there is no free slot or the
/// page is not in the identity map.
pub fn unmap(addr: u64) -> bool {
    let Some(slot) = GUARDS.iter().find(|g| g.load(Ordering::Relaxed) == 0) else {
        return false;
    };
    if !super::paging::unmap_guard_page(addr) {
        return false;
    }
    slot.store(addr & !(super::PAGE_SIZE - 1), Ordering::Relaxed);
    true
}

/// Is the page holding `addr` a guard page? Lock-free (the panic path asks).
pub fn is_guard(addr: u64) -> bool {
    let page = addr & !(super::PAGE_SIZE - 1);
    GUARDS.iter().any(|g| {
        let v = g.load(Ordering::Relaxed);
        v != 0 && v == page
    })
}
