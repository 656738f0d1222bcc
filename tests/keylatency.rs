//! The key-latency bench's keyboard switch (`src/bench/keys.rs`, issue 19
//! item 4), in one boot: keys timed at `shell> ` reach the USB keyboard
//! (its key counter rises); after [`aim_at_ps2`] (the `usb-kbd` unplugged)
//! they still echo, at `shell> ` and at `db> `, with no USB keyboard
//! attached and the USB key counter standing still, so the PS/2 keyboard
//! typed them; after [`aim_at_usb`] at `db> ` the USB counter rises again.
//! Every timed key has QEMU's key-down stamp ([`Trace`]) before its echo.
//! No timing is asserted: the figures belong to `cargo run -- bench`.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::bench::keys::{Sample, Source, Trace, aim_at_ps2, aim_at_usb, measure};
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);
/// Keys timed per run.
const KEYS: usize = 4;

/// `kbd` over serial: (USB keyboards attached, USB keys queued in total).
fn usb_counters(vm: &mut Vm, prompt: &str) -> (u32, u32) {
    vm.send_serial("kbd\r");
    let c = vm.expect_captures(
        r"(\d+) keyboard\(s\), \d+ reports, \d+ rollover, \d+ errors, (\d+) keys",
        STEP,
    );
    vm.expect(prompt, STEP);
    let n = |i: usize| {
        c.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("kbd counters: {c:?}"))
    };
    (n(1), n(2))
}

fn timed(vm: &mut Vm, what: &'static str, all: &mut Vec<(&'static str, Sample)>) {
    match measure(vm, KEYS, Source::Qmp) {
        Ok(s) if s.len() == KEYS => all.extend(s.into_iter().map(|s| (what, s))),
        Ok(s) => vm.fail(&format!("{what}: {} samples of {KEYS}", s.len())),
        Err(e) => vm.fail(&format!("{what}: {e}")),
    }
}

#[test]
fn the_bench_aims_keys_at_usb_then_ps2_then_usb() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    cfg.smp = 2;
    cfg.dump_disk = None;
    let trace = Trace::enable(
        &mut cfg,
        panicbench::qemu::scratch_dir().join(format!("keylatency-{}.trace", std::process::id())),
    );
    let mut all = Vec::new();
    let mut vm = Vm::start("keylatency-switch", cfg);
    vm.expect("shell> ", BOOT);
    vm.wait_until_usb_types("shell>", STEP);
    vm.expect("shell> ", STEP);

    let (kbds, before) = usb_counters(&mut vm, "shell> ");
    assert_eq!(kbds, 1, "one USB keyboard at boot");
    timed(&mut vm, "USB at shell>", &mut all);
    let (_, usb) = usb_counters(&mut vm, "shell> ");
    // Each timed key is `a` and Backspace: two keys.
    assert!(
        usb >= before + 2 * KEYS as u32,
        "USB keys at shell> did not reach the USB keyboard: {before} -> {usb}"
    );

    if let Err(e) = aim_at_ps2(&mut vm) {
        vm.fail(&format!("aim_at_ps2: {e}"));
    }
    timed(&mut vm, "PS/2 at shell>", &mut all);
    let (kbds, after) = usb_counters(&mut vm, "shell> ");
    assert_eq!(kbds, 0, "the usb-kbd is still attached after aim_at_ps2");
    assert_eq!(after, usb, "keys meant for PS/2 reached the USB keyboard");

    vm.send_serial("\x15panic\r");
    vm.expect("db> ", STEP);
    timed(&mut vm, "PS/2 at db>", &mut all);
    let (kbds, polled) = usb_counters(&mut vm, "db> ");
    assert_eq!(kbds, 0, "a USB keyboard at db> before aim_at_usb");
    assert_eq!(polled, usb, "keys meant for PS/2 at db> reached USB");

    if let Err(e) = aim_at_usb(&mut vm) {
        vm.fail(&format!("aim_at_usb: {e}"));
    }
    timed(&mut vm, "USB at db>", &mut all);
    let (kbds, back) = usb_counters(&mut vm, "db> ");
    assert_eq!(kbds, 1, "aim_at_usb plugged no keyboard");
    assert!(
        back >= polled + 2 * KEYS as u32,
        "USB keys at db> did not reach the USB keyboard: {polled} -> {back}"
    );
    vm.send_serial("poweroff\r");
    vm.wait_exit(STEP);

    // QEMU's key-down stamps: one for every timed key, inside its QMP
    // command, before its echo reached the host.
    let mut samples: Vec<Sample> = all.iter().map(|(_, s)| *s).collect();
    trace.attach(&mut samples);
    for ((what, _), s) in all.iter().zip(&samples) {
        let down = s
            .injected
            .unwrap_or_else(|| panic!("{what}: no key-down stamp in QEMU's trace for {s:?}"));
        assert!(
            down < s.arrival,
            "{what}: QEMU's key-down stamp is not before the echo: {s:?}"
        );
    }
}
