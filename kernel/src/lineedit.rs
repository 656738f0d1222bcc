//! Line editing shared by the shell and the panic console: keys from any
//! input (serial bytes, USB or PS/2 keyboards), a fixed-size buffer and
//! history (no allocation, usable in panic mode), echo through `fmt::Write`.
//!
//! Serial input accepts CR, LF and CRLF alike as Enter, and both 0x08 and
//! 0x7f as backspace; ANSI escape sequences give the arrow keys.

#![forbid(unsafe_code)]

use core::fmt::Write;

/// Longest line.
pub const LINE_MAX: usize = 160;
const HISTORY: usize = 8;

/// An editing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(u8),
    /// End of line.
    Enter,
    /// Delete left of the cursor.
    Backspace,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Previous history entry.
    Up,
    /// Next history entry.
    Down,
    /// Ctrl-U: erase the line.
    KillLine,
    /// Ctrl-C: abandon the line.
    Cancel,
}

/// Turns a serial byte stream into keys (CR/LF/CRLF, DEL/BS, ESC [ A-D).
#[derive(Default)]
pub struct ByteDecoder {
    last_cr: bool,
    esc: u8,
}

impl ByteDecoder {
    /// A decoder in its initial state.
    pub const fn new() -> Self {
        Self {
            last_cr: false,
            esc: 0,
        }
    }

    /// Feeds one byte; returns the key it completes, if any.
    pub fn feed(&mut self, b: u8) -> Option<Key> {
        let was_cr = core::mem::replace(&mut self.last_cr, false);
        match (self.esc, b) {
            (1, b'[') | (1, b'O') => {
                self.esc = 2;
                return None;
            }
            (1, _) => self.esc = 0,
            (2, b'A') => return self.end_esc(Key::Up),
            (2, b'B') => return self.end_esc(Key::Down),
            (2, b'C') => return self.end_esc(Key::Right),
            (2, b'D') => return self.end_esc(Key::Left),
            (2, b'0'..=b'9' | b';') => return None,
            (2, _) => {
                self.esc = 0;
                return None;
            }
            _ => {}
        }
        match b {
            0x1b => {
                self.esc = 1;
                None
            }
            b'\r' => {
                self.last_cr = true;
                Some(Key::Enter)
            }
            b'\n' if was_cr => None,
            b'\n' => Some(Key::Enter),
            0x08 | 0x7f => Some(Key::Backspace),
            0x15 => Some(Key::KillLine),
            0x03 => Some(Key::Cancel),
            0x20..=0x7e => Some(Key::Char(b)),
            _ => None,
        }
    }

    fn end_esc(&mut self, k: Key) -> Option<Key> {
        self.esc = 0;
        Some(k)
    }
}

/// A line being edited, with history.
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    cursor: usize,
    history: [[u8; LINE_MAX]; HISTORY],
    history_len: [usize; HISTORY],
    history_count: usize,
    /// Position while browsing history (0 = the newest).
    browse: Option<usize>,
}

/// What a key did to the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    /// Still editing.
    Pending,
    /// A line is complete (see [`LineEditor::line`]).
    Done,
    /// The line was abandoned (Ctrl-C).
    Cancelled,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty editor.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            cursor: 0,
            history: [[0; LINE_MAX]; HISTORY],
            history_len: [0; HISTORY],
            history_count: 0,
            browse: None,
        }
    }

    /// The current line.
    pub fn line(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Writes `prompt` and the line being edited again on a fresh line, the
    /// cursor where it was (after a message printed over the input).
    pub fn redraw(&self, prompt: &str, out: &mut impl Write) {
        let _ = write!(out, "{prompt}{}", self.line());
        for _ in self.cursor..self.len {
            let _ = out.write_str("\x08");
        }
    }

    /// Starts a new, empty line.
    pub fn clear(&mut self) {
        self.len = 0;
        self.cursor = 0;
        self.browse = None;
    }

    fn redraw_tail(&self, out: &mut impl Write) {
        let tail = core::str::from_utf8(&self.buf[self.cursor..self.len]).unwrap_or("");
        let _ = write!(out, "{tail} ");
        for _ in 0..=tail.len() {
            let _ = out.write_str("\x08");
        }
    }

    fn replace_line(&mut self, new: &[u8], out: &mut impl Write) {
        for _ in 0..self.cursor {
            let _ = out.write_str("\x08");
        }
        for _ in 0..self.len {
            let _ = out.write_str(" ");
        }
        for _ in 0..self.len {
            let _ = out.write_str("\x08");
        }
        let n = new.len().min(LINE_MAX);
        self.buf[..n].copy_from_slice(&new[..n]);
        self.len = n;
        self.cursor = n;
        let _ = out.write_str(self.line());
    }

    fn push_history(&mut self) {
        if self.len == 0 {
            return;
        }
        let newest = (self.history_count + HISTORY - 1) % HISTORY;
        if self.history_count > 0
            && self.history[newest][..self.history_len[newest]] == self.buf[..self.len]
        {
            return;
        }
        let slot = self.history_count % HISTORY;
        self.history[slot][..self.len].copy_from_slice(&self.buf[..self.len]);
        self.history_len[slot] = self.len;
        self.history_count += 1;
    }

    fn history_entry(&self, back: usize) -> Option<([u8; LINE_MAX], usize)> {
        if back >= self.history_count.min(HISTORY) {
            return None;
        }
        let slot = (self.history_count - 1 - back) % HISTORY;
        Some((self.history[slot], self.history_len[slot]))
    }

    /// Applies one key, echoing to `out`.
    pub fn key(&mut self, k: Key, out: &mut impl Write) -> Edit {
        match k {
            Key::Char(c) => {
                if self.len < LINE_MAX {
                    self.buf.copy_within(self.cursor..self.len, self.cursor + 1);
                    self.buf[self.cursor] = c;
                    self.len += 1;
                    self.cursor += 1;
                    let _ = out.write_char(c as char);
                    if self.cursor < self.len {
                        self.redraw_tail(out);
                    }
                }
            }
            Key::Backspace => {
                if self.cursor > 0 {
                    self.buf.copy_within(self.cursor..self.len, self.cursor - 1);
                    self.cursor -= 1;
                    self.len -= 1;
                    let _ = out.write_str("\x08");
                    self.redraw_tail(out);
                }
            }
            Key::Left => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    let _ = out.write_str("\x08");
                }
            }
            Key::Right => {
                if self.cursor < self.len {
                    let _ = out.write_char(self.buf[self.cursor] as char);
                    self.cursor += 1;
                }
            }
            Key::Up | Key::Down => {
                let next = match (k, self.browse) {
                    (Key::Up, None) => Some(0),
                    (Key::Up, Some(b)) => Some(b + 1),
                    (_, Some(0)) | (_, None) => None,
                    (_, Some(b)) => Some(b - 1),
                };
                match next.and_then(|b| self.history_entry(b).map(|e| (b, e))) {
                    Some((b, (line, n))) => {
                        self.browse = Some(b);
                        self.replace_line(&line[..n], out);
                    }
                    None if k == Key::Down => {
                        self.browse = None;
                        self.replace_line(&[], out);
                    }
                    None => {}
                }
            }
            Key::KillLine => self.replace_line(&[], out),
            Key::Cancel => {
                let _ = out.write_str("^C\n");
                self.clear();
                return Edit::Cancelled;
            }
            Key::Enter => {
                let _ = out.write_str("\n");
                self.push_history();
                self.browse = None;
                return Edit::Done;
            }
        }
        Edit::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> (Vec<String>, String) {
        let mut d = ByteDecoder::new();
        let mut e = LineEditor::new();
        let mut out = String::new();
        let mut lines = Vec::new();
        for &b in bytes {
            if let Some(k) = d.feed(b)
                && e.key(k, &mut out) == Edit::Done
            {
                lines.push(e.line().to_string());
                e.clear();
            }
        }
        (lines, out)
    }

    #[test]
    fn cr_lf_and_crlf_are_one_enter_each() {
        assert_eq!(run(b"a\rb\nc\r\nd\n\n").0, ["a", "b", "c", "d", ""]);
    }

    #[test]
    fn both_backspaces_and_kill_line() {
        assert_eq!(run(b"abx\x08c\x7fd\r").0, ["abd"]);
        assert_eq!(run(b"junk\x15ok\r").0, ["ok"]);
        let (lines, out) = run(b"abc\x03x\r");
        assert_eq!(lines, ["x"]);
        assert!(out.contains("^C"));
    }

    #[test]
    fn arrows_edit_in_the_middle_and_history_recalls() {
        assert_eq!(run(b"ac\x1b[Db\r").0, ["abc"]);
        assert_eq!(run(b"one\rtwo\r\x1b[A\x1b[A\r").0, ["one", "two", "one"]);
        assert_eq!(run(b"one\r\x1b[A\x1b[B\r").0, ["one", ""]);
    }

    #[test]
    fn overlong_lines_are_truncated_not_overflowed() {
        let long = vec![b'x'; 1000];
        let mut input = long.clone();
        input.push(b'\r');
        let (lines, _) = run(&input);
        assert_eq!(lines[0].len(), LINE_MAX);
    }

    #[test]
    fn redraw_puts_back_the_prompt_the_line_and_the_cursor() {
        let mut ed = LineEditor::new();
        let mut out = String::new();
        for c in *b"abcd" {
            ed.key(Key::Char(c), &mut out);
        }
        ed.key(Key::Left, &mut out);
        ed.key(Key::Left, &mut out);
        let mut again = String::new();
        ed.redraw("db> ", &mut again);
        assert_eq!(again, "db> abcd\x08\x08");
    }
}
