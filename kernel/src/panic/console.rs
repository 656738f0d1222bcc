//! The panic console (`db> `): a small debugger that runs on the panic CPU
//! alone, with no locks, no allocation and no interrupts. Input is polled
//! from the serial port and the PS/2 keyboard (and the USB keyboard once the
//! driver is attached); output goes to serial and VGA.

use core::fmt::Write;
use core::sync::atomic::Ordering;

use pc_keyboard::{DecodedKey, KeyCode};

use super::backtrace;
use super::writer::PanicWriter;
use crate::arch::cpu::{self, CpuState};
use crate::lineedit::{ByteDecoder, Edit, Key, LineEditor};
use crate::{pprint, pprintln};

const PROMPT: &str = "db> ";

/// Polled input sources of the panic console.
struct Inputs {
    serial: ByteDecoder,
    ps2: super::ps2::Ps2,
}

impl Inputs {
    fn poll(&mut self) -> Option<Key> {
        // SAFETY: the panic console runs on the panic CPU with every other
        // CPU parked, after `panic_takeover`.
        if let Some(k) = unsafe { crate::usb::panic_poll_key() }
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

/// Runs the panic console forever.
pub fn run() -> ! {
    let mut inputs = Inputs {
        serial: ByteDecoder::new(),
        ps2: super::ps2::Ps2::probe(),
    };
    let mut ed = LineEditor::new();
    crate::dump::watchdog::pet();
    // SAFETY: we are the panic CPU and every other CPU is parked.
    unsafe { crate::usb::panic_takeover(&mut PanicWriter) };
    crate::dump::watchdog::pet();
    let ready = crate::arch::rdtsc();
    super::PROMPT_TSC.store(ready, Ordering::Relaxed);
    let since = ready.saturating_sub(super::PANIC_TSC.load(Ordering::Relaxed));
    pprintln!("panic-to-prompt: {} us", crate::time::cycles_to_us(since));
    warn_running_cpus();
    pprintln!("panic console: type `help` for commands");
    pprint!("{PROMPT}");
    loop {
        crate::dump::watchdog::pet();
        let Some(k) = inputs.poll() else {
            core::hint::spin_loop();
            continue;
        };
        match ed.key(k, &mut PanicWriter) {
            Edit::Pending => continue,
            Edit::Cancelled => {}
            Edit::Done => {
                let mut line = [0u8; crate::lineedit::LINE_MAX];
                let n = ed.line().len();
                line[..n].copy_from_slice(ed.line().as_bytes());
                ed.clear();
                execute(core::str::from_utf8(&line[..n]).unwrap_or(""));
            }
        }
        pprint!("{PROMPT}");
    }
}

/// Names, above the prompt, every CPU that answered neither the stop IPI
/// nor the NMI: it may still be running (wedged in SMM or in hardware) while
/// locks are faked around it.
fn warn_running_cpus() {
    for c in cpu::all() {
        if c.index() != cpu::current_index() && c.state() == CpuState::Online {
            pprintln!(
                "WARNING: cpu {} did not stop; it may still be running, and locks are faked around it",
                c.index()
            );
        }
    }
}

/// Parses a number: hex with `0x`, else decimal.
pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Longest `mem` dump.
const MEM_MAX: u64 = 4096;

fn execute(line: &str) {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else { return };
    let arg1 = words.next();
    let arg2 = words.next();
    match cmd {
        "help" => help(),
        "cpus" => cpus(),
        "bt" => match cpu_arg(arg1) {
            Ok(c) => bt(c),
            Err(e) => pprintln!("bt: {e}"),
        },
        "regs" => match cpu_arg(arg1) {
            Ok(c) => regs(c),
            Err(e) => pprintln!("regs: {e}"),
        },
        "ps" => ps(),
        "mem" => mem(arg1, arg2),
        "log" => log(),
        "lsusb" | "kbd" => {
            // SAFETY: panic console, other CPUs parked, after the takeover.
            match unsafe { crate::usb::panic_controller() } {
                Some(c) if cmd == "lsusb" => crate::usb::lsusb(&mut PanicWriter, c),
                Some(c) => crate::usb::kbd(&mut PanicWriter, c),
                None => pprintln!("{cmd}: no USB controller"),
            }
        }
        "dump" => match arg1 {
            None => drop(crate::dump::run(false)),
            Some("full") => drop(crate::dump::run(true)),
            Some(_) => pprintln!("dump: usage: dump [full]"),
        },
        "reboot" => {
            pprintln!("rebooting");
            crate::acpi::reset();
        }
        "halt" => {
            crate::dump::watchdog::disarm();
            pprintln!("halted");
            crate::arch::halt_forever();
        }
        "poweroff" => {
            // Where ACPI power-off fails (it then halts), an armed watchdog
            // would reset the machine the user asked to switch off.
            crate::dump::watchdog::disarm();
            pprintln!("powering off");
            crate::power::poweroff(true);
        }
        _ => pprintln!("unknown command: {cmd}"),
    }
}

fn help() {
    pprintln!("commands:");
    pprintln!("  cpus            every CPU: state, how it was stopped, RIP");
    pprintln!("  bt [cpu]        backtrace of the panic thread or of a stopped CPU");
    pprintln!("  regs [cpu]      registers of the panic CPU or of a stopped CPU");
    pprintln!("  ps              threads");
    pprintln!("  mem ADDR [LEN]  hex dump of RAM (unmapped addresses and devices are refused)");
    pprintln!("  log             recent kernel log");
    pprintln!("  lsusb, kbd      USB devices and keyboard state");
    pprintln!("  dump [full]     write a crash dump (minimal, or all RAM); Ctrl-C aborts");
    pprintln!("  reboot, halt, poweroff");
}

/// `None` = the panic CPU.
fn cpu_arg(a: Option<&str>) -> Result<usize, &'static str> {
    match a {
        None => Ok(cpu::current_index()),
        Some(s) => {
            let n = parse_num(s).ok_or("expected a CPU number")?;
            if (n as usize) < cpu::all().len() {
                Ok(n as usize)
            } else {
                Err("no such CPU")
            }
        }
    }
}

fn saved_regs(c: usize) -> Option<super::stop::SavedRegs> {
    if c == cpu::current_index() {
        return Some(super::panic_regs());
    }
    // SAFETY: the stopped CPU wrote `saved` before publishing its state.
    let r = unsafe { *cpu::cpu(c).saved.get() };
    r.valid.then_some(r)
}

fn cpus() {
    let me = cpu::current_index();
    for c in cpu::all() {
        let i = c.index();
        let state = match c.state() {
            _ if i == me => "panicked (this CPU)",
            CpuState::Online => "did not stop (may still be running)",
            s => s.name(),
        };
        let rip = saved_regs(i).map_or(0, |r| r.rip);
        pprint!(
            "cpu {i}: apic {} {state}",
            c.apic_id.load(Ordering::Relaxed)
        );
        if rip != 0 {
            pprint!(" at RIP {rip:#018x}");
            if let Some((n, off)) = super::symbols::lookup(rip) {
                pprint!(" {}+{off:#x}", super::symbols::Demangled(n));
            }
        }
        pprintln!(" ticks {}", c.ticks.load(Ordering::Relaxed));
    }
}

fn bt(c: usize) {
    match saved_regs(c) {
        Some(r) => {
            pprintln!("backtrace of cpu {c} (thread {}):", r.thread_id as i64);
            backtrace::print(r.rip, r.rbp, &mut PanicWriter);
        }
        None => pprintln!(
            "bt: cpu {c} has no saved registers ({})",
            cpu::cpu(c).state().name()
        ),
    }
}

fn regs(c: usize) {
    let Some(r) = saved_regs(c) else {
        pprintln!(
            "regs: cpu {c} has no saved registers ({})",
            cpu::cpu(c).state().name()
        );
        return;
    };
    pprintln!("cpu {c} registers:");
    pprintln!(
        "  rax {:#018x} rbx {:#018x} rcx {:#018x}",
        r.rax,
        r.rbx,
        r.rcx
    );
    pprintln!(
        "  rdx {:#018x} rsi {:#018x} rdi {:#018x}",
        r.rdx,
        r.rsi,
        r.rdi
    );
    pprintln!(
        "  rbp {:#018x} rsp {:#018x} r8  {:#018x}",
        r.rbp,
        r.rsp,
        r.r8
    );
    pprintln!(
        "  r9  {:#018x} r10 {:#018x} r11 {:#018x}",
        r.r9,
        r.r10,
        r.r11
    );
    pprintln!(
        "  r12 {:#018x} r13 {:#018x} r14 {:#018x}",
        r.r12,
        r.r13,
        r.r14
    );
    pprintln!(
        "  r15 {:#018x} rip {:#018x} rflags {:#010x}",
        r.r15,
        r.rip,
        r.rflags
    );
    pprintln!(
        "  cs {:#x} ss {:#x} cr2 {:#018x} cr3 {:#018x}",
        r.cs,
        r.ss,
        r.cr2,
        r.cr3
    );
}

fn ps() {
    pprintln!("  id  state     cpu  cpu-time(us)  name");
    // SAFETY: after the panic stop no other CPU runs.
    let walk = unsafe {
        crate::sched::for_each_thread_unlocked(|t| {
            pprintln!(
                "{:>4}  {:<8} {:>4}  {:>12}  {}",
                t.id,
                t.state().name(),
                t.cpu.load(Ordering::Relaxed),
                crate::time::cycles_to_us(t.cpu_cycles.load(Ordering::Relaxed)),
                t.name
            );
        })
    };
    if walk.skipped + walk.unlisted > 0 {
        pprintln!(
            "  ({} entries failed validation and were skipped, {} threads beyond the table)",
            walk.skipped,
            walk.unlisted
        );
    }
}

fn mem(a: Option<&str>, l: Option<&str>) {
    let Some(addr) = a.and_then(parse_num) else {
        pprintln!("mem: usage: mem ADDR [LEN] (ADDR in hex with 0x, or decimal)");
        return;
    };
    let len = match l.map(parse_num) {
        None => 64,
        Some(Some(n)) if n > 0 => n.min(MEM_MAX),
        Some(_) => {
            pprintln!("mem: bad length");
            return;
        }
    };
    if x86_64::VirtAddr::try_new(addr).is_err() {
        pprintln!("mem: {addr:#x} is not a canonical address");
        return;
    }
    let readable = readable_prefix(addr, len);
    if readable == 0 {
        pprintln!("mem: {addr:#x}..+{len:#x} is {}", unreadable_reason(addr));
        return;
    }
    hex_dump(addr, readable);
    if readable < len
        && let Some(at) = addr.checked_add(readable)
    {
        pprintln!("mem: stopped at {at:#x}: {}", unreadable_reason(at));
    }
}

/// How many bytes from `addr` (at most `len`) may be read: page by page,
/// each mapped and RAM. Mapped is not enough: a read of device memory has
/// side effects (or hangs), so only RAM is read, as `bt` does (identity
/// mapping: the address is the physical address).
fn readable_prefix(addr: u64, len: u64) -> u64 {
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
fn hex_dump(addr: u64, len: u64) {
    let mut off = 0;
    while off < len {
        pprint!("{:#018x}:", addr + off);
        let n = (len - off).min(16);
        let mut ascii = [b'.'; 16];
        for i in 0..n {
            // SAFETY: every byte of the range was checked mapped RAM
            // (`readable_prefix`).
            let b = unsafe { ((addr + off + i) as *const u8).read_volatile() };
            pprint!(" {b:02x}");
            if (0x20..0x7f).contains(&b) {
                ascii[i as usize] = b;
            }
        }
        pprintln!(
            "  {}",
            core::str::from_utf8(&ascii[..n as usize]).unwrap_or("")
        );
        off += 16;
    }
}

fn log() {
    // SAFETY: no other CPU runs; reading the ring without its lock.
    let ring = unsafe { &*crate::console::LOG.data_ptr() };
    let (a, b) = ring.parts();
    for part in [a, b] {
        for chunk in part.utf8_chunks() {
            let _ = PanicWriter.write_str(chunk.valid());
        }
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

/// Is the CPU parked (for tests of the stop logic)?
pub fn all_others_parked() -> bool {
    let me = cpu::current_index();
    cpu::all().iter().all(|c| {
        c.index() == me
            || matches!(
                c.state(),
                CpuState::StoppedIpi
                    | CpuState::StoppedNmi
                    | CpuState::ParkedPanic
                    | CpuState::StoppedOnArrival
                    | CpuState::Failed
            )
    })
}
