//! TSC calibration against the PIT (channel 2, gated by port 0x61).

use super::port::{inb, outb};
use crate::time::{self, rdtsc};

/// Calibrates the TSC against 5 ms of PIT channel 2 (mode 0: OUT goes
/// high when the count written last runs out), the best of three.
///
/// The TSC is read before the count is written, so anything that delays
/// this CPU (an emulator thread descheduled by a loaded host) can only make
/// one measurement longer, never shorter, and the shortest wins. (Reading it
/// after the count was written let a delay of more than 10 ms at that point
/// end the wait at once: a TSC rate 100x too low, every deadline 100x too
/// short, seen once in a matrix run as "cpu 1 did not come up".)
pub fn calibrate() {
    time::set_boot_tsc(rdtsc());
    let mut best = u64::MAX;
    for _ in 0..3 {
        // 5 ms at 1.193182 MHz: a few microseconds of port-I/O exits per
        // window under TCG are 0.1%; 10 ms windows cost 15 ms more boot.
        let ticks = 5_966u16;
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
    time::set_tsc_hz(best * 200);
}
