//! TSC calibration against the PIT (channel 2, gated by port 0x61).

use super::port::{inb, outb};
use crate::time::{self, rdtsc};

/// The PIT's input clock (Hz).
const PIT_HZ: u64 = 1_193_182;
/// One calibration window: 1,193 PIT ticks, 1 ms.
const WINDOW_TICKS: u16 = 1_193;
/// Most windows measured when they keep disagreeing (12 ms in all).
const MAX_WINDOWS: usize = 12;

/// Calibrates the TSC against windows of 1 ms of PIT channel 2 (mode 0:
/// OUT goes high when the count written last runs out): the shortest
/// window, as soon as a second one agrees with it within 0.1%
/// ([`time::calibration_settled`], after Linux's `quick_pit_calibrate`:
/// stop once the error bound is small, not after a fixed time), else the
/// shortest of [`MAX_WINDOWS`]. Two or three windows, 2-3 ms: under TCG
/// the first comes out 1-2% long every boot (also after a discarded short
/// window first, so not the code's first run) and the next two agree.
/// Windows of 2 ms took 6 ms of every boot (their second and third agreed
/// within 0.02%), three fixed ones of 5 ms 15 ms. Six boots under TCG with
/// 1 ms windows gave 2446-2447 MHz on a 2445.4 MHz host (within 0.07%).
///
/// No CPUID shortcut (Linux's `native_calibrate_tsc` reads leaf 0x15, the
/// TSC/crystal ratio, or 0x16): QEMU's default TCG CPU (`qemu64`, basic
/// leaves up to 0xd) has neither, nor have CPUs before Skylake, so that
/// path could not be tested here; the hypervisor leaf 0x40000010 needs
/// KVM. The PIT is on every PC.
///
/// The TSC is read before the count's high byte is written (the count
/// starts then: Intel 8254 datasheet, mode 0), so anything that delays this
/// CPU (an emulator thread descheduled by a loaded host) can only make one
/// measurement longer, never shorter, and the shortest wins. (Reading it
/// after the count was written let a delay of more than 10 ms at that point
/// end the wait at once: a TSC rate 100x too low, every deadline 100x too
/// short, seen once in a matrix run as "cpu 1 did not come up".)
pub fn calibrate() {
    time::set_boot_tsc(rdtsc());
    let mut windows = [0u64; MAX_WINDOWS];
    let mut cycles = None;
    for i in 0..MAX_WINDOWS {
        windows[i] = window(WINDOW_TICKS);
        cycles = time::calibration_settled(&windows[..=i]);
        if cycles.is_some() {
            break;
        }
    }
    let cycles = cycles.unwrap_or_else(|| {
        windows
            .iter()
            .copied()
            .filter(|&w| w > 0)
            .min()
            .unwrap_or(0)
    });
    time::set_tsc_hz(cycles * PIT_HZ / u64::from(WINDOW_TICKS));
}

/// TSC cycles of one window of `ticks` PIT ticks; 0 if OUT never went high
/// (no PIT: the caller then keeps the safe uncalibrated rate).
fn window(ticks: u16) -> u64 {
    // SAFETY: PIT channel 2 and the speaker gate (0x61) are free for
    // timing; no memory effects.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lo/hi, mode 0, binary
        outb(0x42, ticks as u8);
        let start = rdtsc();
        outb(0x42, (ticks >> 8) as u8); // counting starts here
        let mut spins = 0u64;
        while inb(0x61) & 0x20 == 0 {
            spins += 1;
            if spins > 50_000_000 {
                return 0;
            }
        }
        rdtsc() - start
    }
}
