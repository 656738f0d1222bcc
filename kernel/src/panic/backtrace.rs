//! Frame-pointer backtraces that never fault: every frame is checked against
//! the page tables before it is read, frames must move up the stack, and the
//! walk is bounded.

use core::fmt::Write;

use super::symbols;

/// Most frames printed.
pub const MAX_FRAMES: usize = 32;

/// Reads a u64 at `addr` if it is mapped and aligned.
pub fn read_u64_checked(addr: u64) -> Option<u64> {
    if !addr.is_multiple_of(8) || !crate::mm::paging::is_mapped(addr, 8) {
        return None;
    }
    // SAFETY: the address is aligned and mapped (checked above); identity
    // mapped RAM or device memory reads have no side effects for the stack
    // ranges we walk.
    Some(unsafe { (addr as *const u64).read_volatile() })
}

/// Return addresses of the frame chain starting at `rbp` (after `rip`).
pub fn walk(rip: u64, mut rbp: u64, out: &mut [u64]) -> usize {
    let mut n = 0;
    if n < out.len() {
        out[n] = rip;
        n += 1;
    }
    while n < out.len() && rbp != 0 {
        let (Some(next), Some(ret)) =
            (read_u64_checked(rbp), read_u64_checked(rbp.wrapping_add(8)))
        else {
            break;
        };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        // Frames must move towards the stack base, and not by absurd amounts.
        if next <= rbp || next - rbp > 1 << 20 {
            break;
        }
        rbp = next;
    }
    n
}

/// Prints a backtrace with symbol names.
pub fn print(rip: u64, rbp: u64, w: &mut impl Write) {
    let mut frames = [0u64; MAX_FRAMES];
    let n = walk(rip, rbp, &mut frames);
    for (i, &pc) in frames[..n].iter().enumerate() {
        // Return addresses point after the call: look up pc-1 for the caller.
        let lookup = if i == 0 { pc } else { pc.wrapping_sub(1) };
        match symbols::lookup(lookup) {
            Some((name, off)) => {
                let _ = writeln!(
                    w,
                    "  #{i:<2} {pc:#018x} {}+{:#x}",
                    symbols::Demangled(name),
                    off + (pc - lookup)
                );
            }
            None => {
                let _ = writeln!(w, "  #{i:<2} {pc:#018x} ?");
            }
        }
    }
    if n == 0 {
        let _ = writeln!(w, "  (no frames)");
    }
}
