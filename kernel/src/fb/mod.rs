//! A text console on a linear framebuffer, for machines without VGA text
//! mode (every UEFI PC): the shell, the panic report and `db>` drawn with a
//! bitmap font ([`font`]) into whatever framebuffer the boot path found.
//!
//! - [`info`]: [`FramebufferInfo`], as the boot code hands it over, and its
//!   checks. Pure.
//! - [`render`]: [`TextScreen`], the console over a byte slice: cells,
//!   cursor, control characters, scrolling. Pure, host-tested.
//! - `screen`: the kernel's one framebuffer console: `init` maps the
//!   framebuffer write-combining (uncached without PAT) and allocates a
//!   shadow copy and a glyph cache; `write_str` draws without a lock or an
//!   allocation, serialised by its caller like `vga::write_str`.
//! - `bochs`: `fb=bochs`, a mode set through QEMU's / Bochs' VBE "DISPI"
//!   registers, for PVH boots and tests.

pub mod font;
pub mod info;
pub mod render;

#[cfg(target_os = "none")]
pub mod bochs;
#[cfg(target_os = "none")]
mod screen;

pub use info::FramebufferInfo;
pub use render::TextScreen;
#[cfg(target_os = "none")]
pub use screen::{active, init, shadow_range, write_str};
