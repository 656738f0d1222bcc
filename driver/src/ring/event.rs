//! Event ring consumer (xHCI 1.2 §4.9.4): one segment, trusts only the cycle bit.

use super::TrbMemory;
use crate::trb::TRB_CYCLE;

/// Consumer state: dequeue index and consumer cycle state (CCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventRing {
    len: usize,
    dequeue: usize,
    cycle: bool,
}

impl EventRing {
    /// Fresh state for zeroed memory: dequeue 0, CCS = 1 (§4.9.4).
    pub(crate) fn new(len: usize) -> Self {
        Self {
            len: len.max(1),
            dequeue: 0,
            cycle: true,
        }
    }

    /// Dequeue index.
    pub(crate) fn dequeue_index(&self) -> usize {
        self.dequeue
    }

    /// Consumer cycle state.
    #[cfg(test)]
    pub(crate) fn cycle(&self) -> bool {
        self.cycle
    }

    /// Physical address to write to ERDP.
    pub(crate) fn dequeue_phys(&self, mem: &impl TrbMemory) -> u64 {
        mem.phys_base() + self.dequeue as u64 * 16
    }

    /// The next event if the producer has handed it over (cycle bit == CCS).
    pub(crate) fn peek(&self, mem: &impl TrbMemory) -> Option<[u32; 4]> {
        let trb = mem.read_trb(self.dequeue);
        ((trb[3] & TRB_CYCLE != 0) == self.cycle).then_some(trb)
    }

    /// Consumes the event at the dequeue index.
    pub(crate) fn advance(&mut self) {
        // Computed first and stored together, so a CPU stopped in here leaves
        // either the old or the new state, which `rederive` can repair.
        let (next, cycle) = if self.dequeue + 1 >= self.len {
            (0, !self.cycle)
        } else {
            (self.dequeue + 1, self.cycle)
        };
        *self = Self {
            len: self.len,
            dequeue: next,
            cycle,
        };
    }

    /// Re-derives the consumer state after a takeover, trusting memory over
    /// software state: `preferred` is the dequeue index to use if it lies in
    /// the ring (the controller uses ERDP), `fallback` the other candidate.
    ///
    /// The TRB just before the dequeue index was consumed in the current pass,
    /// so its cycle bit equals CCS (or, at index 0, the last TRB of the
    /// previous pass has the opposite of CCS).
    pub(crate) fn rederive(
        mem: &impl TrbMemory,
        preferred: Option<usize>,
        fallback: Option<usize>,
    ) -> Self {
        let len = mem.trb_count().max(1);
        let dequeue = preferred
            .filter(|&i| i < len)
            .or(fallback.filter(|&i| i < len))
            .unwrap_or(0);
        let prev = if dequeue == 0 { len - 1 } else { dequeue - 1 };
        let prev_cycle = mem.read_trb(prev)[3] & TRB_CYCLE != 0;
        let untouched = mem.read_trb(prev) == [0; 4];
        let cycle = if untouched {
            // Nothing ever written there: first pass, CCS = 1.
            true
        } else if dequeue == 0 {
            !prev_cycle
        } else {
            prev_cycle
        };
        Self {
            len,
            dequeue,
            cycle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::test_memory::VecMemory;

    fn produce(mem: &mut VecMemory, idx: usize, pcs: bool, tag: u32) {
        mem.trbs[idx] = [tag, 0, 0, (33 << 10) | u32::from(pcs)];
    }

    #[test]
    fn consumes_only_matching_cycle_and_wraps() {
        let mut mem = VecMemory::new(4);
        let mut ring = EventRing::new(4);
        assert!(ring.peek(&mem).is_none());
        let mut pcs = true;
        let mut produced = 0u32;
        let mut consumed = 0u32;
        let mut p = 0;
        for _ in 0..10 {
            // producer writes 3 events
            for _ in 0..3 {
                produce(&mut mem, p, pcs, produced);
                produced += 1;
                p += 1;
                if p == 4 {
                    p = 0;
                    pcs = !pcs;
                }
            }
            while let Some(t) = ring.peek(&mem) {
                assert_eq!(t[0], consumed);
                consumed += 1;
                ring.advance();
            }
            assert_eq!(consumed, produced);
        }
        assert_eq!(
            ring.dequeue_phys(&mem),
            0x10_0000 + 16 * ring.dequeue_index() as u64
        );
    }

    #[test]
    fn nonzero_but_stale_trb_is_not_an_event() {
        let mut mem = VecMemory::new(4);
        // stale event from a previous pass: cycle 0 while CCS = 1
        mem.trbs[0] = [0xdead, 0xbeef, 1, 33 << 10];
        let ring = EventRing::new(4);
        assert!(ring.peek(&mem).is_none());
    }

    #[test]
    fn rederive_from_memory() {
        let mut mem = VecMemory::new(4);
        // fresh memory
        assert_eq!(EventRing::rederive(&mem, Some(0), None), EventRing::new(4));
        // first pass: 0,1 consumed, pcs=1
        produce(&mut mem, 0, true, 0);
        produce(&mut mem, 1, true, 1);
        let r = EventRing::rederive(&mem, Some(2), Some(0));
        assert_eq!((r.dequeue_index(), r.cycle()), (2, true));
        // wrapped: all four written with 1, consumer at 0 in second pass -> CCS 0
        produce(&mut mem, 2, true, 2);
        produce(&mut mem, 3, true, 3);
        let r = EventRing::rederive(&mem, Some(0), None);
        assert_eq!((r.dequeue_index(), r.cycle()), (0, false));
        // garbage software index falls back to ERDP
        let r = EventRing::rederive(&mem, Some(99), Some(3));
        assert_eq!((r.dequeue_index(), r.cycle()), (3, true));
    }
}
