//! The VGA text console apart from the hardware: the cursor, the control
//! characters, and scrolling by moving the display's start address through
//! the 32 KiB text window, as Linux's vgacon does
//! (`drivers/video/console/vgacon.c`: `vgacon_scroll`, `vga_set_mem_top`,
//! `vga_rolled_over`).
//!
//! Why: VGA memory is slow to touch. Under QEMU's TCG every access to
//! 0xB8000 is an MMIO exit into `vga_mem_writeb`/`vga_mem_readb` (about
//! 0.5 us each); on a real PC the legacy VGA window is uncached, so every
//! read crosses the bus. Scrolling by copying the 2000 cells of the screen
//! up (a read and a write each) cost 4000 accesses a line and most of a
//! panic report's time to the prompt. So the console never reads VRAM:
//!
//! - a shadow in RAM records what each of the window's 16384 cells holds,
//!   or "unknown" for a cell not written since [`TextConsole::clear`], and
//!   a cell is written only when its value changes;
//! - a scroll moves the CRTC Start Address one row down and blanks only
//!   the cells of the new bottom row that are not blank already;
//! - when the screen would run past the end of the window, the rows that
//!   stay visible are copied to the top once (only the cells that differ)
//!   and the start address goes back to 0 (vgacon's roll-over).
//!
//! A line then costs the cells it prints plus the old cells it erases.
//! The hardware cursor is a window cell, not a screen position (QEMU's
//! `vga_draw_text` subtracts the start address from it; vgacon programs
//! `(pos - vga_vram_base) / 2`), so it moves with the start.
//!
//! Pure: it drives a [`TextDevice`] (the real one in `super::screen`, a fake
//! VRAM in the host tests), allocates nothing, takes no lock and never
//! panics. A writer stopped halfway (a CPU parked by the panic mid-line)
//! leaves a state that the next write clamps back into range; at worst a
//! cell it was writing stays stale until rewritten.

#![forbid(unsafe_code)]

/// Characters a row (VGA mode 3).
pub const COLUMNS: usize = 80;
/// Rows on the screen (VGA mode 3).
pub const ROWS: usize = 25;
/// Cells on the screen.
const SCREEN_CELLS: usize = COLUMNS * ROWS;
/// Cells of the colour text window 0xB8000-0xBFFFF: 32 KiB, two bytes a
/// cell (vgacon's `vga_vram_size` of 0x8000 for a colour adapter).
pub const WINDOW_CELLS: usize = 0x8000 / 2;
/// Whole rows in the window (204).
pub const WINDOW_ROWS: usize = WINDOW_CELLS / COLUMNS;
/// The last window row that can be the top of the screen (179): the
/// screen must end inside the window.
const LAST_TOP: usize = WINDOW_ROWS - ROWS;
/// Attribute of every cell written: light grey on black.
pub const ATTRIBUTE: u16 = 0x0700;
/// An erased cell: a space in [`ATTRIBUTE`].
pub const BLANK: u16 = ATTRIBUTE | b' ' as u16;
/// Shadow value of a cell whose content is not known. Every cell the
/// console writes has attribute 0x07, so none is 0.
const UNKNOWN: u16 = 0;

/// What the console drives: the text window's cells and the CRTC
/// registers. Writes only; the console never reads the device back.
pub trait TextDevice {
    /// Writes `value` (character in the low byte, attribute in the high
    /// byte) into window cell `cell` (below [`WINDOW_CELLS`]).
    fn write_cell(&mut self, cell: usize, value: u16);
    /// Writes CRTC register `index` (one of the `CRTC_*` registers here).
    fn write_crtc(&mut self, index: u8, value: u8);
}

/// CRTC Start Address High (0Ch) and Low (0Dh): the window cell shown at
/// the screen's top left.
#[doc(alias = "CRTC 0Ch")]
pub const CRTC_START_HIGH: u8 = 0x0C;
/// See [`CRTC_START_HIGH`].
#[doc(alias = "CRTC 0Dh")]
pub const CRTC_START_LOW: u8 = 0x0D;
/// CRTC Cursor Location High (0Eh) and Low (0Fh): a window cell, not
/// relative to the start address.
#[doc(alias = "CRTC 0Eh")]
pub const CRTC_CURSOR_HIGH: u8 = 0x0E;
/// See [`CRTC_CURSOR_HIGH`].
#[doc(alias = "CRTC 0Fh")]
pub const CRTC_CURSOR_LOW: u8 = 0x0F;

/// The console: the shadow of the window, the screen's place in it and
/// the cursor.
#[derive(Clone)]
pub struct TextConsole {
    /// What each window cell holds, or [`UNKNOWN`].
    shadow: [u16; WINDOW_CELLS],
    /// The window row at the top of the screen (at most [`LAST_TOP`]).
    top: usize,
    /// The cursor: a cell of the screen, below [`SCREEN_CELLS`].
    pos: usize,
    /// CRTC registers 0Ch-0Fh as last written (`None`: not known), so that
    /// a write which moves neither the start nor the cursor costs no port
    /// write, and one within a 256-cell stretch costs one.
    crtc: [Option<u8>; 4],
}

impl Default for TextConsole {
    fn default() -> Self {
        Self::new()
    }
}

impl TextConsole {
    /// A console that knows nothing of the window yet (every cell unknown).
    pub const fn new() -> Self {
        Self {
            shadow: [UNKNOWN; WINDOW_CELLS],
            top: 0,
            pos: 0,
            crtc: [None; 4],
        }
    }

    /// Blanks the screen, shows the window from its first cell and puts
    /// the cursor at the top left. Writes the screen's 2000 cells (the
    /// firmware's text may be anywhere on them), not the whole window: the
    /// rest stays unknown until a scroll reaches it.
    pub fn clear(&mut self, dev: &mut impl TextDevice) {
        self.shadow.fill(UNKNOWN);
        self.top = 0;
        self.pos = 0;
        self.crtc = [None; 4];
        for cell in 0..SCREEN_CELLS {
            self.put(dev, cell, BLANK);
        }
        self.show(dev);
    }

    /// Writes text at the cursor. `\n` moves to the start of the next row,
    /// `\r` to the start of this one, backspace one cell back (without
    /// erasing), escape is ignored, and every other byte outside printable
    /// ASCII shows as `?` (each byte of a UTF-8 sequence). The 81st cell of
    /// a row is the first of the next; the row below the last scrolls in.
    pub fn write_str(&mut self, dev: &mut impl TextDevice, s: &str) {
        self.top = self.top.min(LAST_TOP);
        let mut pos = self.pos.min(SCREEN_CELLS - 1);
        for b in s.bytes() {
            match b {
                b'\n' => pos = (pos / COLUMNS + 1) * COLUMNS,
                b'\r' => pos = pos / COLUMNS * COLUMNS,
                0x08 => pos = pos.saturating_sub(1),
                0x1b => {}
                b => {
                    let ch = if (0x20..0x7f).contains(&b) { b } else { b'?' };
                    self.put(dev, self.top * COLUMNS + pos, ATTRIBUTE | u16::from(ch));
                    pos += 1;
                }
            }
            if pos >= SCREEN_CELLS {
                self.scroll(dev);
                pos -= COLUMNS;
            }
        }
        self.pos = pos;
        self.show(dev);
    }

    /// The cursor as (column, row) on the screen.
    pub fn cursor(&self) -> (usize, usize) {
        (self.pos % COLUMNS, self.pos / COLUMNS)
    }

    /// Moves the screen one row down the window and blanks its new bottom
    /// row; at the end of the window, first copies the rows that stay
    /// visible to the window's top (vgacon_scroll's roll-over). The start
    /// address is programmed by [`Self::show`] once the write is done.
    fn scroll(&mut self, dev: &mut impl TextDevice) {
        let mut top = self.top + 1;
        if top > LAST_TOP {
            let from = top * COLUMNS;
            for cell in 0..(ROWS - 1) * COLUMNS {
                let value = match self.shadow.get(from + cell) {
                    Some(&v) if v != UNKNOWN => v,
                    _ => BLANK,
                };
                self.put(dev, cell, value);
            }
            top = 0;
        }
        self.top = top;
        let bottom = (top + ROWS - 1) * COLUMNS;
        for cell in bottom..bottom + COLUMNS {
            self.put(dev, cell, BLANK);
        }
    }

    /// Writes window cell `cell` unless the shadow says it holds `value`.
    /// (Whole cells: writing only the character byte where the attribute
    /// is right did not measure faster under QEMU.)
    fn put(&mut self, dev: &mut impl TextDevice, cell: usize, value: u16) {
        if let Some(known) = self.shadow.get_mut(cell)
            && *known != value
        {
            *known = value;
            dev.write_cell(cell, value);
        }
    }

    /// Programs the start address and the cursor location where they
    /// changed: the start at each scroll, the cursor's low byte at nearly
    /// every write and its high byte once in 256 cells. Straight-line code:
    /// this runs for every piece of a panic report, in a debug kernel too.
    fn show(&mut self, dev: &mut impl TextDevice) {
        // Both fit: below WINDOW_CELLS (16384).
        let start = (self.top * COLUMNS) as u16;
        let cursor = start + self.pos as u16;
        let [start_high, start_low] = start.to_be_bytes();
        let [cursor_high, cursor_low] = cursor.to_be_bytes();
        self.set_register(dev, 0, CRTC_START_HIGH, start_high);
        self.set_register(dev, 1, CRTC_START_LOW, start_low);
        self.set_register(dev, 2, CRTC_CURSOR_HIGH, cursor_high);
        self.set_register(dev, 3, CRTC_CURSOR_LOW, cursor_low);
    }

    /// Writes CRTC register `index` (remembered in `self.crtc[slot]`)
    /// unless it holds `value` already.
    fn set_register(&mut self, dev: &mut impl TextDevice, slot: usize, index: u8, value: u8) {
        if let Some(shown) = self.crtc.get_mut(slot)
            && *shown != Some(value)
        {
            *shown = Some(value);
            dev.write_crtc(index, value);
        }
    }
}

#[cfg(test)]
mod tests;
