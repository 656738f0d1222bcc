//! `cargo run -- matrix [--reps N] [--jobs J] [--filter S] [--out DIR] [--list]`.

use std::path::PathBuf;
use std::time::Instant;

use crate::matrix::{self, Options, Verdict};
use crate::report;

const HELP: &str = "\
usage: cargo run [--release] -- matrix [--reps N] [--jobs J] [--filter TERMS] [--out DIR] [--list]

Runs every panic trigger x controller x firmware x -smp x keyboard attachment
x session (typed console, dump) N times as parallel QEMU instances, then
prints a summary and writes matrix.json, matrix.svg, summary.txt and the logs
of every hang or failure (logs/) into DIR (default target/matrix).

  --reps N        repetitions per cell (default 1)
  --jobs J        parallel QEMUs (default: number of cores)
  --filter TERMS  comma-separated terms that must all match: a term without
                  '/' equals one name component (plain, dump, nec-usb-xhci,
                  qboot, smp4, hub, ...), a term with '/' is a substring of
                  trigger/session/controller/firmware/smpN/attachment
  --out DIR       output directory
  --list          print the selected cells and exit
exit status: 0 when nothing hung or failed, 1 otherwise, 2 for bad usage.";

/// What the command line asks for.
struct Request {
    opts: Options,
    filter: String,
    list: bool,
}

/// Parses the matrix options; `Err(status)` to exit with (0 after `--help`).
fn parse_args(args: &[String]) -> Result<Request, i32> {
    let mut req = Request {
        opts: Options::new(),
        filter: String::new(),
        list: false,
    };
    req.opts.progress = true;
    let count = |v: String, what: &'static str| v.parse().ok().filter(|&n| n >= 1).ok_or(what);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |n: &str| it.next().cloned().ok_or(format!("{n} needs a value"));
        let r: Result<(), String> = match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Err(0);
            }
            "--reps" => value("--reps")
                .and_then(|v| count(v, "--reps takes N >= 1").map_err(String::from))
                .map(|n| req.opts.reps = n),
            "--jobs" | "-j" => value("--jobs")
                .and_then(|v| count(v, "--jobs takes J >= 1").map_err(String::from))
                .map(|n| req.opts.jobs = n),
            "--filter" => value("--filter").map(|v| req.filter = v),
            "--out" => value("--out").map(|v| req.opts.out = PathBuf::from(v)),
            "--list" => {
                req.list = true;
                Ok(())
            }
            other => Err(format!("unknown matrix option {other:?} (try --help)")),
        };
        if let Err(e) = r {
            eprintln!("error: {e}");
            return Err(2);
        }
    }
    Ok(req)
}

/// Entry point; returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    let Request { opts, filter, list } = match parse_args(args) {
        Ok(r) => r,
        Err(status) => return status,
    };
    let cells: Vec<_> = matrix::all_scenarios()
        .into_iter()
        .filter(|s| s.matches(&filter))
        .collect();
    if cells.is_empty() {
        eprintln!("error: --filter {filter:?} selects no cell");
        return 2;
    }
    if list {
        for s in &cells {
            match s.skip_reason() {
                Some(r) => println!("{}  (skip: {r})", s.name()),
                None => println!("{}", s.name()),
            }
        }
        return 0;
    }
    if let Err(e) = crate::qemu::check_qemu() {
        eprintln!("error: {e}");
        return 2;
    }
    eprintln!(
        "matrix: {} cells x {} reps, {} parallel QEMUs, kernel {}, triggers: {}",
        cells.len(),
        opts.reps,
        opts.jobs,
        crate::KERNEL_ELF,
        matrix::triggers().collect::<Vec<_>>().join(" ")
    );
    let start = Instant::now();
    let results = matrix::run(&cells, &opts);
    let took = start.elapsed();
    println!("{}", report::table(&results));
    println!(
        "matrix took {:.0} s ({:.1} min) for {} runs ({} skipped) with {} jobs",
        took.as_secs_f64(),
        took.as_secs_f64() / 60.0,
        results.len(),
        results
            .iter()
            .filter(|r| r.verdict == Verdict::Skip)
            .count(),
        opts.jobs
    );
    match report::write(&results, &opts.out) {
        Ok(()) => println!(
            "wrote {0}/matrix.json, {0}/matrix.svg, {0}/summary.txt",
            opts.out.display()
        ),
        Err(e) => eprintln!("error: writing results to {}: {e}", opts.out.display()),
    }
    let bad = results
        .iter()
        .any(|r| matches!(r.verdict, Verdict::Hang | Verdict::Fail));
    i32::from(bad)
}
