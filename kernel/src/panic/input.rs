//! Input on the panic CPU (or the break-in's CPU), polled: the USB keyboards (after the takeover),
//! the serial port and the PS/2 keyboard. Runs with no locks, no allocation
//! and no interrupts, like the rest of the panic path.

use pc_keyboard::{DecodedKey, KeyCode};

use crate::lineedit::{ByteDecoder, Key};

/// Polled input sources of the panic console.
pub struct Inputs {
    serial: ByteDecoder,
    ps2: super::ps2::Ps2,
}

impl Inputs {
    /// Every input of the panic CPU: the serial port and the PS/2
    /// keyboard, probed now; the USB keyboards after the takeover.
    #[allow(
        clippy::new_without_default,
        reason = "probes hardware: not a plain default value"
    )]
    pub fn new() -> Self {
        Self {
            serial: ByteDecoder::new(),
            ps2: super::ps2::Ps2::probe(),
        }
    }

    /// One key from the first input that has one.
    pub fn poll(&mut self) -> Option<Key> {
        let usb = if super::panicking() {
            // SAFETY: the panic console runs on the panic CPU with every
            // other CPU parked, after `panic_takeover`.
            unsafe { crate::usb::panic_poll_key() }
        } else {
            // A break-in: the controllers whose locks it holds.
            crate::usb::breakin::poll_key()
        };
        if let Some(k) = usb
            && let Some(k) = decoded_to_key(k)
        {
            return Some(k);
        }
        if let Some(b) = crate::serial::try_get()
            && let Some(k) = self.serial.feed(b)
        {
            return Some(k);
        }
        self.ps2.poll().and_then(decoded_to_key)
    }
}

/// Converts a decoded keyboard key into an editing key.
pub fn decoded_to_key(k: DecodedKey) -> Option<Key> {
    match k {
        DecodedKey::Unicode('\n') | DecodedKey::Unicode('\r') => Some(Key::Enter),
        DecodedKey::Unicode('\u{8}') | DecodedKey::Unicode('\u{7f}') => Some(Key::Backspace),
        DecodedKey::Unicode('\u{3}') => Some(Key::Cancel),
        DecodedKey::Unicode('\u{15}') => Some(Key::KillLine),
        DecodedKey::Unicode(c) if (' '..='~').contains(&c) => Some(Key::Char(c as u8)),
        DecodedKey::RawKey(KeyCode::ArrowUp) => Some(Key::Up),
        DecodedKey::RawKey(KeyCode::ArrowDown) => Some(Key::Down),
        DecodedKey::RawKey(KeyCode::ArrowLeft) => Some(Key::Left),
        DecodedKey::RawKey(KeyCode::ArrowRight) => Some(Key::Right),
        _ => None,
    }
}

/// Polls every input once for Ctrl-C (checked between dump chunks).
pub fn poll_abort_key() -> bool {
    // A FIFO's worth of serial input at most (a missing UART gives none).
    for _ in 0..16 {
        match crate::serial::try_get() {
            Some(0x03) => return true,
            Some(_) => {}
            None => break,
        }
    }
    // The keys queued by one poll at most (bounded: key repeat could refill it).
    for _ in 0..64 {
        // SAFETY: panic console context, other CPUs parked.
        match unsafe { crate::usb::panic_poll_key() } {
            Some(DecodedKey::Unicode('\u{3}')) => return true,
            Some(_) => {}
            None => break,
        }
    }
    false
}
