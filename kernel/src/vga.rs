//! VGA text-mode output (0xB8000, 80x25), used by the console and the panic
//! console. Writers are serialised by their callers (the console lock, or the
//! panic path on the only running CPU).

use core::sync::atomic::{AtomicUsize, Ordering};

const WIDTH: usize = 80;
const HEIGHT: usize = 25;
const BUF: usize = 0xB8000;
const ATTR: u16 = 0x0700;

static CURSOR: AtomicUsize = AtomicUsize::new(0);

fn cell(i: usize) -> *mut u16 {
    (BUF + i * 2) as *mut u16
}

fn scroll() {
    for i in 0..WIDTH * (HEIGHT - 1) {
        // SAFETY: both cells lie inside the 80x25 text buffer, identity mapped.
        unsafe { cell(i).write_volatile(cell(i + WIDTH).read_volatile()) };
    }
    for i in WIDTH * (HEIGHT - 1)..WIDTH * HEIGHT {
        // SAFETY: inside the text buffer.
        unsafe { cell(i).write_volatile(ATTR | b' ' as u16) };
    }
}

/// Blanks the screen and puts the cursor at the top left (at boot: the
/// firmware's own lines would otherwise show through).
pub fn clear() {
    for i in 0..WIDTH * HEIGHT {
        // SAFETY: inside the text buffer.
        unsafe { cell(i).write_volatile(ATTR | b' ' as u16) };
    }
    CURSOR.store(0, Ordering::Relaxed);
}

/// Writes text at the cursor (handles `\n`, `\r` and backspace).
pub fn write_str(s: &str) {
    let mut pos = CURSOR.load(Ordering::Relaxed);
    for b in s.bytes() {
        match b {
            b'\n' => pos = (pos / WIDTH + 1) * WIDTH,
            b'\r' => pos = pos / WIDTH * WIDTH,
            0x08 => pos = pos.saturating_sub(1),
            0x1b => {}
            b => {
                let ch = if (0x20..0x7f).contains(&b) { b } else { b'?' };
                // SAFETY: `pos < WIDTH * HEIGHT` is kept below.
                unsafe { cell(pos).write_volatile(ATTR | ch as u16) };
                pos += 1;
            }
        }
        if pos >= WIDTH * HEIGHT {
            scroll();
            pos -= WIDTH;
        }
    }
    CURSOR.store(pos, Ordering::Relaxed);
}
