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

/// Configuration of repetition `rep`: every repetition changes controller,
/// firmware and CPU count, so ten repetitions cover each combination axis.
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
    let smp = [4, 1, 8][rep % 3];
    cfg.smp = smp;
    cfg.append = format!("trigger={kind}");
    (cfg, smp)
}

/// Types a console session on the USB keyboard and checks the answers.
fn console_session(vm: &mut Vm, smp: u32, started: u32) {
    vm.expect("db> ", STEP);
    vm.type_text("cpus\n");
    for c in 0..smp {
        vm.expect(&format!("cpu {c}: apic"), STEP);
    }
    vm.expect("db> ", STEP);
    vm.type_text("bt\n");
    vm.expect(r"backtrace of cpu \d+", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("regs 1\n");
    if started > 1 {
        vm.expect(r"cpu 1 registers:\n\s+rax 0x", STEP);
    } else if smp > 1 {
        vm.expect("regs: cpu 1 has no saved registers", STEP);
    } else {
        vm.expect("regs: no such CPU", STEP);
    }
    vm.expect("db> ", STEP);
    vm.type_text("mem 0x4000deadb000 32\n");
    vm.expect("is not mapped", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
}

fn panic_then_type(kind: &str, rep: usize) {
    let (cfg, smp) = config(kind, rep);
    let mut vm = Vm::start(&format!("usbpanic-{kind}-{rep}"), cfg);
    match kind {
        "usb-enum" => {
            vm.expect("usb-enum: plug in a USB keyboard now", BOOT);
            vm.qmp(
                "device_add",
                json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd1"}),
            )
            .unwrap();
        }
        "usb-irq" => {
            vm.expect("usb-irq: press a key on the USB keyboard", BOOT);
            vm.type_text("x");
        }
        _ => {}
    }
    vm.expect("PANIC on cpu", BOOT);
    vm.expect(r"usb: (polled mode|controller started from scratch)", STEP);
    vm.expect(r"usb: [1-9]\d* keyboard\(s\) ready", STEP);
    // An early panic comes before the other CPUs start: they are listed but
    // have no registers.
    console_session(&mut vm, smp, if kind == "early" { 1 } else { smp });
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
fn hot_plug_after_the_panic() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.append = "trigger=plain".into();
    let mut vm = Vm::start("usbpanic-hotplug", cfg);
    vm.expect("db> ", BOOT);
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
    std::thread::sleep(Duration::from_millis(500));
    vm.type_text("lsusb\n");
    vm.expect(r"polled mode", STEP);
    vm.expect(r"keyboard \(", STEP);
    console_session(&mut vm, 4, 4);
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
        console_session(&mut vm, 4, 4);
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
    console_session(&mut vm, 4, 4);
}
