//! What one matrix run types at the panic console and what it expects:
//! the trigger's own preamble (a hot-plug, a key press), the panic banner,
//! the state of the other CPUs, then the console or dump session and
//! `poweroff`. Every failure is an `Err` whose text starts with `HANG` when
//! a deadline passed.

use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::json;

use super::{RunResult, Scenario, Session};
use crate::harness::{EXIT_SUCCESS, Vm};
use crate::qemu::Keyboard;

/// Time to boot to the panic (TCG, other VMs competing for the cores).
const BOOT: Duration = Duration::from_secs(120);
/// Time for one console step.
const STEP: Duration = Duration::from_secs(30);
/// Time for a minimal dump.
const DUMP: Duration = Duration::from_secs(120);

/// Extra gap between key events typed by the matrix (`MATRIX_KEY_GAP_MS`,
/// default 0), on top of the harness's own 12 ms (usb-kbd is polled every
/// 10 ms).
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

/// `db> ` means ready: the first key typed after the prompt must echo, at
/// once and without retries (the prompt comes only once every attached
/// keyboard is armed, an early panic's and a hot-plugged one's included).
/// The probe is then erased. A missing echo is a failure, not a retry.
fn first_key_echoes(vm: &mut Vm) -> Result<(), String> {
    tap(vm, "x")?;
    vm.try_expect(r"\Ax", Duration::from_secs(5)).map_err(|_| {
        "the first key typed after db> did not echo (db> was not ready)".to_string()
    })?;
    tap(vm, "backspace")?;
    std::thread::sleep(Duration::from_millis(50));
    // Skip the erase echo.
    let _ = vm.try_expect(
        r"\A[\x08\x7f \x1b\[0-9;A-Za-z]*",
        Duration::from_millis(300),
    );
    Ok(())
}

/// The banner that starts the report. `fmt` panics while formatting the
/// message, so its report is the nested panic's alone.
fn panic_banner(trigger: &str) -> &'static str {
    match trigger {
        "fmt" => r"NESTED PANIC \(depth 1\) on cpu",
        _ => "PANIC on cpu",
    }
}

/// Checks the report's word on the other CPUs: none may be left running,
/// except the one `deaf` makes ignore the stop, which must be named in the
/// report and above the prompt. Returns the CPUs that did not stop.
fn check_stopped(s: &Scenario, report: &str) -> Result<Vec<u32>, String> {
    let running: Vec<u32> = Regex::new(r"cpu (\d+): did not stop")
        .expect("static regex")
        .captures_iter(report)
        .filter_map(|c| c[1].parse().ok())
        .collect();
    if s.trigger != "deaf" {
        if !running.is_empty() {
            return Err(format!("CPUs {running:?} did not stop"));
        }
        return Ok(running);
    }
    if running.len() != 1 {
        return Err(format!(
            "trigger deaf: expected one CPU that did not stop, the report names {running:?}"
        ));
    }
    let warning = format!("WARNING: cpu {} did not stop", running[0]);
    if !report.contains(&warning) {
        return Err(format!("trigger deaf: no {warning:?} above the prompt"));
    }
    Ok(running)
}

/// What `regs 1` must answer.
fn regs_1_pattern(s: &Scenario, running: &[u32]) -> &'static str {
    match s.trigger.as_str() {
        _ if s.smp == 1 => r"(?s)regs: no such CPU.*?db> ",
        // The early panic comes before the other CPUs are started.
        "early" => r"(?s)regs: cpu 1 has no saved registers \(absent\).*?db> ",
        // CPU 1 was starting; it parks on arrival without saving registers
        // (or has not arrived yet).
        "ap-start" => {
            r"(?s)regs: cpu 1 has no saved registers \((?:stopped \(on arrival\)|starting)\).*?db> "
        }
        "deaf" if running.contains(&1) => {
            r"(?s)regs: cpu 1 has no saved registers \(online\).*?db> "
        }
        _ => r"(?s)cpu 1 registers:\n\s+rax 0x.*?db> ",
    }
}

/// Judges the answer to `dump`: only a complete dump passes; a kernel
/// without the command, without a dump device, or failing to write fails.
pub(super) fn judge_dump(out: &str) -> Result<(), String> {
    if out.starts_with("dump: complete") {
        Ok(())
    } else if out.starts_with("unknown command") {
        Err("this kernel has no `dump` command (a dump session needs one)".into())
    } else {
        Err(format!("dump did not complete: {out}"))
    }
}

/// The break-in session's first part: at `shell>`, `break`; at its `db>`,
/// `cpus` (every other CPU stopped by the IPI) and `continue`; a line typed
/// at the shell again; then the cell's trigger as `panic KIND`.
fn break_in_first(vm: &mut Vm, s: &Scenario) -> Result<(), String> {
    vm.try_expect("shell> ", BOOT)?;
    let end = Instant::now() + STEP;
    for n in 0.. {
        let probe = format!("probe{n}");
        if typed(
            vm,
            &probe,
            &format!("unknown command: {probe}\n"),
            Duration::from_millis(700),
        )
        .is_ok()
        {
            break;
        }
        if Instant::now() > end {
            return Err("HANG: the USB keyboard never typed a line at shell>".into());
        }
    }
    typed(vm, "break", r"break-in: `break` command on cpu \d+", STEP)?;
    vm.try_expect("db> ", STEP)?;
    let mut pat = String::from("(?s)");
    for c in 0..s.smp {
        pat += &format!(r"cpu {c}: .*?");
    }
    pat += "db> ";
    let cpus = typed(vm, "cpus", &pat, STEP)?;
    let stopped = cpus.matches("stopped (ipi)").count();
    if stopped + 1 != s.smp as usize {
        return Err(format!(
            "break-in: {stopped} of {} other CPUs stopped by the IPI:\n{cpus}",
            s.smp - 1
        ));
    }
    typed(vm, "continue", r"continuing after \d+ ms stopped", STEP)?;
    typed(vm, "echo resumed", "\nresumed\n", STEP)?;
    vm.try_expect("shell> ", STEP)?;
    type_text(vm, &format!("panic {}\n", s.trigger))
}

/// Drives one booted cell to its `poweroff`.
pub(super) fn drive(vm: &mut Vm, s: &Scenario, r: &mut RunResult) -> Result<(), String> {
    if s.session == Session::BreakIn {
        break_in_first(vm, s)?;
    }
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
    let banner = panic_banner(&s.trigger);
    vm.try_expect(banner, BOOT)?;
    let panic_seen = Instant::now();
    if s.keyboard == Keyboard::None {
        vm.try_expect("db> ", STEP)?;
    } else {
        // a keyboard the panic caught mid-enumeration is announced later
        vm.try_expect_usb_keyboard_ready(STEP)?;
    }
    r.panic_to_prompt_ms = Some(panic_seen.elapsed().as_secs_f64() * 1e3);
    let text = vm.console();
    if let Some(c) = Regex::new(r"panic-to-prompt:? (\d+) us")
        .expect("static regex")
        .captures(&text)
    {
        r.panic_to_prompt_ms = c[1].parse::<f64>().ok().map(|us| us / 1e3);
        r.prompt_source = "kernel";
    }
    // The report and what follows it, not the boot log.
    let report_at = Regex::new(banner)
        .expect("static regex")
        .find(&text)
        .map_or(0, |m| m.start());
    let running = check_stopped(s, &text[report_at..])?;
    first_key_echoes(vm)?;
    r.usb_ready_ms = Some(panic_seen.elapsed().as_secs_f64() * 1e3);
    match s.session {
        Session::Console | Session::BreakIn => {
            let mut pat = String::from("(?s)");
            for c in 0..s.smp {
                pat += &format!(r"cpu {c}: .*?");
            }
            pat += "db> ";
            typed(vm, "cpus", &pat, STEP)?;
            typed(vm, "bt", r"(?s)backtrace.*?db> ", STEP)?;
            typed(vm, "regs 1", regs_1_pattern(s, &running), STEP)?;
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
            judge_dump(&out)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Firmware;

    fn cell(trigger: &str, smp: u32) -> Scenario {
        Scenario {
            trigger: trigger.into(),
            session: Session::Console,
            controller: "qemu-xhci".into(),
            firmware: Firmware::Qboot,
            smp,
            keyboard: Keyboard::RootPort,
        }
    }

    #[test]
    fn a_kernel_without_dump_fails_the_dump_session() {
        assert!(judge_dump("dump: complete: 123 bytes").is_ok());
        for out in [
            "unknown command: dump",
            "dump: no dump device",
            "dump: failed after 0 bytes",
        ] {
            assert!(judge_dump(out).is_err(), "{out}");
        }
    }

    #[test]
    fn only_deaf_may_leave_a_cpu_running_and_must_name_it() {
        let stopped = "PANIC on cpu 0: x\ncpu 1: stopped (ipi) at RIP 0x1\n";
        let running = "PANIC on cpu 0: x\ncpu 1: did not stop (no answer)\n";
        let warned = format!("{running}WARNING: cpu 1 did not stop; it may\ndb> ");
        assert_eq!(check_stopped(&cell("plain", 2), stopped), Ok(vec![]));
        assert!(check_stopped(&cell("plain", 2), running).is_err());
        assert!(check_stopped(&cell("deaf", 2), stopped).is_err());
        assert!(
            check_stopped(&cell("deaf", 2), running).is_err(),
            "no warning"
        );
        assert_eq!(check_stopped(&cell("deaf", 2), &warned), Ok(vec![1]));
        assert!(regs_1_pattern(&cell("deaf", 2), &[1]).contains(r"\(online\)"));
    }
}
