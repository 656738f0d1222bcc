//! Physical frame allocator: a bitmap over RAM from the PVH memory map.

use crate::sync::SpinLock;

/// Size of a frame.
pub const PAGE_SIZE: u64 = 4096;
/// Highest physical address the bitmap covers (16 GiB).
pub const MAX_PHYS: u64 = 16 << 30;
const FRAMES_MAX: usize = (MAX_PHYS / PAGE_SIZE) as usize;

/// One region of the firmware memory map.
#[derive(Clone, Copy, Debug, Default)]
pub struct Region {
    /// Start address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// E820 type (1 = usable RAM).
    pub kind: u32,
}

/// Name of an E820 type.
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        1 => "usable",
        2 => "reserved",
        3 => "ACPI reclaimable",
        4 => "ACPI NVS",
        5 => "bad",
        _ => "other",
    }
}

/// True if `[addr, addr + len)` lies in one usable RAM region of the firmware
/// map. Lock-free (panic path): the map is written once, by the boot CPU in
/// [`FrameAllocator::init`], before anything reads it.
pub fn is_ram(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    // SAFETY: `map` and `map_len` never change after boot (see above); the
    // lock may be held by a parked CPU, so it is not taken.
    let f = unsafe { &*FRAMES.data_ptr() };
    f.map[..f.map_len]
        .iter()
        .any(|r| r.kind == 1 && addr >= r.start && end <= r.start + r.len)
}

/// Where the allocation bitmap lives, `[start, end)` (for the dump, which
/// treats it as memory that does not change after a panic).
pub fn bitmap_range() -> (u64, u64) {
    // SAFETY: only the field's address is taken, never a reference.
    let start = unsafe { (&raw const (*FRAMES.data_ptr()).bitmap) as u64 };
    (start, start + (FRAMES_MAX / 64 * 8) as u64)
}

/// Bitmap frame allocator (bit set = free).
pub struct FrameAllocator {
    bitmap: [u64; FRAMES_MAX / 64],
    /// Copy of the firmware memory map (sorted).
    pub map: [Region; 64],
    /// Entries in `map`.
    pub map_len: usize,
    /// Usable frames in total.
    pub total: usize,
    /// Frames handed out.
    pub used: usize,
    next: usize,
}

/// The global frame allocator.
pub static FRAMES: SpinLock<FrameAllocator> = SpinLock::new(FrameAllocator {
    bitmap: [0; FRAMES_MAX / 64],
    map: [Region {
        start: 0,
        len: 0,
        kind: 0,
    }; 64],
    map_len: 0,
    total: 0,
    used: 0,
    next: 0,
});

impl FrameAllocator {
    /// Records the memory map and frees every usable frame not in `reserved`.
    pub fn init(&mut self, regions: &[Region], reserved: &[(u64, u64)]) {
        let n = regions.len().min(self.map.len());
        self.map[..n].copy_from_slice(&regions[..n]);
        self.map[..n].sort_unstable_by_key(|r| r.start);
        self.map_len = n;
        for i in 0..n {
            let r = self.map[i];
            if r.kind != 1 {
                continue;
            }
            // Keep the first MiB for firmware data and the AP trampoline.
            let first = r.start.div_ceil(PAGE_SIZE).max(0x10_0000 / PAGE_SIZE);
            let end = ((r.start + r.len) / PAGE_SIZE).min(FRAMES_MAX as u64);
            self.free_except(first, end, reserved);
        }
    }

    /// Frees frames `first..end` but those any `reserved` byte range
    /// touches, in runs (a frame at a time was 48 ms of a debug boot under
    /// TCG for 256 MiB).
    fn free_except(&mut self, first: u64, end: u64, reserved: &[(u64, u64)]) {
        let mut at = first;
        while at < end {
            // The reserved run (in frames) that starts first at or after
            // `at`, or that covers `at`.
            let next = reserved
                .iter()
                .map(|&(s, e)| (s / PAGE_SIZE, e.div_ceil(PAGE_SIZE)))
                .filter(|&(s, e)| e > at && s < end && s < e)
                .min_by_key(|&(s, _)| s);
            match next {
                None => {
                    self.free_run(at, end);
                    return;
                }
                Some((s, e)) => {
                    if s > at {
                        self.free_run(at, s);
                    }
                    at = at.max(e);
                }
            }
        }
    }

    /// Marks frames `first..end` free, a bitmap word at a time where it can.
    fn free_run(&mut self, first: u64, end: u64) {
        let mut f = first as usize;
        let end = end as usize;
        self.total += end.saturating_sub(f);
        while f < end {
            if f.is_multiple_of(64) && f + 64 <= end {
                self.bitmap[f / 64] = !0;
                f += 64;
            } else {
                self.bitmap[f / 64] |= 1 << (f % 64);
                f += 1;
            }
        }
    }

    /// The first used frame of `f..f + count`, if any: a bitmap word at a
    /// time where it can (a frame at a time, the 8,192 frames of a 32 MiB
    /// heap took 6-9 ms of a debug boot under TCG).
    fn first_used(&self, f: usize, count: usize) -> Option<usize> {
        let end = f + count;
        let mut i = f;
        while i < end {
            if i.is_multiple_of(64) && i + 64 <= end {
                let word = self.bitmap[i / 64];
                if word != !0 {
                    return Some(i + (!word).trailing_zeros() as usize);
                }
                i += 64;
            } else {
                if !self.is_free(i) {
                    return Some(i);
                }
                i += 1;
            }
        }
        None
    }

    fn is_free(&self, f: usize) -> bool {
        self.bitmap[f / 64] & (1 << (f % 64)) != 0
    }

    fn take(&mut self, f: usize) {
        self.bitmap[f / 64] &= !(1 << (f % 64));
        self.used += 1;
    }

    /// Allocates `count` contiguous frames aligned to `align` bytes.
    pub fn alloc_contiguous(&mut self, count: usize, align: u64) -> Option<u64> {
        self.alloc_contiguous_below(count, align, u64::MAX)
    }

    /// Frames below which every frame of an allocation whose last byte may
    /// be at most `max_address` lies (at most [`FRAMES_MAX`]).
    fn frame_limit(max_address: u64) -> usize {
        let frames = max_address.saturating_add(1) / PAGE_SIZE;
        frames.min(FRAMES_MAX as u64) as usize
    }

    /// Allocates `count` contiguous frames aligned to `align` bytes whose
    /// last byte is at most `max_address` (a device that can only address
    /// 32 bits, such as an xHCI controller without AC64). Next fit below the
    /// limit.
    pub fn alloc_contiguous_below(
        &mut self,
        count: usize,
        align: u64,
        max_address: u64,
    ) -> Option<u64> {
        let limit = Self::frame_limit(max_address);
        let step = (align / PAGE_SIZE).max(1) as usize;
        let start = if self.next < limit { self.next } else { 0 };
        let mut f = start.div_ceil(step) * step;
        let mut wrapped = false;
        loop {
            if f + count > limit {
                if wrapped {
                    return None;
                }
                wrapped = true;
                f = 0;
                continue;
            }
            if wrapped && f >= start {
                return None;
            }
            match self.first_used(f, count) {
                None => return Some(self.take_run(f, count)),
                // No run that starts at or before the used frame fits: go
                // on from the first aligned start after it.
                Some(used) => f = (used + 1).div_ceil(step) * step,
            }
        }
    }

    /// Like [`alloc_contiguous_below`](Self::alloc_contiguous_below), but
    /// the highest free run below the limit (and below the top of RAM):
    /// a test knob (`usb.dmahigh=1`) that puts a device's DMA memory as
    /// high as it may go, so a test sees whether a 32-bit limit is kept.
    pub fn alloc_contiguous_high(
        &mut self,
        count: usize,
        align: u64,
        max_address: u64,
    ) -> Option<u64> {
        let top = self.ram_top().div_ceil(PAGE_SIZE) as usize;
        let limit = Self::frame_limit(max_address).min(top);
        let step = (align / PAGE_SIZE).max(1) as usize;
        let mut f = (limit.checked_sub(count)? / step) * step;
        loop {
            if (f..f + count).all(|i| self.is_free(i)) {
                let phys = f as u64 * PAGE_SIZE;
                for i in f..f + count {
                    self.take(i);
                }
                return Some(phys);
            }
            f = f.checked_sub(step)?;
        }
    }

    /// Takes frames `f..f + count` (all free) and moves the next-fit
    /// cursor past them.
    fn take_run(&mut self, f: usize, count: usize) -> u64 {
        let mut i = f;
        let end = f + count;
        while i < end {
            if i.is_multiple_of(64) && i + 64 <= end {
                self.bitmap[i / 64] = 0;
                self.used += 64;
                i += 64;
            } else {
                self.take(i);
                i += 1;
            }
        }
        self.next = end;
        f as u64 * PAGE_SIZE
    }

    /// Allocates one frame.
    pub fn alloc(&mut self) -> Option<u64> {
        self.alloc_contiguous(1, PAGE_SIZE)
    }

    /// Returns frames to the pool.
    pub fn free(&mut self, addr: u64, count: usize) {
        let first = (addr / PAGE_SIZE) as usize;
        for f in first..(first + count).min(FRAMES_MAX) {
            if !self.is_free(f) {
                self.bitmap[f / 64] |= 1 << (f % 64);
                self.used -= 1;
            }
        }
    }

    /// True if frame `addr` is allocated (used by the minimal dump).
    pub fn is_allocated(&self, addr: u64) -> bool {
        let f = (addr / PAGE_SIZE) as usize;
        f < FRAMES_MAX
            && !self.is_free(f)
            && self.map[..self.map_len]
                .iter()
                .any(|r| r.kind == 1 && addr >= r.start && addr < r.start + r.len)
    }

    /// Highest usable RAM address.
    pub fn ram_top(&self) -> u64 {
        self.map[..self.map_len]
            .iter()
            .filter(|r| r.kind == 1)
            .map(|r| r.start + r.len)
            .max()
            .unwrap_or(0)
    }
}
