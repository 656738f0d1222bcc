//! The console's glyphs: Noto Sans Mono, regular, 16 pixels high, from the
//! [`noto_sans_mono_bitmap`] crate.
//!
//! Why this crate: it comes from the Rust OS-dev community (the
//! `bootloader` crate's framebuffer logger draws with it), it is `no_std`
//! with no dependencies, needs no allocation and no floating point (the
//! kernel's target is soft-float), and its glyphs are `const` data looked up
//! by a `match`: nothing to initialise, nothing to lock, so the panic path
//! can draw with it. Each pixel is an 8-bit intensity (anti-aliased), which
//! reads better than a 1-bit font and OCRs well in the QEMU test. Cargo
//! features trim it to the one weight, size and Unicode block used (Basic
//! Latin, U+0020-U+007E). Checked to build for `x86_64-unknown-none` on
//! Rust 1.95 stable.

#![forbid(unsafe_code)]

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

const WEIGHT: FontWeight = FontWeight::Regular;
const SIZE: RasterHeight = RasterHeight::Size16;

/// Width of one character cell in pixels.
pub const CELL_WIDTH: usize = get_raster_width(WEIGHT, SIZE);
/// Height of one character cell in pixels.
pub const CELL_HEIGHT: usize = SIZE.val();

/// The glyph of `c`: `CELL_WIDTH * CELL_HEIGHT` intensities, row-major, top
/// row first. A character the font lacks is drawn as `?`.
pub fn glyph(c: char) -> &'static [u8] {
    match get_raster(c, WEIGHT, SIZE).or_else(|| get_raster('?', WEIGHT, SIZE)) {
        Some(r) => r.pixels(),
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_seven_by_sixteen_and_printable_ascii_is_covered() {
        assert_eq!((CELL_WIDTH, CELL_HEIGHT), (7, 16));
        for c in ' '..='~' {
            assert_eq!(glyph(c).len(), CELL_WIDTH * CELL_HEIGHT, "{c:?}");
        }
        assert!(glyph(' ').iter().all(|&p| p == 0));
        assert!(glyph('#').iter().any(|&p| p > 200));
        assert_eq!(glyph('\u{263a}'), glyph('?'));
    }
}
