//! The kernel's framebuffer console: one [`TextScreen`] over the
//! framebuffer, mapped write-combining (uncached without PAT) at [`init`],
//! drawn through a shadow copy in RAM when the heap had room for one.
//!
//! Why the shadow: scrolling moves every pixel row up, and reading an
//! uncached or write-combining framebuffer is slow on real hardware (each
//! read crosses the bus). The shadow's text rows form a ring
//! ([`TextScreen::use_ring`]): a scroll moves no pixel in it, and the
//! framebuffer is only written (the cells changed by each [`write_str`],
//! each row in its place). Without a shadow (no heap room), scrolling
//! moves the framebuffer's own pixels.
//!
//! Like `vga::write_str`, [`write_str`] takes no lock: its callers serialise
//! it (the console's output lock in normal operation; after a panic, the
//! panic path on the one CPU still running). It allocates nothing: the
//! shadow and the glyph cache are allocated at [`init`], and the page
//! tables are edited only there, never after a panic.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use super::{FramebufferInfo, TextScreen};

struct State {
    screen: TextScreen,
    /// The framebuffer (identity mapped, uncached), `screen.byte_len()` bytes.
    front: *mut u8,
    /// The shadow in RAM, as long, or null.
    back: *mut u8,
    /// The glyphs in the framebuffer's pixel format
    /// ([`TextScreen::fill_glyphs`]), or empty (no heap room).
    glyphs: &'static [u8],
}

/// The console's state, written once by [`init`] before [`READY`].
struct Slot(UnsafeCell<Option<State>>);

// SAFETY: written only by the one `init` that wins `CLAIMED`, before `READY`
// is published; afterwards only `write_str` touches it, whose callers
// serialise it (module docs).
unsafe impl Sync for Slot {}

static STATE: Slot = Slot(UnsafeCell::new(None));
/// Set by the first [`init`] (cleared again if it fails).
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// Set once the console is ready to draw.
static READY: AtomicBool = AtomicBool::new(false);

/// True once [`init`] succeeded: console output goes to the framebuffer too.
pub fn active() -> bool {
    READY.load(Ordering::Acquire)
}

/// Takes over the framebuffer `info` describes as the console's screen:
/// checks it (a depth of 16, 24 or 32 bits, a non-zero size, a pitch of at
/// least `width * bytes per pixel`), maps it uncached, allocates the shadow,
/// clears the screen. Call at boot, before the other CPUs start (the page
/// tables change; only this CPU's TLB is flushed). Once only.
///
/// The shadow lives on the heap; a dump treats it as memory that changes
/// while the dump runs ([`shadow_range`], read by `dump::volatile`).
pub fn init(info: FramebufferInfo) -> Result<(), &'static str> {
    let mut screen = TextScreen::new(&info)?;
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return Err("framebuffer: the console is already initialised");
    }
    let len = screen.byte_len();
    let kind = match crate::mm::paging::map_framebuffer(info.phys, len as u64) {
        Ok(kind) => kind,
        Err(e) => {
            CLAIMED.store(false, Ordering::Release);
            return Err(e);
        }
    };
    let back = shadow(len);
    let back_present = back.is_some();
    if back_present {
        screen.use_ring();
    }
    let glyphs = shadow(screen.glyphs_len()).map_or(&[][..], |g| {
        screen.fill_glyphs(g);
        &*g
    });
    let front = info.phys as *mut u8;
    // SAFETY: `[phys, phys + len)` was identity mapped just now and is the
    // device's framebuffer, no Rust object; no writer draws before READY.
    screen.clear(unsafe { core::slice::from_raw_parts_mut(front, len) });
    screen.forget_changes();
    let (cols, rows) = screen.size();
    // SAFETY: this `init` won CLAIMED and READY is not set: nothing else
    // reads or writes STATE.
    unsafe {
        *STATE.0.get() = Some(State {
            screen,
            front,
            back: back.map_or(core::ptr::null_mut(), |b| b.as_mut_ptr()),
            glyphs,
        })
    };
    READY.store(true, Ordering::Release);
    log::info!(
        "fb: {}x{}x{} at {:#x} ({kind}), {cols}x{rows} text, shadow {}",
        info.width,
        info.height,
        info.bpp,
        info.phys,
        if back_present {
            "in RAM"
        } else {
            "none (scrolling reads the framebuffer)"
        }
    );
    Ok(())
}

/// A zeroed buffer of `len` bytes, leaked for good, or `None` if the heap
/// has no room.
fn shadow(len: usize) -> Option<&'static mut [u8]> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0);
    Some(Box::leak(v.into_boxed_slice()))
}

/// The shadow buffer (start, end), if there is one.
pub fn shadow_range() -> Option<(u64, u64)> {
    if !active() {
        return None;
    }
    // SAFETY: READY is set: STATE no longer changes but for the cursor and
    // the record of changes, which are not read here.
    let s = unsafe { (*STATE.0.get()).as_ref()? };
    let start = s.back as u64;
    (start != 0).then(|| (start, start + s.screen.byte_len() as u64))
}

/// Writes text at the cursor; nothing before [`init`]. No lock, no
/// allocation; callers serialise (module docs).
pub fn write_str(text: &str) {
    if !active() {
        return;
    }
    // SAFETY: READY is set, so STATE holds the console; callers serialise
    // `write_str`, so this is the only reference. (A CPU parked by the
    // panic mid-write leaves the cursor anywhere: `TextScreen` clamps it.)
    let Some(s) = (unsafe { (*STATE.0.get()).as_mut() }) else {
        return;
    };
    let len = s.screen.byte_len();
    // SAFETY: `front` is the framebuffer mapped by `init`, `len` bytes, no
    // Rust object.
    let front = unsafe { core::slice::from_raw_parts_mut(s.front, len) };
    if s.back.is_null() {
        s.screen.write_str(front, s.glyphs, text);
        s.screen.forget_changes();
        return;
    }
    // SAFETY: `back` is the leaked shadow of `len` bytes, used only here.
    let back = unsafe { core::slice::from_raw_parts_mut(s.back, len) };
    s.screen.write_str(back, s.glyphs, text);
    s.screen.flush(back, front);
}
