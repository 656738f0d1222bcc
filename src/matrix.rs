//! The hang-regression matrix (`cargo run -- matrix`): every panic trigger x
//! controller x firmware x `-smp` x keyboard attachment x session kind, N
//! times each, as parallel QEMU instances. Each run boots with
//! `trigger=KIND`, waits for the panic console, types a session on the USB
//! keyboard through QMP only, powers off and is classified pass, hang (a
//! deadline passed), fail (wrong output or exit code) or skip (a cell that
//! means nothing on its machine, with the reason; never the outcome of a
//! run). [`crate::report`] turns the results into a table, JSON and an SVG
//! chart. `tests/matrix.rs` makes every cell a test of its own.

mod session;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::harness::Vm;
use crate::qemu::{Config, Firmware, Keyboard};

/// The kernel's own trigger table, compiled into this crate from the
/// kernel's source file (data only): the one list of triggers.
mod kernel {
    include!("../kernel/src/panic/trigger_list.rs");
}

/// Every trigger, in the kernel's order: the kernel's table
/// (`kernel/src/panic/trigger_list.rs`), compiled in.
pub fn triggers() -> impl ExactSizeIterator<Item = &'static str> {
    kernel::TRIGGERS.iter().map(|(name, _)| *name)
}
/// Controllers.
pub const CONTROLLERS: &[&str] = &["qemu-xhci", "nec-usb-xhci"];
/// Firmwares.
pub const FIRMWARES: &[Firmware] = &[Firmware::SeaBios, Firmware::Qboot];
/// CPU counts.
pub const SMPS: &[u32] = &[1, 2, 4, 8];
/// Keyboard attachments.
pub const KEYBOARDS: &[Keyboard] = &[Keyboard::RootPort, Keyboard::BehindHub];

/// Triggers whose point is another CPU: on `-smp 1` the kernel degrades
/// them to a plain panic of the only CPU (see `kernel/src/panic/trigger.rs`),
/// so they duplicate `plain` there and are skipped.
/// (`usb-cmd` too: its command is submitted by another CPU, and without one
/// nothing is in flight when the panic comes.)
const NEED_SMP: &[&str] = &[
    "lock", "ap", "all", "cli", "usb-lock", "usb-cmd", "badstack", "deaf",
];

/// Triggers that panic only while an application processor starts: on
/// `-smp 1` nothing panics, so they are skipped there.
const NEED_AP_START: &[&str] = &["ap-start"];

/// Triggers the shell's `panic KIND` refuses (kernel command line only).
const COMMAND_LINE_ONLY: &[&str] = &["early", "ap-start"];

/// What is typed at `db> `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// `cpus`, `bt`, `regs 1`, `mem` of a bad address, `poweroff`.
    Console,
    /// `dump`, then `poweroff`.
    Dump,
    /// A break-in first (`break` typed at `shell>`, `cpus` and `continue`
    /// at its `db>`, a line typed at the shell again), then the trigger
    /// typed at the shell (`panic KIND`) and the console session: the
    /// resumed system still panics as it should.
    BreakIn,
}

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Panic trigger (`trigger=KIND`).
    pub trigger: String,
    /// Session typed at the panic console.
    pub session: Session,
    /// xHCI controller model.
    pub controller: String,
    /// Boot firmware.
    pub firmware: Firmware,
    /// `-smp`.
    pub smp: u32,
    /// Keyboard attachment.
    pub keyboard: Keyboard,
}

/// Short names of the dimensions.
pub fn firmware_name(f: Firmware) -> &'static str {
    match f {
        Firmware::SeaBios => "seabios",
        Firmware::Qboot => "qboot",
        Firmware::Ovmf => "ovmf",
    }
}

/// Short name of a keyboard attachment.
pub fn keyboard_name(k: Keyboard) -> &'static str {
    match k {
        Keyboard::RootPort => "root",
        Keyboard::BehindHub => "hub",
        Keyboard::None => "none",
    }
}

impl Scenario {
    /// `trigger/session/controller/firmware/smpN/attachment`.
    pub fn name(&self) -> String {
        format!(
            "{}/{}/{}",
            self.trigger,
            self.session_name(),
            self.configuration()
        )
    }

    /// The machine without the trigger: `controller/firmware/smpN/attachment`.
    pub fn configuration(&self) -> String {
        format!(
            "{}/{}/smp{}/{}",
            self.controller,
            firmware_name(self.firmware),
            self.smp,
            keyboard_name(self.keyboard)
        )
    }

    /// `console`, `dump` or `breakin`.
    pub fn session_name(&self) -> &'static str {
        match self.session {
            Session::Console => "console",
            Session::Dump => "dump",
            Session::BreakIn => "breakin",
        }
    }

    /// Whether a `--filter`: comma-separated terms, all of which must match;
    /// a term without `/` must equal one component of the name (so `lock`
    /// does not select `usb-lock`), a term with `/` is a substring.
    pub fn matches(&self, filter: &str) -> bool {
        let name = self.name();
        filter.split(',').filter(|t| !t.is_empty()).all(|t| {
            if t.contains('/') {
                name.contains(t)
            } else {
                name.split('/').any(|c| c == t)
            }
        })
    }

    /// Why this cell is not run, if it is not: only a cell that means
    /// nothing on its machine. Everything that can go wrong in a run
    /// (a kernel without the trigger or without `dump`) is a failure.
    pub fn skip_reason(&self) -> Option<&'static str> {
        let t = self.trigger.as_str();
        if self.smp == 1 && NEED_SMP.contains(&t) {
            return Some("needs a second CPU (smp=1 degrades to a plain panic)");
        }
        if self.smp == 1 && NEED_AP_START.contains(&t) {
            return Some("needs an application processor to start (smp=1 never panics)");
        }
        if self.session == Session::BreakIn && COMMAND_LINE_ONLY.contains(&t) {
            return Some("works on the kernel command line only, not after a break-in");
        }
        None
    }
}

/// Every cell, in a stable order.
pub fn all_scenarios() -> Vec<Scenario> {
    let mut v = Vec::new();
    for t in triggers() {
        for session in [Session::Console, Session::Dump, Session::BreakIn] {
            for c in CONTROLLERS {
                for &f in FIRMWARES {
                    for &smp in SMPS {
                        for &k in KEYBOARDS {
                            v.push(Scenario {
                                trigger: t.to_string(),
                                session,
                                controller: c.to_string(),
                                firmware: f,
                                smp,
                                keyboard: k,
                            });
                        }
                    }
                }
            }
        }
    }
    v
}

/// A fast, diverse subset for `cargo test`: every controller, firmware,
/// CPU count, attachment and session appears, and the stop paths (IPI, NMI,
/// simultaneous panic, fault, nested, early, a CPU that does not stop, a
/// panic in the message's formatting) are covered.
pub fn representative() -> Vec<Scenario> {
    let s = |t: &str, session, c: &str, f, smp, k| Scenario {
        trigger: t.into(),
        session,
        controller: c.into(),
        firmware: f,
        smp,
        keyboard: k,
    };
    use Firmware::*;
    use Keyboard::*;
    use Session::*;
    vec![
        s("plain", Console, "qemu-xhci", SeaBios, 4, RootPort),
        s("cli", Console, "nec-usb-xhci", Qboot, 8, BehindHub),
        s("early", Console, "qemu-xhci", Qboot, 1, RootPort),
        s("all", Dump, "nec-usb-xhci", SeaBios, 2, RootPort),
        s("fault", Console, "nec-usb-xhci", Qboot, 1, BehindHub),
        s("lock", Console, "qemu-xhci", Qboot, 2, BehindHub),
        s("nested", Console, "qemu-xhci", SeaBios, 2, RootPort),
        s("usb-enum", Console, "qemu-xhci", Qboot, 4, BehindHub),
        s("usb-irq", Console, "nec-usb-xhci", Qboot, 2, RootPort),
        s("deaf", Console, "qemu-xhci", Qboot, 2, RootPort),
        s("fmt", Console, "nec-usb-xhci", SeaBios, 4, BehindHub),
        s("ap-start", Console, "qemu-xhci", Qboot, 4, RootPort),
        s("nmi", Dump, "qemu-xhci", Qboot, 2, BehindHub),
        s("plain", BreakIn, "qemu-xhci", Qboot, 2, RootPort),
        s("cli", BreakIn, "nec-usb-xhci", SeaBios, 4, BehindHub),
    ]
}

/// Classification of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every step passed and QEMU exited with the success code.
    Pass,
    /// A deadline passed.
    Hang,
    /// Wrong output or exit code.
    Fail,
    /// Not run: the cell means nothing on its machine
    /// ([`Scenario::skip_reason`]). Never the outcome of a run.
    Skip,
}

impl Verdict {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Hang => "hang",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// Result of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The cell.
    pub scenario: Scenario,
    /// Repetition index.
    pub rep: usize,
    /// Classification.
    pub verdict: Verdict,
    /// Why it did not pass (or was skipped); empty on pass.
    pub reason: String,
    /// Panic-to-prompt in ms: the kernel's own figure if it prints one,
    /// else host wall time from seeing `PANIC on cpu` to seeing `db> `.
    pub panic_to_prompt_ms: Option<f64>,
    /// `kernel` or `host` (where `panic_to_prompt_ms` comes from).
    pub prompt_source: &'static str,
    /// Host wall time from `PANIC on cpu` until the first key typed on the
    /// USB keyboard was echoed at `db> ` (the keyboard is usable).
    pub usb_ready_ms: Option<f64>,
    /// Seconds the whole run took.
    pub wall_s: f64,
    /// Console and QMP logs kept for a hang or failure.
    pub logs: Vec<PathBuf>,
}

/// Matrix options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Repetitions per cell.
    pub reps: usize,
    /// Parallel QEMU instances.
    pub jobs: usize,
    /// Output directory (logs of hangs and failures go to `logs/` in it).
    pub out: PathBuf,
    /// Print a progress line (rewritten in place) to stderr.
    pub progress: bool,
}

impl Options {
    /// Defaults: 1 rep, one job per core, `target/matrix`, no progress.
    pub fn new() -> Self {
        Self {
            reps: 1,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/matrix"),
            progress: false,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `scenarios` x `opts.reps` on `opts.jobs` worker threads and returns
/// every result (skips included), in completion order.
pub fn run(scenarios: &[Scenario], opts: &Options) -> Vec<RunResult> {
    let _ = std::fs::create_dir_all(opts.out.join("logs"));
    let mut results = Vec::new();
    let mut queue = VecDeque::new();
    for rep in 0..opts.reps {
        for s in scenarios {
            match s.skip_reason() {
                Some(reason) => results.push(RunResult::skipped(s, rep, reason)),
                None => queue.push_back((s.clone(), rep)),
            }
        }
    }
    let total = queue.len();
    let queue = Arc::new(Mutex::new(queue));
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    for _ in 0..opts.jobs.max(1).min(total.max(1)) {
        let queue = queue.clone();
        let tx = tx.clone();
        let out = opts.out.clone();
        workers.push(std::thread::spawn(move || {
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((s, rep)) = next else { break };
                if tx.send(run_one(&s, rep, &out)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let start = Instant::now();
    let (mut pass, mut hang, mut fail, mut skip) = (0, 0, 0, 0);
    for (done, r) in rx.iter().enumerate() {
        match r.verdict {
            Verdict::Pass => pass += 1,
            Verdict::Hang => hang += 1,
            Verdict::Fail => fail += 1,
            Verdict::Skip => skip += 1,
        }
        if opts.progress {
            let done = done + 1;
            let el = start.elapsed().as_secs_f64();
            let eta = el / done as f64 * (total - done) as f64;
            if r.verdict != Verdict::Pass {
                eprint!(
                    "\r\x1b[K{} {} rep {}: {}\n",
                    r.verdict.name().to_uppercase(),
                    r.scenario.name(),
                    r.rep,
                    r.reason
                );
            }
            eprint!(
                "\r\x1b[K[{done}/{total}] pass {pass} hang {hang} fail {fail} skip {skip} | {:.0}s elapsed, ~{:.0}s left | {}",
                el,
                eta,
                r.scenario.name()
            );
        }
        results.push(r);
    }
    if opts.progress {
        eprintln!();
    }
    for w in workers {
        let _ = w.join();
    }
    results
}

impl RunResult {
    fn new(s: &Scenario, rep: usize, verdict: Verdict, reason: String) -> Self {
        Self {
            scenario: s.clone(),
            rep,
            verdict,
            reason,
            panic_to_prompt_ms: None,
            prompt_source: "",
            usb_ready_ms: None,
            wall_s: 0.0,
            logs: Vec::new(),
        }
    }

    /// A cell not run, with the reason ([`Scenario::skip_reason`]).
    pub fn skipped(s: &Scenario, rep: usize, reason: &str) -> Self {
        Self::new(s, rep, Verdict::Skip, reason.into())
    }
}

/// Runs one cell, or skips it if it means nothing on its machine
/// ([`Scenario::skip_reason`]): what [`run`] does for each cell and
/// repetition, on the calling thread.
pub fn run_cell(s: &Scenario, rep: usize, out: &Path) -> RunResult {
    match s.skip_reason() {
        Some(reason) => RunResult::skipped(s, rep, reason),
        None => {
            let _ = std::fs::create_dir_all(out.join("logs"));
            run_one(s, rep, out)
        }
    }
}

/// Boots one cell and drives it; never panics on a guest problem. A
/// trigger the kernel does not have is a failure, not a skip.
pub fn run_one(s: &Scenario, rep: usize, out: &Path) -> RunResult {
    let started = Instant::now();
    let mut r = RunResult::new(s, rep, Verdict::Pass, String::new());
    r.prompt_source = "host";
    if !triggers().any(|t| t == s.trigger) {
        r.verdict = Verdict::Fail;
        r.reason = format!(
            "trigger {} is not in this kernel's TRIGGERS (kernel/src/panic/trigger_list.rs)",
            s.trigger
        );
        return r;
    }
    let mut cfg = Config::new(crate::KERNEL_ELF);
    cfg.smp = s.smp;
    cfg.controller = s.controller.clone();
    cfg.firmware = s.firmware;
    cfg.keyboard = s.keyboard;
    if s.session != Session::BreakIn {
        cfg.append = format!("trigger={}", s.trigger);
    }
    let tag = format!("matrix-{}-r{rep}", s.name().replace('/', "-"));
    let mut vm = match Vm::try_start(&tag, cfg) {
        Ok(vm) => vm,
        Err(err) => {
            let (vm, e) = *err;
            r.verdict = Verdict::Fail;
            r.reason = e;
            if let Some(vm) = vm {
                keep_logs(&vm, &tag, out, &mut r);
            }
            r.wall_s = started.elapsed().as_secs_f64();
            return r;
        }
    };
    match session::drive(&mut vm, s, &mut r) {
        Ok(()) => {}
        Err(e) => {
            r.verdict = if e.starts_with("HANG") {
                Verdict::Hang
            } else {
                Verdict::Fail
            };
            r.reason = e;
            keep_logs(&vm, &tag, out, &mut r);
        }
    }
    r.wall_s = started.elapsed().as_secs_f64();
    r
}

fn keep_logs(vm: &Vm, tag: &str, out: &Path, r: &mut RunResult) {
    let console = out.join("logs").join(format!("{tag}.console.log"));
    let qmp = out.join("logs").join(format!("{tag}.qmp.log"));
    if vm.save_logs(&console, &qmp).is_ok() {
        r.logs = vec![console, qmp];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_named_here_is_a_kernel_trigger() {
        let kernel: Vec<_> = triggers().collect();
        assert!(
            kernel.contains(&"plain") && kernel.contains(&"nmi"),
            "{kernel:?}"
        );
        for t in NEED_SMP.iter().chain(NEED_AP_START) {
            assert!(kernel.contains(t), "{t} is not a kernel trigger");
        }
        for s in representative() {
            assert!(
                kernel.contains(&s.trigger.as_str()),
                "{} is not a kernel trigger",
                s.trigger
            );
        }
    }

    #[test]
    fn only_single_cpu_cells_of_multi_cpu_triggers_are_skipped() {
        let skipped: Vec<_> = all_scenarios()
            .into_iter()
            .filter(|s| s.skip_reason().is_some())
            .collect();
        let multi_cpu = |s: &Scenario| {
            s.smp == 1
                && (NEED_SMP.contains(&s.trigger.as_str())
                    || NEED_AP_START.contains(&s.trigger.as_str()))
        };
        let command_line_break_in = |s: &Scenario| {
            s.session == Session::BreakIn && COMMAND_LINE_ONLY.contains(&s.trigger.as_str())
        };
        assert!(
            skipped
                .iter()
                .all(|s| multi_cpu(s) || command_line_break_in(s))
        );
        let machines = CONTROLLERS.len() * FIRMWARES.len() * KEYBOARDS.len();
        let smp1 = (NEED_SMP.len() + NEED_AP_START.len()) * 3 * machines;
        // `early` at every CPU count, `ap-start` past smp 1 (counted above).
        let break_in = (SMPS.len() + SMPS.len() - 1) * machines;
        assert_eq!(skipped.len(), smp1 + break_in);
    }
}
