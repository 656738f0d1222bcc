//! Boot keyboard report diffing (HID 1.11 Appendix B.1): 8 bytes, modifier
//! bitmap, reserved byte, six key usages.
#![forbid(unsafe_code)]

use pc_keyboard::{KeyCode, KeyEvent, KeyState};

use super::keymap::{MODIFIER_KEYS, usage_to_keycode};

/// Up to 8 modifier changes and 12 key changes.
pub(crate) const MAX_CHANGES: usize = 20;

/// Key events from one report, in order: releases before presses.
#[derive(Debug, Clone)]
pub(crate) struct Changes {
    events: [Option<KeyEvent>; MAX_CHANGES],
    len: usize,
}

impl Changes {
    fn new() -> Self {
        Self {
            events: [const { None }; MAX_CHANGES],
            len: 0,
        }
    }

    fn push(&mut self, code: KeyCode, state: KeyState) {
        if let Some(slot) = self.events.get_mut(self.len) {
            *slot = Some(KeyEvent::new(code, state));
            self.len += 1;
        }
    }

    /// The events.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &KeyEvent> {
        self.events[..self.len].iter().flatten()
    }

    /// Number of events.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Outcome of looking at one report.
#[derive(Debug, Clone)]
pub(crate) enum Diff {
    /// ErrorRollOver / POSTFail / ErrorUndefined in a key slot (usages 1-3):
    /// the report says nothing about the keys; keep the previous state.
    Rollover,
    /// The changes; the caller stores the new report as previous.
    Changes(Changes),
}

/// Is `usage` a real key (not 0 = none, not 1-3 = error codes)?
/// Usages 0xE0-0xE7 belong in the modifier byte and are ignored in key slots.
fn is_key(usage: u8) -> bool {
    usage > 3 && usage < 0xe0
}

/// Key codes of the six key slots (`None` for empty/unmapped slots).
fn codes(slots: &[u8]) -> [Option<KeyCode>; 6] {
    let mut out = [None; 6];
    for (o, &usage) in out.iter_mut().zip(slots) {
        *o = if is_key(usage) {
            usage_to_keycode(usage)
        } else {
            None
        };
    }
    out
}

/// Compares two boot reports.
pub(crate) fn diff(previous: &[u8; 8], current: &[u8; 8]) -> Diff {
    let keys = &current[2..8];
    if keys.iter().any(|&u| (1..=3).contains(&u)) {
        return Diff::Rollover;
    }
    let mut changes = Changes::new();
    let released_mods = previous[0] & !current[0];
    let pressed_mods = current[0] & !previous[0];
    for (bit, code) in MODIFIER_KEYS.iter().enumerate() {
        if released_mods & (1 << bit) != 0 {
            changes.push(*code, KeyState::Up);
        }
    }
    // Compare key codes, not usages: two usages can name one key (0x31/0x32).
    let old_codes = codes(&previous[2..8]);
    let new_codes = codes(keys);
    for (i, code) in old_codes.iter().enumerate() {
        if let Some(code) = code
            && !new_codes.contains(&Some(*code))
            && !old_codes[..i].contains(&Some(*code))
        {
            changes.push(*code, KeyState::Up);
        }
    }
    for (bit, code) in MODIFIER_KEYS.iter().enumerate() {
        if pressed_mods & (1 << bit) != 0 {
            changes.push(*code, KeyState::Down);
        }
    }
    for (i, code) in new_codes.iter().enumerate() {
        if let Some(code) = code
            && !old_codes.contains(&Some(*code))
            && !new_codes[..i].contains(&Some(*code))
        {
            changes.push(*code, KeyState::Down);
        }
    }
    Diff::Changes(changes)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn events(d: Diff) -> Vec<KeyEvent> {
        match d {
            Diff::Rollover => panic!("rollover"),
            Diff::Changes(c) => c.iter().cloned().collect(),
        }
    }

    #[test]
    fn press_and_release_with_modifiers() {
        let none = [0; 8];
        let shift_a = [0x02, 0, 0x04, 0, 0, 0, 0, 0];
        assert_eq!(
            events(diff(&none, &shift_a)),
            [
                KeyEvent::new(KeyCode::LShift, KeyState::Down),
                KeyEvent::new(KeyCode::A, KeyState::Down)
            ]
        );
        let a_b = [0x02, 0, 0x04, 0x05, 0, 0, 0, 0];
        assert_eq!(
            events(diff(&shift_a, &a_b)),
            [KeyEvent::new(KeyCode::B, KeyState::Down)]
        );
        assert_eq!(
            events(diff(&a_b, &none)),
            [
                KeyEvent::new(KeyCode::LShift, KeyState::Up),
                KeyEvent::new(KeyCode::A, KeyState::Up),
                KeyEvent::new(KeyCode::B, KeyState::Up)
            ]
        );
    }

    #[test]
    fn rollover_is_ignored() {
        let held = [0, 0, 0x04, 0, 0, 0, 0, 0];
        assert!(matches!(
            diff(&held, &[0, 0, 1, 1, 1, 1, 1, 1]),
            Diff::Rollover
        ));
        assert!(matches!(
            diff(&held, &[0, 0, 0x04, 2, 0, 0, 0, 0]),
            Diff::Rollover
        ));
    }

    /// Modifiers and keys (no duplicates) held in a boot report.
    fn held_keys(r: &[u8; 8]) -> Vec<KeyCode> {
        let mut held: Vec<KeyCode> = Vec::new();
        for (bit, k) in MODIFIER_KEYS.iter().enumerate() {
            if r[0] & (1 << bit) != 0 {
                held.push(*k);
            }
        }
        for &u in &r[2..] {
            if let Some(k) = usage_to_keycode(u).filter(|_| is_key(u))
                && !held.contains(&k)
            {
                held.push(k);
            }
        }
        held
    }

    /// Applying the diff of a→b to the key set of a gives the key set of b.
    #[test]
    fn diff_is_consistent() {
        crate::testing::check(
            "HID: report diffs",
            3000,
            (any::<[u8; 8]>(), any::<[u8; 8]>()),
            |(a, b)| {
                let a_clean = {
                    let mut a = a;
                    for k in &mut a[2..] {
                        if (1..=3).contains(k) {
                            *k = 0;
                        }
                    }
                    a
                };
                match diff(&a_clean, &b) {
                    Diff::Rollover => prop_assert!(b[2..].iter().any(|u| (1..=3).contains(u))),
                    Diff::Changes(c) => {
                        prop_assert!(c.len() <= MAX_CHANGES);
                        let mut down = held_keys(&a_clean);
                        for e in c.iter() {
                            match e.state {
                                KeyState::Up => {
                                    prop_assert!(down.contains(&e.code));
                                    down.retain(|k| *k != e.code);
                                }
                                KeyState::Down => {
                                    down.push(e.code);
                                }
                                KeyState::SingleShot => prop_assert!(false),
                            }
                        }
                        let mut want = held_keys(&b);
                        down.sort();
                        down.dedup();
                        want.sort();
                        want.dedup();
                        prop_assert_eq!(down, want);
                    }
                }
                Ok(())
            },
        );
    }
}
