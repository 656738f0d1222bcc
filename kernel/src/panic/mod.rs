//! The panic path: one CPU wins, stops the others, stops the scheduler (locks
//! fake their acquisition from then on), prints the report and opens the
//! debugger's console (registered at boot with [`set_console`]). Interrupts are off from the first instruction: the panic handler
//! is entered either from an exception (interrupt gate, IF=0) or from
//! `panic!`, where `begin` disables them before anything else.

pub mod backtrace;
pub mod input;
pub mod ps2;
pub mod stop;
pub mod symbols;
pub mod trigger;
/// The one list of panic triggers, data only: the host runner compiles this
/// same file, so the hang matrix tests exactly the kernel's triggers; the
/// kernel runs them in [`trigger::run`].
pub mod trigger_list;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::arch::cpu::{self, CpuState};
pub use crate::arch::regs::SavedRegs;
use crate::arch::trap::{TrapFrame, exception_name};
use crate::{pprint, pprintln};

const NO_CPU: u32 = u32::MAX;

/// CPU that owns the panic (`NO_CPU` until the first panic).
static PANIC_CPU: AtomicU32 = AtomicU32::new(NO_CPU);
/// Panics on the panic CPU after the first (nested panics).
static PANIC_DEPTH: AtomicU32 = AtomicU32::new(0);
/// TSC at panic entry.
pub static PANIC_TSC: AtomicU64 = AtomicU64::new(0);
/// TSC when the console became ready for input.
pub static PROMPT_TSC: AtomicU64 = AtomicU64::new(0);
/// Test switch: panic again inside the panic path (`panic nested`).
pub static NESTED_TRIGGER: AtomicBool = AtomicBool::new(false);

/// What to do after the report (`panic=` on the kernel command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Open the interactive panic console (default).
    Console,
    /// Reboot at once.
    Reboot,
    /// Halt without a console.
    Halt,
    /// Write a crash dump, then reboot.
    Dump,
}

static POLICY: AtomicU32 = AtomicU32::new(0);

/// The console the panic path opens after the report (`panic=console`),
/// registered at boot by the layer above (FreeBSD's `kdb` backends); 0 =
/// none, then the panic CPU halts.
static CONSOLE: AtomicUsize = AtomicUsize::new(0);

/// Registers the console the panic path opens after its report.
pub fn set_console(console: fn() -> !) {
    CONSOLE.store(console as usize, Ordering::Release);
}

fn open_console() -> ! {
    let c = CONSOLE.load(Ordering::Acquire);
    if c == 0 {
        pprintln!("panic: no console registered; halted");
        crate::arch::halt_forever();
    }
    // SAFETY: only `set_console` stores here, a `fn() -> !` pointer.
    let console = unsafe { core::mem::transmute::<usize, fn() -> !>(c) };
    console()
}

/// What a dump needs from the panic: message, registers, time, and the
/// Ctrl-C check polled between its requests.
pub fn dump_context() -> crate::dump::writer::Context<'static> {
    crate::dump::writer::Context {
        message: message(),
        regs: panicking().then(panic_regs),
        tsc: PANIC_TSC.load(Ordering::Relaxed),
        abort: input::poll_abort_key,
    }
}

/// Sets the panic policy.
pub fn set_policy(p: Policy) {
    POLICY.store(p as u32, Ordering::Relaxed);
}

fn policy() -> Policy {
    match POLICY.load(Ordering::Relaxed) {
        1 => Policy::Reboot,
        2 => Policy::Halt,
        3 => Policy::Dump,
        _ => Policy::Console,
    }
}

/// The panic message, kept for the console and the dump.
pub struct Message {
    buf: [u8; 256],
    len: usize,
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

impl Message {
    /// The message text (truncated to 256 bytes).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

struct PanicState {
    message: Message,
    regs: SavedRegs,
}

struct PanicCell(core::cell::UnsafeCell<PanicState>);
// SAFETY: written only by the CPU that won `PANIC_CPU`, read afterwards by it.
unsafe impl Sync for PanicCell {}

static STATE: PanicCell = PanicCell(core::cell::UnsafeCell::new(PanicState {
    message: Message {
        buf: [0; 256],
        len: 0,
    },
    regs: SavedRegs::ZERO,
}));

/// The panic message (empty before a panic).
pub fn message() -> &'static str {
    // SAFETY: written once by the panic CPU before anyone reads it.
    unsafe { (*STATE.0.get()).message.as_str() }
}

/// Registers of the panic CPU at panic entry.
pub fn panic_regs() -> SavedRegs {
    // SAFETY: as `message`.
    unsafe { (*STATE.0.get()).regs }
}

/// True once some CPU has panicked.
pub fn panicking() -> bool {
    PANIC_CPU.load(Ordering::Relaxed) != NO_CPU
}

/// Registers of the caller's caller, for a panic not raised by an exception.
#[inline(always)]
fn here() -> SavedRegs {
    let (rbp, rsp, rip): (u64, u64, u64);
    // SAFETY: reads registers only.
    unsafe {
        core::arch::asm!("mov {0}, rbp", "mov {1}, rsp", "lea {2}, [rip]", out(reg) rbp, out(reg) rsp, out(reg) rip, options(nomem, nostack, preserves_flags));
    }
    let thread = crate::sched::current_ptr();
    SavedRegs {
        valid: true,
        rbp,
        rsp,
        rip,
        rflags: x86_64::registers::rflags::read_raw(),
        cs: 0x08,
        ss: 0x10,
        cr3: x86_64::registers::control::Cr3::read()
            .0
            .start_address()
            .as_u64(),
        cr2: x86_64::registers::control::Cr2::read_raw(),
        thread: thread as u64,
        thread_id: crate::sched::current_id(),
        tsc: crate::time::rdtsc(),
        ..SavedRegs::ZERO
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic_handler(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    let regs = here();
    begin(regs, &info.message(), info.location())
}

/// Installs the panic path's trap handlers in `arch`'s table: every CPU
/// exception, the NMI, the stop IPI, and what parks a CPU claimed while
/// idle.
pub fn install_trap_handlers() {
    use crate::arch::{idt::vector, trap};
    trap::set_exception_handler(|frame| exception(frame));
    trap::set_handler(vector::NMI, stop::on_nmi);
    trap::set_handler(vector::STOP, stop::on_stop_ipi);
    trap::set_claimed_hook(stop::park_claimed);
}

/// CPU exception: report it and enter the panic path.
pub fn exception(frame: &mut TrapFrame) -> ! {
    let regs = stop::saved_from_frame(frame);
    let msg = ExceptionMessage(frame);
    begin(regs, &msg, None)
}

struct ExceptionMessage<'a>(&'a TrapFrame);

impl fmt::Display for ExceptionMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "CPU exception {} ({}), error code {:#x}, RIP {:#018x}, RSP {:#018x}, CR2 {:#018x}",
            t.vector,
            exception_name(t.vector),
            t.error_code,
            t.rip,
            t.rsp,
            x86_64::registers::control::Cr2::read_raw()
        )
    }
}

/// The one entry of every panic, exception or `panic!`.
///
/// Order matters: after claiming the panic, the other CPUs are stopped
/// (and the scheduler, and the watchdog armed) before anything runs that
/// can fault or panic, such as the message's `Display` code; then the panic
/// CPU moves to the panic stack (an exception may have brought it here on a
/// small IST stack) and reports.
fn begin(regs: SavedRegs, msg: &dyn fmt::Display, loc: Option<&core::panic::Location>) -> ! {
    x86_64::instructions::interrupts::disable();
    let me = cpu::current_index() as u32;
    match PANIC_CPU.compare_exchange(NO_CPU, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {}
        Err(owner) if owner == me => nested(msg, loc, &regs),
        Err(_) => stop::park_secondary_panic(regs),
    }
    PANIC_TSC.store(regs.tsc, Ordering::Relaxed);
    cpu::this().set_state(CpuState::Panicking);
    // SAFETY: only the winning CPU reaches this point, once.
    unsafe { (*STATE.0.get()).regs = regs };
    let cycles = stop_world(me as usize);
    let entry = Entry { msg, loc, cycles };
    on_panic_stack(&entry, report_and_continue)
}

/// What `begin` hands over to the panic stack.
struct Entry<'a> {
    msg: &'a dyn fmt::Display,
    loc: Option<&'a core::panic::Location<'a>>,
    cycles: u64,
}

/// Set once the other CPUs were stopped (by `begin`, or by `nested` when a
/// fault came first).
static WORLD_STOPPED: AtomicBool = AtomicBool::new(false);

/// Stops every other CPU, then the scheduler (locks fake from here on),
/// and arms the watchdog (a hang of the panic path from here on ends in a
/// reset). Returns the stop latency in TSC cycles.
fn stop_world(me: usize) -> u64 {
    let report = stop::stop_others(me);
    WORLD_STOPPED.store(true, Ordering::SeqCst);
    crate::sync::raw::SCHEDULER_STOPPED.store(true, Ordering::SeqCst);
    crate::watchdog::arm();
    report.cycles
}

/// Calls `f(entry)` on the panic stack ([`crate::mm::panic_stack`]) unless
/// this CPU is on it already or none was reserved, in which case `f` runs
/// where we are.
fn on_panic_stack(entry: &Entry, f: extern "C" fn(*const Entry) -> !) -> ! {
    let rsp: u64;
    // SAFETY: reads the stack pointer only.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    match crate::mm::panic_stack::top() {
        Some(top) if !crate::mm::panic_stack::contains(rsp) => {
            // SAFETY: `top` is the 16-byte aligned top of a reserved,
            // mapped stack nothing else uses (one panic CPU); `f` never
            // returns, so the old stack, where `entry` lives, stays as it is
            // (this CPU never goes back to it, and interrupts are off).
            unsafe {
                core::arch::asm!(
                    "mov rsp, {top}",
                    "call {f}",
                    "ud2",
                    top = in(reg) top,
                    f = in(reg) f,
                    in("rdi") entry as *const Entry,
                    options(noreturn)
                )
            }
        }
        _ => f(entry),
    }
}

/// The panic report and the policy, on the panic stack.
extern "C" fn report_and_continue(entry: *const Entry) -> ! {
    // SAFETY: `begin` passes a pointer to its `Entry`, alive for ever (see
    // `on_panic_stack`).
    let entry = unsafe { &*entry };
    let me = cpu::current_index();
    // SAFETY: only the panic CPU runs, and only it writes `STATE`.
    let st = unsafe { &mut *STATE.0.get() };
    // Arbitrary `Display` code: a fault or panic in it is a nested panic,
    // with the world already stopped.
    let _ = write!(st.message, "{}", entry.msg);
    let regs = st.regs;
    let text = st.message.as_str();
    // From here on exactly one CPU runs, and every lock fakes its acquisition.
    // The log ring is written through its (possibly held) lock on purpose.
    let _ = writeln!(crate::console::LOG.lock(), "PANIC: {text}");
    let _ = print_report(
        me,
        text,
        entry.loc,
        &regs,
        entry.cycles,
        &mut crate::console::PanicWriter,
    );
    if NESTED_TRIGGER.swap(false, Ordering::Relaxed) {
        panic!("test: nested panic inside the panic path");
    }
    after_report()
}

fn after_report() -> ! {
    match policy() {
        Policy::Console => open_console(),
        Policy::Reboot => {
            pprintln!("panic=reboot: rebooting");
            crate::acpi::reset();
            crate::arch::halt_forever()
        }
        Policy::Halt => {
            crate::watchdog::disarm();
            pprintln!("panic=halt: halted");
            crate::arch::halt_forever()
        }
        Policy::Dump => {
            pprintln!("panic=dump: writing a crash dump");
            // The USB keyboard in polled mode first, so Ctrl-C can abort.
            // SAFETY: we are the panic CPU and every other CPU is parked.
            unsafe { crate::usb::panic_takeover(&mut crate::console::PanicWriter) };
            let _ = crate::dump::run(false, &dump_context());
            pprintln!("panic=dump: rebooting");
            crate::acpi::reset();
            crate::arch::halt_forever()
        }
    }
}

/// The report: the message, the backtrace, how each other CPU stopped and
/// how long the stop took (each CPU's own stop times are in the panic
/// console's `cpus`: every byte before the prompt costs its time on a
/// serial line, 3-5 us under QEMU). One copy of the code for the panic
/// (`out` is the panic writer) and its boot rehearsal
/// ([`rehearse_report`], `out` discards): never inlined, so both callers
/// run the same machine code.
#[inline(never)]
fn print_report(
    me: usize,
    msg: &str,
    loc: Option<&core::panic::Location>,
    regs: &SavedRegs,
    cycles: u64,
    out: &mut dyn fmt::Write,
) -> fmt::Result {
    writeln!(out)?;
    writeln!(out, "{RULE}")?;
    let t = regs.thread as *const crate::sched::thread::Thread;
    write!(out, "PANIC on cpu {me}")?;
    if !t.is_null() {
        // SAFETY: a live thread (the other CPUs are parked; threads are only
        // freed by them or by us; a rehearsal names its own thread).
        let name = unsafe { (*t).name.as_str() };
        write!(out, " (thread {} \"{}\")", regs.thread_id, name)?;
    }
    writeln!(out, ": {msg}")?;
    if let Some(l) = loc {
        writeln!(out, "  at {}:{}:{}", l.file(), l.line(), l.column())?;
    }
    writeln!(out, "backtrace:")?;
    backtrace::print(regs.rip, regs.rbp, out);
    // The CPUs claimed while idle have parked meanwhile, as a rule.
    stop::wait_claimed();
    for c in cpu::all() {
        if c.index() == me {
            continue;
        }
        let i = c.index();
        // SAFETY: read only for a stopped CPU, which published it with
        // release before the state we acquired and never writes it again.
        let rip = || unsafe { (*c.saved.get()).rip };
        match c.state() {
            CpuState::StoppedIpi => writeln!(out, "cpu {i}: stopped (ipi) at RIP {:#x}", rip()),
            CpuState::StoppedNmi => writeln!(out, "cpu {i}: stopped (nmi) at RIP {:#x}", rip()),
            CpuState::ParkedPanic => {
                writeln!(out, "cpu {i}: stopped (panicked too) at RIP {:#x}", rip())
            }
            CpuState::Online => writeln!(
                out,
                "cpu {i}: did not stop (no answer to the stop IPI or the NMI)"
            ),
            CpuState::StoppedOnArrival => writeln!(
                out,
                "cpu {i}: stopped on arrival (it was starting when the panic began)"
            ),
            other => writeln!(out, "cpu {i}: {}", other.name()),
        }?;
    }
    write!(
        out,
        "stop latency: {} cycles ({} us)",
        cycles,
        crate::time::cycles_to_us(cycles)
    )?;
    match stop::CLAIMED.load(Ordering::SeqCst).count_ones() {
        0 => writeln!(out)?,
        n => writeln!(out, "; {n} idle in hlt counted stopped at once")?,
    }
    writeln!(out, "scheduler stopped; locks are bypassed from now on")?;
    writeln!(out, "{RULE}")
}

/// The rule above and below the report.
const RULE: &str = "================================================================";

/// Runs the report's code once, on this CPU's own registers and stack,
/// with the output discarded (the boot's `panic-rehearsal` thread). Under
/// an emulator (QEMU's TCG) the first run of any code pays for its
/// translation, and the report is most of what runs between a panic and
/// the prompt (after the stop, which has its own rehearsal,
/// [`stop::rehearse`]): the message and backtrace formatting, the symbol
/// lookups, the per-CPU lines. On hardware it only warms caches. It takes
/// no lock and changes nothing: a panic meanwhile stops this CPU as any
/// other. Returns how many bytes the report would have printed.
pub fn rehearse_report() -> usize {
    /// Counts and drops what is written.
    struct Discard(usize);
    impl fmt::Write for Discard {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let regs = here();
    let mut msg = Message {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(msg, "rehearsal on cpu {}", cpu::current_index());
    let mut out = Discard(0);
    let _ = print_report(
        cpu::current_index(),
        msg.as_str(),
        Some(core::panic::Location::caller()),
        &regs,
        0,
        &mut out,
    );
    out.0
}

/// A panic on the panic CPU while handling the panic.
fn nested(msg: &dyn fmt::Display, loc: Option<&core::panic::Location>, regs: &SavedRegs) -> ! {
    let depth = PANIC_DEPTH.fetch_add(1, Ordering::SeqCst) + 1;
    if depth > 2 {
        // Even the minimal report failed twice: halt without touching anything.
        crate::arch::halt_forever();
    }
    if !WORLD_STOPPED.load(Ordering::SeqCst) {
        // The fault came before `begin` stopped the others: stop them now,
        // before anything else runs.
        stop_world(cpu::current_index());
    }
    pprintln!();
    pprint!(
        "NESTED PANIC (depth {depth}) on cpu {}: {msg}",
        cpu::current_index()
    );
    if let Some(l) = loc {
        pprint!(" at {}:{}:{}", l.file(), l.line(), l.column());
    }
    pprintln!();
    if depth == 1 {
        backtrace::print(regs.rip, regs.rbp, &mut crate::console::PanicWriter);
        // The first report was printed (or partly); fall back to the console.
        after_report()
    }
    pprintln!("halting");
    crate::arch::halt_forever()
}
