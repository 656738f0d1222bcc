//! USB keyboard in normal (interrupt-driven) operation: text typed through
//! QMP into `usb-kbd` reaches the shell.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware, Keyboard};
use serde_json::json;

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

const SENTENCE: &str =
    "echo The Quick (brown) fox: jumps_over \"lazy\" dogs! #42 & [x]={y}; a<b>c? ~`'|\\/-+*^%$@";

fn boot(name: &str, cfg: Config) -> Vm {
    let mut vm = Vm::start(name, cfg);
    vm.expect(
        r"usb: xHCI [0-9a-f]{4}:[0-9a-f]{4} at 0x[0-9a-f]+, interrupts MSI",
        BOOT,
    );
    vm.expect("shell> ", BOOT);
    vm
}

/// Waits until the driver has the keyboard configured (listed by lsusb).
fn wait_keyboard(vm: &mut Vm, count: usize) {
    for _ in 0..100 {
        vm.send_serial("lsusb\r");
        let out = vm.expect(r"(?s)xHCI .*?shell> ", STEP);
        if out.matches(", keyboard (").count() >= count {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    vm.fail(&format!(
        "HANG: waiting for {count} configured keyboard(s) in lsusb"
    ));
}

fn type_sentence(vm: &mut Vm) {
    vm.type_text(&format!("{SENTENCE}\n"));
    let expected = &SENTENCE["echo ".len()..];
    vm.expect(&format!("\n{}\n", regex::escape(expected)), STEP);
    vm.expect("shell> ", STEP);
}

fn typing_works(name: &str, controller: &str, firmware: Firmware) {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.controller = controller.into();
    cfg.firmware = firmware;
    let mut vm = boot(name, cfg);
    wait_keyboard(&mut vm, 1);
    type_sentence(&mut vm);
    // The typed command runs.
    vm.type_text("uptime\n");
    vm.expect(r"up \d+\.\d{6} s", STEP);
    vm.type_text("kbd\n");
    vm.expect(
        r"layout us, repeat 500 ms / 20 Hz.*1 keyboard\(s\), [1-9]\d* reports",
        STEP,
    );
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn typing_qemu_xhci_seabios() {
    typing_works("usb-qemu-xhci-seabios", "qemu-xhci", Firmware::SeaBios);
}

#[test]
fn typing_qemu_xhci_qboot() {
    typing_works("usb-qemu-xhci-qboot", "qemu-xhci", Firmware::Qboot);
}

#[test]
fn typing_nec_xhci_seabios() {
    typing_works("usb-nec-seabios", "nec-usb-xhci", Firmware::SeaBios);
}

#[test]
fn typing_nec_xhci_qboot() {
    typing_works("usb-nec-qboot", "nec-usb-xhci", Firmware::Qboot);
}

#[test]
fn keyboard_on_the_last_root_port_beside_a_tablet() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.keyboard = Keyboard::None;
    cfg.extra = [
        "-device",
        "usb-tablet,bus=xhci.0,port=1",
        "-device",
        "usb-kbd,bus=xhci.0,port=4",
    ]
    .map(String::from)
    .to_vec();
    let mut vm = boot("usb-last-port-tablet", cfg);
    wait_keyboard(&mut vm, 1);
    vm.send_serial("lsusb\r");
    let out = vm.expect(r"(?s)xHCI .*?shell> ", STEP);
    // QEMU's xHCI numbers its USB 3 ports first: USB 2 port 1 is root port 5,
    // port 4 (the last) is root port 8.
    assert!(
        out.lines()
            .any(|l| l.starts_with("port 8 ") && l.contains("keyboard")),
        "keyboard not on the last root port:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("port 5 ") && l.contains("ignored")),
        "tablet not listed and left alone:\n{out}"
    );
    type_sentence(&mut vm);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn two_keyboards_and_hot_plug_while_typing() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    let mut vm = boot("usb-hotplug", cfg);
    wait_keyboard(&mut vm, 1);
    vm.type_text("echo one\n");
    vm.expect("\none\n", STEP);
    vm.qmp(
        "device_add",
        json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd1"}),
    )
    .unwrap();
    wait_keyboard(&mut vm, 2);
    // Key events go to the most recently added keyboard: the new one.
    vm.type_text("echo two\n");
    vm.expect("\ntwo\n", STEP);
    vm.qmp("device_del", json!({"id": "kbd1"})).unwrap();
    vm.qmp("device_del", json!({"id": "kbd0"})).unwrap();
    for _ in 0..100 {
        vm.send_serial("lsusb\r");
        let out = vm.expect(r"(?s)xHCI .*?shell> ", STEP);
        if !out.contains(", keyboard (") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    vm.qmp(
        "device_add",
        json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd2"}),
    )
    .unwrap();
    wait_keyboard(&mut vm, 1);
    vm.type_text("echo three\n");
    vm.expect("\nthree\n", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn keyboard_behind_a_hub() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.keyboard = Keyboard::BehindHub;
    let mut vm = boot("usb-hub", cfg);
    wait_keyboard(&mut vm, 1);
    vm.send_serial("lsusb\r");
    let out = vm.expect(r"(?s)xHCI .*?shell> ", STEP);
    assert!(out.contains("hub ("), "hub not listed:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("port 5.1 ") && l.contains("keyboard")),
        "keyboard not behind the hub:\n{out}"
    );
    type_sentence(&mut vm);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}
