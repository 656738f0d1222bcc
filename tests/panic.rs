//! Stop-the-world panic tests (issue: stop on panic). Each trigger, repeated,
//! must print the report, stop every other CPU (the `cli` one by NMI) and
//! leave a `db> ` prompt that still answers serial input.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

fn panic_once(kind: &str, smp: u32, rep: usize) {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = smp;
    cfg.firmware = if rep.is_multiple_of(2) {
        Firmware::Qboot
    } else {
        Firmware::SeaBios
    };
    cfg.append = format!("trigger={kind}");
    let mut vm = Vm::start(&format!("panic-{kind}-smp{smp}-{rep}"), cfg);
    match kind {
        "usb-enum" => {
            vm.expect("usb-enum: plug in a USB keyboard now", BOOT);
            vm.qmp(
                "device_add",
                serde_json::json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd1"}),
            )
            .unwrap();
        }
        "usb-irq" => {
            vm.expect("usb-irq: press a key on the USB keyboard", BOOT);
            vm.type_text("x");
        }
        _ => {}
    }
    if kind == "fmt" {
        // The message itself panics: the nested report, the world stopped first.
        vm.expect(
            "NESTED PANIC \\(depth 1\\) on cpu 0: test: panic inside the formatting",
            BOOT,
        );
        return finish(vm, smp);
    }
    vm.expect("PANIC on cpu", BOOT);
    let report = vm.expect(r"(?s)backtrace:.*?stop latency: \d+ cycles", STEP);
    for c in 0..smp {
        let is_panicker = vm.console().contains(&format!("PANIC on cpu {c}"));
        let expected = match (kind, c) {
            _ if is_panicker => continue,
            // The early panic comes before the APs start; `ap-start` panics
            // while CPU 1 starts (it parks on arrival) and before the rest.
            ("early", _) | ("ap-start", 2..) => "absent",
            ("ap-start", 1) => "stopped on arrival",
            ("deaf", 1) => "did not stop",
            _ => "stopped",
        };
        assert!(
            report.contains(&format!("cpu {c}: {expected}")),
            "cpu {c} not reported {expected:?}:\n{report}"
        );
    }
    assert!(
        kind == "deaf" || !report.contains("did not stop"),
        "a CPU did not stop:\n{report}"
    );
    if matches!(kind, "cli" | "lock" | "badstack" | "usb-lock" | "usb-cmd") {
        assert!(
            report.contains("stopped (nmi)"),
            "the CPU spinning with interrupts off must be stopped by NMI:\n{report}"
        );
    }
    if kind == "plain" {
        // At boot the other CPUs are idle, halted, as a rule (one may run
        // the report's rehearsal): they are counted stopped at once, and
        // still parked through the stop's code before the report names them
        // (`stopped` above, with a RIP).
        // The rest of the `stop latency` line `report` ends in.
        let line = vm.expect(r"^ \(\d+ us\)[^\n]*\n", STEP);
        assert!(
            regex::Regex::new(r"; [1-9]\d* idle in hlt counted stopped at once")
                .unwrap()
                .is_match(&line),
            "no idle CPU was counted stopped at once:\n{report}{line}"
        );
    }
    if kind == "nested" {
        vm.expect("NESTED PANIC", STEP);
    }
    finish(vm, smp);
}

/// The prompt answers `cpus` (a line per CPU, then the stop's times, which
/// the report leaves out) over serial; power off.
fn finish(mut vm: Vm, smp: u32) {
    vm.expect("db> ", STEP);
    vm.send_serial("cpus\r");
    for c in 0..smp {
        vm.expect(&format!("cpu {c}: apic"), STEP);
    }
    vm.expect(r"stop times \(us\): sent \d+", STEP);
    vm.expect("db> ", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

fn run_trigger(kind: &str, smps: &[u32]) {
    for rep in 0..panicbench::harness::panic_reps() {
        for &smp in smps {
            panicbench::harness::retry_emulator_crash(&format!("panic-{kind}-{smp}-{rep}"), || {
                panic_once(kind, smp, rep)
            });
        }
    }
}

#[test]
fn panic_plain() {
    run_trigger("plain", &[4]);
}

#[test]
fn panic_lock() {
    run_trigger("lock", &[4]);
}

#[test]
fn panic_irq() {
    run_trigger("irq", &[4]);
}

#[test]
fn panic_ap() {
    run_trigger("ap", &[4]);
}

#[test]
fn panic_all() {
    run_trigger("all", &[4, 8]);
}

#[test]
fn panic_cli() {
    run_trigger("cli", &[4, 8]);
}

#[test]
fn panic_nested() {
    run_trigger("nested", &[4]);
}

#[test]
fn panic_fault() {
    run_trigger("fault", &[4]);
}

#[test]
fn panic_early() {
    run_trigger("early", &[2]);
}

#[test]
fn panic_usb_lock() {
    run_trigger("usb-lock", &[4]);
}

#[test]
fn panic_usb_cmd() {
    run_trigger("usb-cmd", &[4]);
}

#[test]
fn panic_usb_enum() {
    run_trigger("usb-enum", &[4]);
}

#[test]
fn panic_usb_irq() {
    run_trigger("usb-irq", &[4]);
}

#[test]
fn panic_badstack() {
    run_trigger("badstack", &[4]);
}

#[test]
fn panic_fmt() {
    run_trigger("fmt", &[4]);
}

#[test]
fn panic_deaf() {
    run_trigger("deaf", &[2]);
}

#[test]
fn panic_ap_start() {
    run_trigger("ap-start", &[4]);
}

/// Every trigger the kernel lists has its test here (10 repetitions over
/// serial), so a new trigger cannot go untested.
#[test]
fn every_kernel_trigger_is_tested_over_serial() {
    let src = include_str!("panic.rs");
    for t in panicbench::matrix::triggers() {
        assert!(
            src.contains(&format!("run_trigger(\"{t}\"")),
            "trigger {t} has no run_trigger test in tests/panic.rs"
        );
    }
}

#[test]
fn panic_from_the_shell_with_a_typed_command() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    let mut vm = Vm::start("panic-shell", cfg);
    vm.expect("shell> ", BOOT);
    vm.send_serial("panic\r");
    vm.expect(
        "PANIC on cpu 0 \\(thread \\d+ \"main\"\\): test: plain panic",
        STEP,
    );
    vm.expect("db> ", STEP);
    vm.send_serial("bogus\r");
    vm.expect("unknown command: bogus", STEP);
    vm.send_serial("mem 0x4000deadb000 16\r");
    vm.expect("is not mapped", STEP);
    vm.send_serial("mem 0x8000000000000000\r");
    vm.expect("not a canonical address", STEP);
    vm.send_serial("bt 99\r");
    vm.expect("bt: no such CPU", STEP);
    vm.send_serial("regs 1\r");
    vm.expect(r"cpu 1 registers:\n\s+rax 0x", STEP);
    vm.send_serial("bt 1\r");
    vm.expect("backtrace of cpu 1", STEP);
    vm.send_serial("log\r");
    vm.expect("PANIC: test: plain panic", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

/// `panic=reboot` and `panic=halt` are for systems that must not offer a
/// console: the report, then a reboot (an exit under `-no-reboot`) or a
/// halt, and never a prompt, whatever is typed on serial or USB.
#[test]
fn panic_reboot_and_halt_offer_no_console() {
    for policy in ["reboot", "halt"] {
        let mut cfg = Config::new(KERNEL_ELF);
        cfg.smp = 2;
        cfg.firmware = Firmware::Qboot;
        cfg.append = format!("trigger=plain panic={policy}");
        let mut vm = Vm::start(&format!("panic-policy-{policy}"), cfg);
        vm.expect("PANIC on cpu", BOOT);
        match policy {
            "reboot" => {
                vm.expect("panic=reboot: rebooting", STEP);
                let code = vm.wait_exit(STEP);
                assert_eq!(code, 0, "a reboot under -no-reboot exits QEMU with 0");
            }
            _ => {
                vm.expect("panic=halt: halted", STEP);
                vm.send_serial("cpus\r");
                vm.type_text("cpus\n");
                // Nothing may answer: no prompt, no command output.
                std::thread::sleep(Duration::from_secs(2));
                assert!(
                    vm.try_wait_exit(Duration::from_millis(10)).is_err(),
                    "a halted machine keeps running (halted), it does not exit"
                );
                vm.qmp("quit", serde_json::json!({})).ok();
            }
        }
        let out = vm.console();
        assert!(
            !out.contains("db> "),
            "panic={policy} offered a prompt:\n{out}"
        );
        assert!(
            !out.contains("cpu 1: apic"),
            "panic={policy} answered a command:\n{out}"
        );
    }
}

#[test]
fn panic_nmi() {
    run_trigger("nmi", &[4]);
}
