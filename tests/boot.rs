//! Boot, shell and harness tests (issue: foundation).

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::{EXIT_SUCCESS, Vm};
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(30);

fn boot_to_shell(name: &str, firmware: Firmware) -> Vm {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = firmware;
    let mut vm = Vm::start(name, cfg);
    vm.expect(r"cpus: \d+ of \d+ online", BOOT);
    vm.expect("shell> ", BOOT);
    vm
}

#[test]
fn boots_to_shell_under_seabios_and_echo_round_trips() {
    let mut vm = boot_to_shell("boot-seabios", Firmware::SeaBios);
    vm.send_serial("echo Hello, serial world!\r");
    vm.expect("\nHello, serial world!\n", STEP);
    vm.expect("shell> ", STEP);
    vm.send_serial("no-such-thing\r");
    vm.expect("unknown command: no-such-thing", STEP);
    vm.expect("shell> ", STEP);
    // CRLF and LF also end a line; both backspaces edit.
    vm.send_serial("echo ab\x08c\x7fd\r\n");
    vm.expect("\nad\n", STEP);
    vm.send_serial("uptime\n");
    vm.expect(r"up \d+\.\d{6} s", STEP);
    vm.send_serial("mem\r");
    vm.expect(r"frames: \d+ total, \d+ used", STEP);
    vm.expect(r"heap: 0x[0-9a-f]+-0x[0-9a-f]+", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn boots_to_shell_under_qboot() {
    let mut vm = boot_to_shell("boot-qboot", Firmware::Qboot);
    vm.send_serial("help\r");
    vm.expect("spawn-load N", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn cpu_exception_prints_the_fault_report() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.append = "trigger=fault".into();
    let mut vm = Vm::start("exception", cfg);
    vm.expect(
        r"CPU exception 14 \(page fault\), error code 0x[0-9a-f]+, RIP 0x[0-9a-f]{16}, RSP 0x[0-9a-f]{16}, CR2 0x00004000deadb000",
        BOOT,
    );
    vm.expect("backtrace:", STEP);
    vm.expect(r"kernel::panic::trigger::run", STEP);
    vm.expect("db> ", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn a_triple_fault_is_reported_as_a_failure() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.append = "test=triple-fault".into();
    let mut vm = Vm::start("triple-fault", cfg);
    vm.expect("triple fault now", BOOT);
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        vm.expect_success_exit(STEP)
    }));
    let err = verdict.expect_err("a triple fault must not count as success");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains(&format!("expected {EXIT_SUCCESS}")),
        "unexpected failure text: {msg}"
    );
}

#[test]
fn runner_prints_the_qemu_command() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_panicbench"))
        .args([
            "--smp",
            "2",
            "--controller",
            "nec-usb-xhci",
            "--firmware",
            "qboot",
            "--hub",
            "--append",
            "panic=halt",
            "--print-command",
            "--",
            "-S",
        ])
        .output()
        .expect("runner runs");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    for part in [
        "-smp 2",
        "nec-usb-xhci",
        "-bios qboot.rom",
        "usb-hub",
        "-append panic=halt",
        "-machine q35",
        "-accel tcg",
        " -S",
    ] {
        assert!(s.contains(part), "missing {part:?} in {s}");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_panicbench"))
        .args(["--accel", "xen"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--accel takes tcg or kvm"));
}

/// A reboot is told from a triple fault: the machine is booted without
/// `-no-reboot` (`-action reboot=reset` overrides the harness's), QEMU logs
/// its resets (`-d cpu_reset`: a triple fault logs "Triple fault"). `reboot`
/// at the shell must print the second banner after an ACPI reset, not a
/// triple fault; `test=triple-fault` must show one (so the check can fail).
#[test]
fn a_reboot_is_a_reset_not_a_triple_fault() {
    for (name, append) in [("reboot", ""), ("triple", "test=triple-fault")] {
        let log = panicbench::qemu::scratch_dir().join(format!("cpu-reset-{name}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cfg = Config::new(KERNEL_ELF);
        cfg.smp = 2;
        cfg.firmware = Firmware::Qboot;
        cfg.dump_disk = None;
        cfg.append = append.into();
        cfg.extra.extend(
            [
                "-action",
                "reboot=reset",
                "-d",
                "cpu_reset",
                "-D",
                &log.display().to_string(),
            ]
            .map(String::from),
        );
        let mut vm = Vm::start(&format!("reset-{name}"), cfg);
        if name == "reboot" {
            vm.expect("shell> ", BOOT);
            vm.send_serial("reboot\r");
            vm.expect("rebooting", STEP);
        } else {
            vm.expect("triple fault now", BOOT);
        }
        // The machine comes up again: the second banner.
        vm.expect("panic-proof kernel booting", BOOT);
        if name == "reboot" {
            vm.expect("shell> ", BOOT);
            vm.send_serial("poweroff\r");
            vm.expect_success_exit(STEP);
        } else {
            // The same command line triple-faults again: enough seen.
            vm.expect("triple fault now", BOOT);
            let _ = vm.qmp("quit", serde_json::json!({}));
            let _ = vm.wait_exit(STEP);
        }
        let resets = std::fs::read_to_string(&log).unwrap_or_default();
        let triple = resets.contains("Triple fault");
        assert_eq!(
            triple,
            name == "triple",
            "{name}: QEMU's reset log {} a triple fault",
            if triple { "shows" } else { "does not show" }
        );
        let _ = std::fs::remove_file(&log);
    }
}

/// `cargo run` as a person uses it: the runner starts QEMU with the serial
/// console on its stdio; `poweroff` typed there ends it with status 0 (the
/// kernel's `isa-debug-exit` success code 33 is the tests', not a person's).
#[test]
fn poweroff_in_the_runner_exits_0() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_panicbench"))
        .args(["--smp", "2", "--firmware", "qboot", "--no-dump-disk"])
        .args(["--no-watchdog", "--no-reboot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running the runner");
    let mut out = child.stdout.take().expect("stdout");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let end = std::time::Instant::now() + BOOT;
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("shell> ") {
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!(
                "HANG: waiting for shell> from `cargo run`:\n{}",
                String::from_utf8_lossy(&seen.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"poweroff\r").expect("typing poweroff");
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting") {
            break s;
        }
        if std::time::Instant::now() > end + STEP {
            let _ = child.kill();
            panic!("HANG: waiting for the runner to exit after poweroff");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    assert_eq!(status.code(), Some(0), "cargo run's poweroff exit status");
}
