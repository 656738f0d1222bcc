//! The volatile, bounds-checked MMIO window.

use core::ptr::NonNull;

#[cfg(test)]
extern crate std;

#[cfg(test)]
std::thread_local! {
    /// Test only: every MMIO write in order, so the fake controller can apply
    /// write semantics (RW1C, RW1S) even for back-to-back writes.
    pub(crate) static WRITE_LOG: core::cell::RefCell<std::vec::Vec<(usize, u32)>> =
        const { core::cell::RefCell::new(std::vec::Vec::new()) };
}

/// A mapped register window of `len` bytes. Reads outside it return all ones
/// (like a removed PCI device), writes outside it are dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mmio {
    base: NonNull<u8>,
    len: usize,
}

impl Mmio {
    /// Wraps a mapping.
    ///
    /// # Safety
    /// `base..base+len` must be a valid uncached mapping of device registers
    /// (or, in tests, of plain memory) for the life of the returned value.
    pub(crate) unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self { base, len }
    }

    /// Length of the window.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Volatile 32-bit read.
    pub(crate) fn read32(&self, offset: usize) -> u32 {
        if !offset.is_multiple_of(4) || offset.checked_add(4).is_none_or(|e| e > self.len) {
            return u32::MAX;
        }
        // SAFETY: in bounds and aligned; `new`'s contract makes it a valid mapping.
        unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() }
    }

    /// Volatile 32-bit write.
    pub(crate) fn write32(&self, offset: usize, value: u32) {
        if !offset.is_multiple_of(4) || offset.checked_add(4).is_none_or(|e| e > self.len) {
            return;
        }
        #[cfg(test)]
        WRITE_LOG.with(|log| log.borrow_mut().push((offset, value)));
        // SAFETY: in bounds and aligned; `new`'s contract makes it a valid mapping.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value)
        }
    }
}
