//! Polled i8042 (PS/2) keyboard for the panic console. The controller
//! translates scancode set 2 to set 1 only when the firmware enabled
//! translation (SeaBIOS does, qboot does not): the configuration byte says
//! which set arrives, and `pc-keyboard` decodes either.

use pc_keyboard::{
    DecodedKey, HandleControl, KeyCode, KeyEvent, KeyState, PS2Keyboard, ScancodeSet1,
    ScancodeSet2, layouts,
};

use crate::arch::port::{inb, outb};
use crate::sync::SpinLock;

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
        self.event(byte).and_then(|ev| self.decode(ev))
    }

    /// The key event a scancode byte completes, if any.
    fn event(&mut self, byte: u8) -> Option<KeyEvent> {
        match self {
            Self::Absent => None,
            Self::Set1(k) => k.add_byte(byte).ok().flatten(),
            Self::Set2(k) => k.add_byte(byte).ok().flatten(),
        }
    }

    fn decode(&mut self, ev: KeyEvent) -> Option<DecodedKey> {
        match self {
            Self::Absent => None,
            Self::Set1(k) => k.process_keyevent(ev),
            Self::Set2(k) => k.process_keyevent(ev),
        }
    }

    /// The same scancode set with nothing held.
    fn fresh(&self) -> Self {
        let ctl = HandleControl::MapLettersToUnicode;
        match self {
            Self::Absent => Self::Absent,
            Self::Set1(_) => Self::Set1(PS2Keyboard::new(
                ScancodeSet1::new(),
                layouts::Us104Key,
                ctl,
            )),
            Self::Set2(_) => Self::Set2(PS2Keyboard::new(
                ScancodeSet2::new(),
                layouts::Us104Key,
                ctl,
            )),
        }
    }
}

/// The PS/2 keyboard in normal operation: its IRQ 1 handler decodes keys
/// for the shell and watches for Ctrl+Alt+Esc, the break-in key (FreeBSD's
/// `kbdmux`/`atkbd` `KDB` key).
struct Normal {
    keyboard: Ps2,
    ctrl: bool,
    alt: bool,
}

static NORMAL: SpinLock<Option<Normal>> = SpinLock::new(None);

/// Probes the i8042 and, if a keyboard controller answers, routes its
/// IRQ 1 (ISA input `gsi`) to the normal-mode handler (boot).
pub fn start_normal(gsi: u8, active_low: bool) {
    let keyboard = Ps2::probe();
    if matches!(keyboard, Ps2::Absent) {
        return;
    }
    *NORMAL.lock() = Some(Normal {
        keyboard,
        ctrl: false,
        alt: false,
    });
    if let Some(v) = crate::arch::trap::register_device_handler(on_irq) {
        crate::arch::apic::route_irq(gsi, v, active_low);
    }
}

/// After a break-in: the modifiers held when Ctrl+Alt+Esc was typed were
/// released at `db> `, which this decoder never saw; it starts afresh.
pub fn reset_normal() {
    if let Some(mut g) = NORMAL.try_lock()
        && let Some(n) = g.as_mut()
    {
        n.keyboard = n.keyboard.fresh();
        n.ctrl = false;
        n.alt = false;
    }
}

/// IRQ 1: one byte from the i8042 (bounded: what is waiting, at most 16).
fn on_irq(_vector: u8) {
    for _ in 0..16 {
        let st = status();
        if st & OBF == 0 {
            return;
        }
        // SAFETY: consumes the pending byte.
        let byte = unsafe { inb(DATA) };
        if st & AUX == 0 {
            normal_byte(byte);
        }
    }
}

fn normal_byte(byte: u8) {
    let mut out = [0u8; 4];
    let mut len = 0;
    let mut brk = false;
    {
        let mut g = NORMAL.lock();
        let Some(n) = g.as_mut() else { return };
        let Some(ev) = n.keyboard.event(byte) else {
            return;
        };
        let down = ev.state != KeyState::Up;
        match ev.code {
            KeyCode::LControl | KeyCode::RControl | KeyCode::RControl2 => n.ctrl = down,
            KeyCode::LAlt | KeyCode::RAltGr | KeyCode::RAlt2 => n.alt = down,
            _ => {}
        }
        if ev.code == KeyCode::Escape && ev.state == KeyState::Down && n.ctrl && n.alt {
            brk = true;
        } else if let Some(k) = n.keyboard.decode(ev) {
            len = crate::usb::key_bytes(k, &mut out);
        }
    }
    if brk {
        crate::arch::trap::request_break(crate::arch::trap::BREAK_KEYBOARD);
    } else if len > 0 {
        crate::console::push_input(&out[..len]);
    }
}
