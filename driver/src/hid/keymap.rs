//! HID usage page 0x07 (HID Usage Tables 1.12 §10) to `pc_keyboard::KeyCode`.
#![forbid(unsafe_code)]

use pc_keyboard::KeyCode;

/// Boot report modifier bits 0..8 (HID 1.11 Appendix B.1) in bit order.
pub(crate) const MODIFIER_KEYS: [KeyCode; 8] = [
    KeyCode::LControl,
    KeyCode::LShift,
    KeyCode::LAlt,
    KeyCode::LWin,
    KeyCode::RControl,
    KeyCode::RShift,
    KeyCode::RAltGr,
    KeyCode::RWin,
];

/// Maps a keyboard usage to a key code; `None` for reserved, error and
/// unmapped usages.
pub(crate) const fn usage_to_keycode(usage: u8) -> Option<KeyCode> {
    use KeyCode::*;
    const LETTERS: [KeyCode; 26] = [
        A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U, V, W, X, Y, Z,
    ];
    const DIGITS: [KeyCode; 10] = [Key1, Key2, Key3, Key4, Key5, Key6, Key7, Key8, Key9, Key0];
    const FKEYS: [KeyCode; 12] = [F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12];
    const KEYPAD: [KeyCode; 16] = [
        NumpadLock,
        NumpadDivide,
        NumpadMultiply,
        NumpadSubtract,
        NumpadAdd,
        NumpadEnter,
        Numpad1,
        Numpad2,
        Numpad3,
        Numpad4,
        Numpad5,
        Numpad6,
        Numpad7,
        Numpad8,
        Numpad9,
        Numpad0,
    ];
    Some(match usage {
        0x04..=0x1d => LETTERS[(usage - 0x04) as usize],
        0x1e..=0x27 => DIGITS[(usage - 0x1e) as usize],
        0x28 => Return,
        0x29 => Escape,
        0x2a => Backspace,
        0x2b => Tab,
        0x2c => Spacebar,
        0x2d => OemMinus,
        0x2e => OemPlus,
        0x2f => Oem4,
        0x30 => Oem6,
        0x31 | 0x32 => Oem7,
        0x33 => Oem1,
        0x34 => Oem3,
        0x35 => Oem8,
        0x36 => OemComma,
        0x37 => OemPeriod,
        0x38 => Oem2,
        0x39 => CapsLock,
        0x3a..=0x45 => FKEYS[(usage - 0x3a) as usize],
        0x46 => PrintScreen,
        0x47 => ScrollLock,
        0x48 => PauseBreak,
        0x49 => Insert,
        0x4a => Home,
        0x4b => PageUp,
        0x4c => Delete,
        0x4d => End,
        0x4e => PageDown,
        0x4f => ArrowRight,
        0x50 => ArrowLeft,
        0x51 => ArrowDown,
        0x52 => ArrowUp,
        0x53..=0x62 => KEYPAD[(usage - 0x53) as usize],
        0x63 => NumpadPeriod,
        0x64 => Oem5,
        0x65 => Apps,
        0xe0..=0xe7 => MODIFIER_KEYS[(usage - 0xe0) as usize],
        _ => return None,
    })
}

/// Modifier and lock keys: never repeated, not queued for the console.
pub(crate) fn is_modifier_or_lock(code: KeyCode) -> bool {
    use KeyCode::*;
    matches!(
        code,
        LControl
            | LShift
            | LAlt
            | LWin
            | RControl
            | RShift
            | RAltGr
            | RWin
            | CapsLock
            | NumpadLock
            | ScrollLock
            | RControl2
            | RAlt2
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_spot_checks() {
        assert_eq!(usage_to_keycode(0x04), Some(KeyCode::A));
        assert_eq!(usage_to_keycode(0x1d), Some(KeyCode::Z));
        assert_eq!(usage_to_keycode(0x27), Some(KeyCode::Key0));
        assert_eq!(usage_to_keycode(0x45), Some(KeyCode::F12));
        assert_eq!(usage_to_keycode(0x52), Some(KeyCode::ArrowUp));
        assert_eq!(usage_to_keycode(0x62), Some(KeyCode::Numpad0));
        assert_eq!(usage_to_keycode(0xe7), Some(KeyCode::RWin));
        for u in [0u8, 1, 2, 3, 0x66, 0xa0, 0xff] {
            assert_eq!(usage_to_keycode(u), None);
        }
    }
}
