//! The thread registry the panic console reads without a lock, and the
//! checks every entry passes before it is read.
//!
//! The other CPUs were stopped at arbitrary instructions, one of them maybe
//! inside an update of the registry. A `Vec` cannot be read then: a CPU
//! stopped inside `push` while the buffer grows leaves the old buffer freed
//! (talc writes its free-list links into it) or the pointer, capacity and
//! length of different generations; one stopped inside `retain` leaves
//! elements already dropped (possibly freed) below `len`. So the registry is
//! a fixed array of slots, each written by one atomic store: a reader sees
//! every slot either empty or pointing at a whole entry, whatever instruction
//! the writer stopped at. Writers keep the entry alive while it is published
//! (the scheduler's `THREADS` list owns it) and empty the slot before they
//! let the entry go.
//!
//! On top of that, [`check_entry`] refuses an entry that is not where a live
//! one can be (inside the heap, aligned), whose magic word is wrong (freed,
//! or the memory was overwritten), or whose name is not inside the heap and
//! short: a panic may come from memory corruption, and `ps` must not fault.
//! It reads nothing through a pointer it has not checked first.

#![forbid(unsafe_code)]

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// A fixed table of published entries, for lock-free readers.
pub struct Registry<T, const N: usize> {
    slots: [AtomicPtr<T>; N],
    /// Entries not published because the table was full.
    unlisted: AtomicUsize,
}

impl<T, const N: usize> Registry<T, N> {
    /// An empty registry.
    pub const fn new() -> Self {
        Self {
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; N],
            unlisted: AtomicUsize::new(0),
        }
    }

    /// Publishes `entry` in the first free slot: one compare-and-swap, so a
    /// reader sees the slot empty or holding the whole entry. The caller
    /// keeps `entry` alive until [`withdraw`](Self::withdraw) returned.
    /// Returns false, and counts the entry as unlisted, if the table is full.
    pub fn publish(&self, entry: *mut T) -> bool {
        for slot in &self.slots {
            if slot
                .compare_exchange(ptr::null_mut(), entry, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        self.unlisted.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Empties the slot holding `entry` (one compare-and-swap); after this
    /// returns the caller may free it. An entry that was never published
    /// (the table was full) takes one off the unlisted count instead.
    pub fn withdraw(&self, entry: *mut T) {
        for slot in &self.slots {
            if slot
                .compare_exchange(entry, ptr::null_mut(), Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        let _ = self
            .unlisted
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Calls `f` with every published entry, in slot order: at most `N`
    /// calls, no allocation, no lock.
    pub fn for_each(&self, mut f: impl FnMut(*mut T)) {
        for slot in &self.slots {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                f(p);
            }
        }
    }

    /// Entries not published because the table was full.
    pub fn unlisted(&self) -> usize {
        self.unlisted.load(Ordering::Relaxed)
    }
}

impl<T, const N: usize> Default for Registry<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Longest name [`check_entry`] accepts, in bytes.
pub const NAME_MAX: usize = 256;

/// An address range `[start, end)`, the heap's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    start: usize,
    end: usize,
}

impl Region {
    /// `[start, end)`; empty if `end <= start`.
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// True if all of `[addr, addr + len)` lies inside (no overflow).
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        addr >= self.start && addr.checked_add(len).is_some_and(|e| e <= self.end)
    }
}

/// Why [`check_entry`] refused an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The entry is not wholly inside the heap.
    OutsideHeap,
    /// The entry's address is not aligned for its type.
    Misaligned,
    /// The magic word is not the live entry's.
    BadMagic,
    /// The name is too long or not inside the heap.
    BadName,
}

/// How an entry is laid out and recognised.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// `size_of` the entry.
    pub size: usize,
    /// `align_of` the entry (a power of two).
    pub align: usize,
    /// The magic word a live entry holds.
    pub magic: u64,
}

/// Checks the entry at `addr` before anything of it is used, in an order
/// that reads nothing it has not checked:
///
/// 1. `[addr, addr + size)` inside `heap`, and `addr` aligned: only then is
///    `read_magic(addr)` called (it reads the magic word inside the entry);
/// 2. the magic matches: only then is `read_name(addr)` called (it reads
///    the name's pointer and length, fields inside the checked entry);
/// 3. the name is at most [`NAME_MAX`] bytes and (unless empty) wholly
///    inside `heap`, so printing it reads only heap memory.
pub fn check_entry(
    addr: usize,
    shape: Shape,
    heap: Region,
    read_magic: impl FnOnce(usize) -> u64,
    read_name: impl FnOnce(usize) -> (usize, usize),
) -> Result<(), Refused> {
    if !heap.contains(addr, shape.size) {
        return Err(Refused::OutsideHeap);
    }
    if !addr.is_multiple_of(shape.align.max(1)) {
        return Err(Refused::Misaligned);
    }
    if read_magic(addr) != shape.magic {
        return Err(Refused::BadMagic);
    }
    let (name, len) = read_name(addr);
    if len > NAME_MAX || (len != 0 && !heap.contains(name, len)) {
        return Err(Refused::BadName);
    }
    Ok(())
}

/// What a lock-free walk of the registry showed and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkCount {
    /// Entries passed to the caller.
    pub shown: usize,
    /// Entries refused by [`check_entry`].
    pub skipped: usize,
    /// Entries never published (the table was full).
    pub unlisted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const MAGIC: u64 = 0x7468_7265_6164_2121;
    const SHAPE: Shape = Shape {
        size: 64,
        align: 8,
        magic: MAGIC,
    };
    const HEAP: Region = Region::new(0x10_0000, 0x20_0000);

    /// A fake memory: the magic and name of the only entries that may be
    /// read; reading anything else fails the test.
    struct Memory {
        entries: Vec<(usize, u64, (usize, usize))>,
    }

    impl Memory {
        fn magic(&self, addr: usize) -> u64 {
            match self.entries.iter().find(|e| e.0 == addr) {
                Some(e) => e.1,
                None => panic!("read the magic through unchecked {addr:#x}"),
            }
        }

        fn name(&self, addr: usize) -> (usize, usize) {
            match self.entries.iter().find(|e| e.0 == addr) {
                Some(e) if e.1 == MAGIC => e.2,
                _ => panic!("read the name through unchecked {addr:#x}"),
            }
        }

        fn check(&self, addr: usize) -> Result<(), Refused> {
            check_entry(addr, SHAPE, HEAP, |a| self.magic(a), |a| self.name(a))
        }
    }

    #[test]
    fn good_entries_are_accepted() {
        let m = Memory {
            entries: vec![
                (0x10_0000, MAGIC, (0x10_1000, 5)),
                (0x1f_ffc0, MAGIC, (0, 0)), // last fit; empty name, dangling ptr
            ],
        };
        assert_eq!(m.check(0x10_0000), Ok(()));
        assert_eq!(m.check(0x1f_ffc0), Ok(()));
    }

    #[test]
    fn entries_outside_the_heap_or_misaligned_are_refused_unread() {
        let m = Memory { entries: vec![] };
        for addr in [0, 0x1000, 0x0f_fff8, 0x20_0000, 0x1f_ffc8, usize::MAX - 8] {
            assert_eq!(m.check(addr), Err(Refused::OutsideHeap), "{addr:#x}");
        }
        for addr in [0x10_0001, 0x10_0004, 0x15_0003] {
            assert_eq!(m.check(addr), Err(Refused::Misaligned), "{addr:#x}");
        }
    }

    #[test]
    fn a_wrong_magic_is_refused_before_the_name_is_read() {
        let m = Memory {
            entries: vec![
                (0x10_0040, 0xdead_dead, (0x10_1000, 5)),
                (0x10_0080, 0, (0, 0)),
            ],
        };
        assert_eq!(m.check(0x10_0040), Err(Refused::BadMagic));
        assert_eq!(m.check(0x10_0080), Err(Refused::BadMagic));
    }

    #[test]
    fn names_outside_the_heap_or_too_long_are_refused() {
        let m = Memory {
            entries: vec![
                (0x10_0000, MAGIC, (0x1000, 4)),               // below the heap
                (0x10_0040, MAGIC, (0x1f_fffe, 4)),            // runs past its end
                (0x10_0080, MAGIC, (0x10_1000, NAME_MAX + 1)), // too long
                (0x10_00c0, MAGIC, (usize::MAX - 1, 4)),       // would overflow
            ],
        };
        for e in &m.entries {
            assert_eq!(m.check(e.0), Err(Refused::BadName), "{:#x}", e.0);
        }
    }

    #[test]
    fn the_table_publishes_withdraws_and_counts_overflow() {
        let mut items = [0u64; 5];
        let [a, b, c, d, e] = items.each_mut().map(|x| x as *mut u64);
        let r: Registry<u64, 3> = Registry::new();
        let all = |r: &Registry<u64, 3>| {
            let mut v = Vec::new();
            r.for_each(|p| v.push(p));
            v
        };
        assert!(r.publish(a) && r.publish(b) && r.publish(c));
        assert!(!r.publish(d));
        assert_eq!(r.unlisted(), 1);
        assert_eq!(all(&r), [a, b, c]);
        // Withdrawing leaves a hole, reused by the next publish.
        r.withdraw(b);
        assert_eq!(all(&r), [a, c]);
        assert!(r.publish(e));
        assert_eq!(all(&r), [a, e, c]);
        // An unlisted entry's withdrawal takes back the count, once.
        r.withdraw(d);
        r.withdraw(d);
        assert_eq!(r.unlisted(), 0);
    }
}
