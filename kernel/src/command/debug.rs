//! The bodies of the commands only the debugger (`db> `) offers: they run on
//! the panic CPU with the world stopped, take no lock and allocate nothing.

use core::fmt::Write;

use super::parse::{cpu_number, dump_full, mem_range};
use super::{Args, Console};
use crate::arch::cpu;
use crate::arch::regs::SavedRegs;
use crate::panic::backtrace;

/// The saved registers of CPU `c`: the panic CPU's from the panic, a stopped
/// CPU's from its stop (`None` where it saved none).
pub fn saved_regs(c: usize) -> Option<SavedRegs> {
    if c == cpu::current_index() && crate::panic::panicking() {
        return Some(crate::panic::panic_regs());
    }
    // At a break-in this CPU's registers are its own `saved` too.
    // SAFETY: the stopped CPU wrote `saved` before publishing its state.
    let r = unsafe { *cpu::cpu(c).saved.get() };
    r.valid.then_some(r)
}

/// The CPU argument of `bt`/`regs` (none: the panic CPU).
fn cpu_arg(args: &Args<'_>, w: &mut dyn Write) -> Option<usize> {
    cpu_number(args, cpu::current_index(), cpu::all().len())
        .map_err(|e| writeln!(w, "{e}"))
        .ok()
}

/// `bt [cpu]`.
pub fn bt(args: &Args<'_>, mut w: &mut dyn Write, _: Console) {
    let Some(c) = cpu_arg(args, w) else { return };
    match saved_regs(c) {
        Some(r) => {
            let _ = writeln!(w, "backtrace of cpu {c} (thread {}):", r.thread_id as i64);
            backtrace::print(r.rip, r.rbp, &mut w);
        }
        None => {
            let _ = writeln!(
                w,
                "bt: cpu {c} has no saved registers ({})",
                cpu::cpu(c).state().name()
            );
        }
    }
}

/// `regs [cpu]`.
pub fn regs(args: &Args<'_>, w: &mut dyn Write, _: Console) {
    let Some(c) = cpu_arg(args, w) else { return };
    let Some(r) = saved_regs(c) else {
        let _ = writeln!(
            w,
            "regs: cpu {c} has no saved registers ({})",
            cpu::cpu(c).state().name()
        );
        return;
    };
    let _ = writeln!(w, "cpu {c} registers:");
    let _ = writeln!(
        w,
        "  rax {:#018x} rbx {:#018x} rcx {:#018x}",
        r.rax, r.rbx, r.rcx
    );
    let _ = writeln!(
        w,
        "  rdx {:#018x} rsi {:#018x} rdi {:#018x}",
        r.rdx, r.rsi, r.rdi
    );
    let _ = writeln!(
        w,
        "  rbp {:#018x} rsp {:#018x} r8  {:#018x}",
        r.rbp, r.rsp, r.r8
    );
    let _ = writeln!(
        w,
        "  r9  {:#018x} r10 {:#018x} r11 {:#018x}",
        r.r9, r.r10, r.r11
    );
    let _ = writeln!(
        w,
        "  r12 {:#018x} r13 {:#018x} r14 {:#018x}",
        r.r12, r.r13, r.r14
    );
    let _ = writeln!(
        w,
        "  r15 {:#018x} rip {:#018x} rflags {:#010x}",
        r.r15, r.rip, r.rflags
    );
    let _ = writeln!(
        w,
        "  cs {:#x} ss {:#x} cr2 {:#018x} cr3 {:#018x}",
        r.cs, r.ss, r.cr2, r.cr3
    );
}

/// `mem ADDR [LEN]` in the panic console: a hex dump of RAM.
pub fn mem(args: &Args<'_>, w: &mut dyn Write, _: Console) {
    let (addr, len) = match mem_range(args) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(w, "{e}");
            return;
        }
    };
    let readable = readable_prefix(addr, len);
    if readable == 0 {
        let _ = writeln!(
            w,
            "mem: {addr:#x}..+{len:#x} is {}",
            unreadable_reason(addr)
        );
        return;
    }
    hex_dump(w, addr, readable);
    if readable < len
        && let Some(at) = addr.checked_add(readable)
    {
        let _ = writeln!(w, "mem: stopped at {at:#x}: {}", unreadable_reason(at));
    }
}

/// How many bytes from `addr` (at most `len`) may be read: page by page,
/// each mapped and RAM. Mapped is not enough: a read of device memory has
/// side effects (or hangs), so only RAM is read, as `bt` does (identity
/// mapping: the address is the physical address).
pub fn readable_prefix(addr: u64, len: u64) -> u64 {
    let mut done = 0;
    while done < len {
        let Some(at) = addr.checked_add(done) else {
            break;
        };
        let chunk = (4096 - (at & 0xfff)).min(len - done);
        if !crate::mm::paging::is_mapped(at, chunk) || !crate::mm::frame::is_ram(at, chunk) {
            break;
        }
        done += chunk;
    }
    done
}

fn unreadable_reason(at: u64) -> &'static str {
    if crate::mm::paging::is_mapped(at, 1) {
        "not RAM (device memory is not read)"
    } else {
        "not mapped"
    }
}

/// Hex and ASCII, 16 bytes a line, of `len` readable bytes at `addr`.
fn hex_dump(w: &mut dyn Write, addr: u64, len: u64) {
    let mut off = 0;
    while off < len {
        let _ = write!(w, "{:#018x}:", addr + off);
        let n = (len - off).min(16);
        let mut ascii = [b'.'; 16];
        for i in 0..n {
            // SAFETY: every byte of the range was checked mapped RAM
            // (`readable_prefix`).
            let b = unsafe { ((addr + off + i) as *const u8).read_volatile() };
            let _ = write!(w, " {b:02x}");
            if (0x20..0x7f).contains(&b) {
                ascii[i as usize] = b;
            }
        }
        let _ = writeln!(
            w,
            "  {}",
            core::str::from_utf8(&ascii[..n as usize]).unwrap_or("")
        );
        off += 16;
    }
}

/// `log`: the kernel log ring (at a break-in under its lock, if free).
pub fn log(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    if !crate::panic::panicking() {
        match crate::console::LOG.try_lock() {
            Some(ring) => write_log(w, &ring),
            None => {
                let _ = writeln!(w, "log: {}", held_by("the log ring", &crate::console::LOG));
            }
        }
        return;
    }
    // SAFETY: no other CPU runs; reading the ring without its lock.
    write_log(w, unsafe { &*crate::console::LOG.data_ptr() });
}

/// "NAME's lock is held by cpu N (stopped)": what a break-in command says
/// instead of taking a lock a stopped CPU holds (it would spin for ever).
pub fn held_by<'a, T>(
    name: &'a str,
    lock: &crate::sync::SpinLock<T>,
) -> impl core::fmt::Display + 'a {
    // SAFETY: only reads the lock word.
    let owner = unsafe { lock.raw() }.raw().owner();
    HeldBy(name, owner)
}

struct HeldBy<'a>(&'a str, u32);

impl core::fmt::Display for HeldBy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.1 {
            0 => write!(f, "{} was busy a moment ago; try again", self.0),
            o => write!(
                f,
                "{}'s lock is held by cpu {} (stopped); not taken",
                self.0,
                o.wrapping_sub(1)
            ),
        }
    }
}

fn write_log(w: &mut dyn Write, ring: &crate::console::LogRing) {
    let (a, b) = ring.parts();
    for part in [a, b] {
        for chunk in part.utf8_chunks() {
            let _ = w.write_str(chunk.valid());
        }
    }
}

/// `continue`: resume after a break-in (refused after a panic, or with a
/// CPU stopped by NMI).
pub fn continue_(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    if crate::panic::panicking() {
        let _ = writeln!(
            w,
            "continue: refused: this is a panic, nothing runs again after one (only a break-in continues)"
        );
        return;
    }
    match crate::sched::freeze::request_resume(None) {
        Ok(()) => {
            let _ = writeln!(w, "continuing");
        }
        Err(e) => {
            let _ = writeln!(w, "continue: refused: {e}");
        }
    }
}

/// `dump [full]`.
pub fn dump(args: &Args<'_>, w: &mut dyn Write, _: Console) {
    if !crate::panic::panicking() {
        let _ = writeln!(
            w,
            "dump: only after a panic (`panic` turns this break-in into one)"
        );
        return;
    }
    match dump_full(args) {
        Ok(full) => drop(crate::dump::run(full, &crate::panic::dump_context())),
        Err(e) => {
            let _ = writeln!(w, "{e}");
        }
    }
}

/// `halt`.
pub fn halt(_: &Args<'_>, w: &mut dyn Write, _: Console) {
    crate::watchdog::disarm();
    let _ = writeln!(w, "halted");
    crate::arch::halt_forever();
}
