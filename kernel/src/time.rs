//! Time: the TSC calibrated against the PIT (channel 2, gated by port 0x61),
//! a monotonic clock and busy-wait delays that work with interrupts off (the
//! panic path and the polled USB driver rely on them).

//!
//! The conversions are plain arithmetic and also build on the host, for
//! unit tests; everything that reads the TSC or the PIT is kernel-only.

use core::sync::atomic::{AtomicU64, Ordering};

#[cfg(target_os = "none")]
use crate::arch::port::{inb, outb};
#[cfg(target_os = "none")]
use crate::arch::rdtsc;

/// The TSC rate assumed before `calibrate` ran: the fastest plausible
/// (10 GHz), so that a deadline taken that early lasts at least as long as
/// asked (up to some 10x longer on a slow CPU), never shorter.
const UNCALIBRATED_TSC_MHZ: u64 = 10_000;
/// TSC ticks per microsecond, fixed-point: `tsc_per_us * 2^16`.
static TSC_PER_US_FP: AtomicU64 = AtomicU64::new(UNCALIBRATED_TSC_MHZ << 16);
/// TSC frequency in Hz.
static TSC_HZ: AtomicU64 = AtomicU64::new(UNCALIBRATED_TSC_MHZ * 1_000_000);
/// TSC value at boot (time zero).
#[cfg(target_os = "none")]
static TSC_BOOT: AtomicU64 = AtomicU64::new(0);

#[cfg(target_os = "none")]
/// Calibrates the TSC against 10 ms of PIT channel 2 (mode 0: OUT goes
/// high when the count written last runs out), the best of three.
///
/// The TSC is read before the count is written, so anything that delays
/// this CPU (an emulator thread descheduled by a loaded host) can only make
/// one measurement longer, never shorter, and the shortest wins. (Reading it
/// after the count was written let a delay of more than 10 ms at that point
/// end the wait at once: a TSC rate 100x too low, every deadline 100x too
/// short, seen once in a matrix run as "cpu 1 did not come up".)
pub fn calibrate() {
    TSC_BOOT.store(rdtsc(), Ordering::Relaxed);
    let mut best = u64::MAX;
    for _ in 0..3 {
        let ticks = 11_932u16; // 10 ms at 1.193182 MHz
        // SAFETY: PIT channel 2 and the speaker gate (0x61) are free for
        // timing; no memory effects.
        let cycles = unsafe {
            let gate = inb(0x61);
            outb(0x61, (gate & !0x02) | 0x01); // gate on, speaker off
            outb(0x43, 0b1011_0000); // channel 2, lo/hi, mode 0, binary
            let start = rdtsc();
            outb(0x42, ticks as u8);
            outb(0x42, (ticks >> 8) as u8); // counting starts here
            let mut spins = 0u64;
            while inb(0x61) & 0x20 == 0 {
                spins += 1;
                if spins > 50_000_000 {
                    break;
                }
            }
            rdtsc() - start
        };
        best = best.min(cycles);
    }
    let hz = best * 100;
    if hz > 1_000_000 {
        TSC_HZ.store(hz, Ordering::Relaxed);
        TSC_PER_US_FP.store((hz << 16) / 1_000_000, Ordering::Relaxed);
    }
}

/// TSC frequency in Hz.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Converts TSC cycles to microseconds.
pub fn cycles_to_us(c: u64) -> u64 {
    ((c as u128) << 16)
        .checked_div(TSC_PER_US_FP.load(Ordering::Relaxed) as u128)
        .unwrap_or(0) as u64
}

/// Converts microseconds to TSC cycles.
pub fn us_to_cycles(us: u64) -> u64 {
    ((us as u128 * TSC_PER_US_FP.load(Ordering::Relaxed) as u128) >> 16) as u64
}

#[cfg(target_os = "none")]
/// Microseconds since boot (monotonic on each CPU; the TSC is invariant here).
pub fn now_us() -> u64 {
    cycles_to_us(rdtsc().saturating_sub(TSC_BOOT.load(Ordering::Relaxed)))
}

#[cfg(target_os = "none")]
/// A TSC deadline `us` microseconds from now.
pub fn deadline_after_us(us: u64) -> u64 {
    rdtsc().saturating_add(us_to_cycles(us))
}

#[cfg(target_os = "none")]
/// True once the TSC passed `deadline`.
pub fn passed(deadline: u64) -> bool {
    rdtsc() >= deadline
}

#[cfg(target_os = "none")]
/// Busy-waits `us` microseconds. Needs no interrupts and no locks.
pub fn delay_us(us: u64) {
    let d = deadline_after_us(us);
    while !passed(d) {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before calibration a deadline must never be shorter than asked on
    /// any real CPU: the assumed rate is at least that of the fastest TSC
    /// shipped (about 5 GHz), so `us` microseconds are at least as many
    /// cycles as such a TSC counts in that time.
    #[test]
    fn deadlines_before_calibration_are_never_short() {
        for us in [1, 1000, 50_000, 1_000_000] {
            assert!(
                us_to_cycles(us) >= us * 5_000,
                "{us} us is {} cycles before calibration",
                us_to_cycles(us)
            );
        }
        assert!(tsc_hz() >= 5_000_000_000);
        assert_eq!(cycles_to_us(us_to_cycles(1_000_000)), 1_000_000);
    }
}
