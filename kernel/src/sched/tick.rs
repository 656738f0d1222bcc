//! Hooks run on every timer tick, registered at boot by whoever needs ticks
//! (USB key repeat and hot-plug, the boot watchdog), so the scheduler names
//! none of them (FreeBSD's `EVENTHANDLER(9)`, Linux's notifier chains).
//!
//! A fixed table of atomics: registering takes no lock and allocates
//! nothing, running the hooks from the interrupt reads each slot once.

use core::sync::atomic::{AtomicUsize, Ordering};

/// A tick hook: the CPU that took the tick, and its tick count.
pub type TickHook = fn(cpu: usize, ticks: u64);

/// Most hooks that can be registered.
pub const MAX_HOOKS: usize = 4;

static HOOKS: [AtomicUsize; MAX_HOOKS] = [const { AtomicUsize::new(0) }; MAX_HOOKS];

/// Registers `hook` to run on every tick of every CPU; `Err` when the table
/// is full.
pub fn register(hook: TickHook) -> Result<(), &'static str> {
    for slot in &HOOKS {
        if slot
            .compare_exchange(0, hook as usize, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err("tick hook table full")
}

/// Runs every registered hook (from the timer interrupt).
pub fn run(cpu: usize, ticks: u64) {
    for slot in &HOOKS {
        let h = slot.load(Ordering::Acquire);
        if h != 0 {
            // SAFETY: only `register` stores non-zero values here, and they
            // are `TickHook` function pointers.
            let hook = unsafe { core::mem::transmute::<usize, TickHook>(h) };
            hook(cpu, ticks);
        }
    }
}
