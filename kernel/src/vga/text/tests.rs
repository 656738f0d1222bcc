//! Host tests of the VGA text console against a fake VRAM, compared with
//! the console as it was before hardware scrolling (every row copied up).

use super::*;

/// What the firmware left in the window: no cell the console writes.
const FIRMWARE: u16 = 0x1f41;

/// VRAM and the two CRTC registers, as the display sees them.
struct FakeVga {
    cells: Vec<u16>,
    /// CRTC registers 0Ch-0Fh.
    crtc: [u8; 4],
    start: usize,
    cursor: usize,
    /// Cells written.
    writes: usize,
    port_writes: usize,
}

impl FakeVga {
    fn new() -> Self {
        Self {
            cells: vec![FIRMWARE; WINDOW_CELLS],
            crtc: [0; 4],
            start: 0,
            cursor: 0,
            writes: 0,
            port_writes: 0,
        }
    }

    /// The 25 rows the display shows (QEMU's `vga_draw_text`: from the
    /// start address on), which must lie in the window, from a row.
    fn visible(&self) -> &[u16] {
        assert!(
            self.start + SCREEN_CELLS <= WINDOW_CELLS,
            "start {} runs past the window",
            self.start
        );
        assert_eq!(self.start % COLUMNS, 0, "start {} not at a row", self.start);
        &self.cells[self.start..self.start + SCREEN_CELLS]
    }
}

impl TextDevice for FakeVga {
    fn write_cell(&mut self, cell: usize, value: u16) {
        assert!(cell < WINDOW_CELLS, "cell {cell} outside the window");
        assert_ne!(
            self.cells[cell], value,
            "cell {cell} rewritten with the value it holds"
        );
        self.cells[cell] = value;
        self.writes += 1;
    }

    fn write_crtc(&mut self, index: u8, value: u8) {
        let register = usize::from(index)
            .checked_sub(usize::from(CRTC_START_HIGH))
            .filter(|&r| r < 4)
            .unwrap_or_else(|| panic!("CRTC register {index:#x} written"));
        self.crtc[register] = value;
        self.start = usize::from(u16::from_be_bytes([self.crtc[0], self.crtc[1]]));
        self.cursor = usize::from(u16::from_be_bytes([self.crtc[2], self.crtc[3]]));
        self.port_writes += 1;
    }
}

/// The console before hardware scrolling: 80x25 cells, a scroll copies
/// every row up. The reference for what the screen must show.
struct Reference {
    cells: Vec<u16>,
    pos: usize,
    scrolls: usize,
}

impl Reference {
    fn new() -> Self {
        Self {
            cells: vec![BLANK; SCREEN_CELLS],
            pos: 0,
            scrolls: 0,
        }
    }

    fn write_str(&mut self, s: &str) {
        for b in s.bytes() {
            match b {
                b'\n' => self.pos = (self.pos / COLUMNS + 1) * COLUMNS,
                b'\r' => self.pos = self.pos / COLUMNS * COLUMNS,
                0x08 => self.pos = self.pos.saturating_sub(1),
                0x1b => {}
                b => {
                    let ch = if (0x20..0x7f).contains(&b) { b } else { b'?' };
                    self.cells[self.pos] = ATTRIBUTE | u16::from(ch);
                    self.pos += 1;
                }
            }
            if self.pos >= SCREEN_CELLS {
                self.cells.copy_within(COLUMNS.., 0);
                self.cells[SCREEN_CELLS - COLUMNS..].fill(BLANK);
                self.pos -= COLUMNS;
                self.scrolls += 1;
            }
        }
    }
}

fn text(cells: &[u16]) -> String {
    cells
        .chunks(COLUMNS)
        .map(|row| {
            let line: String = row.iter().map(|&c| (c & 0xff) as u8 as char).collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn cleared() -> (TextConsole, FakeVga) {
    let mut vga = FakeVga::new();
    let mut con = TextConsole::new();
    con.clear(&mut vga);
    (con, vga)
}

#[test]
fn clear_blanks_only_the_screen() {
    let (con, vga) = cleared();
    assert_eq!(vga.writes, SCREEN_CELLS);
    assert!(vga.visible().iter().all(|&c| c == BLANK));
    assert!(vga.cells[SCREEN_CELLS..].iter().all(|&c| c == FIRMWARE));
    assert_eq!((vga.start, vga.cursor), (0, 0));
    assert_eq!(con.cursor(), (0, 0));
}

/// Line `i` of a long, varied output: short and empty lines, lines longer
/// than a row, `\r` overwrites, backspaces, UTF-8, tabs and escapes.
fn line(i: usize) -> String {
    let body: String = (0..(i * 37) % 171)
        .map(|k| (b'!' + ((i + k) % 90) as u8) as char)
        .collect();
    match i % 7 {
        0 => format!("{body}\n"),
        1 => format!("{i}: {body}\r>>\n"),
        2 => format!("{body}ab\x08\x08XY\n"),
        3 => format!("caf\u{e9} \t\x1b[0m{body}\n"),
        4 => "\n".into(),
        5 => format!("{}\n", "=".repeat(COLUMNS)),
        _ => body,
    }
}

#[test]
fn hundreds_of_lines_through_the_wrap_show_what_the_old_console_showed() {
    let (mut con, mut vga) = cleared();
    let mut reference = Reference::new();
    let (mut wraps, mut last_start) = (0, 0);
    let mut printed = 0;
    for i in 0..900 {
        let s = line(i);
        printed += s
            .bytes()
            .filter(|b| !matches!(b, b'\n' | b'\r' | 8 | 0x1b))
            .count();
        con.write_str(&mut vga, &s);
        reference.write_str(&s);
        assert_eq!(
            text(vga.visible()),
            text(&reference.cells),
            "after line {i} (start {})",
            vga.start
        );
        assert_eq!(vga.visible(), &reference.cells[..], "after line {i}");
        assert_eq!(
            vga.cursor,
            vga.start + reference.pos,
            "cursor after line {i}"
        );
        if vga.start < last_start {
            wraps += 1;
        }
        last_start = vga.start;
    }
    assert!(
        reference.scrolls > 3 * WINDOW_ROWS,
        "{} scrolls",
        reference.scrolls
    );
    assert!(wraps >= 3, "the window wrapped {wraps} times");
    // Every write changed a cell (FakeVga checks it); beyond the clear, at
    // most each printed cell, a row erased per scroll and the rows kept at
    // each wrap. The old console spent 4000 accesses per scroll.
    let bound = SCREEN_CELLS + printed + reference.scrolls * COLUMNS + wraps * (ROWS - 1) * COLUMNS;
    assert!(vga.writes <= bound, "{} writes, bound {bound}", vga.writes);
}

#[test]
fn a_scroll_writes_only_the_cells_that_change() {
    let (mut con, mut vga) = cleared();
    let row = "x".repeat(40);
    // Fill the screen, then go once round the window so every cell is known.
    for _ in 0..WINDOW_ROWS + ROWS {
        con.write_str(&mut vga, &format!("{row}\n"));
    }
    // A steady state: each line writes 40 characters and erases the 40
    // characters of old text in the row it scrolls in.
    assert_ne!(vga.start, LAST_TOP * COLUMNS, "the next line would wrap");
    let (writes, ports) = (vga.writes, vga.port_writes);
    con.write_str(&mut vga, &format!("{row}\n"));
    assert_eq!(vga.writes - writes, 80, "bus writes for one line");
    assert!(
        (2..=4).contains(&(vga.port_writes - ports)),
        "{} CRTC writes: the start's and the cursor's low bytes, a high byte once in 256 cells",
        vga.port_writes - ports
    );
    // Moving the cursor alone writes no cell.
    let writes = vga.writes;
    con.write_str(&mut vga, "\r");
    con.write_str(&mut vga, "");
    assert_eq!(vga.writes, writes, "moving the cursor writes no cell");
}

#[test]
fn control_characters_and_long_lines_behave_as_before() {
    let (mut con, mut vga) = cleared();
    con.write_str(&mut vga, "\x08abc\x08\x08Z\rQ\n");
    assert_eq!(text(&vga.visible()[..COLUMNS]), "QZc");
    assert_eq!(con.cursor(), (0, 1));
    con.write_str(&mut vga, &"y".repeat(COLUMNS + 3));
    assert_eq!(con.cursor(), (3, 2));
    assert_eq!(text(&vga.visible()[2 * COLUMNS..3 * COLUMNS]), "yyy");
    con.write_str(&mut vga, "\u{e9}\t\x1b!");
    assert_eq!(text(&vga.visible()[2 * COLUMNS..3 * COLUMNS]), "yyy???!");
    assert_eq!(vga.cursor, vga.start + 2 * COLUMNS + 7);
}

#[test]
fn a_state_left_out_of_range_is_clamped_not_followed() {
    let (mut con, mut vga) = cleared();
    con.top = usize::MAX / 2;
    con.pos = usize::MAX / 2;
    con.write_str(&mut vga, "after a takeover\n");
    assert!(con.top <= LAST_TOP && con.pos < SCREEN_CELLS);
    assert!(vga.start + SCREEN_CELLS <= WINDOW_CELLS);
}
