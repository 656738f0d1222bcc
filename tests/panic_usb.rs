//! The panic console driven from the USB keyboard only (issue: polled panic
//! mode). Every trigger, including those that stop another CPU inside the
//! xHCI driver, must leave a console that answers typed commands, across
//! controllers, firmwares and CPU counts.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware, Keyboard};
use serde_json::json;

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

/// Triggers whose point is a second CPU: on `-smp 1` the kernel degrades
/// them to a plain panic, so their repetitions never use `-smp 1` (a rep
/// there would be a plain panic counted as theirs).
const NEED_SMP: &[&str] = &[
    "lock", "ap", "all", "cli", "usb-lock", "usb-cmd", "badstack", "deaf", "ap-start",
];

/// Configuration of repetition `rep`: every repetition changes controller,
/// firmware, CPU count (1, 2, 4, 8) and, every fifth, puts the keyboard
/// behind a `usb-hub`, so ten repetitions cover each axis.
fn config(kind: &str, rep: usize) -> (Config, u32) {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.controller = if rep.is_multiple_of(2) {
        "qemu-xhci"
    } else {
        "nec-usb-xhci"
    }
    .into();
    cfg.firmware = if rep % 4 < 2 {
        Firmware::Qboot
    } else {
        Firmware::SeaBios
    };
    let smp = if NEED_SMP.contains(&kind) {
        [4, 2, 8][rep % 3]
    } else {
        [4, 1, 8, 2][rep % 4]
    };
    cfg.smp = smp;
    if rep % 5 == 3 {
        cfg.keyboard = Keyboard::BehindHub;
    }
    cfg.append = format!("trigger={kind}");
    (cfg, smp)
}

/// The panic message each trigger must produce (a regex).
fn expected_message(kind: &str) -> &'static str {
    match kind {
        "plain" => r"PANIC on cpu 0 [^\n]*: test: plain panic",
        "lock" => r"PANIC on cpu 0 [^\n]*: test: panic while another CPU holds the log lock",
        "irq" => r"PANIC on cpu 0[^\n]*: test: panic inside an interrupt handler",
        "ap" => r"PANIC on cpu [1-9][^\n]*: test: panic on application processor",
        "all" => r"PANIC on cpu \d+[^\n]*: test: simultaneous panic on cpu \d+",
        "cli" => {
            r"PANIC on cpu 0 [^\n]*: test: panic while another CPU spins with interrupts disabled"
        }
        "nested" => r"PANIC on cpu 0 [^\n]*: test: first panic",
        "fault" => r"PANIC on cpu 0 [^\n]*: CPU exception 14 \(page fault\)",
        "early" => r"PANIC on cpu 0[^\n]*: test: early boot panic",
        "usb-lock" => {
            r"PANIC on cpu 0 [^\n]*: test: panic while another CPU holds the USB driver lock"
        }
        "usb-cmd" => {
            r"PANIC on cpu 0 [^\n]*: test: panic while another CPU has an xHCI command in flight"
        }
        "usb-enum" => {
            r"PANIC on cpu \d+[^\n]*: test: panic (while another CPU is enumerating a keyboard \(stalled: true\)|inside the enumeration of a keyboard)"
        }
        "usb-irq" => r"PANIC on cpu \d+[^\n]*: test: panic inside the xHCI interrupt handler",
        "badstack" => {
            r"PANIC on cpu 0 [^\n]*: test: panic while the other CPUs have corrupted frame pointers"
        }
        "deaf" => {
            r"PANIC on cpu 0 [^\n]*: test: panic while another CPU ignores the stop IPI and the NMI"
        }
        "ap-start" => r"PANIC on cpu 0[^\n]*: test: panic while cpu 1 is starting",
        "nmi" => r"PANIC on cpu 0[^\n]*: unexpected NMI",
        "fmt" => {
            r"NESTED PANIC \(depth 1\) on cpu 0: test: panic inside the formatting of the panic message"
        }
        _ => panic!("no expected message for trigger {kind}"),
    }
}

/// What `regs 1` must answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Regs1 {
    /// CPU 1 was stopped and saved its registers.
    Saved,
    /// CPU 1 exists but saved none (never started, parked on arrival, or
    /// never stopped).
    NoneSaved,
    /// There is no CPU 1.
    NoSuchCpu,
}

fn regs1_for(kind: &str, smp: u32) -> Regs1 {
    match (kind, smp) {
        (_, 1) => Regs1::NoSuchCpu,
        ("early" | "ap-start" | "deaf", _) => Regs1::NoneSaved,
        _ => Regs1::Saved,
    }
}

/// The USB keyboard's report counter, from `kbd` typed on the USB keyboard.
fn usb_reports(vm: &mut Vm) -> u64 {
    vm.type_text("kbd\n");
    let c = vm.expect_captures(r"keyboard\(s\), (\d+) reports", STEP);
    vm.expect("db> ", STEP);
    c[1].parse().expect("a report count")
}

/// Types a console session on the USB keyboard, at a `db> ` already seen
/// with the keyboard ready, and checks the answers. The first key typed
/// must echo: a keyboard announced ready is armed. With
/// `usb`, the USB keyboard's report counter must rise over the session, so
/// the keys provably came over USB (QMP sends keys to PS/2 once no usb-kbd
/// exists, and `db>` polls PS/2 too).
fn console_session(vm: &mut Vm, smp: u32, regs1: Regs1, usb: bool) {
    vm.type_text("c");
    vm.expect(r"\Ac", Duration::from_secs(5));
    vm.type_text("pus\n");
    for c in 0..smp {
        vm.expect(&format!("cpu {c}: apic"), STEP);
    }
    vm.expect("db> ", STEP);
    let before = if usb { usb_reports(vm) } else { 0 };
    vm.type_text("bt\n");
    vm.expect(r"backtrace of cpu \d+", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("regs 1\n");
    match regs1 {
        Regs1::Saved => vm.expect(r"cpu 1 registers:\n\s+rax 0x", STEP),
        Regs1::NoneSaved => vm.expect("regs: cpu 1 has no saved registers", STEP),
        Regs1::NoSuchCpu => vm.expect("regs: no such CPU", STEP),
    };
    vm.expect("db> ", STEP);
    vm.type_text("mem 0x4000deadb000 32\n");
    vm.expect("is not mapped", STEP);
    vm.expect("db> ", STEP);
    if usb {
        let after = usb_reports(vm);
        assert!(
            after > before,
            "the USB keyboard's report counter did not rise ({before} -> {after}): keys did not come over USB"
        );
    }
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
}

/// Checks the takeover report between the panic and the prompt: no full
/// reset, no dead controller, no busy bus, and what the trigger left behind
/// was repaired; then waits for the keyboard to be ready (a keyboard the
/// panic caught before or during its enumeration is announced later) and
/// its prompt.
fn check_takeover(vm: &mut Vm, kind: &str) {
    // Up to the end of the line: console output arrives as it is written.
    let report = vm.expect(
        r"usb [0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: (polled mode: [^\n]*|controller started from scratch[^\n]*)\n",
        STEP,
    );
    vm.expect_usb_keyboard_ready(STEP);
    // everything from the panic to the prompt the keyboard is ready at
    let console = vm.console();
    let ready = &console[console.find("PANIC on cpu").unwrap_or(0)..];
    for bad in [
        "FULL RESET",
        "DEAD",
        "still not armed",
        "polled bring-up failed",
        "not driven",
    ] {
        assert!(
            !report.contains(bad) && !ready.contains(bad),
            "trigger {kind}: the takeover reported {bad:?}:\n{report}\n{ready}"
        );
    }
    match kind {
        "usb-cmd" => assert!(
            report.contains("pending command completed") || report.contains("command aborted"),
            "usb-cmd: the in-flight command was neither completed nor aborted:\n{report}"
        ),
        "usb-enum" => assert!(
            report.contains("enumeration(s) restarted"),
            "usb-enum: no enumeration restarted:\n{report}"
        ),
        _ => {}
    }
}

fn panic_then_type(kind: &str, rep: usize) {
    let (cfg, smp) = config(kind, rep);
    let hub = cfg.keyboard == Keyboard::BehindHub;
    let mut vm = Vm::start(&format!("usbpanic-{kind}-{rep}"), cfg);
    match kind {
        "usb-enum" => {
            vm.expect("usb-enum: plug in a USB keyboard now", BOOT);
            let mut dev = json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd1"});
            if hub {
                dev["port"] = json!("1.2");
            }
            vm.qmp("device_add", dev).unwrap();
        }
        "usb-irq" => {
            vm.expect("usb-irq: press a key on the USB keyboard", BOOT);
            vm.type_text("x");
        }
        _ => {}
    }
    vm.expect(expected_message(kind), BOOT);
    check_takeover(&mut vm, kind);
    console_session(&mut vm, smp, regs1_for(kind, smp), true);
}

fn run(kind: &str) {
    for rep in 0..panicbench::harness::panic_reps() {
        panicbench::harness::retry_emulator_crash(&format!("usbpanic-{kind}-{rep}"), || {
            panic_then_type(kind, rep)
        });
    }
}

#[test]
fn usb_console_after_plain() {
    run("plain");
}
#[test]
fn usb_console_after_lock() {
    run("lock");
}
#[test]
fn usb_console_after_irq() {
    run("irq");
}
#[test]
fn usb_console_after_ap() {
    run("ap");
}
#[test]
fn usb_console_after_all() {
    run("all");
}
#[test]
fn usb_console_after_cli() {
    run("cli");
}
#[test]
fn usb_console_after_nested() {
    run("nested");
}
#[test]
fn usb_console_after_fault() {
    run("fault");
}
#[test]
fn usb_console_after_early() {
    run("early");
}
#[test]
fn usb_console_after_usb_lock() {
    run("usb-lock");
}
#[test]
fn usb_console_after_usb_cmd() {
    run("usb-cmd");
}
#[test]
fn usb_console_after_usb_enum() {
    run("usb-enum");
}
#[test]
fn usb_console_after_usb_irq() {
    run("usb-irq");
}

#[test]
fn usb_console_after_badstack() {
    run("badstack");
}
#[test]
fn usb_console_after_fmt() {
    run("fmt");
}
#[test]
fn usb_console_after_deaf() {
    run("deaf");
}
#[test]
fn usb_console_after_ap_start() {
    run("ap-start");
}
#[test]
fn usb_console_after_nmi() {
    run("nmi");
}

#[test]
fn hot_plug_after_the_panic() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.append = "trigger=plain".into();
    let mut vm = Vm::start("usbpanic-hotplug", cfg);
    vm.expect_usb_keyboard_ready(BOOT);
    vm.type_text("cpus\n");
    vm.expect("cpu 0: apic", STEP);
    // Unplug the only keyboard, plug another one in: enumerated in polled mode.
    vm.qmp("device_del", json!({"id": "kbd0"})).unwrap();
    vm.type_text("\n");
    std::thread::sleep(Duration::from_millis(500));
    vm.qmp(
        "device_add",
        json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd1"}),
    )
    .unwrap();
    // The console announces the new keyboard when it is ready.
    vm.expect(
        r"usb: 1 device\(s\) attached; 1 keyboard\(s\) ready\r?\ndb> ",
        STEP,
    );
    vm.type_text("lsusb\n");
    vm.expect(r"polled mode", STEP);
    vm.expect(r"keyboard \(", STEP);
    vm.expect("db> ", STEP);
    console_session(&mut vm, 4, Regs1::Saved, true);
}

/// Hot-plug behind a hub in polled mode: the keyboard on the hub is
/// unplugged and another is plugged into the hub's second port; the keys
/// typed afterwards go to the new keyboard (QMP sends them to the most
/// recently added one) and are answered.
#[test]
fn hot_plug_behind_a_hub_after_the_panic() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.smp = 2;
    cfg.keyboard = Keyboard::BehindHub;
    cfg.append = "trigger=plain".into();
    let mut vm = Vm::start("usbpanic-hub-hotplug", cfg);
    vm.expect_usb_keyboard_ready(BOOT);
    vm.qmp("device_del", json!({"id": "kbd0"})).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    vm.qmp(
        "device_add",
        json!({"driver": "usb-kbd", "bus": "xhci.0", "port": "1.2", "id": "kbd-hub2"}),
    )
    .unwrap();
    // The new keyboard enumerates inside the console loop: type until it echoes.
    vm.wait_until_usb_types("db> after a hot-plug behind the hub", STEP);
    vm.type_text("lsusb\n");
    let out = vm.expect(
        r"(?s)xHCI.*?keyboard \(\d+ reports, \d+ errors, polled every \d+ us\)\n",
        STEP,
    );
    assert!(
        out.contains("hub") && out.matches(", keyboard (").count() == 1,
        "lsusb after the hot-plug behind the hub:\n{out}"
    );
    vm.expect("db> ", STEP);
    console_session(&mut vm, 2, Regs1::Saved, true);
}

#[test]
fn keyboard_behind_a_hub_after_the_panic() {
    for rep in 0..2 {
        let mut cfg = Config::new(KERNEL_ELF);
        cfg.firmware = if rep == 0 {
            Firmware::Qboot
        } else {
            Firmware::SeaBios
        };
        cfg.keyboard = Keyboard::BehindHub;
        cfg.append = "trigger=plain".into();
        let mut vm = Vm::start(&format!("usbpanic-hub-{rep}"), cfg);
        vm.expect("PANIC on cpu", BOOT);
        vm.expect_usb_keyboard_ready(STEP);
        console_session(&mut vm, 4, Regs1::Saved, true);
    }
}

#[test]
fn ps2_only_machine_still_gets_a_console() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.keyboard = Keyboard::None;
    cfg.append = "trigger=plain".into();
    // Without a USB keyboard, QMP key events go to the i8042 (PS/2) keyboard.
    let mut vm = Vm::start("ps2-console", cfg);
    vm.expect("PANIC on cpu", BOOT);
    vm.expect("db> ", STEP);
    console_session(&mut vm, 4, Regs1::Saved, false);
}
