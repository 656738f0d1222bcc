//! Frame-pointer backtraces that never fault: every frame must be canonical,
//! aligned, mapped and in RAM before it is read, frames must move up the
//! stack, and the walk is bounded; a walk cut short says why.

use core::fmt::Write;

use super::symbols;

/// Most frames printed.
pub const MAX_FRAMES: usize = 32;

/// Why a frame-pointer walk stopped early (a corrupted or foreign stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// The frame pointer is not a canonical address.
    NotCanonical(u64),
    /// The frame pointer is not 8-byte aligned.
    Misaligned(u64),
    /// The frame is not in RAM (unmapped, or device memory, which is never
    /// read: a read could have side effects).
    NotRam(u64),
    /// The next frame does not lie above this one (a loop or a jump).
    NotUpward(u64),
    /// [`MAX_FRAMES`] frames were printed.
    TooDeep,
}

impl core::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::NotCanonical(a) => write!(f, "frame pointer {a:#x} is not a canonical address"),
            Self::Misaligned(a) => write!(f, "frame pointer {a:#x} is misaligned"),
            Self::NotRam(a) => write!(f, "frame pointer {a:#x} is not in RAM"),
            Self::NotUpward(a) => write!(f, "next frame {a:#x} is not above the last one"),
            Self::TooDeep => write!(f, "stopped after {MAX_FRAMES} frames"),
        }
    }
}

/// Reads the frame record (saved frame pointer, return address) at `rbp`,
/// only if it is aligned, canonical, mapped and in RAM.
fn read_frame(rbp: u64) -> Result<(u64, u64), BadFrame> {
    if x86_64::VirtAddr::try_new(rbp).is_err() {
        return Err(BadFrame::NotCanonical(rbp));
    }
    if !rbp.is_multiple_of(8) {
        return Err(BadFrame::Misaligned(rbp));
    }
    if !crate::mm::frame::is_ram(rbp, 16) || !crate::mm::paging::is_mapped(rbp, 16) {
        return Err(BadFrame::NotRam(rbp));
    }
    // SAFETY: 16 aligned bytes of mapped RAM (checked above): reading them
    // has no side effect and cannot fault.
    unsafe {
        let p = rbp as *const u64;
        Ok((p.read_volatile(), p.add(1).read_volatile()))
    }
}

/// Return addresses of the frame chain starting at `rbp` (after `rip`), and
/// why the walk stopped if not at the end of the chain (`rbp` or a return
/// address of 0).
pub fn walk(rip: u64, mut rbp: u64, out: &mut [u64]) -> (usize, Option<BadFrame>) {
    let mut n = 0;
    if n < out.len() {
        out[n] = rip;
        n += 1;
    }
    while rbp != 0 {
        if n == out.len() {
            return (n, Some(BadFrame::TooDeep));
        }
        let (next, ret) = match read_frame(rbp) {
            Ok(f) => f,
            Err(e) => return (n, Some(e)),
        };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        if next == 0 {
            break;
        }
        // Frames must move towards the stack base, and not by absurd amounts.
        if next <= rbp || next - rbp > 1 << 20 {
            return (n, Some(BadFrame::NotUpward(next)));
        }
        rbp = next;
    }
    (n, None)
}

/// Prints a backtrace with symbol names.
pub fn print(rip: u64, rbp: u64, w: &mut dyn Write) {
    let mut frames = [0u64; MAX_FRAMES];
    let (n, end) = walk(rip, rbp, &mut frames);
    for (i, &pc) in frames[..n].iter().enumerate() {
        // Return addresses point after the call: look up pc-1 for the caller.
        let lookup = if i == 0 { pc } else { pc.wrapping_sub(1) };
        match symbols::lookup(lookup) {
            Some((name, off)) => {
                let _ = writeln!(w, "  #{i:<2} {pc:#x} {name}+{:#x}", off + (pc - lookup));
            }
            None => {
                let _ = writeln!(w, "  #{i:<2} {pc:#x} ?");
            }
        }
    }
    if n == 0 {
        let _ = writeln!(w, "  (no frames)");
    }
    if let Some(e) = end {
        let _ = writeln!(w, "  (walk ended: {e})");
    }
}
