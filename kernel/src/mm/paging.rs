//! Kernel page tables. The boot stub identity-maps 0-4 GiB with 2 MiB pages;
//! this module extends the identity map for RAM above 4 GiB and for MMIO, and
//! translates addresses for the debugger without touching unmapped memory.

use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MappedFrame, TranslateResult};
use x86_64::structures::paging::{
    FrameAllocator as FrameAllocatorTrait, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags, PhysFrame, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::frame::FRAMES;
use crate::sync::SpinLock;

/// Serialises changes to the page tables.
static MAP_LOCK: SpinLock<()> = SpinLock::new(());

struct Frames;

// SAFETY: frames come from the global allocator, unused and identity mapped.
unsafe impl FrameAllocatorTrait<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let a = FRAMES.lock().alloc()?;
        // SAFETY: a freshly allocated, identity-mapped frame; page tables must start zeroed.
        unsafe { core::ptr::write_bytes(a as *mut u8, 0, 4096) };
        Some(PhysFrame::containing_address(PhysAddr::new(a)))
    }
}

fn table() -> OffsetPageTable<'static> {
    let (l4, _) = Cr3::read();
    // SAFETY: physical memory is identity mapped (offset 0) and CR3 points at
    // the live level-4 table.
    unsafe {
        OffsetPageTable::new(
            &mut *(l4.start_address().as_u64() as *mut PageTable),
            VirtAddr::new(0),
        )
    }
}

/// Identity-maps `[phys, phys + size)` with 2 MiB pages and `flags`, skipping
/// pages already mapped.
///
/// After a panic the page tables are not edited at all (the frame allocator
/// and the map lock may be mid-update in a stopped CPU's dead frame): a range
/// not mapped by then stays unmapped, and the caller must check
/// [`is_mapped`] (the panic path maps everything it needs at boot).
fn identity_map(phys: u64, size: u64, flags: PageTableFlags) {
    if is_mapped(phys, size) {
        return;
    }
    if crate::sync::raw::scheduler_stopped() {
        return;
    }
    let _g = MAP_LOCK.lock();
    let mut t = table();
    let start = phys & !0x1f_ffff;
    let end = (phys + size + 0x1f_ffff) & !0x1f_ffff;
    let mut a = start;
    while a < end {
        if t.translate_addr(VirtAddr::new(a)).is_none() {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(a));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(a));
            // SAFETY: identity mapping of a physical range nobody else maps.
            if let Ok(f) = unsafe { t.map_to(page, frame, flags, &mut Frames) } {
                f.flush();
            }
        }
        a += 0x20_0000;
    }
}

/// Unmaps the 4 KiB page at `addr` from the identity map, splitting the
/// 2 MiB page that holds it into 512 small pages with the same flags first
/// (Intel SDM Vol. 3A §4.5, Table 4-17 and 4-19: a PDE with PS=1 maps 2 MiB;
/// with PS=0 it points at a page table). A guard page: any access faults.
/// Boot only, before the other CPUs start (this CPU's TLB is flushed).
/// Returns false if `addr` is not in a present identity mapping.
pub fn unmap_guard_page(addr: u64) -> bool {
    let _g = MAP_LOCK.lock();
    let va = VirtAddr::new(addr & !0xfff);
    let (l4, _) = Cr3::read();
    // Each level is identity mapped: a table's physical address is its address.
    let table_at = |phys: PhysAddr| phys.as_u64() as *mut PageTable;
    // SAFETY: CR3 points at the live level-4 table; every table below is
    // reached through a present entry and identity mapped; only this CPU
    // runs (boot), and the map lock is held.
    unsafe {
        let l4 = &mut *table_at(l4.start_address());
        let e4 = &l4[va.p4_index()];
        if !e4.flags().contains(PageTableFlags::PRESENT) {
            return false;
        }
        let l3 = &mut *table_at(e4.addr());
        let e3 = &l3[va.p3_index()];
        if !e3.flags().contains(PageTableFlags::PRESENT)
            || e3.flags().contains(PageTableFlags::HUGE_PAGE)
        {
            return false;
        }
        let l2 = &mut *table_at(e3.addr());
        let e2 = &mut l2[va.p2_index()];
        if !e2.flags().contains(PageTableFlags::PRESENT) {
            return false;
        }
        if e2.flags().contains(PageTableFlags::HUGE_PAGE) {
            let Some(frame) = Frames.allocate_frame() else {
                return false;
            };
            let l1 = &mut *table_at(frame.start_address());
            let base = e2.addr().as_u64();
            let flags = e2.flags() - PageTableFlags::HUGE_PAGE;
            for (i, e) in l1.iter_mut().enumerate() {
                e.set_addr(PhysAddr::new(base + i as u64 * 4096), flags);
            }
            e2.set_addr(
                frame.start_address(),
                PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
            );
        }
        let l1 = &mut *table_at(e2.addr());
        l1[va.p1_index()].set_unused();
    }
    x86_64::instructions::tlb::flush_all();
    true
}

/// Maps all usable RAM above 4 GiB (the boot stub covers below).
pub fn init(ram_top: u64) {
    if ram_top > 1 << 32 {
        identity_map(
            1 << 32,
            ram_top - (1 << 32),
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
        );
    }
}

/// Returns a virtual address for device registers at `phys` (identity map,
/// uncached).
pub fn map_mmio(phys: u64, size: u64) -> u64 {
    identity_map(
        phys,
        size,
        PageTableFlags::PRESENT
            | PageTableFlags::WRITABLE
            | PageTableFlags::NO_CACHE
            | PageTableFlags::WRITE_THROUGH,
    );
    phys
}

/// Identity-maps a framebuffer at `[phys, phys + size)` write-combining
/// (PWT alone selects PAT entry 1, WC once [`crate::arch::pat`] programmed
/// it) or, without PAT, uncached (PCD and PWT: entry 3, UC; Intel SDM Vol.
/// 3A §11.12.3), changing the flags of pages already mapped (the boot stub
/// maps 0-4 GiB write-back). The 2 MiB pages around an unaligned
/// framebuffer change type too.
///
/// Returns the memory type it chose. At boot only, before the other CPUs
/// start (only this CPU's TLB is flushed), and never after a panic (the
/// page tables are not edited then).
pub fn map_framebuffer(phys: u64, size: u64) -> Result<&'static str, &'static str> {
    if crate::sync::raw::scheduler_stopped() {
        return Err("framebuffer: the page tables are not edited after a panic");
    }
    let end = phys
        .checked_add(size)
        .ok_or("framebuffer: size overflows the address space")?;
    let mut flags =
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::WRITE_THROUGH;
    let kind = if crate::arch::pat::write_combining() {
        "write-combining"
    } else {
        flags |= PageTableFlags::NO_CACHE;
        "uncached"
    };
    identity_map(phys, size, flags);
    let _g = MAP_LOCK.lock();
    let mut t = table();
    let mut a = phys & !0xfff;
    while a < end {
        let va = VirtAddr::new(a);
        // Which page size maps `a` decides the update: a 2 MiB update on a
        // directory entry that points at a page table would turn the table
        // into a huge page (the crate's `update_flags` does not check).
        match t.translate(va) {
            TranslateResult::Mapped {
                frame: MappedFrame::Size2MiB(_),
                ..
            } => {
                let page = Page::<Size2MiB>::containing_address(va);
                // SAFETY: only the caching bits of an identity mapping by a
                // 2 MiB page change; the frame stays the same.
                if let Ok(f) = unsafe { t.update_flags(page, flags | PageTableFlags::HUGE_PAGE) } {
                    f.ignore();
                }
                a = page.start_address().as_u64() + 0x20_0000;
            }
            TranslateResult::Mapped {
                frame: MappedFrame::Size4KiB(_),
                ..
            } => {
                let page = Page::<Size4KiB>::containing_address(va);
                // SAFETY: as above, for a 4 KiB page.
                if let Ok(f) = unsafe { t.update_flags(page, flags) } {
                    f.ignore();
                }
                a += 0x1000;
            }
            _ => return Err("framebuffer: not mapped (out of page-table frames?)"),
        }
    }
    x86_64::instructions::tlb::flush_all();
    Ok(kind)
}

/// Physical address behind `vaddr`, or `None` if it is not mapped or not
/// canonical. Reads only page tables, never the target.
pub fn translate(vaddr: u64) -> Option<u64> {
    let v = VirtAddr::try_new(vaddr).ok()?;
    table().translate_addr(v).map(|p| p.as_u64())
}

/// True if every byte of `[addr, addr + len)` is mapped.
pub fn is_mapped(addr: u64, len: u64) -> bool {
    if len == 0 {
        return translate(addr).is_some();
    }
    let Some(end) = addr.checked_add(len - 1) else {
        return false;
    };
    let mut page = addr & !0xfff;
    while page <= end {
        if translate(page).is_none() {
            return false;
        }
        match page.checked_add(4096) {
            Some(n) => page = n,
            None => break,
        }
    }
    true
}
