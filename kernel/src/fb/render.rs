//! The text console drawn into a framebuffer: a grid of character cells
//! sized from the resolution, a cursor, and the control characters that
//! `vga.rs` handles (newline, carriage return, backspace; escape is
//! ignored; tab and every other control character show as `?`, as there).
//!
//! Pure: it draws into a byte slice (the framebuffer, its shadow in RAM, or
//! a `Vec` in host tests), allocates nothing, takes no lock and never
//! panics, not even on a slice that is too short or a cursor left anywhere
//! by a writer stopped halfway (the panic path takes the console over from
//! a parked CPU).
//!
//! The background is black, all bits zero in every pixel format. Each text
//! row remembers how many of its cells may be non-black (its width), so
//! scrolling in place moves only that much of each pixel row (`memmove`,
//! optimised even in a debug kernel) and [`TextScreen::flush`] copies only
//! the cells that changed: a panic report's lines fill about half the row.
//! In a shadow drawn as a ring ([`TextScreen::use_ring`]) a scroll moves no
//! pixel at all.

#![forbid(unsafe_code)]

use super::font::{self, CELL_HEIGHT, CELL_WIDTH};
use super::info::{FramebufferInfo, PixelFormat, validate};

/// Glyphs [`TextScreen::fill_glyphs`] renders: printable ASCII, U+0020-U+007E.
const GLYPHS: usize = 95;

/// Text rows at most (a 4096-pixel-high screen); a taller one leaves the
/// rest black.
pub const MAX_ROWS: usize = 256;

/// Text colour: VGA's light grey (attribute 0x07, as `vga.rs` writes).
pub const FOREGROUND: [u8; 3] = [0xaa, 0xaa, 0xaa];

/// A text console over a framebuffer's bytes.
#[derive(Clone, Debug)]
pub struct TextScreen {
    format: PixelFormat,
    pitch: usize,
    len: usize,
    cols: usize,
    rows: usize,
    col: usize,
    row: usize,
    /// The pixel value of each glyph intensity: the foreground over black.
    shades: [u32; 256],
    /// Per text row: cells from the left that may be non-black (every
    /// pixel of the cells right of them is black).
    widths: [u16; MAX_ROWS],
    /// Per text row: the cells changed since the last flush, `lo..hi`
    /// (none when `lo >= hi`).
    dirty: [(u16, u16); MAX_ROWS],
    /// Everything changed (cleared) since the last flush.
    dirty_all: bool,
    /// The buffer drawn into is a shadow whose text rows form a ring
    /// ([`TextScreen::use_ring`]).
    ring: bool,
    /// With `ring`: the buffer row that holds text row 0.
    top: usize,
}

impl TextScreen {
    /// A console for `info` (checked by [`validate`]): as many 7x16 cells as
    /// fit (at most [`MAX_ROWS`] rows), the cursor at the top left. Does not
    /// draw; call [`TextScreen::clear`].
    pub fn new(info: &FramebufferInfo) -> Result<Self, &'static str> {
        let (format, len) = validate(info)?;
        let cols = info.width as usize / CELL_WIDTH;
        let rows = (info.height as usize / CELL_HEIGHT).min(MAX_ROWS);
        if cols == 0 || rows == 0 {
            return Err("framebuffer: smaller than one character cell");
        }
        if cols > u16::MAX as usize {
            return Err("framebuffer: wider than 65535 character cells");
        }
        let mut shades = [0; 256];
        for (i, s) in shades.iter_mut().enumerate() {
            *s = format.encode(FOREGROUND.map(|f| ((f as usize * i + 127) / 255) as u8));
        }
        Ok(TextScreen {
            format,
            pitch: info.pitch as usize,
            len,
            cols,
            rows,
            col: 0,
            row: 0,
            shades,
            widths: [0; MAX_ROWS],
            dirty: [(0, 0); MAX_ROWS],
            dirty_all: false,
            ring: false,
            top: 0,
        })
    }

    /// Bytes the framebuffer spans (`pitch * height`).
    pub fn byte_len(&self) -> usize {
        self.len
    }

    /// The grid: (columns, rows).
    pub fn size(&self) -> (usize, usize) {
        (self.cols, self.rows)
    }

    /// The cursor: (column, row).
    pub fn cursor(&self) -> (usize, usize) {
        (self.col, self.row)
    }

    /// Draws from now on into a shadow whose text rows form a ring:
    /// scrolling then moves no pixels (the ring turns and one row is
    /// blanked), and [`TextScreen::flush`] copies each row to its place in
    /// the framebuffer. Only for a buffer that is flushed, never for the
    /// framebuffer itself; call before drawing (or right after a clear).
    pub fn use_ring(&mut self) {
        self.ring = true;
        self.top = 0;
    }

    /// The buffer row that holds text row `row`.
    fn place(&self, row: usize) -> usize {
        if self.ring {
            (self.top + row) % self.rows
        } else {
            row
        }
    }

    /// Copies what changed since the last flush from `from` (where this
    /// screen draws: the shadow) to `to` (the framebuffer, only written),
    /// each text row to its place.
    pub fn flush(&mut self, from: &[u8], to: &mut [u8]) {
        let (Some(from), Some(to)) = (from.get(..self.len), to.get_mut(..self.len)) else {
            return;
        };
        let line = self.line_bytes();
        if core::mem::take(&mut self.dirty_all) {
            // Whole pixel rows, padding and the pixels below the text too.
            let text = self.rows * line;
            to[text..].copy_from_slice(&from[text..]);
            for row in 0..self.rows {
                let src = self.place(row) * line;
                to[row * line..][..line].copy_from_slice(&from[src..][..line]);
            }
            self.forget_changes();
            return;
        }
        let cell = CELL_WIDTH * self.format.bytes;
        for row in 0..self.rows {
            let (lo, hi) = core::mem::take(&mut self.dirty[row]);
            let (lo, hi) = (lo as usize, (hi as usize).min(self.cols));
            if lo >= hi {
                continue;
            }
            let src = self.place(row) * line;
            for y in 0..CELL_HEIGHT {
                let (s, d) = (src + y * self.pitch, row * line + y * self.pitch);
                let (from, to) = (
                    from.get(s + lo * cell..s + hi * cell),
                    to.get_mut(d + lo * cell..d + hi * cell),
                );
                if let (Some(t), Some(f)) = (to, from) {
                    t.copy_from_slice(f);
                }
            }
        }
    }

    /// Drops the record of changes (a screen drawn in place has nothing to
    /// copy).
    pub fn forget_changes(&mut self) {
        self.dirty_all = false;
        self.dirty = [(0, 0); MAX_ROWS];
    }

    /// Records that cells `lo..hi` of `row` changed.
    fn mark(&mut self, row: usize, lo: usize, hi: usize) {
        let Some(d) = self.dirty.get_mut(row) else {
            return;
        };
        let (lo, hi) = (lo as u16, hi as u16);
        *d = if d.0 >= d.1 {
            (lo, hi)
        } else {
            (d.0.min(lo), d.1.max(hi))
        };
    }

    /// Bytes of one text line (a row of cells).
    fn line_bytes(&self) -> usize {
        CELL_HEIGHT * self.pitch
    }

    /// Blanks the whole framebuffer and puts the cursor at the top left.
    pub fn clear(&mut self, fb: &mut [u8]) {
        let Some(fb) = fb.get_mut(..self.len) else {
            return;
        };
        fb.fill(0);
        self.col = 0;
        self.row = 0;
        self.top = 0;
        self.widths = [0; MAX_ROWS];
        self.dirty_all = true;
    }

    /// Writes text at the cursor, scrolling at the bottom; glyphs come from
    /// `glyphs` (see [`TextScreen::fill_glyphs`]) or, if it is too short
    /// (`&[]`), from the font.
    pub fn write_str(&mut self, fb: &mut [u8], glyphs: &[u8], s: &str) {
        let Some(fb) = fb.get_mut(..self.len) else {
            return;
        };
        if self.col >= self.cols || self.row >= self.rows {
            self.col = 0;
            self.row = self.row.min(self.rows - 1);
        }
        for c in s.chars() {
            match c {
                '\n' => {
                    self.col = 0;
                    self.row += 1;
                }
                '\r' => self.col = 0,
                '\u{8}' => {
                    if self.col > 0 {
                        self.col -= 1;
                    } else if self.row > 0 {
                        self.row -= 1;
                        self.col = self.cols - 1;
                    }
                }
                '\u{1b}' => {}
                c => {
                    self.draw(fb, glyphs, if (' '..='~').contains(&c) { c } else { '?' });
                    self.col += 1;
                    if self.col == self.cols {
                        self.col = 0;
                        self.row += 1;
                    }
                }
            }
            if self.row >= self.rows {
                self.scroll(fb);
                self.row = self.rows - 1;
            }
        }
    }

    /// Bytes [`TextScreen::fill_glyphs`] needs: every printable ASCII
    /// glyph, already in this pixel format.
    pub fn glyphs_len(&self) -> usize {
        GLYPHS * CELL_HEIGHT * CELL_WIDTH * self.format.bytes
    }

    /// Renders every printable ASCII glyph into `glyphs` (at least
    /// [`TextScreen::glyphs_len`] bytes), in this pixel format: glyph `k`
    /// (character `' ' + k`) is `CELL_HEIGHT` rows of `CELL_WIDTH` pixels.
    /// Drawing from it copies one row at a time (`memcpy`) instead of
    /// shading each pixel: about 30 times faster in a debug kernel.
    pub fn fill_glyphs(&self, glyphs: &mut [u8]) {
        let row = CELL_WIDTH * self.format.bytes;
        let Some(glyphs) = glyphs.get_mut(..self.glyphs_len()) else {
            return;
        };
        for (k, dst) in glyphs.chunks_exact_mut(CELL_HEIGHT * row).enumerate() {
            let c = char::from(b' ' + k as u8);
            for (intensities, dst) in font::glyph(c)
                .chunks_exact(CELL_WIDTH)
                .zip(dst.chunks_exact_mut(row))
            {
                self.shade_row(intensities, dst);
            }
        }
    }

    /// One row of glyph intensities as pixels.
    fn shade_row(&self, intensities: &[u8], dst: &mut [u8]) {
        let bytes = self.format.bytes;
        for (px, &i) in dst.chunks_exact_mut(bytes).zip(intensities) {
            let v = self.shades[i as usize].to_le_bytes();
            px.copy_from_slice(&v[..bytes]);
        }
    }

    /// Draws `c` (printable ASCII) in the cell under the cursor: from
    /// `glyphs` if it was filled by [`TextScreen::fill_glyphs`], else from
    /// the font.
    fn draw(&mut self, fb: &mut [u8], glyphs: &[u8], c: char) {
        let row = CELL_WIDTH * self.format.bytes;
        let left = self.place(self.row) * self.line_bytes() + self.col * row;
        let k = (c as usize).wrapping_sub(' ' as usize);
        let cached = glyphs.get(k * CELL_HEIGHT * row..(k + 1) * CELL_HEIGHT * row);
        for y in 0..CELL_HEIGHT {
            let start = left + y * self.pitch;
            let Some(dst) = fb.get_mut(start..start + row) else {
                return;
            };
            match cached {
                Some(g) => dst.copy_from_slice(&g[y * row..(y + 1) * row]),
                None => self.shade_row(&font::glyph(c)[y * CELL_WIDTH..(y + 1) * CELL_WIDTH], dst),
            }
        }
        let (r, c) = (self.row, self.col);
        let place = self.place(r);
        if let Some(w) = self.widths.get_mut(place) {
            *w = (*w).max(c as u16 + 1);
        }
        self.mark(r, c, c + 1);
    }

    /// Moves every text line up by one and blanks the last. In a ring
    /// ([`TextScreen::use_ring`]) no pixel moves: the ring turns and the row
    /// that was on top is blanked as the new last. Else, per pixel row, one
    /// `memmove` of as many cells as the wider of the two text rows holds
    /// (right of both, both are black already).
    fn scroll(&mut self, fb: &mut [u8]) {
        let cell = CELL_WIDTH * self.format.bytes;
        let line = self.line_bytes();
        // Each text row shows the one below it now: it changes as far as
        // either of the two reaches. (`widths` is kept per buffer row.)
        for row in 0..self.rows {
            let here = self.widths[self.place(row)] as usize;
            let below = if row + 1 < self.rows {
                self.widths[self.place(row + 1)] as usize
            } else {
                0
            };
            self.mark(row, 0, here.max(below).min(self.cols));
        }
        if self.ring {
            let first = self.place(0);
            let width = (self.widths[first] as usize).min(self.cols);
            for y in 0..CELL_HEIGHT {
                let at = first * line + y * self.pitch;
                if let Some(d) = fb.get_mut(at..at + width * cell) {
                    d.fill(0);
                }
            }
            self.widths[first] = 0;
            self.top = (self.top + 1) % self.rows;
            return;
        }
        for row in 0..self.rows {
            let below = if row + 1 < self.rows {
                self.widths[row + 1]
            } else {
                0
            };
            let width = (self.widths[row].max(below) as usize).min(self.cols);
            for y in 0..CELL_HEIGHT {
                let dst = row * line + y * self.pitch;
                if below == 0 && width > 0 {
                    if let Some(d) = fb.get_mut(dst..dst + width * cell) {
                        d.fill(0);
                    }
                } else if width > 0 && dst + line + width * cell <= fb.len() {
                    fb.copy_within(dst + line..dst + line + width * cell, dst);
                }
            }
            self.widths[row] = below;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A framebuffer of `width` x `height` at `bpp`, rows padded by 8 bytes.
    fn info(width: u32, height: u32, bpp: u8) -> FramebufferInfo {
        let (red, green, blue) = match bpp {
            16 => ((11, 5), (5, 6), (0, 5)),
            _ => ((16, 8), (8, 8), (0, 8)),
        };
        FramebufferInfo {
            phys: 0x1000_0000,
            pitch: width * bpp as u32 / 8 + 8,
            width,
            height,
            bpp,
            red,
            green,
            blue,
        }
    }

    fn screen(width: u32, height: u32, bpp: u8) -> (TextScreen, Vec<u8>) {
        let mut s = TextScreen::new(&info(width, height, bpp)).unwrap();
        let mut fb = vec![0x5a; s.byte_len()];
        s.clear(&mut fb);
        (s, fb)
    }

    /// The pixel value at pixel (x, y).
    fn pixel(s: &TextScreen, fb: &[u8], x: usize, y: usize) -> u32 {
        let at = y * s.pitch + x * s.format.bytes;
        let mut v = [0u8; 4];
        v[..s.format.bytes].copy_from_slice(&fb[at..at + s.format.bytes]);
        u32::from_le_bytes(v)
    }

    /// True if cell (col, row) shows `c`, pixel for pixel.
    fn shows(s: &TextScreen, fb: &[u8], col: usize, row: usize, c: char) -> bool {
        let g = font::glyph(c);
        (0..CELL_HEIGHT).all(|y| {
            (0..CELL_WIDTH).all(|x| {
                pixel(s, fb, col * CELL_WIDTH + x, row * CELL_HEIGHT + y)
                    == s.shades[g[y * CELL_WIDTH + x] as usize]
            })
        })
    }

    #[test]
    fn grid_is_sized_from_the_resolution_and_clear_blanks_everything() {
        let (s, fb) = screen(1024, 768, 32);
        assert_eq!(s.size(), (146, 48));
        assert_eq!(s.cursor(), (0, 0));
        assert!(fb.iter().all(|&b| b == 0));
        let (s, _) = screen(640, 480, 16);
        assert_eq!(s.size(), (91, 30));
    }

    #[test]
    fn a_glyph_lands_in_its_cell_at_16_24_and_32_bpp() {
        for bpp in [16, 24, 32] {
            let (mut s, mut fb) = screen(64, 48, bpp);
            let before = fb.clone();
            s.write_str(&mut fb, &[], "AB");
            assert_eq!(s.cursor(), (2, 0));
            assert!(shows(&s, &fb, 0, 0, 'A'), "{bpp} bpp");
            assert!(shows(&s, &fb, 1, 0, 'B'), "{bpp} bpp");
            // A full-intensity pixel of 'B' has the foreground colour.
            let g = font::glyph('B');
            let (x, y) = (0..CELL_WIDTH * CELL_HEIGHT)
                .find(|&i| g[i] == 255)
                .map(|i| (i % CELL_WIDTH, i / CELL_WIDTH))
                .expect("a solid pixel in B");
            let fg = s.format.encode(FOREGROUND);
            assert_eq!(pixel(&s, &fb, CELL_WIDTH + x, y), fg, "{bpp} bpp");
            // Nothing outside the two cells changed (row padding included).
            let cells = |i: usize| {
                let (y, x) = (i / s.pitch, i % s.pitch);
                y < CELL_HEIGHT && x < 2 * CELL_WIDTH * s.format.bytes
            };
            for (i, (a, b)) in before.iter().zip(&fb).enumerate() {
                assert!(cells(i) || a == b, "{bpp} bpp: byte {i} changed");
            }
        }
    }

    #[test]
    fn control_characters_behave_like_the_vga_console() {
        let (mut s, mut fb) = screen(70, 64, 32); // 10 x 4 cells
        s.write_str(&mut fb, &[], "abc\rX");
        assert!(shows(&s, &fb, 0, 0, 'X') && shows(&s, &fb, 1, 0, 'b'));
        s.write_str(&mut fb, &[], "\u{8}Y\u{1b}\tz");
        assert!(shows(&s, &fb, 0, 0, 'Y') && shows(&s, &fb, 1, 0, '?'));
        assert!(shows(&s, &fb, 2, 0, 'z'));
        s.write_str(&mut fb, &[], "\n0123456789");
        // A full line wraps the cursor to the next; backspace goes back up.
        assert_eq!(s.cursor(), (0, 2));
        s.write_str(&mut fb, &[], "\u{8}");
        assert_eq!(s.cursor(), (9, 1));
        s.write_str(&mut fb, &[], "é");
        assert!(shows(&s, &fb, 9, 1, '?'));
    }

    #[test]
    fn scrolling_moves_text_rows_up_and_blanks_the_last() {
        for bpp in [16, 24, 32] {
            let (mut s, mut fb) = screen(70, 64 + 5, bpp); // 4 rows, 5 spare pixel rows
            s.write_str(&mut fb, &[], "a\nb\nc\nd");
            assert_eq!(s.cursor(), (1, 3));
            s.write_str(&mut fb, &[], "\ne");
            assert_eq!(s.cursor(), (1, 3));
            for (row, c) in ['b', 'c', 'd', 'e'].into_iter().enumerate() {
                assert!(shows(&s, &fb, 0, row, c), "{bpp} bpp: row {row}");
            }
            s.write_str(&mut fb, &[], "\n");
            assert!(shows(&s, &fb, 0, 2, 'e'));
            let line = CELL_HEIGHT * s.pitch;
            assert!(fb[3 * line..4 * line].iter().all(|&b| b == 0), "{bpp} bpp");
        }
    }

    /// The text a console shows, kept the simple way: a grid of
    /// characters, scrolled by removing the first row.
    struct Model {
        cells: Vec<Vec<char>>,
        col: usize,
        row: usize,
    }

    impl Model {
        fn new(cols: usize, rows: usize) -> Self {
            Model {
                cells: vec![vec![' '; cols]; rows],
                col: 0,
                row: 0,
            }
        }

        fn write(&mut self, text: &str) {
            let (cols, rows) = (self.cells[0].len(), self.cells.len());
            for c in text.chars() {
                match c {
                    '\n' => (self.col, self.row) = (0, self.row + 1),
                    '\r' => self.col = 0,
                    '\u{8}' if self.col > 0 => self.col -= 1,
                    '\u{8}' if self.row > 0 => (self.col, self.row) = (cols - 1, self.row - 1),
                    '\u{8}' | '\u{1b}' => {}
                    c => {
                        let c = if (' '..='~').contains(&c) { c } else { '?' };
                        self.cells[self.row][self.col] = c;
                        self.col += 1;
                        if self.col == cols {
                            (self.col, self.row) = (0, self.row + 1);
                        }
                    }
                }
                if self.row == rows {
                    self.cells.remove(0);
                    self.cells.push(vec![' '; cols]);
                    self.row -= 1;
                }
            }
        }
    }

    /// Lines of every length, wraps, carriage returns and backspaces, with
    /// many scrolls: every cell shows what the model says, and the
    /// framebuffer fed by `flush` equals the shadow after every write.
    #[test]
    fn long_and_short_lines_scroll_and_flush_exactly() {
        for (bpp, ring) in [16, 24, 32]
            .into_iter()
            .flat_map(|b| [(b, false), (b, true)])
        {
            let (mut s, mut back) = screen(7 * 12, 16 * 5 + 3, bpp); // 12 x 5 cells
            if ring {
                s.use_ring();
            }
            let mut front = vec![0x77; back.len()];
            s.flush(&back, &mut front);
            assert!(front == back);
            let mut glyphs = vec![0; s.glyphs_len()];
            s.fill_glyphs(&mut glyphs);
            let mut model = Model::new(12, 5);
            let mut seed = 0x2545_f491u32;
            for step in 0..300 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let n = seed as usize % 30;
                let mut text: String = (0..n)
                    .map(|i| char::from(b'a' + ((step + i) % 26) as u8))
                    .collect();
                text.push(match seed >> 28 {
                    0 => '\r',
                    1 => '\u{8}',
                    2 => ' ',
                    _ => '\n',
                });
                s.write_str(&mut back, &glyphs, &text);
                model.write(&text);
                s.flush(&back, &mut front);
                // In place, the framebuffer is a copy of the shadow; in a
                // ring, the shadow's rows are rotated.
                assert!(
                    ring || front == back,
                    "{bpp} bpp, step {step}: the flush missed a change"
                );
                assert_eq!(s.cursor(), (model.col, model.row));
                let below_text = 5 * CELL_HEIGHT * s.pitch;
                assert!(front[below_text..].iter().all(|&b| b == 0));
                for (row, line) in model.cells.iter().enumerate() {
                    for (col, &c) in line.iter().enumerate() {
                        assert!(
                            shows(&s, &front, col, row, c),
                            "{bpp} bpp, ring {ring}, step {step}: cell ({col}, {row}) is not {c:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_ring_cleared_and_scrolled_before_its_first_flush_lands_in_place() {
        let (mut s, mut back) = screen(70, 64, 32); // 10 x 4 cells
        s.use_ring();
        s.write_str(&mut back, &[], "0\n1\n2\n3\n4\n5\n6");
        let mut front = vec![0x77; back.len()];
        s.flush(&back, &mut front);
        for (row, c) in ['3', '4', '5', '6'].into_iter().enumerate() {
            assert!(shows(&s, &front, 0, row, c), "row {row}");
        }
        s.clear(&mut back);
        s.write_str(&mut back, &[], "a\nb\nc\nd\ne");
        s.flush(&back, &mut front);
        for (row, c) in ['b', 'c', 'd', 'e'].into_iter().enumerate() {
            assert!(shows(&s, &front, 0, row, c), "row {row} after a clear");
            assert!(shows(&s, &front, 1, row, ' '), "row {row} after a clear");
        }
    }

    #[test]
    fn flush_copies_only_changed_cells() {
        let (mut s, mut back) = screen(70, 64, 32);
        let mut front = vec![0; back.len()];
        s.flush(&back, &mut front);
        s.write_str(&mut back, &[], "\nab");
        // Mark the framebuffer outside the two changed cells: the flush must
        // not copy over it.
        front.fill(0x33);
        s.flush(&back, &mut front);
        let cell = CELL_WIDTH * 4;
        for (i, &b) in front.iter().enumerate() {
            let (y, x) = (i / s.pitch, i % s.pitch);
            let changed = (CELL_HEIGHT..2 * CELL_HEIGHT).contains(&y) && x < 2 * cell;
            assert_eq!(b == 0x33, !changed || back[i] == 0x33, "byte {i}");
        }
        front.fill(0x33);
        s.flush(&back, &mut front);
        assert!(
            front.iter().all(|&b| b == 0x33),
            "a second flush copies nothing"
        );
    }

    #[test]
    fn a_short_buffer_or_a_wild_cursor_never_panics() {
        let (mut s, mut fb) = screen(70, 64, 32);
        let mut short = vec![0u8; s.byte_len() - 1];
        s.write_str(&mut short, &[], "text\n");
        s.clear(&mut short);
        assert!(short.iter().all(|&b| b == 0));
        s.col = usize::MAX;
        s.row = 1000;
        s.write_str(&mut fb, &[], "x");
        assert_eq!(s.cursor(), (1, 3));
        assert!(shows(&s, &fb, 0, 3, 'x'));
    }

    #[test]
    fn drawing_from_the_glyph_cache_matches_drawing_from_the_font() {
        for bpp in [16, 24, 32] {
            let (mut s, mut fb) = screen(700, 160, bpp);
            let mut glyphs = vec![0; s.glyphs_len()];
            s.fill_glyphs(&mut glyphs);
            let text: String = (' '..='~').chain("\n\u{8}\té".chars()).collect();
            let mut plain = fb.clone();
            let mut t = s.clone();
            s.write_str(&mut fb, &glyphs, &text);
            t.write_str(&mut plain, &[], &text);
            assert!(fb == plain, "{bpp} bpp");
            assert_eq!(s.cursor(), t.cursor());
            assert!(shows(&s, &fb, 18, 0, '2'), "{bpp} bpp");
        }
    }

    #[test]
    fn bad_info_is_rejected() {
        assert!(TextScreen::new(&info(6, 16, 32)).is_err());
        assert!(TextScreen::new(&info(7, 15, 32)).is_err());
        assert!(
            TextScreen::new(&FramebufferInfo {
                bpp: 8,
                ..info(64, 64, 32)
            })
            .is_err()
        );
        assert!(
            TextScreen::new(&FramebufferInfo {
                pitch: 4,
                ..info(64, 64, 32)
            })
            .is_err()
        );
    }
}
