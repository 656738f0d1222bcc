//! Software breakpoints: a bounded table of (address, original byte), each
//! patched with `int3` (0xCC, Intel SDM Vol. 2A "INT3": the one-byte
//! breakpoint trap, vector 3) while the kernel runs.
//!
//! Lifecycle, as Linux kgdb's (`kernel/debug/debug_core.c`:
//! `dbg_activate_sw_breakpoints` / `dbg_deactivate_sw_breakpoints`): while
//! the debugger is active every breakpoint is *lifted* (its original byte
//! back in place), so the debugger itself, reading code or running through
//! a patched function, never traps; [`Table::arm`] puts `int3` back on
//! resume. A breakpoint a CPU must step over on resume (it stopped right
//! on it) is *held* ([`Table::hold`]): left lifted by `arm` until that
//! CPU's single step is done ([`Table::release`]).
//!
//! Concurrency: the table is changed only by the CPU running the debugger,
//! with the world stopped, except [`Table::release`] (the stepping CPU's
//! `#DB`, interrupts off, so a new stop waits for it). Any CPU's `#BP`
//! reads it lock-free ([`Table::contains`]). Every field is an atomic.
//!
//! Pure logic over a [`Text`] (what patches memory), so the table is
//! tested on the host with a fake.

#![forbid(unsafe_code)]

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// The breakpoint instruction.
pub const INT3: u8 = 0xCC;
/// Breakpoints the kernel's table holds at most (gdb says "Cannot insert
/// breakpoint" past that).
pub const MAX_BREAKPOINTS: usize = 32;

/// An address no breakpoint has: marks a free slot (page 0 is never text).
const FREE: u64 = 0;

/// Why a breakpoint was not inserted or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Every slot is in use.
    Full,
    /// A breakpoint is already at that address.
    Duplicate,
    /// No breakpoint is at that address.
    NotFound,
    /// The address cannot hold one (the reason).
    BadAddress(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Full => write!(f, "all {MAX_BREAKPOINTS} breakpoints in use"),
            Error::Duplicate => write!(f, "a breakpoint is already there"),
            Error::NotFound => write!(f, "no breakpoint there"),
            Error::BadAddress(why) => write!(f, "bad address: {why}"),
        }
    }
}

/// The memory breakpoints patch: the kernel's text, or a host test's fake.
pub trait Text {
    /// Why `addr` cannot hold a breakpoint, if it cannot (not mapped, not
    /// the kernel's code).
    fn check(&self, addr: u64) -> Result<(), &'static str>;
    /// The byte at `addr` (checked by [`Text::check`] before).
    fn read(&mut self, addr: u64) -> u8;
    /// Writes the byte at `addr` (checked by [`Text::check`] before).
    fn write(&mut self, addr: u64, byte: u8);
}

struct Slot {
    /// The breakpoint's address, or [`FREE`].
    addr: AtomicU64,
    /// The byte `int3` replaces.
    original: AtomicU8,
    /// Step-overs that keep it lifted while the world runs.
    held: AtomicU8,
}

impl Slot {
    const fn new() -> Self {
        Self {
            addr: AtomicU64::new(FREE),
            original: AtomicU8::new(0),
            held: AtomicU8::new(0),
        }
    }

    fn addr(&self) -> u64 {
        self.addr.load(Ordering::Acquire)
    }

    /// In use and not held: patched while armed.
    fn patched(&self) -> bool {
        self.addr() != FREE && self.held.load(Ordering::Acquire) == 0
    }
}

/// A bounded breakpoint table.
pub struct Table<const N: usize> {
    slots: [Slot; N],
    /// `int3` is in memory (the world runs), or lifted (debugger active).
    armed: AtomicBool,
}

impl<const N: usize> Default for Table<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Table<N> {
    /// An empty table, lifted (nothing patched).
    pub const fn new() -> Self {
        Self {
            slots: [const { Slot::new() }; N],
            armed: AtomicBool::new(false),
        }
    }

    fn find(&self, addr: u64) -> Option<&Slot> {
        if addr == FREE {
            return None;
        }
        self.slots.iter().find(|s| s.addr() == addr)
    }

    /// True if a breakpoint is at `addr` (lock-free; any CPU).
    pub fn contains(&self, addr: u64) -> bool {
        self.find(addr).is_some()
    }

    /// True while `int3` is in memory.
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Addresses of every breakpoint, in slot order.
    pub fn addresses(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().map(Slot::addr).filter(|&a| a != FREE)
    }

    /// Adds a breakpoint at `addr`: checked by `text`, its byte saved, and
    /// patched at once if the table is armed (else on the next [`arm`]).
    ///
    /// [`arm`]: Self::arm
    pub fn insert(&self, text: &mut impl Text, addr: u64) -> Result<(), Error> {
        if addr == FREE {
            return Err(Error::BadAddress("address 0"));
        }
        if self.contains(addr) {
            return Err(Error::Duplicate);
        }
        text.check(addr).map_err(Error::BadAddress)?;
        let original = text.read(addr);
        if original == INT3 {
            return Err(Error::BadAddress("an int3 is there already"));
        }
        let slot = self
            .slots
            .iter()
            .find(|s| s.addr() == FREE)
            .ok_or(Error::Full)?;
        slot.original.store(original, Ordering::Relaxed);
        slot.held.store(0, Ordering::Relaxed);
        slot.addr.store(addr, Ordering::Release);
        if self.armed() {
            text.write(addr, INT3);
        }
        Ok(())
    }

    /// Removes the breakpoint at `addr`, its original byte back if patched.
    pub fn remove(&self, text: &mut impl Text, addr: u64) -> Result<(), Error> {
        let slot = self.find(addr).ok_or(Error::NotFound)?;
        if self.armed() && slot.patched() {
            text.write(addr, slot.original.load(Ordering::Relaxed));
        }
        slot.addr.store(FREE, Ordering::Release);
        Ok(())
    }

    /// Debugger entry: every patched breakpoint's original byte back.
    pub fn lift(&self, text: &mut impl Text) {
        if !self.armed.swap(false, Ordering::AcqRel) {
            return;
        }
        for s in self.slots.iter().filter(|s| s.patched()) {
            text.write(s.addr(), s.original.load(Ordering::Relaxed));
        }
    }

    /// Resume: `int3` at every breakpoint not held by a step-over.
    pub fn arm(&self, text: &mut impl Text) {
        if self.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        for s in self.slots.iter().filter(|s| s.patched()) {
            text.write(s.addr(), INT3);
        }
    }

    /// A CPU will step over the breakpoint at `addr`: keep it lifted
    /// (across [`arm`](Self::arm)) until [`release`](Self::release). Only
    /// while lifted (debugger active). False if no breakpoint is there.
    pub fn hold(&self, addr: u64) -> bool {
        match self.find(addr) {
            Some(s) if !self.armed() => {
                s.held.fetch_add(1, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }

    /// The step over `addr` is done: the last one to finish patches it
    /// again, if the table is armed (and the breakpoint was not removed
    /// meanwhile).
    pub fn release(&self, text: &mut impl Text, addr: u64) {
        let Some(s) = self.find(addr) else { return };
        let before = s
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1));
        if before == Ok(1) && self.armed() {
            text.write(addr, INT3);
        }
    }

    /// The byte the breakpoint at `addr` replaced.
    pub fn original(&self, addr: u64) -> Option<u8> {
        self.find(addr).map(|s| s.original.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 KiB of fake text at 0x1000 (bytes 0x90, `nop`); anything else is
    /// "not text".
    struct Fake {
        bytes: Vec<u8>,
        writes: usize,
    }

    const BASE: u64 = 0x1000;

    impl Fake {
        fn new() -> Self {
            Self {
                bytes: vec![0x90; 4096],
                writes: 0,
            }
        }
        fn at(&self, addr: u64) -> u8 {
            self.bytes[(addr - BASE) as usize]
        }
    }

    impl Text for Fake {
        fn check(&self, addr: u64) -> Result<(), &'static str> {
            if (BASE..BASE + 4096).contains(&addr) {
                Ok(())
            } else {
                Err("not in the kernel's text")
            }
        }
        fn read(&mut self, addr: u64) -> u8 {
            self.at(addr)
        }
        fn write(&mut self, addr: u64, byte: u8) {
            self.writes += 1;
            self.bytes[(addr - BASE) as usize] = byte;
        }
    }

    #[test]
    fn insert_while_lifted_patches_only_on_arm_and_lift_restores() {
        let t = Table::<4>::new();
        let mut m = Fake::new();
        m.bytes[0x10] = 0x55;
        t.insert(&mut m, BASE + 0x10).unwrap();
        assert!(t.contains(BASE + 0x10));
        assert_eq!(m.at(BASE + 0x10), 0x55, "lifted: memory untouched");
        t.arm(&mut m);
        assert_eq!(m.at(BASE + 0x10), INT3);
        t.lift(&mut m);
        assert_eq!(m.at(BASE + 0x10), 0x55);
        assert_eq!(t.original(BASE + 0x10), Some(0x55));
        m.bytes[0x10] = 0x56;
        let writes = m.writes;
        t.remove(&mut m, BASE + 0x10).unwrap();
        assert_eq!(
            m.writes, writes,
            "a lifted breakpoint is removed without a write"
        );
        assert_eq!(m.at(BASE + 0x10), 0x56);
    }

    #[test]
    fn insert_and_remove_while_armed_write_at_once() {
        let t = Table::<4>::new();
        let mut m = Fake::new();
        t.arm(&mut m);
        t.insert(&mut m, BASE + 1).unwrap();
        assert_eq!(m.at(BASE + 1), INT3);
        t.remove(&mut m, BASE + 1).unwrap();
        assert_eq!(m.at(BASE + 1), 0x90);
        assert!(!t.contains(BASE + 1));
    }

    #[test]
    fn a_full_table_refuses_and_a_removed_slot_is_reused() {
        let t = Table::<MAX_BREAKPOINTS>::new();
        let mut m = Fake::new();
        for i in 0..MAX_BREAKPOINTS as u64 {
            t.insert(&mut m, BASE + i).unwrap();
        }
        assert_eq!(t.insert(&mut m, BASE + 100), Err(Error::Full));
        assert!(!t.contains(BASE + 100));
        t.remove(&mut m, BASE + 3).unwrap();
        t.insert(&mut m, BASE + 100).unwrap();
        assert_eq!(t.addresses().count(), MAX_BREAKPOINTS);
    }

    #[test]
    fn a_duplicate_is_refused_and_keeps_the_first_original() {
        let t = Table::<4>::new();
        let mut m = Fake::new();
        t.arm(&mut m);
        t.insert(&mut m, BASE + 8).unwrap();
        assert_eq!(t.insert(&mut m, BASE + 8), Err(Error::Duplicate));
        assert_eq!(t.original(BASE + 8), Some(0x90), "not the int3");
        assert_eq!(t.addresses().count(), 1);
        t.remove(&mut m, BASE + 8).unwrap();
        assert_eq!(m.at(BASE + 8), 0x90);
    }

    #[test]
    fn removing_an_unknown_address_is_an_error_and_writes_nothing() {
        let t = Table::<4>::new();
        let mut m = Fake::new();
        t.arm(&mut m);
        assert_eq!(t.remove(&mut m, BASE + 5), Err(Error::NotFound));
        assert_eq!(t.remove(&mut m, 0), Err(Error::NotFound));
        assert_eq!(m.writes, 0);
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        let t = Table::<4>::new();
        let mut m = Fake::new();
        assert_eq!(
            t.insert(&mut m, 0xdead_0000),
            Err(Error::BadAddress("not in the kernel's text"))
        );
        assert_eq!(t.insert(&mut m, 0), Err(Error::BadAddress("address 0")));
        m.bytes[7] = INT3;
        assert_eq!(
            t.insert(&mut m, BASE + 7),
            Err(Error::BadAddress("an int3 is there already"))
        );
        assert_eq!(t.addresses().count(), 0);
        assert_eq!(m.writes, 0);
    }

    #[test]
    fn a_held_breakpoint_stays_lifted_until_its_step_is_released() {
        let t = Table::<4>::new();
        let mut m = Fake::new();
        t.insert(&mut m, BASE + 2).unwrap();
        t.insert(&mut m, BASE + 3).unwrap();
        assert!(t.hold(BASE + 2));
        assert!(t.hold(BASE + 2), "two CPUs stepping over one breakpoint");
        assert!(!t.hold(BASE + 9));
        t.arm(&mut m);
        assert_eq!(m.at(BASE + 2), 0x90, "held: not patched");
        assert_eq!(m.at(BASE + 3), INT3);
        assert!(!t.hold(BASE + 3), "no hold while armed");
        t.release(&mut m, BASE + 2);
        assert_eq!(m.at(BASE + 2), 0x90, "one step still pending");
        t.release(&mut m, BASE + 2);
        assert_eq!(m.at(BASE + 2), INT3);
        t.release(&mut m, BASE + 2);
        assert_eq!(m.at(BASE + 2), INT3, "an extra release changes nothing");
        t.lift(&mut m);
        assert_eq!((m.at(BASE + 2), m.at(BASE + 3)), (0x90, 0x90));
    }

    #[test]
    fn a_breakpoint_removed_during_its_step_over_is_not_patched_again() {
        let t = Table::<4>::new();
        let mut m = Fake::new();
        t.insert(&mut m, BASE + 2).unwrap();
        assert!(t.hold(BASE + 2));
        t.remove(&mut m, BASE + 2).unwrap();
        t.arm(&mut m);
        t.release(&mut m, BASE + 2);
        assert_eq!(m.at(BASE + 2), 0x90);
        assert_eq!(m.writes, 0);
    }
}
