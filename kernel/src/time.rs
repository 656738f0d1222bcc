//! Time: a monotonic clock on the TSC and busy-wait delays that work with
//! interrupts off (the panic path and the polled USB driver rely on them).
//! The TSC rate comes from `arch::tsc::calibrate` (the PIT); this module
//! names nothing else in the kernel.

//!
//! The conversions are plain arithmetic and also build on the host, for
//! unit tests; everything that reads the TSC or the PIT is kernel-only.

use core::sync::atomic::{AtomicU64, Ordering};

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

/// Sets the TSC rate measured by `arch::tsc::calibrate` (ignored below
/// 1 MHz: a measurement that implausible keeps the safe default).
pub fn set_tsc_hz(hz: u64) {
    if hz > 1_000_000 {
        TSC_HZ.store(hz, Ordering::Relaxed);
        TSC_PER_US_FP.store((hz << 16) / 1_000_000, Ordering::Relaxed);
    }
}

#[cfg(target_os = "none")]
/// Makes the TSC value `tsc` time zero of [`now_us`].
pub fn set_boot_tsc(tsc: u64) {
    TSC_BOOT.store(tsc, Ordering::Relaxed);
}

#[cfg(target_os = "none")]
/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
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

/// Windows of a TSC calibration that must agree before it stops early:
/// the two shortest within 1/1024 (about 0.1%) of each other.
pub const CALIBRATION_AGREEMENT_SHIFT: u32 = 10;

/// The TSC count to calibrate with, from the windows measured so far (TSC
/// cycles per equal PIT window), once it is settled: the shortest window,
/// when the second shortest is within 1/1024 of it. `None`: measure
/// another window.
///
/// A delay of the measuring CPU (an emulator thread descheduled by the
/// host, an SMI) can only lengthen a window, never shorten it, so the
/// shortest is the best estimate; a second one close to it shows that the
/// shortest was not itself disturbed. The same idea as Linux's
/// `quick_pit_calibrate` (arch/x86/kernel/tsc.c), which stops as soon as
/// its bound on the error is below 1/2048, instead of always measuring
/// for a fixed time.
pub fn calibration_settled(windows: &[u64]) -> Option<u64> {
    let mut shortest = u64::MAX;
    let mut second = u64::MAX;
    for &w in windows.iter().filter(|&&w| w > 0) {
        if w < shortest {
            second = shortest;
            shortest = w;
        } else if w < second {
            second = w;
        }
    }
    (second != u64::MAX && second - shortest <= shortest >> CALIBRATION_AGREEMENT_SHIFT)
        .then_some(shortest)
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

    /// Calibration stops once two windows agree, takes the shortest, and
    /// never settles on one window alone or on two that disagree.
    #[test]
    fn calibration_settles_on_the_shortest_of_two_that_agree() {
        assert_eq!(calibration_settled(&[]), None);
        assert_eq!(calibration_settled(&[4_000_000]), None);
        // 0.05% apart: settled, on the shorter.
        assert_eq!(
            calibration_settled(&[4_002_000, 4_000_000]),
            Some(4_000_000)
        );
        // 1% apart (one window delayed): measure again.
        assert_eq!(calibration_settled(&[4_040_000, 4_000_000]), None);
        // A delayed window does not hide two that agree.
        assert_eq!(
            calibration_settled(&[4_000_000, 9_000_000, 4_001_000]),
            Some(4_000_000)
        );
        // Exactly at the bound (1/1024) settles; just past it does not.
        assert_eq!(calibration_settled(&[1024, 1025]), Some(1024));
        assert_eq!(calibration_settled(&[1024, 1026]), None);
        // A window that timed out (0 cycles recorded) never counts.
        assert_eq!(calibration_settled(&[0, 0]), None);
    }
}
