//! VGA text-mode output (the colour text window at 0xB8000, 80x25), used by
//! the console and the panic console.
//!
//! - [`text`]: [`TextConsole`], the cursor, the control characters and
//!   scrolling by moving the CRTC start address, over a shadow of VRAM in
//!   RAM so that VRAM is only ever written, and only where a cell changes.
//!   Pure, host-tested.
//! - `screen`: the kernel's one VGA console: the VRAM window and the CRTC
//!   ports behind [`text::TextDevice`]; `clear` and `write_str` take no
//!   lock, serialised by their callers (the console lock, or the panic path
//!   on the only running CPU).
//!
//! On a machine whose screen is not VGA text (UEFI) the writes go nowhere:
//! nothing is read back, so nothing waits on them.

pub mod text;

#[cfg(target_os = "none")]
mod screen;

#[cfg(target_os = "none")]
pub use screen::{clear, write_str};
pub use text::TextConsole;
