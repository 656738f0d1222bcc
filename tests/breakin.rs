//! Break-in (issue 20 items 1-3): the debugger entered on a live system by
//! `break`, Ctrl+Alt+Esc (USB and PS/2) and a serial BREAK, and `continue`
//! back to a shell that types, with the load threads still running; a
//! break-in during a USB hot-plug; `continue` refused after an NMI stop and
//! after a panic; keys typed at `db>` not replayed into the shell.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware, Keyboard};
use serde_json::json;

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);
/// Break-in rounds of the load test (issue 20: at least 100).
const ROUNDS: usize = 100;

fn config(smp: u32) -> Config {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = smp;
    cfg.firmware = Firmware::Qboot;
    cfg.dump_disk = None;
    cfg
}

/// Boots to `shell>` with the keyboard (USB, else PS/2) typing.
fn boot(name: &str, cfg: Config) -> Vm {
    let mut vm = Vm::start(name, cfg);
    vm.expect("shell> ", BOOT);
    vm.wait_until_usb_types("shell>", STEP);
    vm.expect("shell> ", STEP);
    vm
}

/// Waits for the break-in console's prompt after a break-in for `why`.
fn at_db(vm: &mut Vm, why: &str) {
    vm.expect(&format!("break-in: {why} on cpu \\d+"), STEP);
    vm.expect("break-in console: ", STEP);
    vm.expect("db> ", STEP);
}

/// Types `continue` at `db>` and waits until the world runs again.
fn continue_typed(vm: &mut Vm) {
    vm.type_text("continue\n");
    vm.expect(r"continuing after \d+ ms stopped", STEP);
}

/// Ctrl+Alt+Esc pressed and released (to the most recent keyboard), all
/// six events in one QMP command: the releases are queued before any key
/// typed next (QMP `send-key` releases after its hold time, which a fast
/// `db> ` prompt beats: `c` then arrived with Ctrl held, as `^C`).
fn ctrl_alt_esc(vm: &mut Vm) {
    let events: Vec<_> = [
        ("ctrl", true),
        ("alt", true),
        ("esc", true),
        ("esc", false),
        ("alt", false),
        ("ctrl", false),
    ]
    .iter()
    .map(|(k, down)| {
        json!({"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": k}}})
    })
    .collect();
    if let Err(e) = vm.qmp("input-send-event", json!({ "events": events })) {
        vm.fail(&format!("QMP input-send-event ctrl-alt-esc: {e}"));
    }
}

/// A line typed at `shell>` is answered: the keyboard works. All typing
/// here is one key event per QMP command (12 ms apart): bursts of 8 events
/// overflowed usb-kbd's queue of 16 when the host did not run the vCPU for
/// some 60 ms (QEMU trace `hid_kbd_queue_full`), and a dropped release
/// leaves the key held in QEMU, so its next press is lost.
fn shell_types(vm: &mut Vm, word: &str) {
    vm.type_text(&format!("{word}\n"));
    vm.expect(&format!("unknown command: {word}\n"), STEP);
    vm.expect("shell> ", STEP);
}

/// CPU time of thread `name` in `ps` (us).
fn cpu_time(vm: &mut Vm, name: &str) -> u64 {
    vm.send_serial("ps\n");
    let c = vm.expect_captures(&format!(r"\n +\d+ +\S+ +\d+ +(\d+) +\d+ +{name}\n"), STEP);
    vm.expect("shell> ", STEP);
    c[1].parse().expect("a CPU time")
}

#[test]
fn a_hundred_break_ins_under_load_keep_typing_and_totals() {
    let mut vm = boot("breakin-rounds", config(2));
    vm.type_text("spawn-load 3\n");
    vm.expect("started 3 load threads", STEP);
    vm.expect("shell> ", STEP);
    for r in 0..ROUNDS {
        shell_types(&mut vm, &format!("r{r}"));
        let why = if r % 2 == 0 {
            vm.type_text("break\n");
            "`break` command"
        } else {
            ctrl_alt_esc(&mut vm);
            "Ctrl\\+Alt\\+Esc"
        };
        at_db(&mut vm, why);
        if r % 25 == 0 {
            vm.type_text("cpus\n");
            let cpus = vm.expect(r"(?s)cpu 0: .*?\ndb> ", STEP);
            assert!(
                cpus.contains("broke in (this CPU)") && cpus.contains("stopped (ipi)"),
                "round {r}: {cpus}"
            );
        }
        continue_typed(&mut vm);
    }
    shell_types(&mut vm, &format!("r{ROUNDS}"));
    // The load threads still run: their CPU time advances.
    let before = cpu_time(&mut vm, "load/0");
    std::thread::sleep(Duration::from_millis(500));
    let after = cpu_time(&mut vm, "load/0");
    assert!(
        after > before,
        "load/0 stopped running: {before} -> {after} us"
    );
    vm.type_text("kill-load\n");
    let c = vm.expect_captures(
        r"stopped 3 load threads \((\d+) rounds; spin (\d+) mutex (\d+)\)",
        STEP,
    );
    let (rounds, spin, mutex): (u64, u64, u64) = (
        c[1].parse().unwrap(),
        c[2].parse().unwrap(),
        c[3].parse().unwrap(),
    );
    assert!(rounds > 0, "the load threads never ran");
    assert_eq!((spin, mutex), (rounds, rounds), "lock totals are not exact");
    vm.type_text("uptime\n");
    let c = vm.expect_captures(r"stopped (\d+)\.\d+ s in (\d+) break-in\(s\)", STEP);
    assert_eq!(c[2], ROUNDS.to_string(), "every round counted");
    println!(
        "{ROUNDS} break-ins: {rounds} load rounds, load/0 ran {} us in 500 ms after them, {} s stopped, {:.1} s in all",
        after - before,
        c[1],
        vm.elapsed().as_secs_f64()
    );
}

#[test]
fn ctrl_alt_esc_on_ps2() {
    let mut cfg = config(2);
    cfg.keyboard = Keyboard::None;
    // Keys now go to the PS/2 keyboard, at the shell too.
    let mut vm = boot("breakin-ps2", cfg);
    ctrl_alt_esc(&mut vm);
    at_db(&mut vm, "Ctrl\\+Alt\\+Esc");
    vm.type_text("cpus\n");
    vm.expect(r"broke in \(this CPU\)", STEP);
    vm.expect("db> ", STEP);
    continue_typed(&mut vm);
    // Ctrl and Alt were released at db>: the shell sees plain keys.
    vm.type_text("afterps2\n");
    vm.expect("unknown command: afterps2\n", STEP);
}

#[test]
fn serial_break() {
    let mut cfg = config(2);
    // COM1 on a QEMU mux chardev, whose `Ctrl-A b` sends a BREAK (as
    // `-serial mon:stdio` in `cargo run`).
    cfg.serial = false;
    cfg.extra = [
        "-chardev",
        "stdio,id=com1,mux=on,signal=off",
        "-device",
        "isa-serial,chardev=com1,index=0",
    ]
    .map(String::from)
    .to_vec();
    let mut vm = boot("breakin-serial", cfg);
    vm.send_serial("\x01b");
    at_db(&mut vm, "serial BREAK");
    vm.send_serial("continue\n");
    vm.expect(r"continuing after \d+ ms stopped", STEP);
    vm.send_serial("echo serial-ok\n");
    vm.expect("\nserial-ok\n", STEP);
    shell_types(&mut vm, "afterbreak");
}

#[test]
fn break_in_during_a_usb_hot_plug() {
    let mut vm = boot("breakin-hotplug", config(2));
    let dev = json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd2"});
    if let Err(e) = vm.qmp("device_add", dev) {
        vm.fail(&format!("device_add: {e}"));
    }
    // At once, while the new keyboard is being enumerated.
    vm.send_serial("break\n");
    at_db(&mut vm, "`break` command");
    // Keys go to the new keyboard: it is enumerated in polled mode (or was
    // before the break) and types at db>.
    vm.wait_until_usb_types("db> after a hot-plug", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("lsusb\n");
    vm.expect(r"keyboard \([^\n]*\n[^\n]*keyboard \(", STEP);
    vm.expect("db> ", STEP);
    let polled = vm.console().contains("usb: 1 device(s) attached");
    println!(
        "the keyboard plugged just before the break-in was enumerated {}",
        if polled {
            "at db> (polled)"
        } else {
            "before it"
        }
    );
    // One plugged while at db>: enumerated by the polled poll(), announced,
    // typing at db> and, after continue, at the shell.
    let dev = json!({"driver": "usb-kbd", "bus": "xhci.0", "id": "kbd3"});
    if let Err(e) = vm.qmp("device_add", dev) {
        vm.fail(&format!("device_add at db>: {e}"));
    }
    vm.expect(r"usb: 1 device\(s\) attached; 3 keyboard\(s\) ready", STEP);
    vm.expect("db> ", STEP);
    vm.wait_until_usb_types("db> after a hot-plug at db>", STEP);
    vm.expect("db> ", STEP);
    continue_typed(&mut vm);
    vm.wait_until_usb_types("shell> after a break-in during a hot-plug", STEP);
}

#[test]
fn continue_is_refused_after_an_nmi_stop_and_after_a_panic() {
    let mut vm = boot("breakin-nmi", config(2));
    vm.send_serial("cli-spin 120\n");
    vm.expect(r"cpu 1 spins with interrupts off", STEP);
    vm.send_serial("break\n");
    at_db(&mut vm, "`break` command");
    let out = vm.console();
    assert!(
        out.contains("cpu 1: stopped by NMI"),
        "no NMI stop reported:\n{out}"
    );
    vm.type_text("continue\n");
    vm.expect(
        "continue: refused: cpu 1 kept interrupts off and was stopped by NMI",
        STEP,
    );
    vm.expect("db> ", STEP);
    vm.type_text("cpus\n");
    vm.expect(r"cpu 1: apic \d+ stopped \(nmi\)", STEP);
    vm.expect("db> ", STEP);
    // `panic` makes it a panic; then `continue` says why not.
    vm.type_text("panic\n");
    vm.expect(
        "PANIC on cpu 0 [^\n]*break-in turned into a panic at db>",
        STEP,
    );
    vm.expect("panic console: ", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("continue\n");
    vm.expect("continue: refused: this is a panic", STEP);
    vm.expect("db> ", STEP);
}

#[test]
fn keys_typed_at_db_are_not_replayed_into_the_shell() {
    let mut vm = boot("breakin-replay", config(2));
    vm.type_text("break\n");
    at_db(&mut vm, "`break` command");
    vm.type_text("help\n");
    vm.expect("continue ", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("nothere\n");
    vm.expect("unknown command: nothere\n", STEP);
    vm.expect("db> ", STEP);
    // The break-in's own CPU has registers and a backtrace; the log ring is
    // read under its lock; a dump is for panics.
    vm.type_text("regs\n");
    vm.expect(r"cpu \d+ registers:\n\s+rax 0x", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("bt\n");
    vm.expect(r"backtrace of cpu \d+", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("log\n");
    vm.expect("kernel command line", STEP);
    vm.expect("db> ", STEP);
    vm.type_text("dump\n");
    vm.expect("dump: only after a panic", STEP);
    vm.expect("db> ", STEP);
    continue_typed(&mut vm);
    vm.type_text("echo clean\n");
    vm.expect("\nclean\n", STEP);
    vm.expect("shell> ", STEP);
    let out = vm.console();
    let after = &out[out.rfind("continuing after").expect("continued")..];
    assert!(
        !after.contains("nothere") && !after.contains("unknown command"),
        "keys typed at db> reached the shell:\n{after}"
    );
    assert!(
        after.contains("shell> echo clean\n"),
        "the shell line is not clean:\n{after}"
    );
    // A second break-in works the same, and its stop counted.
    ctrl_alt_esc(&mut vm);
    at_db(&mut vm, "Ctrl\\+Alt\\+Esc");
    std::thread::sleep(Duration::from_millis(1200));
    continue_typed(&mut vm);
    vm.type_text("uptime\n");
    let c = vm.expect_captures(r"stopped (\d+)\.(\d+) s in 2 break-in\(s\)", STEP);
    assert!(
        c[1].parse::<u64>().unwrap() >= 1,
        "stop time not accounted: {c:?}"
    );
}

#[test]
fn a_sleeper_does_not_count_the_time_stopped() {
    let mut vm = boot("breakin-sleep", config(2));
    vm.send_serial("sleep 2000\n");
    std::thread::sleep(Duration::from_millis(300));
    // The shell thread sleeps: break in from the USB keyboard.
    ctrl_alt_esc(&mut vm);
    at_db(&mut vm, "Ctrl\\+Alt\\+Esc");
    std::thread::sleep(Duration::from_secs(3));
    continue_typed(&mut vm);
    let c = vm.expect_captures(
        r"slept 2000 ms: (\d+) ms on the wall clock, (\d+) ms of it stopped",
        STEP,
    );
    let (wall, stopped): (u64, u64) = (c[1].parse().unwrap(), c[2].parse().unwrap());
    assert!(stopped >= 2500, "the break-in lasted {stopped} ms only");
    // Woken after its own 2 s, not at once on `continue` (its deadline had
    // passed on the TSC while the world stood still).
    assert!(
        wall + 20 >= 2000 + stopped,
        "slept {wall} ms on the wall clock with {stopped} ms stopped: woken early"
    );
    println!("sleep 2000: {wall} ms on the wall clock, {stopped} ms stopped");
}
