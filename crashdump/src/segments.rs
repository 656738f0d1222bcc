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

#[cfg(test)]
mod tests {
    use super::*;

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
