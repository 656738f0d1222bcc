//! Producer side of command and transfer rings (xHCI 1.2 §4.9.2, §4.11.5.1).

use super::TrbMemory;
use crate::trb::{TRB_CHAIN, TRB_CYCLE, TRB_LINK_TOGGLE_CYCLE, TrbType};

/// Producer state of a ring of `len` TRBs whose last slot is a Link TRB
/// pointing back to the start with Toggle Cycle set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerRing {
    len: usize,
    enqueue: usize,
    cycle: bool,
}

impl ProducerRing {
    /// A fresh ring: enqueue at 0, producer cycle state 1. The memory must be
    /// zeroed (cycle bits 0 = owned by software), see [`ProducerRing::reset`].
    pub(crate) fn new(len: usize) -> Self {
        Self {
            len: len.max(2),
            enqueue: 0,
            cycle: true,
        }
    }

    /// Zeroes the ring memory and writes the Link TRB; returns a fresh state
    /// (producer cycle state 1).
    pub(crate) fn reset(mem: &mut impl TrbMemory) -> Self {
        Self::reset_with_cycle(mem, true)
    }

    /// Rewrites the ring as empty for producer cycle state `cycle`: every
    /// TRB, the Link TRB included, carries the opposite cycle bit, so none
    /// is valid to a consumer at `cycle` (xHCI 1.2 §4.9.2). Used to restart
    /// a stopped endpoint on its own ring with `cycle` = the Dequeue Cycle
    /// State it stopped with: a controller that still reads the old
    /// dequeue position after Stop Endpoint completed (seen on Bochs' xHCI)
    /// then finds no TRB instead of zeros that match a cycle state of 0.
    pub(crate) fn reset_with_cycle(mem: &mut impl TrbMemory, cycle: bool) -> Self {
        let len = mem.trb_count().max(2);
        let stale = if cycle { 0 } else { TRB_CYCLE };
        for i in 0..len {
            mem.write_trb(i, [0, 0, 0, stale]);
        }
        let ring = Self {
            cycle,
            ..Self::new(len)
        };
        let base = mem.phys_base();
        mem.write_trb(
            len - 1,
            [
                base as u32,
                (base >> 32) as u32,
                0,
                TrbType::Link.bits() | TRB_LINK_TOGGLE_CYCLE | stale,
            ],
        );
        ring
    }

    /// Index of the next TRB to write.
    #[cfg(test)]
    pub(crate) fn enqueue_index(&self) -> usize {
        self.enqueue
    }

    /// Current producer cycle state.
    pub(crate) fn cycle(&self) -> bool {
        self.cycle
    }

    /// Usable TRBs (all but the Link TRB).
    pub(crate) fn capacity(&self) -> usize {
        self.len - 1
    }

    /// Physical address of the TRB at `index`.
    pub(crate) fn phys_of(&self, mem: &impl TrbMemory, index: usize) -> u64 {
        mem.phys_base() + (index as u64) * 16
    }

    /// Index of a physical TRB address inside this ring, if it is one of ours.
    pub(crate) fn index_of(&self, mem: &impl TrbMemory, phys: u64) -> Option<usize> {
        let base = mem.phys_base();
        if phys < base || !phys.is_multiple_of(16) {
            return None;
        }
        let index = usize::try_from((phys - base) / 16).ok()?;
        (index < self.len).then_some(index)
    }

    /// TRBs that can be written before the producer reaches the Link TRB.
    pub(crate) fn room_before_link(&self) -> usize {
        self.len - 1 - self.enqueue
    }

    /// Makes a TD of `trbs` TRBs fit between the enqueue pointer and the
    /// Link TRB: when it would straddle the link, the TRBs up to the link
    /// become No-Op TRBs (xHCI 1.2 §6.4.1.4: no event without IOC), so the TD
    /// starts at the top of the ring. Returns how many were written (none
    /// for a TD that fits, or that no position could fit).
    pub(crate) fn fit_before_link(&mut self, mem: &mut impl TrbMemory, trbs: usize) -> usize {
        let room = self.room_before_link();
        if trbs <= room || trbs > self.capacity() {
            return 0;
        }
        for _ in 0..room {
            self.push(mem, [0, 0, 0, TrbType::Noop.bits()]);
        }
        room
    }

    /// Writes one TRB (the cycle bit is filled in here) and returns its
    /// physical address. Passes over the Link TRB, handing it to the consumer
    /// with the chain bit of the TRB before it, and toggles the cycle state.
    pub(crate) fn push(&mut self, mem: &mut impl TrbMemory, trb: [u32; 4]) -> u64 {
        let index = self.enqueue;
        let mut control = trb[3] & !TRB_CYCLE;
        if self.cycle {
            control |= TRB_CYCLE;
        }
        mem.write_trb(index, [trb[0], trb[1], trb[2], control]);
        let phys = self.phys_of(mem, index);
        self.enqueue += 1;
        if self.enqueue >= self.len - 1 {
            let base = mem.phys_base();
            let mut link = TrbType::Link.bits() | TRB_LINK_TOGGLE_CYCLE | (trb[3] & TRB_CHAIN);
            if self.cycle {
                link |= TRB_CYCLE;
            }
            mem.write_trb(self.len - 1, [base as u32, (base >> 32) as u32, 0, link]);
            self.enqueue = 0;
            self.cycle = !self.cycle;
        }
        phys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::test_memory::VecMemory;

    #[test]
    fn a_ring_reset_for_cycle_0_holds_no_trb_valid_at_cycle_0() {
        let mut mem = VecMemory::new(4);
        let mut ring = ProducerRing::reset_with_cycle(&mut mem, false);
        assert!(!ring.cycle());
        assert!(
            mem.trbs.iter().all(|t| t[3] & TRB_CYCLE != 0),
            "{:x?}",
            mem.trbs
        );
        let phys = ring.push(&mut mem, [0, 0, 0, TrbType::Noop.bits()]);
        assert_eq!(phys, 0x10_0000);
        assert_eq!(mem.trbs[0][3] & TRB_CYCLE, 0, "pushed with cycle 0");
        assert_ne!(mem.trbs[1][3] & TRB_CYCLE, 0, "the next one still stale");
    }

    #[test]
    fn wraps_through_link_and_toggles_cycle() {
        let mut mem = VecMemory::new(4);
        let mut ring = ProducerRing::reset(&mut mem);
        assert_eq!(ring.capacity(), 3);
        let noop = [1, 2, 3, TrbType::Noop.bits()];
        for round in 0..5u32 {
            let expected_cycle = round % 2 == 0;
            for i in 0..3 {
                let phys = ring.push(&mut mem, noop);
                assert_eq!(phys, 0x10_0000 + 16 * i as u64);
                assert_eq!(mem.trbs[i][3] & TRB_CYCLE != 0, expected_cycle);
                assert_eq!(mem.trbs[i][0], 1);
            }
            let link = mem.trbs[3];
            assert_eq!((link[3] >> 10) & 0x3f, 6, "link TRB type");
            assert_eq!(link[3] & TRB_CYCLE != 0, expected_cycle);
            assert!(link[3] & TRB_LINK_TOGGLE_CYCLE != 0);
            assert_eq!(link[0], 0x10_0000);
            assert_eq!(ring.enqueue_index(), 0);
            assert_eq!(ring.cycle(), !expected_cycle);
        }
    }

    #[test]
    fn link_inherits_chain_bit() {
        let mut mem = VecMemory::new(3);
        let mut ring = ProducerRing::reset(&mut mem);
        ring.push(&mut mem, [0, 0, 0, TrbType::Normal.bits()]);
        ring.push(&mut mem, [0, 0, 0, TrbType::Normal.bits() | TRB_CHAIN]);
        assert!(mem.trbs[2][3] & TRB_CHAIN != 0);
    }

    #[test]
    fn a_td_that_would_straddle_the_link_is_moved_past_it() {
        let mut mem = VecMemory::new(8);
        let mut ring = ProducerRing::reset(&mut mem);
        for _ in 0..5 {
            ring.push(&mut mem, [0, 0, 0, TrbType::Normal.bits()]);
        }
        assert_eq!(ring.fit_before_link(&mut mem, 2), 0, "two TRBs fit");
        assert_eq!(ring.fit_before_link(&mut mem, 3), 2);
        for i in 5..7 {
            assert_eq!((mem.trbs[i][3] >> 10) & 0x3f, TrbType::Noop.bits() >> 10);
            assert_eq!(mem.trbs[i][3] & TRB_CHAIN, 0);
        }
        assert_eq!(mem.trbs[7][3] & TRB_CHAIN, 0, "the link ends no TD");
        assert_eq!((ring.enqueue_index(), ring.room_before_link()), (0, 7));
        assert_eq!(ring.fit_before_link(&mut mem, 8), 0, "never fits");
    }

    #[test]
    fn index_of_rejects_foreign_pointers() {
        let mut mem = VecMemory::new(8);
        let ring = ProducerRing::reset(&mut mem);
        assert_eq!(ring.index_of(&mem, 0x10_0010), Some(1));
        assert_eq!(ring.index_of(&mem, 0x10_0011), None);
        assert_eq!(ring.index_of(&mem, 0x10_0080), None);
        assert_eq!(ring.index_of(&mem, 0xfff0), None);
    }
}
