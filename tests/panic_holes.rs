//! The panic path without holes (issue 14): a fault before the stop, CPUs
//! that are not online or do not stop, a panic raised on an IST stack, and
//! device memory refused by `mem`. Typed over serial; each test boots once.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware, scratch_dir};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);
const DUMP: Duration = Duration::from_secs(180);

/// Boots with `trigger` on qboot; a dump disk only where one is given.
fn boot_with(name: &str, trigger: &str, smp: u32, disk: Option<std::path::PathBuf>) -> Vm {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = smp;
    cfg.firmware = Firmware::Qboot;
    cfg.append = format!("trigger={trigger}");
    cfg.dump_disk = disk;
    Vm::start(name, cfg)
}

fn boot(name: &str, trigger: &str, smp: u32) -> Vm {
    boot_with(name, trigger, smp, None)
}

/// Types `cpus` and returns its output up to the next prompt.
fn cpus(vm: &mut Vm) -> String {
    vm.send_serial("cpus\r");
    vm.expect(r"(?s)cpu 0: .*?db> ", STEP)
}

fn power_off(vm: &mut Vm) {
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

/// A panic inside the panic message's `Display`: the other CPUs were
/// stopped before the message was formatted, so the nested panic finds a
/// stopped world (before the fix they kept running under the console).
#[test]
fn a_panic_while_formatting_the_message_finds_the_others_stopped() {
    let mut vm = boot("holes-fmt", "fmt", 4);
    vm.expect(
        "NESTED PANIC \\(depth 1\\) on cpu 0: test: panic inside the formatting of the panic message",
        BOOT,
    );
    vm.expect("db> ", STEP);
    let out = cpus(&mut vm);
    for c in 1..4 {
        assert!(
            out.contains(&format!("cpu {c}: apic {c} stopped (nmi)")),
            "cpu {c} is not stopped after a panic in the message's formatting:\n{out}"
        );
    }
    power_off(&mut vm);
}

/// An AP that is still starting when the panic begins parks itself on
/// arrival instead of coming online under the panic console.
#[test]
fn an_ap_starting_at_panic_time_parks_on_arrival() {
    let mut vm = boot("holes-ap-start", "ap-start", 4);
    vm.expect(
        "PANIC on cpu 0 [^\n]*: test: panic while cpu 1 is starting",
        BOOT,
    );
    vm.expect("db> ", STEP);
    // Give the AP time to arrive, then look twice: it must stay parked.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        let out = cpus(&mut vm);
        assert!(
            out.contains("cpu 1: apic 1 stopped (on arrival)"),
            "cpu 1 did not park on arrival:\n{out}"
        );
        assert!(
            out.contains("cpu 2: apic 2 absent") && out.contains("cpu 3: apic 3 absent"),
            "no AP may be started after the panic:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    power_off(&mut vm);
}

/// A CPU that answers neither the stop IPI nor the NMI is named in the
/// report, above the prompt and in `cpus`.
#[test]
fn a_cpu_that_does_not_stop_is_named_above_the_prompt_and_in_cpus() {
    let mut vm = boot("holes-deaf", "deaf", 2);
    vm.expect("PANIC on cpu 0", BOOT);
    vm.expect("cpu 1: did not stop", STEP);
    vm.expect(
        "WARNING: cpu 1 did not stop; it may still be running, and locks are faked around it",
        STEP,
    );
    vm.expect("db> ", STEP);
    let out = cpus(&mut vm);
    assert!(
        out.contains("cpu 1: apic 1 did not stop (may still be running)"),
        "cpus does not say cpu 1 did not stop:\n{out}"
    );
    power_off(&mut vm);
}

/// A panic raised on the NMI's 16 KiB IST stack moves to the panic stack:
/// the console, a backtrace, the USB state and a whole dump run there.
#[test]
fn a_panic_on_the_nmi_stack_runs_the_console_and_a_dump() {
    let disk = scratch_dir().join("dump-holes-nmi.img");
    let _ = std::fs::remove_file(&disk);
    let mut vm = boot_with("holes-nmi", "nmi", 2, Some(disk.clone()));
    vm.expect("PANIC on cpu 0 [^\n]*: unexpected NMI", BOOT);
    vm.expect("db> ", STEP);
    vm.send_serial("bt\r");
    vm.expect(r"(?s)backtrace of cpu 0.*?on_nmi.*?db> ", STEP);
    vm.send_serial("lsusb\r");
    vm.expect(r"(?s)xHCI.*?db> ", STEP);
    vm.send_serial("dump\r");
    vm.expect(r"dump: complete: \d+ bytes", DUMP);
    vm.expect("db> ", STEP);
    power_off(&mut vm);
    let _ = std::fs::remove_file(disk);
}

/// `mem` reads RAM only: device memory (the local APIC, the IOAPIC) is
/// mapped but refused, as `bt` refuses it. Known bytes read back, and a
/// range running from RAM into an unmapped page (the panic stack's guard)
/// is dumped up to the boundary, which is named.
#[test]
fn mem_refuses_device_memory_and_reads_ram() {
    let mut vm = boot("holes-mem", "plain", 2);
    let guard = vm.expect_captures(
        r"panic stack: 0x[0-9a-f]+-0x[0-9a-f]+, guard page at 0x([0-9a-f]+)\r?\n",
        BOOT,
    );
    let guard = u64::from_str_radix(&guard[1], 16).expect("hex guard page address");
    vm.expect("db> ", BOOT);
    // The AP trampoline copied to 0x8000 starts `cli; cld; xor ax, ax`.
    vm.send_serial("mem 0x8000 4\r");
    vm.expect(r"0x0000000000008000: fa fc 31 c0\b", STEP);
    vm.send_serial(&format!("mem {:#x} 32\r", guard - 16));
    vm.expect(
        &format!("{:#018x}:( [0-9a-f]{{2}}){{16}} ", guard - 16),
        STEP,
    );
    vm.expect(&format!("mem: stopped at {guard:#x}: not mapped"), STEP);
    for addr in ["0xfee00000", "0xfec00000"] {
        vm.send_serial(&format!("mem {addr} 16\r"));
        vm.expect(&format!("mem: {addr}\\.\\.\\+0x10 is not RAM"), STEP);
    }
    // RAM is still read.
    vm.send_serial("mem 0x1000 16\r");
    vm.expect(r"0x0000000000001000:( [0-9a-f]{2}){16}", STEP);
    power_off(&mut vm);
}

/// An early panic (before the driver started) on qboot, which assigns no
/// BARs: the controller was found, its BAR assigned and mapped at boot, so
/// the panic path brings it up from scratch without touching PCI BARs, page
/// tables or the log lock, and the USB keyboard types at `db>`.
#[test]
fn an_early_panic_assigns_nothing_and_types_on_usb() {
    let mut vm = boot("holes-early", "early", 2);
    vm.expect("PANIC on cpu 0 [^\n]*: test: early boot panic", BOOT);
    vm.expect(
        r"usb [0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: controller started from scratch in polled mode",
        STEP,
    );
    vm.expect_usb_keyboard_ready(STEP);
    let after = vm.console();
    let after = &after[after.find("PANIC on cpu 0").unwrap_or(0)..];
    assert!(
        !after.contains("assigned BAR") && !after.contains("INFO"),
        "the panic path assigned a BAR or logged through the logger:\n{after}"
    );
    vm.type_text("cpus\n");
    vm.expect(r"cpu 1: apic 1 absent", STEP);
    vm.expect("db> ", STEP);
    power_off(&mut vm);
}
