//! Every xHCI PCI function is driven (issue 18 item 1): a second controller
//! (`nec-usb-xhci`, id `x2`) beside the first, with a keyboard of its own.
//! QMP key events go to the most recently added keyboard, the one on the
//! second controller, so every typed line here came through it: at
//! `shell>` (interrupt mode), at `db>` after a panic (each controller taken
//! over, with its own report line) and at `db>` after an early panic (each
//! controller brought up from scratch from the panic DMA pool); and a
//! controller behind a PCI Express root port.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

fn two_controllers(append: &str) -> Config {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.smp = 2;
    cfg.append = append.into();
    cfg.dump_disk = None;
    cfg.extra = [
        "-device",
        "nec-usb-xhci,id=x2",
        "-device",
        "usb-kbd,bus=x2.0,id=kbd2",
    ]
    .map(String::from)
    .to_vec();
    cfg
}

/// `lsusb` output up to the next prompt.
fn lsusb(vm: &mut Vm, prompt: &str) -> String {
    vm.send_serial("lsusb\r");
    vm.expect(&format!("(?s)lsusb.*?{prompt}"), STEP)
}

/// Checks that `lsusb` lists two controllers, each with a keyboard.
fn check_lsusb(out: &str) {
    let controllers = out.matches("controller ").count();
    assert_eq!(
        controllers, 2,
        "lsusb does not list two controllers:\n{out}"
    );
    for section in out.split("controller ").skip(1) {
        assert!(
            section.contains(", keyboard ("),
            "a controller without its keyboard in lsusb:\n{out}"
        );
    }
}

/// Waits until `lsusb` at `shell>` lists a configured keyboard on each of
/// two controllers.
fn wait_keyboards(vm: &mut Vm) -> String {
    for _ in 0..100 {
        let out = lsusb(vm, "shell> ");
        if out.matches(", keyboard (").count() >= 2 {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    vm.fail("HANG: waiting for a configured keyboard on each of two controllers in lsusb")
}

#[test]
fn a_keyboard_on_the_second_controller_types_in_both_modes() {
    let mut vm = Vm::start("controllers-two", two_controllers(""));
    vm.expect("shell> ", BOOT);
    let out = wait_keyboards(&mut vm);
    check_lsusb(&out);
    vm.type_text("echo typed on x2\n");
    vm.expect("\ntyped on x2\n", STEP);
    vm.send_serial("panic\r");
    let takeover = vm.expect(
        r"(?s)usb [0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: polled mode: [^\n]*\n.*?db> ",
        STEP,
    );
    assert_eq!(
        takeover.matches(": polled mode: ").count(),
        2,
        "not one takeover report line per controller:\n{takeover}"
    );
    // `db>` has no `echo`: an unknown command is echoed back by name.
    vm.type_text("typed-after-the-panic\n");
    vm.expect("unknown command: typed-after-the-panic\n", STEP);
    vm.expect("db> ", STEP);
    let out = lsusb(&mut vm, "db> ");
    check_lsusb(&out);
    println!("{takeover}\n{out}");
    vm.type_text("kbd\n");
    let out = vm.expect(r"(?s)2 keyboard\(s\), [1-9]\d* reports.*?db> ", STEP);
    println!("{out}");
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn an_early_panic_brings_up_both_controllers() {
    let mut vm = Vm::start("controllers-early", two_controllers("trigger=early"));
    vm.expect("PANIC on cpu 0 [^\n]*: test: early boot panic", BOOT);
    // the keyboard is attached inside the console loop, announced when ready
    vm.expect_usb_keyboard_ready(STEP);
    let console = vm.console();
    let report = &console[console.find("PANIC on cpu").unwrap_or(0)..];
    assert_eq!(
        report
            .matches("controller started from scratch in polled mode")
            .count(),
        2,
        "not both controllers brought up from scratch:\n{report}"
    );
    vm.type_text("typed-after-an-early-panic\n");
    vm.expect("unknown command: typed-after-an-early-panic\n", STEP);
    vm.expect("db> ", STEP);
    check_lsusb(&lsusb(&mut vm, "db> "));
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

/// A controller behind a PCI Express root port (a PCI-to-PCI bridge, bus 1
/// as SeaBIOS numbers it) is found by the walk that follows bridges from
/// bus 0 (`kernel/src/pci/scan.rs`), and its keyboard types.
#[test]
fn a_controller_behind_a_bridge_is_found() {
    let mut cfg = two_controllers("");
    cfg.firmware = Firmware::SeaBios;
    cfg.extra = [
        "-device",
        "pcie-root-port,id=rp1,chassis=1",
        "-device",
        "nec-usb-xhci,id=x2,bus=rp1",
        "-device",
        "usb-kbd,bus=x2.0,id=kbd2",
    ]
    .map(String::from)
    .to_vec();
    let mut vm = Vm::start("controllers-bridge", cfg);
    vm.expect(r"usb: xHCI [^\n]*PCI 01:00\.0", BOOT);
    vm.expect("shell> ", BOOT);
    check_lsusb(&wait_keyboards(&mut vm));
    vm.type_text("echo behind a bridge\n");
    vm.expect("\nbehind a bridge\n", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}
