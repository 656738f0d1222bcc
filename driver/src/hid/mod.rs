//! HID keyboard class logic: report diffing, lock keys and LEDs, key
//! repeat from the HAL clock, decoding with `pc-keyboard` layouts; boot
//! protocol reports and, through the report descriptor, report protocol.
#![forbid(unsafe_code)]

mod input;
mod keymap;
mod layout;
mod queue;
mod report;
mod report_descriptor;

pub(crate) use input::ReportFormat;
pub use layout::Layout;
pub(crate) use queue::KeyQueue;
pub(crate) use report_descriptor::{ReportLayout, parse as parse_report_descriptor};

use pc_keyboard::layouts::AnyLayout;
use pc_keyboard::{DecodedKey, EventDecoder, HandleControl, KeyCode, KeyEvent, KeyState};

use report::Diff;

/// How late a key repeat may be and still be produced (see
/// `KeyboardState::tick`).
pub(crate) const REPEAT_LATE_MAX_US: u64 = 100_000;

/// Keyboard LED state (HID Usage Tables §11, output report bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leds {
    /// Num Lock.
    pub num_lock: bool,
    /// Caps Lock.
    pub caps_lock: bool,
    /// Scroll Lock.
    pub scroll_lock: bool,
}

impl Leds {
    /// The boot output report byte (HID 1.11 Appendix B.1).
    pub fn report_byte(&self) -> u8 {
        u8::from(self.num_lock)
            | (u8::from(self.caps_lock) << 1)
            | (u8::from(self.scroll_lock) << 2)
    }
}

/// Key repeat settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    /// Delay before the first repeat, in milliseconds (0 disables repeat).
    pub delay_ms: u32,
    /// Repeats per second (0 disables repeat).
    pub rate_hz: u32,
}

impl Default for Repeat {
    fn default() -> Self {
        Self {
            delay_ms: 500,
            rate_hz: 20,
        }
    }
}

/// What one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ReportOutcome {
    /// The report was an ErrorRollOver report and was ignored.
    pub(crate) rollover: bool,
    /// A lock key changed the LEDs.
    pub(crate) leds_changed: bool,
}

/// Shared keyboard state: one decoder for all keyboards, like a console.
pub(crate) struct KeyboardState {
    decoder: EventDecoder<AnyLayout>,
    layout: Layout,
    leds: Leds,
    repeat: Repeat,
    held: Option<(KeyCode, u64)>,
    /// Ctrl+Alt+Esc was pressed since [`take_break`](Self::take_break)
    /// last looked (the debugger's break-in key, FreeBSD's `kdb` key).
    break_requested: bool,
    pub(crate) queue: KeyQueue,
}

/// Boot report modifier byte (HID 1.11 Appendix B.1; HID Usage Tables
/// §10, usages 0xE0-0xE7): left and right Control, left and right Alt.
const MODIFIER_CTRL: u8 = 0x01 | 0x10;
const MODIFIER_ALT: u8 = 0x04 | 0x40;

/// Is this key going down with `modifiers` the break-in combination,
/// Ctrl+Alt+Esc (either Ctrl, either Alt)?
fn is_break_combo(code: KeyCode, modifiers: u8) -> bool {
    code == KeyCode::Escape && modifiers & MODIFIER_CTRL != 0 && modifiers & MODIFIER_ALT != 0
}

impl KeyboardState {
    /// New state with the given layout and repeat settings; Num Lock on
    /// (matching `pc-keyboard`'s initial modifiers).
    pub(crate) fn new(layout: Layout, repeat: Repeat) -> Self {
        Self {
            decoder: fresh_decoder(layout),
            layout,
            leds: Leds {
                num_lock: true,
                ..Leds::default()
            },
            repeat,
            held: None,
            break_requested: false,
            queue: KeyQueue::new(),
        }
    }

    /// True once after Ctrl+Alt+Esc was pressed (the key itself is not
    /// queued, so the shell never sees an ESC that starts an escape
    /// sequence).
    pub(crate) fn take_break(&mut self) -> bool {
        core::mem::take(&mut self.break_requested)
    }

    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    pub(crate) fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
        self.decoder.change_layout(layout.to_any());
    }

    pub(crate) fn repeat(&self) -> Repeat {
        self.repeat
    }

    pub(crate) fn set_repeat(&mut self, repeat: Repeat) {
        self.repeat = repeat;
        self.held = None;
    }

    pub(crate) fn leds(&self) -> Leds {
        self.leds
    }

    /// Feeds one input report as it came from the keyboard, read by its
    /// `format` (boot or report protocol); `previous` is that keyboard's
    /// last report in the boot shape. A report of another Report ID
    /// (consumer or system keys on the keyboard's interface) does nothing.
    pub(crate) fn handle_input(
        &mut self,
        previous: &mut [u8; 8],
        format: &mut ReportFormat,
        bytes: &[u8],
        now_us: u64,
    ) -> ReportOutcome {
        match format.boot_report(bytes) {
            Some(report) => self.handle_report(previous, report, now_us),
            None => ReportOutcome::default(),
        }
    }

    /// Feeds one 8-byte boot report; `previous` is that keyboard's last report.
    pub(crate) fn handle_report(
        &mut self,
        previous: &mut [u8; 8],
        report: [u8; 8],
        now_us: u64,
    ) -> ReportOutcome {
        let mut outcome = ReportOutcome::default();
        let changes = match report::diff(previous, &report) {
            Diff::Rollover => {
                outcome.rollover = true;
                return outcome;
            }
            Diff::Changes(c) => c,
        };
        *previous = report;
        for event in changes.iter() {
            let code = event.code;
            if event.state == KeyState::Down && is_break_combo(code, report[0]) {
                self.break_requested = true;
                continue;
            }
            if event.state == KeyState::Down {
                match code {
                    KeyCode::CapsLock => self.leds.caps_lock ^= true,
                    KeyCode::NumpadLock => self.leds.num_lock ^= true,
                    KeyCode::ScrollLock => self.leds.scroll_lock ^= true,
                    _ => {}
                }
                if matches!(
                    code,
                    KeyCode::CapsLock | KeyCode::NumpadLock | KeyCode::ScrollLock
                ) {
                    outcome.leds_changed = true;
                }
                if !keymap::is_modifier_or_lock(code) {
                    self.held = self
                        .repeat_delay_us()
                        .map(|d| (code, now_us.saturating_add(d)));
                }
            } else if self.held.is_some_and(|(held, _)| held == code) {
                self.held = None;
            }
            self.decode(event.clone());
        }
        outcome
    }

    /// Releases every key of a keyboard that went away.
    pub(crate) fn release_all(&mut self, previous: &mut [u8; 8]) {
        self.handle_report(previous, [0; 8], 0);
        self.held = None;
    }

    /// Forgets every key held on any keyboard, for a full controller reset
    /// (xHCI 1.2 §4.2: HCRST drops every device, so no release will ever be
    /// reported for what was held). The repeat key is dropped and the decoder
    /// is recreated with the same layout, so no Shift, Ctrl or Alt stays
    /// latched; each keyboard's previous report is the caller's to clear.
    ///
    /// The lock keys are kept as they are: the new decoder is toggled to the
    /// Caps Lock and Num Lock state of the LEDs, which enumeration sends to
    /// the keyboards again, so the lights and the decoding stay in step.
    pub(crate) fn release_all_for_reset(&mut self) {
        self.held = None;
        self.decoder = fresh_decoder(self.layout);
        // a fresh decoder starts with Num Lock on and Caps Lock off
        if self.leds.caps_lock {
            let _ = self
                .decoder
                .process_keyevent(KeyEvent::new(KeyCode::CapsLock, KeyState::Down));
        }
        if !self.leds.num_lock {
            let _ = self
                .decoder
                .process_keyevent(KeyEvent::new(KeyCode::NumpadLock, KeyState::Down));
        }
    }

    /// Drops every queued key, the repeat and a break request (the
    /// debugger's `continue`: what was typed at `db> ` is not replayed);
    /// returns how many keys were dropped.
    pub(crate) fn discard_pending(&mut self) -> usize {
        self.held = None;
        self.break_requested = false;
        let mut n = 0;
        while self.queue.pop().is_some() {
            n += 1;
        }
        n
    }

    pub(crate) fn repeat_pending(&self) -> bool {
        self.held.is_some()
    }

    fn repeat_delay_us(&self) -> Option<u64> {
        (self.repeat.delay_ms != 0 && self.repeat.rate_hz != 0)
            .then(|| u64::from(self.repeat.delay_ms) * 1000)
    }

    /// Generates repeats that are due at `now_us`. A repeat more than
    /// [`REPEAT_LATE_MAX_US`] late is dropped, not caught up: the poller was
    /// stalled (a busy host starving the vCPU, a long command), and the
    /// key's release may be waiting in a report not read yet; a burst of
    /// repeats of a key the person already let go is worse than none.
    pub(crate) fn tick(&mut self, now_us: u64) -> usize {
        let Some((code, mut due)) = self.held else {
            return 0;
        };
        if self.repeat.rate_hz == 0 {
            return 0;
        }
        let period = (1_000_000 / u64::from(self.repeat.rate_hz)).max(1);
        if now_us.saturating_sub(due) > REPEAT_LATE_MAX_US {
            // stalled: resynchronise, repeat nothing now
            self.held = Some((code, now_us.saturating_add(period)));
            return 0;
        }
        let mut produced = 0;
        while now_us >= due && produced < 2 {
            self.decode(KeyEvent::new(code, KeyState::Down));
            due = due.saturating_add(period);
            produced += 1;
        }
        if now_us >= due {
            due = now_us.saturating_add(period);
        }
        self.held = Some((code, due));
        produced
    }

    fn decode(&mut self, event: KeyEvent) {
        if let Some(key) = self.decoder.process_keyevent(event) {
            if let DecodedKey::RawKey(code) = key
                && keymap::is_modifier_or_lock(code)
            {
                return;
            }
            self.queue.push(key);
        }
    }
}

/// A decoder with nothing held: Num Lock on, Caps Lock off (`pc-keyboard`'s
/// initial modifiers), Ctrl mapped to control characters.
fn fresh_decoder(layout: Layout) -> EventDecoder<AnyLayout> {
    EventDecoder::new(layout.to_any(), HandleControl::MapLettersToUnicode)
}

#[cfg(test)]
mod report_descriptor_tests;
#[cfg(test)]
mod tests;
