//! The kernel side of `virtio-drivers`: its [`Hal`] (DMA memory from the
//! frame allocator, identity mapped, so physical == virtual) and PCI
//! configuration access through ports 0xCF8/0xCFC for its `PciRoot`.

use core::ptr::NonNull;

use pci_types::{ConfigRegionAccess, PciAddress};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::mm::{FRAMES, PAGE_SIZE};
use crate::pci::PortAccess;

/// DMA and MMIO for the dump device.
#[derive(Debug)]
pub struct VirtioHal;

// SAFETY: (the implementation safety of `virtio_drivers::Hal`) `dma_alloc`
// returns zeroed, page-aligned, physically contiguous frames taken from the
// frame allocator, identity mapped (virtual == physical) and owned by the
// caller until `dma_dealloc`; x86 RAM is cache coherent with PCI DMA, so
// `share`/`unshare` need no copies: every kernel buffer (statics, heap,
// stacks) lies in identity-mapped RAM, so its virtual address is its
// physical address. MMIO is identity mapped by `map_mmio`.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(phys) = FRAMES.lock().alloc_contiguous(pages, PAGE_SIZE) else {
            return (0, NonNull::dangling());
        };
        // The device writes it (used ring): a dump must snapshot it.
        super::volatile::note(phys, pages as u64 * PAGE_SIZE);
        // SAFETY: freshly allocated, identity-mapped frames owned by us.
        unsafe { core::ptr::write_bytes(phys as *mut u8, 0, pages * PAGE_SIZE as usize) };
        match NonNull::new(phys as *mut u8) {
            Some(v) => (phys, v),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        FRAMES.lock().free(paddr, pages);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let v = crate::mm::paging::map_mmio(paddr, size as u64);
        NonNull::new(v as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        // Identity map: the buffer's address is its physical address.
        buffer.as_ptr() as *mut u8 as u64
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Configuration access for `virtio-drivers`' `PciRoot` (boot time only:
/// it goes through [`PortAccess`], which takes the PCI configuration lock).
#[derive(Debug, Default)]
pub struct PortCam;

fn address(f: DeviceFunction) -> PciAddress {
    PciAddress::new(0, f.bus, f.device, f.function)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, f: DeviceFunction, register_offset: u8) -> u32 {
        // SAFETY: a configuration read has no memory effect.
        unsafe { PortAccess.read(address(f), register_offset as u16) }
    }

    fn write_word(&mut self, f: DeviceFunction, register_offset: u8, data: u32) {
        // SAFETY: `virtio-drivers` writes BARs (sizing) and the command
        // register of the device it owns, at boot.
        unsafe { PortAccess.write(address(f), register_offset as u16, data) }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self
    }
}
