//! The hang-regression matrix as tests: every cell of
//! [`matrix::all_scenarios`] is a test of its own, named
//! `trigger/session/controller/firmware/smpN/attachment`
//! ([`matrix::Scenario::name`]). The representative cells
//! ([`matrix::representative`]) run by default, so `cargo test` stays fast;
//! every other cell is ignored, and
//! `cargo nextest run --test matrix --run-ignored all --partition hash:K/N`
//! runs one N-th of the whole matrix on each of N machines. (`cargo run --
//! matrix` is the one-machine front end with its table, JSON and SVG.)
//!
//! A cell that hangs or fails prints the reason, the saved console and QMP
//! logs and the last console lines. A cell that means nothing on its machine
//! (a trigger that needs a second CPU, on `-smp 1`) is reported ignored at
//! run time with the reason; a kernel without the trigger or without `dump`
//! is a failure.
//!
//! Stable Rust has no custom test frameworks, so this is a `harness = false`
//! target built on `libtest-mimic`, which speaks libtest's command line
//! (`--list`, `--ignored`, `--include-ignored`, `--exact`, filters) for both
//! `cargo test` and `cargo nextest`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use panicbench::matrix::{self, Options, RunResult, Scenario, Verdict};
use panicbench::report;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let out = Options::new().out.join("tests");
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut trials = vec![
        Trial::test(
            "matrix_covers_every_dimension_and_filters_by_component",
            matrix_covers_every_dimension_and_filters_by_component,
        ),
        Trial::test(
            "representative_cells_are_cells_of_the_matrix",
            representative_cells_are_cells_of_the_matrix,
        ),
    ];
    let representative: BTreeSet<String> = matrix::representative()
        .iter()
        .map(Scenario::name)
        .collect();
    for s in matrix::all_scenarios() {
        let ignored = !representative.contains(&s.name());
        let (out, results) = (out.clone(), results.clone());
        trials.push(
            Trial::ignorable_test(s.name(), move || run_cell(&s, &out, &results))
                .with_ignored_flag(ignored),
        );
    }
    let conclusion = libtest_mimic::run(&args, trials);
    summarize(&results.lock().unwrap_or_else(|e| e.into_inner()), &out);
    conclusion.exit_code()
}

/// Runs one cell; an emulator crash (QEMU killed by a signal) is said
/// loudly and run once more, like the other QEMU tests do; hangs, wrong
/// output and wrong exit codes are never retried.
fn run_cell(
    s: &Scenario,
    out: &Path,
    results: &Mutex<Vec<RunResult>>,
) -> Result<Completion, Failed> {
    let mut r = matrix::run_cell(s, 0, out);
    if r.verdict == Verdict::Fail && r.reason.contains("QEMU exited (signal:") {
        eprintln!(
            "EMULATOR CRASH in {} (QEMU died of a signal, not a kernel failure); retrying once:\n{}",
            s.name(),
            r.reason
        );
        r = matrix::run_cell(s, 1, out);
    }
    results
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(r.clone());
    match r.verdict {
        Verdict::Pass => {
            println!(
                "{}: pass in {:.1} s; panic-to-prompt {} ms ({}), USB keyboard ready {} ms after the panic",
                s.name(),
                r.wall_s,
                ms(r.panic_to_prompt_ms),
                r.prompt_source,
                ms(r.usb_ready_ms)
            );
            Ok(Completion::Completed)
        }
        Verdict::Skip => Ok(Completion::ignored_with(r.reason)),
        Verdict::Hang | Verdict::Fail => Err(failure(&r).into()),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

/// The failure message: verdict, reason, log paths, last console lines.
fn failure(r: &RunResult) -> String {
    let mut m = format!(
        "{} {} (rep {}, after {:.1} s): {}",
        r.verdict.name().to_uppercase(),
        r.scenario.name(),
        r.rep,
        r.wall_s,
        r.reason
    );
    if r.logs.is_empty() {
        m += "\nno logs saved (QEMU did not start)";
    }
    for log in &r.logs {
        m += &format!("\nlog: {}", log.display());
    }
    if let Some(console) = r.logs.first()
        && let Ok(text) = std::fs::read_to_string(console)
    {
        let lines: Vec<&str> = text.lines().collect();
        m += "\n--- last 20 console lines ---\n";
        m += &lines[lines.len().saturating_sub(20)..].join("\n");
    }
    m
}

/// With more than one cell run in this process (`cargo test`, or
/// `--ignored` without nextest), prints the matrix table and writes
/// matrix.json, matrix.svg and summary.txt, as `cargo run -- matrix` does.
/// Under nextest every cell is a process of its own: nothing to sum up.
fn summarize(results: &[RunResult], out: &Path) {
    if results.len() < 2 {
        return;
    }
    println!("{}", report::table(results));
    match report::write(results, out) {
        Ok(()) => println!("matrix results written to {}", out.display()),
        Err(e) => eprintln!("writing matrix results to {}: {e}", out.display()),
    }
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(why().into()) }
}

fn matrix_covers_every_dimension_and_filters_by_component() -> Result<(), Failed> {
    let all = matrix::all_scenarios();
    // Three sessions: console, dump, breakin.
    let want = matrix::triggers().len()
        * 3
        * matrix::CONTROLLERS.len()
        * matrix::FIRMWARES.len()
        * matrix::SMPS.len()
        * matrix::KEYBOARDS.len();
    check(all.len() == want && want == 18 * 3 * 2 * 2 * 4 * 2, || {
        format!("{} cells, expected {want} (18 triggers: 1728)", all.len())
    })?;
    let names: BTreeSet<String> = all.iter().map(Scenario::name).collect();
    check(names.len() == all.len(), || {
        "two cells share a name (a test name)".into()
    })?;
    let lock: Vec<_> = all.iter().filter(|s| s.matches("lock")).collect();
    check(lock.iter().all(|s| s.trigger == "lock"), || {
        "`lock` must not select usb-lock".into()
    })?;
    let n = all
        .iter()
        .filter(|s| s.matches("plain,smp4,hub,dump"))
        .count();
    check(n == 4, || format!("plain,smp4,hub,dump selects {n}, not 4"))
}

fn representative_cells_are_cells_of_the_matrix() -> Result<(), Failed> {
    let all: BTreeSet<String> = matrix::all_scenarios().iter().map(Scenario::name).collect();
    let rep = matrix::representative();
    for s in &rep {
        // A representative cell outside the product would silently not run.
        check(all.contains(&s.name()), || {
            format!("representative cell {} is not a matrix cell", s.name())
        })?;
        check(s.skip_reason().is_none(), || {
            format!("representative cell {} is always skipped", s.name())
        })?;
    }
    let covered = |f: &dyn Fn(&Scenario) -> String, all: Vec<String>| -> Result<(), Failed> {
        let seen: BTreeSet<String> = rep.iter().map(f).collect();
        for v in all {
            check(seen.contains(&v), || {
                format!("no representative cell has {v}")
            })?;
        }
        Ok(())
    };
    covered(
        &|s| s.controller.clone(),
        matrix::CONTROLLERS.iter().map(|c| c.to_string()).collect(),
    )?;
    covered(
        &|s| matrix::firmware_name(s.firmware).into(),
        matrix::FIRMWARES
            .iter()
            .map(|&f| matrix::firmware_name(f).into())
            .collect(),
    )?;
    covered(
        &|s| s.smp.to_string(),
        matrix::SMPS.iter().map(|n| n.to_string()).collect(),
    )?;
    covered(
        &|s| matrix::keyboard_name(s.keyboard).into(),
        matrix::KEYBOARDS
            .iter()
            .map(|&k| matrix::keyboard_name(k).into())
            .collect(),
    )?;
    covered(
        &|s| s.session_name().into(),
        vec!["console".into(), "dump".into(), "breakin".into()],
    )
}
