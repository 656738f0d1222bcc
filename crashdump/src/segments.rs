//! Memory runs for the `PT_LOAD` segments, built page by page into a fixed
//! array (no allocation at panic time): adjacent pages coalesce into runs.

use crate::PAGE;

/// One run of memory: physical == virtual (the kernel is identity mapped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Start address (page aligned).
    pub addr: u64,
    /// Length in bytes (a multiple of the page size).
    pub len: u64,
}

impl Segment {
    /// End address (exclusive).
    pub fn end(&self) -> u64 {
        self.addr + self.len
    }
}

/// Up to `N` coalesced, ascending runs.
#[derive(Clone, Debug)]
pub struct Segments<const N: usize> {
    runs: [Segment; N],
    len: usize,
}

impl<const N: usize> Default for Segments<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Segments<N> {
    /// No runs.
    pub const fn new() -> Self {
        Self {
            runs: [Segment { addr: 0, len: 0 }; N],
            len: 0,
        }
    }

    /// Forgets every run.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds `[addr, addr + len)`, rounded out to pages. Ranges must come in
    /// ascending order; one overlapping or touching the last run extends it.
    /// When the array is full the last run is stretched over the gap only if
    /// `can_bridge(gap_start, gap_end)` says the gap is readable RAM; else the
    /// range is dropped and `false` returned.
    pub fn push(&mut self, addr: u64, len: u64, can_bridge: impl Fn(u64, u64) -> bool) -> bool {
        if len == 0 {
            return true;
        }
        let start = addr & !(PAGE - 1);
        let end = (addr + len).div_ceil(PAGE) * PAGE;
        if self.len > 0 {
            let last = &mut self.runs[self.len - 1];
            if start <= last.end() {
                if end > last.end() {
                    last.len = end - last.addr;
                }
                return true;
            }
            if self.len == N {
                if can_bridge(last.end(), start) {
                    last.len = end - last.addr;
                    return true;
                }
                return false;
            }
        }
        if self.len == N {
            return false;
        }
        self.runs[self.len] = Segment {
            addr: start,
            len: end - start,
        };
        self.len += 1;
        true
    }

    /// The runs.
    pub fn as_slice(&self) -> &[Segment] {
        &self.runs[..self.len]
    }

    /// Total bytes in all runs.
    pub fn bytes(&self) -> u64 {
        self.as_slice().iter().map(|s| s.len).sum()
    }
}

/// Prepares `ranges` (`[start, end)` pairs in any order, possibly
/// overlapping, empty or adjacent) for [`leading`]: sorts them and merges
/// the ones that overlap or touch, in place. Returns how many are left, at
/// the front of `ranges`.
pub fn merge(ranges: &mut [(u64, u64)]) -> usize {
    ranges.sort_unstable();
    let mut n = 0usize;
    for i in 0..ranges.len() {
        let (s, e) = ranges[i];
        if s >= e {
            continue;
        }
        match n.checked_sub(1).map(|last| &mut ranges[last]) {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => {
                ranges[n] = (s, e);
                n += 1;
            }
        }
    }
    n
}

/// Splits `[addr, addr + len)` against `merged` (prepared by [`merge`]):
/// the length of its leading part that lies wholly inside the ranges or
/// wholly outside them, and which (a binary search). Walking a range with
/// it visits alternately inside and outside parts, never an empty one.
pub fn leading(addr: u64, len: u64, merged: &[(u64, u64)]) -> (u64, bool) {
    if len == 0 {
        return (0, false);
    }
    let end = addr.saturating_add(len);
    // The first range that ends after `addr`.
    let i = merged.partition_point(|&(_, e)| e <= addr);
    match merged.get(i) {
        Some(&(s, e)) if s <= addr => (e.min(end) - addr, true),
        Some(&(s, _)) => (s.min(end) - addr, false),
        None => (end - addr, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_splits_into_alternating_parts_that_match_the_ranges() {
        // Small deterministic generator (no dependencies in this crate).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for case in 0..2000 {
            let ranges: std::vec::Vec<(u64, u64)> = (0..next(6))
                .map(|_| {
                    let s = next(64);
                    (s, s + next(16))
                })
                .collect();
            let mut merged = ranges.clone();
            let n = merge(&mut merged);
            let merged = &merged[..n];
            assert!(
                merged.windows(2).all(|w| w[0].1 < w[1].0),
                "case {case}: {merged:?} not sorted, disjoint and apart"
            );
            let (addr, len) = (next(64), next(64));
            let inside = |b: u64| ranges.iter().any(|&(s, e)| s <= b && b < e);
            let mut at = addr;
            let mut last = None;
            while at < addr + len {
                let (n, is_in) = leading(at, addr + len - at, merged);
                assert!(n > 0, "case {case}: empty part at {at}");
                assert!(at + n <= addr + len, "case {case}: part past the end");
                assert_ne!(last, Some(is_in), "case {case}: two parts of one kind");
                for b in at..at + n {
                    assert_eq!(inside(b), is_in, "case {case}: byte {b} of {ranges:?}");
                }
                last = Some(is_in);
                at += n;
            }
        }
    }

    #[test]
    fn coalesces_and_bridges_only_when_allowed() {
        let mut s = Segments::<2>::new();
        assert!(s.push(0x1000, 0x1000, |_, _| false));
        assert!(s.push(0x2000, 0x10, |_, _| false));
        assert_eq!(
            s.as_slice(),
            &[Segment {
                addr: 0x1000,
                len: 0x2000
            }]
        );
        assert!(s.push(0x10_0000, 0x1000, |_, _| false));
        assert!(!s.push(0x20_0000, 0x1000, |_, _| false));
        assert!(s.push(0x20_0000, 0x1000, |a, b| a == 0x10_1000 && b == 0x20_0000));
        assert_eq!(
            s.as_slice()[1],
            Segment {
                addr: 0x10_0000,
                len: 0x10_1000
            }
        );
        assert_eq!(s.bytes(), 0x2000 + 0x10_1000);
    }
}
