extern crate std;

use core::cell::RefCell;
use core::ptr::NonNull;
use std::alloc::{Layout, alloc_zeroed};
use std::rc::Rc;
use std::vec::Vec;

use super::machine::Machine;
use crate::hal::{DmaRegion, Hal};

/// Physical = virtual + this, so the driver can never use one for the other
/// (and all of it lies above 4 GiB).
pub(crate) const PHYS_OFFSET: u64 = 0x10_0000_0000_0000;
/// Where the fake HAL hands out memory below 4 GiB, when the driver asks for
/// it (`max_address` below [`PHYS_OFFSET`]): a bump pointer from here.
pub(crate) const LOW_PHYS_BASE: u64 = 0x4000_0000;
/// Fake BAR0 physical address.
pub(crate) const MMIO_PHYS: u64 = 0xfebf_0000;
/// Size of the fake register file.
pub(crate) const MMIO_SIZE: usize = 0x4000;

/// Shared state of the fake world.
pub(crate) struct World {
    /// (physical address, host address, size) of every DMA region.
    pub(crate) allocations: Vec<(u64, u64, usize)>,
    /// Next physical address of a region below 4 GiB.
    pub(crate) low_next: u64,
    /// The `max_address` of every `dma_alloc`, in order.
    pub(crate) max_addresses: Vec<u64>,
    /// A broken HAL: hands out memory above 4 GiB whatever the limit.
    pub(crate) ignore_limit: bool,
    pub(crate) now_us: u64,
    pub(crate) machine: Machine,
    pub(crate) alloc_fail: bool,
}

/// The fake HAL, owned by the controller.
pub(crate) struct FakeHal(pub(crate) Rc<RefCell<World>>);

/// The test's handle on the same fake world.
#[derive(Clone)]
pub(crate) struct FakeHandle(pub(crate) Rc<RefCell<World>>);

impl FakeHandle {
    pub(crate) fn new() -> (FakeHal, FakeHandle) {
        let regs = alloc_region(MMIO_SIZE, 4096) as *mut u32;
        let world = World {
            allocations: Vec::new(),
            low_next: LOW_PHYS_BASE,
            max_addresses: Vec::new(),
            ignore_limit: false,
            now_us: 1_000_000,
            machine: Machine::new(regs),
            alloc_fail: false,
        };
        let rc = Rc::new(RefCell::new(world));
        (FakeHal(rc.clone()), FakeHandle(rc))
    }

    /// Lets the fake controller run once.
    pub(crate) fn run(&self) {
        let mut w = self.0.borrow_mut();
        let world: &mut World = &mut w;
        let (machine, rest) = split(world);
        machine.step(&rest);
    }

    pub(crate) fn advance_ms(&self, ms: u64) {
        self.0.borrow_mut().now_us += ms * 1000;
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Machine, &Memory) -> R) -> R {
        let mut w = self.0.borrow_mut();
        let (machine, rest) = split(&mut w);
        f(machine, &rest)
    }
}

/// DMA memory view handed to the fake machine.
pub(crate) struct Memory {
    allocations: Vec<(u64, u64, usize)>,
}

impl Memory {
    pub(crate) fn ptr(&self, phys: u64, len: usize) -> Option<*mut u8> {
        for &(base, host, size) in &self.allocations {
            if phys >= base && phys + len as u64 <= base + size as u64 {
                return Some((host + (phys - base)) as usize as *mut u8);
            }
        }
        None
    }

    pub(crate) fn read32(&self, phys: u64) -> u32 {
        match self.ptr(phys, 4) {
            // SAFETY: inside a live, leaked test allocation; 4-byte aligned by construction.
            Some(p) => unsafe { p.cast::<u32>().read_volatile() },
            None => panic!("fake xHC: DMA read outside driver memory at {phys:#x}"),
        }
    }

    pub(crate) fn write32(&self, phys: u64, v: u32) {
        match self.ptr(phys, 4) {
            // SAFETY: inside a live, leaked test allocation.
            Some(p) => unsafe { p.cast::<u32>().write_volatile(v) },
            None => panic!("fake xHC: DMA write outside driver memory at {phys:#x}"),
        }
    }

    pub(crate) fn read64(&self, phys: u64) -> u64 {
        u64::from(self.read32(phys)) | (u64::from(self.read32(phys + 4)) << 32)
    }

    pub(crate) fn read_trb(&self, phys: u64) -> [u32; 4] {
        [
            self.read32(phys),
            self.read32(phys + 4),
            self.read32(phys + 8),
            self.read32(phys + 12),
        ]
    }

    pub(crate) fn write_bytes(&self, phys: u64, bytes: &[u8]) {
        let p = self
            .ptr(phys, bytes.len())
            .expect("fake xHC: DMA buffer outside driver memory");
        // SAFETY: range checked above.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) }
    }

    pub(crate) fn read_bytes(&self, phys: u64, len: usize) -> Vec<u8> {
        let p = self
            .ptr(phys, len)
            .expect("fake xHC: DMA buffer outside driver memory");
        // SAFETY: range checked above.
        unsafe { core::slice::from_raw_parts(p, len).to_vec() }
    }
}

fn split(world: &mut World) -> (&mut Machine, Memory) {
    world.machine.now_us = world.now_us;
    (
        &mut world.machine,
        Memory {
            allocations: world.allocations.clone(),
        },
    )
}

fn alloc_region(size: usize, align: usize) -> *mut u8 {
    let layout = Layout::from_size_align(size.max(1), align).expect("layout");
    // SAFETY: non-zero size; the memory is leaked on purpose (lives for the test process).
    let p = unsafe { alloc_zeroed(layout) };
    assert!(!p.is_null());
    p
}

// SAFETY: zeroed, aligned, never freed host memory; alignment to the next power
// of two of the size (up to 64 KiB), physical and host alike, keeps it from
// crossing a 64 KiB boundary; below `max_address` unless `ignore_limit`;
// the MMIO "mapping" is plain host memory the fake controller also uses.
unsafe impl Hal for FakeHal {
    fn dma_alloc(&self, size: usize, align: usize, max_address: u64) -> Option<DmaRegion> {
        let mut w = self.0.borrow_mut();
        if w.alloc_fail {
            return None;
        }
        w.max_addresses.push(max_address);
        let align = align.max(size.next_power_of_two().min(65536)).max(16);
        let p = alloc_region(size, align);
        let phys = if max_address < PHYS_OFFSET && !w.ignore_limit {
            // below the limit: a bump pointer in low "physical" memory
            let phys = w.low_next.next_multiple_of(align as u64);
            if phys + size as u64 - 1 > max_address {
                return None;
            }
            w.low_next = phys + size as u64;
            phys
        } else {
            p as u64 + PHYS_OFFSET
        };
        w.allocations.push((phys, p as u64, size));
        Some(DmaRegion {
            phys,
            virt: NonNull::new(p)?,
            size,
        })
    }

    fn map_mmio(&self, phys: u64, size: usize) -> NonNull<u8> {
        assert_eq!(phys, MMIO_PHYS, "driver mapped the wrong BAR");
        assert!(
            size <= MMIO_SIZE,
            "driver mapped {size:#x} bytes, BAR is {MMIO_SIZE:#x}"
        );
        NonNull::new(self.0.borrow().machine.regs_ptr().cast::<u8>()).expect("regs")
    }

    fn now_us(&self) -> u64 {
        self.0.borrow().now_us
    }

    fn delay_us(&self, us: u64) {
        let mut w = self.0.borrow_mut();
        w.now_us += us;
        let (machine, rest) = split(&mut w);
        machine.step(&rest);
    }
}
