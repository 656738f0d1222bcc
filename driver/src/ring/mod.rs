//! Pure ring logic (xHCI 1.2 §4.9): producer rings with a Link TRB and cycle
//! toggling, and the event ring consumer that trusts only the cycle bit.
#![forbid(unsafe_code)]

mod event;
mod producer;

pub(crate) use event::EventRing;
pub(crate) use producer::ProducerRing;

/// Memory holding TRBs. The DMA implementation writes dwords 0-2, fences, then
/// dword 3 (the cycle bit), so the consumer never sees a half-written TRB.
pub(crate) trait TrbMemory {
    /// Number of 16-byte TRB slots.
    fn trb_count(&self) -> usize;
    /// Reads the TRB at `index`.
    fn read_trb(&self, index: usize) -> [u32; 4];
    /// Writes the TRB at `index`, dword 3 last.
    fn write_trb(&mut self, index: usize, trb: [u32; 4]);
    /// Physical address of TRB 0.
    fn phys_base(&self) -> u64;
}

#[cfg(test)]
pub(crate) mod test_memory {
    extern crate std;
    use std::vec::Vec;

    /// Host memory standing in for a ring, for the pure logic tests.
    pub(crate) struct VecMemory {
        pub(crate) trbs: Vec<[u32; 4]>,
        pub(crate) base: u64,
    }

    impl VecMemory {
        pub(crate) fn new(n: usize) -> Self {
            Self {
                trbs: std::vec![[0; 4]; n],
                base: 0x10_0000,
            }
        }
    }

    impl super::TrbMemory for VecMemory {
        fn trb_count(&self) -> usize {
            self.trbs.len()
        }
        fn read_trb(&self, index: usize) -> [u32; 4] {
            self.trbs[index]
        }
        fn write_trb(&mut self, index: usize, trb: [u32; 4]) {
            self.trbs[index] = trb;
        }
        fn phys_base(&self) -> u64 {
            self.base
        }
    }
}
