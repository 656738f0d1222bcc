//! xHCI interrupts (issue 18 item 7): MSI-X by default; INTx when the
//! controller has no MSI (`nec-usb-xhci` with `msi=off,msix=off`) on
//! SeaBIOS, which programs the Interrupt Line, and on qboot, which programs
//! no PIRQ routing. On q35 the IOAPIC input comes from ACPI's `_PRT`
//! (`acpi::aml`: its APIC-mode package names link GSIH, whose `_CRS` is
//! GSI 23), also behind a root port (swizzled); on pc, whose `_PRT` is a
//! computed Method, from the PIIX wiring (`pci::intx`), with the reason
//! logged. Each INTx run checks that typing works at `shell>` and at `db>`
//! after a panic, that the mode is shown as `INTx pin N` with its source,
//! that the controller is acknowledged whoever holds the driver lock (few
//! interrupts while the keyboard is enumerated: an unacknowledged
//! level-triggered line refires until the lock is free), and that an idle
//! machine takes next to no interrupts while typing makes the count rise.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

/// Most interrupts from boot to a configured keyboard: 1-11 were seen
/// (command completions, port changes, transfers, moderated); the
/// try-lock-only acknowledgement took about 1,600-1,800 here, none at all
/// 10,000-20,000.
const ENUMERATION_BOUND: u64 = 300;
/// Most interrupts in [`IDLE`] of an idle machine.
const IDLE_BOUND: u64 = 20;
const IDLE: Duration = Duration::from_millis(1500);

/// The machine an INTx run boots, and the route source it must report.
struct Machine {
    /// Extra `-machine` argument (a later `-machine` overrides the
    /// runner's `q35`), if any.
    machine: Option<&'static str>,
    /// The `interrupts` text after `INTx `: pin and source.
    route: &'static str,
    /// A boot log line that must appear (why `_PRT` was not used).
    log: Option<&'static str>,
    /// The controller's PCI slot, given (`addr=`): the route depends on it,
    /// and QEMU's own placement moves with the other devices (it moved
    /// when the runner dropped the default NIC).
    slot: u8,
}

/// q35: `_PRT`'s APIC-mode package names `\_SB.GSIH` for 00:03.0 INTA#,
/// the ICH9 PIRQ H wiring's pin 23.
const Q35: Machine = Machine {
    machine: None,
    route: r"pin 23, level, active-high, _PRT \_SB.GSIH",
    log: None,
    slot: 3,
};

fn intx(firmware: Firmware, machine: &Machine) -> Config {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = firmware;
    cfg.controller = format!("nec-usb-xhci,addr={}", machine.slot);
    cfg.extra = [
        "-global",
        "nec-usb-xhci.msi=off",
        "-global",
        "nec-usb-xhci.msix=off",
    ]
    .map(String::from)
    .to_vec();
    if let Some(m) = machine.machine {
        cfg.extra.extend(["-machine".to_string(), m.to_string()]);
    }
    cfg
}

/// `lsusb` at `prompt`: (interrupt mode text, interrupts handled, keyboard
/// configured) of the first controller.
fn interrupts(vm: &mut Vm, prompt: &str) -> (String, u64, bool) {
    interrupts_of(vm, prompt, "")
}

/// As [`interrupts`] for the controller at PCI address `pci` (`01:00.0`;
/// empty: the first).
fn interrupts_of(vm: &mut Vm, prompt: &str, pci: &str) -> (String, u64, bool) {
    vm.send_serial("lsusb\r");
    let out = vm.expect(&format!("(?s)lsusb.*?{prompt}"), STEP);
    let start = out.find(&format!("controller {pci}")).unwrap_or(out.len());
    let block = &out[start..];
    let block = match block.get(1..).and_then(|b| b.find("\ncontroller ")) {
        Some(end) => &block[..end + 1],
        None => block,
    };
    let re = regex::Regex::new(r"interrupts: ([^\n]*) \((\d+) handled\)").unwrap();
    let Some(c) = re.captures(block) else {
        vm.fail(&format!(
            "no interrupt line for controller {pci:?} in lsusb:\n{out}"
        ));
    };
    (
        c[1].to_string(),
        c[2].parse().unwrap(),
        block.contains(", keyboard ("),
    )
}

fn wait_keyboard(vm: &mut Vm) -> (String, u64) {
    wait_keyboard_of(vm, "")
}

fn wait_keyboard_of(vm: &mut Vm, pci: &str) -> (String, u64) {
    for _ in 0..100 {
        let (mode, n, keyboard) = interrupts_of(vm, "shell> ", pci);
        if keyboard {
            return (mode, n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    vm.fail(&format!(
        "HANG: waiting for a configured keyboard on {pci:?} in lsusb"
    ))
}

fn intx_works(name: &str, firmware: Firmware, machine: &Machine) {
    let mut vm = Vm::start(name, intx(firmware, machine));
    if let Some(log) = machine.log {
        vm.expect(&regex::escape(log), BOOT);
    }
    let boot_line = vm.expect(
        r"usb: xHCI 1033:0194 at 0x[0-9a-f]+, interrupts [^\n]*\n",
        BOOT,
    );
    let want = format!("interrupts INTx {}, PCI", machine.route);
    assert!(
        boot_line.contains(&want),
        "not INTx {} (its IOAPIC pin and how it was found): {boot_line}",
        machine.route
    );
    vm.expect("shell> ", BOOT);
    let (mode, enumerated) = wait_keyboard(&mut vm);
    println!("{name}: {mode}, {enumerated} interrupts up to the keyboard");
    assert_eq!(mode, format!("INTx {}", machine.route), "lsusb mode");
    assert!(
        enumerated < ENUMERATION_BOUND,
        "{enumerated} interrupts up to a configured keyboard: the controller is not acknowledged while the driver lock is held"
    );
    // Idle: next to none.
    let (_, before, _) = interrupts(&mut vm, "shell> ");
    std::thread::sleep(IDLE);
    let (_, after, _) = interrupts(&mut vm, "shell> ");
    println!("{name}: {} interrupts in {IDLE:?} idle", after - before);
    assert!(
        after - before < IDLE_BOUND,
        "{} interrupts in {IDLE:?} of an idle machine (INTx storm)",
        after - before
    );
    // Typing works and is interrupt driven.
    vm.type_text("echo typed over intx\n");
    vm.expect("\ntyped over intx\n", STEP);
    let (_, typed, _) = interrupts(&mut vm, "shell> ");
    assert!(
        typed > after,
        "typing raised no interrupt ({after} -> {typed})"
    );
    // After a panic: polled, interrupter masked, typing still works.
    vm.send_serial("panic\r");
    vm.expect("db> ", STEP);
    vm.type_text("typed-after-the-panic\n");
    vm.expect("unknown command: typed-after-the-panic\n", STEP);
    vm.expect("db> ", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

#[test]
fn intx_on_qboot() {
    intx_works("irq-intx-qboot", Firmware::Qboot, &Q35);
}

#[test]
fn intx_on_seabios() {
    intx_works("irq-intx-seabios", Firmware::SeaBios, &Q35);
}

/// QEMU pc: its `_PRT` builds the package in a `While` loop, which is not
/// evaluated, so the PIIX wiring routes 00:04.0 INTA# (PIRQ D, which
/// SeaBIOS routes to IRQ 11, level active high by the MADT's override).
#[test]
fn intx_on_pc_falls_back_to_the_piix_wiring() {
    let pc = Machine {
        machine: Some("pc"),
        route: "pin 11, level, active-high, PIIX PIRQD -> IRQ 11",
        log: Some("pci 00:04.0: _PRT not used: opcode 0xa2 at "),
        slot: 4,
    };
    intx_works("irq-intx-pc", Firmware::SeaBios, &pc);
}

#[test]
fn msix_is_the_default_on_qemu_xhci() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    let mut vm = Vm::start("irq-msix", cfg);
    vm.expect(
        r"usb: xHCI 1b36:000d at 0x[0-9a-f]+, interrupts MSI-X, ",
        BOOT,
    );
    vm.expect("shell> ", BOOT);
    let (mode, _) = wait_keyboard(&mut vm);
    assert_eq!(mode, "MSI-X");
    vm.type_text("echo typed over msi-x\n");
    vm.expect("\ntyped over msi-x\n", STEP);
    let (_, n, _) = interrupts(&mut vm, "shell> ");
    assert!(n > 0, "no MSI-X interrupt counted");
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

/// A controller behind a PCI Express root port (SeaBIOS: qboot programs no
/// bridge windows): its INTA# is swizzled across the root port (PCI-to-PCI
/// Bridge 1.2 §9.1; q35's DSDT does not describe the port) to the port's
/// pin in the root bridge's `_PRT`, and typing on its keyboard raises
/// interrupts there while the idle machine takes next to none.
#[test]
fn intx_behind_a_root_port() {
    let mut cfg = intx(Firmware::SeaBios, &Q35);
    cfg.keyboard = panicbench::qemu::Keyboard::None;
    cfg.extra.extend(
        [
            "-device",
            "pcie-root-port,id=rp1,chassis=1,addr=6",
            "-device",
            "nec-usb-xhci,id=x2,bus=rp1",
            "-device",
            "usb-kbd,bus=x2.0,id=kbd2",
        ]
        .map(String::from),
    );
    let mut vm = Vm::start("irq-intx-bridge", cfg);
    // The root port is 00:06.0 (given: QEMU places the rest): INTA# there
    // is ICH9 PIRQ G, link GSIG.
    let route = r"INTx pin 22, level, active-high, _PRT \_SB.GSIG";
    let line = vm.expect(r"usb: xHCI 1033:0194 at [^\n]*PCI 01:00\.0\n", BOOT);
    assert!(
        line.contains(&format!("interrupts {route}, PCI")),
        "not {route}: {line}"
    );
    vm.expect("shell> ", BOOT);
    let (mode, _) = wait_keyboard_of(&mut vm, "01:00.0");
    assert_eq!(mode, route);
    let (_, before, _) = interrupts_of(&mut vm, "shell> ", "01:00.0");
    std::thread::sleep(IDLE);
    let (_, after, _) = interrupts_of(&mut vm, "shell> ", "01:00.0");
    assert!(
        after - before < IDLE_BOUND,
        "{} interrupts in {IDLE:?} of an idle machine (INTx storm)",
        after - before
    );
    vm.type_text("echo typed behind a bridge\n");
    vm.expect("\ntyped behind a bridge\n", STEP);
    let (_, typed, _) = interrupts_of(&mut vm, "shell> ", "01:00.0");
    println!("irq-intx-bridge: {mode}, {after} -> {typed} interrupts typing");
    assert!(
        typed > after,
        "typing raised no interrupt ({after} -> {typed})"
    );
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}
