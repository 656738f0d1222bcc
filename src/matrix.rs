//! The hang-regression matrix (`cargo run -- matrix`): every panic trigger x
//! controller x firmware x `-smp` x keyboard attachment x session kind, N
//! times each, as parallel QEMU instances. Each run boots with
//! `trigger=KIND`, waits for the panic console, types a session on the USB
//! keyboard through QMP only, powers off and is classified pass, hang (a
//! deadline passed), fail (wrong output or exit code) or skip (with a reason).
//! [`crate::report`] turns the results into a table, JSON and an SVG chart.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::json;

use crate::harness::{EXIT_SUCCESS, Vm};
use crate::qemu::{Config, Firmware, Keyboard};

/// Every trigger the matrix knows, in the kernel's order.
pub const TRIGGERS: &[&str] = &[
    "plain", "lock", "irq", "ap", "all", "cli", "nested", "fault", "early", "usb-lock", "usb-cmd",
    "usb-enum", "usb-irq", "badstack", "fmt", "deaf", "ap-start", "nmi",
];
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
/// (`deaf` and `ap-start` need a second CPU to mean anything: without one
/// there is nothing to ignore the stop, and no AP to catch starting.)
const NEED_SMP: &[&str] = &[
    "lock", "ap", "all", "cli", "usb-lock", "badstack", "deaf", "ap-start",
];

/// Time to boot to the panic (TCG, other VMs competing for the cores).
const BOOT: Duration = Duration::from_secs(120);
/// Time for one console step.
const STEP: Duration = Duration::from_secs(30);
/// Time for a minimal dump.
const DUMP: Duration = Duration::from_secs(120);

/// What is typed at `db> `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// `cpus`, `bt`, `regs 1`, `mem` of a bad address, `poweroff`.
    Console,
    /// `dump`, then `poweroff`.
    Dump,
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

    /// `console` or `dump`.
    pub fn session_name(&self) -> &'static str {
        match self.session {
            Session::Console => "console",
            Session::Dump => "dump",
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

    /// Why this cell is not run, if it is not.
    pub fn skip_reason(&self, kernel_triggers: &[String]) -> Option<String> {
        if !kernel_triggers.contains(&self.trigger) {
            return Some(format!(
                "trigger {} not in this kernel's TRIGGERS",
                self.trigger
            ));
        }
        if self.smp == 1 && NEED_SMP.contains(&self.trigger.as_str()) {
            return Some("needs a second CPU (smp=1 degrades to a plain panic)".into());
        }
        None
    }
}

/// Every cell, in a stable order.
pub fn all_scenarios() -> Vec<Scenario> {
    let mut v = Vec::new();
    for t in TRIGGERS {
        for session in [Session::Console, Session::Dump] {
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
/// simultaneous panic, fault, nested, early) are covered.
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
        s("fmt", Dump, "qemu-xhci", SeaBios, 4, RootPort),
        s("deaf", Console, "nec-usb-xhci", Qboot, 2, BehindHub),
        s("ap-start", Console, "qemu-xhci", Qboot, 4, RootPort),
        s("nmi", Dump, "qemu-xhci", Qboot, 2, BehindHub),
    ]
}

/// The triggers listed in `TRIGGERS` of the kernel source this runner was
/// built with (`kernel/src/panic/trigger.rs`).
pub fn kernel_triggers() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernel/src/panic/trigger.rs");
    let src = std::fs::read_to_string(&path).unwrap_or_default();
    let Some(start) = src.find("pub const TRIGGERS") else {
        return Vec::new();
    };
    let body = &src[start..];
    let body = &body[..body.find("];").unwrap_or(body.len())];
    let re = Regex::new(r#"\(\s*"([a-z0-9-]+)""#).expect("static regex");
    re.captures_iter(body).map(|c| c[1].to_string()).collect()
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
    /// Not run (the reason says why).
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
    let kernel = kernel_triggers();
    let _ = std::fs::create_dir_all(opts.out.join("logs"));
    let mut results = Vec::new();
    let mut queue = VecDeque::new();
    for rep in 0..opts.reps {
        for s in scenarios {
            match s.skip_reason(&kernel) {
                Some(reason) => results.push(RunResult {
                    scenario: s.clone(),
                    rep,
                    verdict: Verdict::Skip,
                    reason,
                    panic_to_prompt_ms: None,
                    prompt_source: "",
                    usb_ready_ms: None,
                    wall_s: 0.0,
                    logs: Vec::new(),
                }),
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

/// Boots one cell and drives it; never panics on a guest problem.
pub fn run_one(s: &Scenario, rep: usize, out: &std::path::Path) -> RunResult {
    let started = Instant::now();
    let mut r = RunResult {
        scenario: s.clone(),
        rep,
        verdict: Verdict::Pass,
        reason: String::new(),
        panic_to_prompt_ms: None,
        prompt_source: "host",
        usb_ready_ms: None,
        wall_s: 0.0,
        logs: Vec::new(),
    };
    let mut cfg = Config::new(crate::KERNEL_ELF);
    cfg.smp = s.smp;
    cfg.controller = s.controller.clone();
    cfg.firmware = s.firmware;
    cfg.keyboard = s.keyboard;
    cfg.append = format!("trigger={}", s.trigger);
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
    match drive(&mut vm, s, &mut r) {
        Ok(()) => {}
        Err(e) => {
            r.verdict = if e.starts_with("HANG") {
                Verdict::Hang
            } else if e.starts_with("SKIP") {
                Verdict::Skip
            } else {
                Verdict::Fail
            };
            r.reason = e;
            if r.verdict != Verdict::Skip {
                keep_logs(&vm, &tag, out, &mut r);
            }
        }
    }
    r.wall_s = started.elapsed().as_secs_f64();
    r
}

fn keep_logs(vm: &Vm, tag: &str, out: &std::path::Path, r: &mut RunResult) {
    let console = out.join("logs").join(format!("{tag}.console.log"));
    let qmp = out.join("logs").join(format!("{tag}.qmp.log"));
    if vm.save_logs(&console, &qmp).is_ok() {
        r.logs = vec![console, qmp];
    }
}

/// Gap between key events typed by the matrix (`MATRIX_KEY_GAP_MS`,
/// default 12 ms like the harness: usb-kbd is polled every 10 ms).
fn key_gap() -> Duration {
    Duration::from_millis(
        std::env::var("MATRIX_KEY_GAP_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// One key press and release on the USB keyboard.
fn tap(vm: &mut Vm, qcode: &str) -> Result<(), String> {
    vm.try_key(qcode, true)?;
    std::thread::sleep(key_gap());
    vm.try_key(qcode, false)?;
    std::thread::sleep(key_gap());
    Ok(())
}

/// Types text on the USB keyboard (Shift for capitals and symbols).
fn type_text(vm: &mut Vm, text: &str) -> Result<(), String> {
    for c in text.chars() {
        let Some((code, shift)) = crate::qmp::qcode_for(c) else {
            return Err(format!("type_text: no key for {c:?}"));
        };
        if shift {
            vm.try_key("shift", true)?;
        }
        tap(vm, code)?;
        if shift {
            vm.try_key("shift", false)?;
        }
    }
    Ok(())
}

/// Types a line on the USB keyboard and waits for `pattern`.
fn typed(vm: &mut Vm, line: &str, pattern: &str, deadline: Duration) -> Result<String, String> {
    type_text(vm, &format!("{line}\n"))?;
    vm.try_expect(pattern, deadline)
        .map_err(|e| format!("{e} after typing {line:?}"))
}

/// Types one probe key until the panic console echoes it (the USB keyboard
/// may still be enumerating after an early panic or a hot-plug), then
/// erases it. Returns when the keyboard works, or a HANG.
fn wait_usb_ready(vm: &mut Vm) -> Result<(), String> {
    let end = Instant::now() + STEP;
    loop {
        tap(vm, "x")?;
        if vm
            .try_expect(r"(?:\A|db> |\n)x\z", Duration::from_millis(700))
            .is_ok()
        {
            tap(vm, "backspace")?;
            std::thread::sleep(Duration::from_millis(50));
            // Skip the erase echo.
            let _ = vm.try_expect(
                r"\A[\x08\x7f \x1b\[0-9;A-Za-z]*",
                Duration::from_millis(300),
            );
            return Ok(());
        }
        // A late echo would leave an `x` on the line: erase it.
        tap(vm, "backspace")?;
        if Instant::now() > end {
            return Err("HANG: the USB keyboard never echoed a key at db> ".into());
        }
    }
}

fn drive(vm: &mut Vm, s: &Scenario, r: &mut RunResult) -> Result<(), String> {
    match s.trigger.as_str() {
        "usb-enum" => {
            vm.try_expect("usb-enum: plug in a USB keyboard now", BOOT)?;
            let mut dev = json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd-hot"});
            if s.keyboard == Keyboard::BehindHub {
                dev["port"] = json!("1.2");
            }
            vm.qmp("device_add", dev)
                .map_err(|e| format!("QMP device_add: {e}"))?;
        }
        "usb-irq" => {
            vm.try_expect("usb-irq: press a key on the USB keyboard", BOOT)?;
            tap(vm, "a")?;
        }
        _ => {}
    }
    // `fmt` panics inside its own message: the report is the nested one.
    vm.try_expect(r"PANIC (?:\(depth 1\) )?on cpu", BOOT)?;
    let panic_seen = Instant::now();
    vm.try_expect("db> ", STEP)?;
    r.panic_to_prompt_ms = Some(panic_seen.elapsed().as_secs_f64() * 1e3);
    let text = vm.console();
    if let Some(c) = Regex::new(r"panic-to-prompt:? (\d+) us")
        .expect("static regex")
        .captures(&text)
    {
        r.panic_to_prompt_ms = c[1].parse::<f64>().ok().map(|us| us / 1e3);
        r.prompt_source = "kernel";
    }
    match (s.trigger.as_str(), text.contains("did not stop")) {
        ("deaf", false) => return Err("the deaf CPU was not reported as not stopped".into()),
        ("deaf", true) => {}
        (_, true) => return Err("a CPU did not stop".into()),
        (_, false) => {}
    }
    wait_usb_ready(vm)?;
    r.usb_ready_ms = Some(panic_seen.elapsed().as_secs_f64() * 1e3);
    match s.session {
        Session::Console => {
            let mut pat = String::from("(?s)");
            for c in 0..s.smp {
                pat += &format!(r"cpu {c}: .*?");
            }
            pat += "db> ";
            typed(vm, "cpus", &pat, STEP)?;
            typed(vm, "bt", r"(?s)backtrace.*?db> ", STEP)?;
            if s.smp > 1 && s.trigger == "early" {
                // The early panic comes before the other CPUs are started.
                typed(
                    vm,
                    "regs 1",
                    r"(?s)regs: cpu 1 has no saved registers \(absent\).*?db> ",
                    STEP,
                )?;
            } else if s.smp > 1 && s.trigger == "ap-start" {
                // CPU 1 was starting and parked itself on arrival.
                typed(
                    vm,
                    "regs 1",
                    r"(?s)regs: cpu 1 has no saved registers \(stopped \(on arrival\)\).*?db> ",
                    STEP,
                )?;
            } else if s.smp > 1 && s.trigger == "deaf" {
                // CPU 1 never stopped, so it saved nothing.
                typed(
                    vm,
                    "regs 1",
                    r"(?s)regs: cpu 1 has no saved registers \(online\).*?db> ",
                    STEP,
                )?;
            } else if s.smp > 1 {
                typed(
                    vm,
                    "regs 1",
                    r"(?s)cpu 1 registers:\n\s+rax 0x.*?db> ",
                    STEP,
                )?;
            } else {
                typed(vm, "regs 1", r"(?s)regs: no such CPU.*?db> ", STEP)?;
            }
            let out = typed(vm, "mem 0xdead0000dead0000", r"(?s)mem: .*?db> ", STEP)?;
            if !(out.contains("not a canonical address") || out.contains("not mapped")) {
                return Err(format!("mem of a bad address answered: {out:?}"));
            }
        }
        Session::Dump => {
            let out = typed(
                vm,
                "dump",
                r"dump: complete: [^\n]*|unknown command: dump|dump: no dump device|dump: failed[^\n]*|dump: I/O error[^\n]*",
                DUMP,
            )?;
            if out.starts_with("unknown command") {
                return Err("SKIP: no dump support in this kernel".into());
            }
            if !out.starts_with("dump: complete") {
                return Err(format!("dump did not complete: {out}"));
            }
            vm.try_expect("db> ", STEP)?;
        }
    }
    type_text(vm, "poweroff")?;
    // QEMU may exit between the press and the release of Enter: a QMP error
    // here is not a failure; the exit status decides.
    let _ = tap(vm, "ret");
    let code = vm.try_wait_exit(STEP)?;
    if code != EXIT_SUCCESS {
        return Err(format!("QEMU exit status {code}, expected {EXIT_SUCCESS}"));
    }
    Ok(())
}
