//! Fast typing on the USB keyboard (issue 19 item 3): a 54-key line typed
//! with 5 ms between key events (each press and each release is an event)
//! arrives exact at `shell>` (interrupt mode) and at `db>` (polled mode).
//!
//! QEMU's usb-kbd queues 16 key events and hands out one per poll of its
//! interrupt endpoint (`hw/input/hid.c` `hid_keyboard_poll`), and the xHCI
//! model polls that endpoint at the Interval the driver programmed. The
//! kernel polls keyboards every 1 ms by default (`usb.kbpoll=1`), draining
//! the queue five times faster than the keys come in.
//!
//! Observation, not a test: with `KBPOLL=8 cargo test --test kbpoll`
//! (`usb.kbpoll=8`, the device's own 8 ms and the kernel's old behaviour)
//! the queue overflows, keys are lost and a dropped release leaves a key
//! held down: both tests failed in each of 3 runs (2026-12-01), e.g. the
//! shell showed `echo Quick brown Fox 2 jmpsov7777777...` (Enter lost, `7`
//! repeating) and `db>` `Quick brown Fox 42 jum r 7laz gsnnnnnnn...`.
//! `KBPOLL=4` passed once. `KBPOLL` is only read by this file.

use std::time::{Duration, Instant};

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};
use panicbench::qmp::qcode_for;
use serde_json::json;

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);
/// Time between two key events.
const GAP: Duration = Duration::from_millis(5);
/// 54 keys: letters, digits, spaces, capitals (Shift, pressed and released
/// around each capital: more events, no more keys). Its first word is no
/// command of either console.
const LINE: &str = "Quick brown Fox 42 jumps over 7 lazy Dogs and 1 CAT x9";
const _: () = assert!(LINE.len() == 54);

/// The press and release events of `text`, Shift around capitals.
fn events(text: &str) -> Vec<(&'static str, bool)> {
    let mut out = Vec::new();
    for c in text.chars() {
        let (code, shift) = qcode_for(c).unwrap_or_else(|| panic!("no key for {c:?}"));
        if shift {
            out.push(("shift", true));
        }
        out.push((code, true));
        out.push((code, false));
        if shift {
            out.push(("shift", false));
        }
    }
    out
}

/// Types `text` on the USB keyboard, one QMP key event every [`GAP`]
/// (scheduled from the start, so QMP round trips do not stretch it).
/// Returns the mean gap achieved.
fn type_fast(vm: &mut Vm, text: &str) -> Duration {
    let events = events(text);
    let start = Instant::now();
    for (i, &(code, down)) in events.iter().enumerate() {
        let due = start + GAP * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let event = json!({ "type": "key", "data": { "down": down, "key": { "type": "qcode", "data": code } } });
        if let Err(e) = vm.qmp("input-send-event", json!({ "events": [event] })) {
            vm.fail(&format!("QMP input-send-event: {e}"));
        }
    }
    start.elapsed() / (events.len() as u32 - 1).max(1)
}

/// A VM at `shell>` whose USB keyboard types (`KBPOLL=N` in the
/// environment adds `usb.kbpoll=N` to the kernel command line).
fn boot(name: &str) -> Vm {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = 2;
    cfg.firmware = Firmware::Qboot;
    cfg.dump_disk = None;
    if let Ok(ms) = std::env::var("KBPOLL") {
        cfg.append = format!("usb.kbpoll={ms}");
    }
    let mut vm = Vm::start(name, cfg);
    vm.expect("shell> ", BOOT);
    vm.wait_until_usb_types("shell>", STEP);
    vm.expect("shell> ", STEP);
    vm
}

/// Types `prefix` + [`LINE`] fast, then Enter slowly, and waits for
/// `expected`; fails with what arrived instead.
fn type_line(vm: &mut Vm, prefix: &str, expected: &str, prompt: &str) {
    let gap = type_fast(vm, &format!("{prefix}{LINE}"));
    vm.type_text("\n");
    println!(
        "{prompt}: {} keys, mean gap {gap:?}",
        prefix.len() + LINE.len()
    );
    if let Err(e) = vm.try_expect(expected, STEP.min(Duration::from_secs(5))) {
        let arrived = vm.unread();
        vm.fail(&format!(
            "{e}: at {prompt} the line typed with {GAP:?} between key events \
             did not arrive exact; the console shows:\n{arrived}"
        ));
    }
    vm.expect(prompt, STEP);
}

#[test]
fn a_fast_typed_line_arrives_exact_at_the_shell() {
    let mut vm = boot("kbpoll-shell");
    // the shell echoes the keys as they come, then `echo` prints the line
    type_line(
        &mut vm,
        "echo ",
        &format!("echo {LINE}\n{LINE}\n"),
        "shell> ",
    );
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
}

#[test]
fn a_fast_typed_line_arrives_exact_at_the_panic_console() {
    let mut vm = boot("kbpoll-db");
    vm.type_text("panic\n");
    vm.expect("db> ", STEP);
    // `db>` has no `echo`: the line editor echoes every key as it comes,
    // and the first word is reported as an unknown command.
    let first = LINE.split(' ').next().unwrap_or_default();
    type_line(
        &mut vm,
        "",
        &format!("{LINE}\nunknown command: {first}\n"),
        "db> ",
    );
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
}

/// Emulator exits of an idle `db>`: QEMU's trace events for every access
/// to the xHCI registers, the UART and the i8042, counted over one second
/// of the console loop; each loop iteration reads the UART's LSR once, so
/// the count per LSR read is the count per iteration. A measurement, not a
/// check: `cargo test --test kbpoll -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: prints the device accesses per idle console iteration"]
fn idle_panic_console_device_accesses_per_iteration() {
    let log =
        panicbench::qemu::scratch_dir().join(format!("kbpoll-trace-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = 2;
    cfg.firmware = Firmware::Qboot;
    cfg.dump_disk = None;
    cfg.append = "trigger=plain".into();
    // one event enabled from the start turns the log backend on
    cfg.extra = [
        "-D",
        &log.to_string_lossy(),
        "-trace",
        "usb_xhci_port_reset",
    ]
    .map(String::from)
    .to_vec();
    let mut vm = Vm::start("kbpoll-trace", cfg);
    vm.expect("db> ", BOOT);
    std::thread::sleep(Duration::from_millis(500));
    let set = |vm: &mut Vm, enable: bool| {
        for name in [
            "usb_xhci_*_read",
            "usb_xhci_*_write",
            "serial_read",
            "serial_write",
            "pckbd_kbd_read_*",
        ] {
            if let Err(e) = vm.qmp(
                "trace-event-set-state",
                json!({ "name": name, "enable": enable }),
            ) {
                vm.fail(&format!("trace-event-set-state {name}: {e}"));
            }
        }
    };
    set(&mut vm, true);
    std::thread::sleep(Duration::from_secs(1));
    set(&mut vm, false);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let count = |what: &dyn Fn(&str) -> bool| text.lines().filter(|l| what(l)).count();
    let xhci_reads = count(&|l| l.starts_with("usb_xhci_") && l.contains("_read "));
    let xhci_writes = count(&|l| l.starts_with("usb_xhci_") && l.contains("_write "));
    let uart_reads = count(&|l| l.starts_with("serial_read"));
    let uart_writes = count(&|l| l.starts_with("serial_write"));
    let i8042_reads = count(&|l| l.starts_with("pckbd_kbd_read"));
    let iterations = count(&|l| l.starts_with("serial_read") && l.contains("addr 0x05"));
    let all = xhci_reads + xhci_writes + uart_reads + uart_writes + i8042_reads;
    println!(
        "idle db> for 1 s: {iterations} loop iterations (UART LSR reads); xHCI reads \
         {xhci_reads} writes {xhci_writes}, UART reads {uart_reads} writes {uart_writes}, \
         i8042 reads {i8042_reads}: {:.3} device accesses per iteration",
        all as f64 / iterations.max(1) as f64
    );
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
}
