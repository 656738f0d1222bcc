//! Polled i8042 (PS/2) keyboard for the panic console. The controller
//! translates scancode set 2 to set 1 only when the firmware enabled
//! translation (SeaBIOS does, qboot does not): the configuration byte says
//! which set arrives, and `pc-keyboard` decodes either.

use pc_keyboard::{DecodedKey, HandleControl, PS2Keyboard, ScancodeSet1, ScancodeSet2, layouts};

use crate::arch::port::{inb, outb};

const DATA: u16 = 0x60;
const STATUS: u16 = 0x64;
/// i8042 status: output buffer full.
const OBF: u8 = 0x01;
/// i8042 status: input buffer full (controller busy).
const IBF: u8 = 0x02;
/// i8042 status: the byte came from the aux (mouse) port.
const AUX: u8 = 0x20;
/// Configuration byte bit 6: translate set 2 to set 1.
const XLAT: u8 = 0x40;

/// A polled PS/2 keyboard decoding whichever scancode set the controller delivers.
pub enum Ps2 {
    /// No controller (status reads 0xFF).
    Absent,
    /// Translation on: set 1.
    Set1(PS2Keyboard<layouts::Us104Key, ScancodeSet1>),
    /// Translation off: raw set 2.
    Set2(PS2Keyboard<layouts::Us104Key, ScancodeSet2>),
}

fn status() -> u8 {
    // SAFETY: reading the i8042 status port has no side effects.
    unsafe { inb(STATUS) }
}

/// Reads the controller configuration byte (command 0x20), bounded.
fn config_byte() -> Option<u8> {
    let d = crate::time::deadline_after_us(20_000);
    while status() & IBF != 0 {
        if crate::time::passed(d) {
            return None;
        }
    }
    // SAFETY: i8042 "read configuration byte" command; the reply is read below.
    unsafe { outb(STATUS, 0x20) };
    while status() & OBF == 0 {
        if crate::time::passed(d) {
            return None;
        }
    }
    // SAFETY: consumes the reply byte.
    Some(unsafe { inb(DATA) })
}

impl Ps2 {
    /// Probes the controller (panic time: polled, bounded).
    pub fn probe() -> Self {
        if status() == 0xff {
            return Self::Absent;
        }
        // Drop stale bytes first.
        for _ in 0..32 {
            if status() & OBF == 0 {
                break;
            }
            // SAFETY: discards a pending byte.
            unsafe { inb(DATA) };
        }
        let ctl = HandleControl::MapLettersToUnicode;
        match config_byte() {
            Some(c) if c & XLAT == 0 => Self::Set2(PS2Keyboard::new(
                ScancodeSet2::new(),
                layouts::Us104Key,
                ctl,
            )),
            Some(_) => Self::Set1(PS2Keyboard::new(
                ScancodeSet1::new(),
                layouts::Us104Key,
                ctl,
            )),
            None => Self::Absent,
        }
    }

    /// One decoded key, if a keyboard byte was waiting.
    pub fn poll(&mut self) -> Option<DecodedKey> {
        if matches!(self, Self::Absent) {
            return None;
        }
        let st = status();
        if st & OBF == 0 {
            return None;
        }
        // SAFETY: consumes the pending byte.
        let byte = unsafe { inb(DATA) };
        if st & AUX != 0 {
            return None;
        }
        match self {
            Self::Absent => None,
            Self::Set1(k) => k
                .add_byte(byte)
                .ok()
                .flatten()
                .and_then(|ev| k.process_keyevent(ev)),
            Self::Set2(k) => k
                .add_byte(byte)
                .ok()
                .flatten()
                .and_then(|ev| k.process_keyevent(ev)),
        }
    }
}
