//! Break-in (issue 20 items 1-3): the debugger entered on a live system by
//! `break`, Ctrl+Alt+Esc (USB and PS/2) and a serial BREAK, and `continue`
//! back to a shell that types, with the load threads still running.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

fn config(smp: u32) -> Config {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = smp;
    cfg.firmware = Firmware::Qboot;
    cfg.dump_disk = None;
    cfg
}

/// Boots to `shell>` with the USB keyboard typing.
fn boot(name: &str, cfg: Config) -> Vm {
    let mut vm = Vm::start(name, cfg);
    vm.expect("shell> ", BOOT);
    vm.wait_until_usb_types("shell>", STEP);
    vm.expect("shell> ", STEP);
    vm
}

/// Waits for the break-in console's prompt.
fn at_db(vm: &mut Vm, why: &str) {
    vm.expect(&format!("break-in: {why} on cpu \\d+"), STEP);
    vm.expect("break-in console: ", STEP);
    vm.expect("db> ", STEP);
}

/// Types `continue` at `db>` on the USB keyboard and waits for the shell.
fn continue_on_usb(vm: &mut Vm) {
    vm.type_text("continue\n");
    vm.expect(r"continuing after \d+ ms stopped", STEP);
}

#[test]
fn break_command_and_continue() {
    let mut vm = boot("breakin-command", config(2));
    vm.type_text("break\n");
    at_db(&mut vm, "`break` command");
    vm.type_text("cpus\n");
    vm.expect("broke in \\(this CPU\\)", STEP);
    vm.expect("db> ", STEP);
    continue_on_usb(&mut vm);
    vm.type_text("echo after\n");
    vm.expect("\nafter\n", STEP);
    println!("{}", vm.console());
}
