//! Wall-clock time from the CMOS real-time clock (MC146818: registers 0, 2,
//! 4, 7, 8, 9, century at 0x32; BCD unless status B bit 2), for the dump
//! header. Port I/O only: usable at panic time.

use crate::arch::port::{inb, outb};

fn read(reg: u8) -> u8 {
    // SAFETY: CMOS index/data ports; bit 7 of the index keeps NMIs enabled
    // as they were (0 = enabled), reads have no memory effect.
    unsafe {
        outb(0x70, reg & 0x7f);
        inb(0x71)
    }
}

fn bcd(v: u8) -> u64 {
    ((v >> 4) * 10 + (v & 0xf)) as u64
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch (0 if the clock looks invalid).
pub fn unix_time() -> u64 {
    // Wait (bounded) until no update is in progress (status A bit 7).
    for _ in 0..10_000 {
        if read(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let status_b = read(0x0b);
    let conv = |v: u8| {
        if status_b & 0x04 != 0 {
            v as u64
        } else {
            bcd(v)
        }
    };
    let sec = conv(read(0x00));
    let min = conv(read(0x02));
    let hour_raw = read(0x04);
    let mut hour = conv(hour_raw & 0x7f);
    if status_b & 0x02 == 0 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12;
    }
    let day = conv(read(0x07));
    let month = conv(read(0x08));
    let year = conv(read(0x09));
    let century = conv(read(0x32));
    let century = if (19..=21).contains(&century) {
        century
    } else {
        20
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return 0;
    }
    let days = days_from_civil((century * 100 + year) as i64, month, day);
    (days * 86_400 + (hour * 3600 + min * 60 + sec) as i64).max(0) as u64
}
