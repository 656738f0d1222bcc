//! Hostile input to the panic console over serial: random bytes (escape
//! sequences included), overlong lines, `mem` with huge lengths and bad
//! addresses, out-of-range `bt`/`regs` arguments. The console must survive
//! every case (no nested panic, no fault, no reset) and still answer `cpus`.

use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

/// xorshift64*: deterministic, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Words that would end the session or write to the disk.
const FORBIDDEN: &[&str] = &["reboot", "halt", "poweroff", "dump"];

fn cases() -> Vec<String> {
    let mut v: Vec<String> = [
        "mem 0xffffffffffffffff 0xffffffffffffffff",
        "mem 0 0",
        "mem 0x0",
        "mem 0x8000000000000000",
        "mem 0xdead0000dead0000 4096",
        "mem 0x4000deadb000 99999999999999999999",
        "mem 0xffff800000000000 1",
        "mem 0xfffffffffffff000 0x2000",
        "mem 0x1000 -1",
        "mem -1",
        "mem 0x 0x",
        "mem 0xg",
        "mem 18446744073709551616",
        "bt 99999999999999999999",
        "bt -1",
        "bt 0x",
        "bt 4294967296",
        "regs -1",
        "regs 99999999999999999999",
        "regs 65",
        "cpus extra args here",
        "help me please",
        "\x1b[A\x1b[A\x1b[B\x1b[C\x1b[D\x1b[999;999H\x1b[",
        "\x1b\x1b\x1b[[[[",
        "\x1bOA\x1bO",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for len in [161, 1000, 1500, 4000] {
        v.push("m".repeat(len));
        v.push(format!("mem 0x{}", "f".repeat(len)));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    while v.len() < 100 {
        let len = (rng.next() % 300) as usize + 1;
        let bytes: String = (0..len)
            .map(|_| {
                let b = (rng.next() % 128) as u8;
                // Line ends are added per case; keep NUL out of the pipe's way.
                match b {
                    b'\r' | b'\n' | 0 => ' ',
                    b => b as char,
                }
            })
            .collect();
        if FORBIDDEN.iter().any(|w| bytes.contains(w)) {
            continue;
        }
        v.push(bytes);
    }
    v
}

#[test]
fn panic_console_survives_hostile_serial_input() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = 2;
    cfg.firmware = Firmware::Qboot;
    cfg.append = "trigger=plain".into();
    let mut vm = Vm::start("hostile-serial", cfg);
    vm.expect("PANIC on cpu", BOOT);
    vm.expect("db> ", STEP);
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        // Ctrl-U first: a previous case may have left an escape sequence or
        // a partial line behind.
        vm.send_serial(&format!("\x15{case}\r"));
        // Answer to the case, then a marker command proving the console is back.
        vm.send_serial("\x15cpus\r");
        vm.expect(r"(?s)cpu 1: apic .*?db> ", STEP);
        let out = vm.console();
        for bad in [
            "NESTED PANIC",
            "PANIC on cpu 1",
            "halting",
            "panic-proof kernel booting\n(?s).*panic-proof kernel booting",
        ] {
            if regex::Regex::new(bad).unwrap().is_match(&out) {
                vm.fail(&format!(
                    "case {i} {case:?}: console output contains {bad:?}"
                ));
            }
        }
    }
    vm.send_serial("\x15poweroff\r");
    vm.expect_success_exit(STEP);
    println!("hostile serial input: {} cases, 0 crashes", cases.len());
}

/// `trigger=badstack`: every other CPU is stopped with a corrupted frame
/// pointer (not canonical, unmapped, misaligned, a frame pointing at itself,
/// device memory). `bt N` prints what it can and says why the walk ended,
/// without a fault; the panic CPU's own backtrace is whole.
#[test]
fn backtraces_of_corrupted_stacks_end_with_a_reason() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = 8;
    cfg.firmware = Firmware::Qboot;
    cfg.append = "trigger=badstack".into();
    let mut vm = Vm::start("hostile-badstack", cfg);
    vm.expect("PANIC on cpu 0", BOOT);
    vm.expect("db> ", STEP);
    let reasons = [
        r"frame pointer 0xdead0000dead0000 is not a canonical address",
        r"frame pointer 0x4000deadb000 is not in RAM",
        r"frame pointer 0x[0-9a-f]*[1-79a-f] is misaligned",
        r"next frame 0x[0-9a-f]+ is not above the last one",
        r"frame pointer 0xfee00000 is not in RAM",
        r"frame pointer 0xdead0000dead0000 is not a canonical address",
        r"frame pointer 0x4000deadb000 is not in RAM",
    ];
    for (i, reason) in reasons.iter().enumerate() {
        let cpu = i + 1;
        vm.send_serial(&format!("bt {cpu}\r"));
        vm.expect(
            &format!(r"(?s)backtrace of cpu {cpu} .*?\(walk ended: {reason}\)\ndb> "),
            STEP,
        );
    }
    vm.send_serial("bt\r");
    let out = vm.expect(r"(?s)backtrace of cpu 0 .*?db> ", STEP);
    assert!(out.contains("trigger::run"), "{out}");
    assert!(!out.contains("walk ended"), "{out}");
    vm.send_serial("cpus\r");
    vm.expect(r"(?s)cpu 7: apic .*?db> ", STEP);
    assert!(!vm.console().contains("NESTED PANIC"));
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}
