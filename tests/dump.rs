//! Crash dump tests (issue 7): `dump` in the panic console writes an ELF core
//! to the virtio-blk dump disk; `savecore` checks and extracts it; `gdb`
//! reads it with the kernel ELF (backtrace of the panic thread, one thread per
//! CPU). Also: `panic=dump` dumps and reboots by itself, Ctrl-C aborts (and
//! `savecore` says so), no dump disk gives a one-line error and a live
//! console, a disk write error names its sectors and leaves an aborted dump,
//! and `dump.fault=stall` ends in a watchdog reset.
//!
//! Each test has its own disk image under `target/qemu-scratch/`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware, SocketPath, escape_option, scratch_dir};
use panicbench::savecore;

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);
const DUMP: Duration = Duration::from_secs(180);

/// A fresh (deleted) disk image path for test `name`.
fn fresh_disk(name: &str) -> PathBuf {
    let p = scratch_dir().join(format!("dump-{name}.img"));
    let _ = std::fs::remove_file(&p);
    p
}

fn config(name: &str, append: &str, smp: u32) -> (Config, PathBuf) {
    let disk = fresh_disk(name);
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = smp;
    cfg.firmware = Firmware::Qboot;
    cfg.append = append.into();
    cfg.dump_disk = Some(disk.clone());
    (cfg, disk)
}

/// Types a console line: on the USB keyboard when `usb`, else over serial.
fn type_line(vm: &mut Vm, line: &str, usb: bool) {
    if usb {
        vm.type_text(&format!("{line}\n"));
    } else {
        vm.send_serial(&format!("{line}\r"));
    }
}

fn gdb(core: &std::path::Path) -> String {
    let out = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            "set pagination off",
            "-ex",
            "info threads",
            "-ex",
            "bt",
            KERNEL_ELF,
        ])
        .arg(core)
        .output()
        .expect("running gdb (apt-get install gdb)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// After a failed dump: the panic console prompts again and answers a
/// command over serial; then the machine powers off cleanly.
fn console_lives_then_power_off(vm: &mut Vm) {
    vm.expect("db> ", STEP);
    vm.send_serial("cpus\r");
    vm.expect("cpu 1: apic", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}

/// Panics with `trigger`, types `dump`, saves the core and checks it in gdb.
fn dump_and_debug(trigger: &str, smp: u32, usb: bool) {
    let name = format!("gdb-{trigger}{}", if usb { "-usb" } else { "" });
    let (cfg, disk) = config(&name, &format!("trigger={trigger}"), smp);
    let mut vm = Vm::start(&format!("dump-{name}"), cfg);
    vm.expect("dump: virtio-blk .* reserved for crash dumps", BOOT);
    vm.expect("PANIC on cpu", BOOT);
    if usb {
        // The panic came at boot, maybe before the keyboard was attached.
        vm.expect_usb_keyboard_ready(STEP);
    } else {
        vm.expect("db> ", STEP);
    }
    type_line(&mut vm, "dump", usb);
    vm.expect(r"dump: minimal core, \d+ MiB", STEP);
    vm.expect(
        r"dump: complete: \d+ bytes in [0-9.]+ s \([0-9.]+ MB/s\)",
        DUMP,
    );
    vm.expect("db> ", STEP);
    type_line(&mut vm, "poweroff", usb);
    vm.expect_success_exit(STEP);

    let core = scratch_dir().join(format!("{name}.vmcore"));
    let s =
        savecore::save(&disk, &core).unwrap_or_else(|e| panic!("savecore on a complete dump: {e}"));
    assert_eq!(s.header.cpus, smp);
    assert_eq!(s.threads.len(), smp as usize, "one NT_PRSTATUS per CPU");
    assert!(
        s.header.message().contains("test:") || s.header.message().contains("CPU exception"),
        "{}",
        s.header.message()
    );
    let out = gdb(&core);
    let thread_row = regex::Regex::new(r"^\*?\s+\d+\s+LWP \d+").unwrap();
    let threads = out.lines().filter(|l| thread_row.is_match(l)).count();
    assert_eq!(
        threads, smp as usize,
        "info threads must list one thread per CPU:\n{out}"
    );
    let bt: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    assert!(bt.len() >= 2, "backtrace too short:\n{out}");
    assert!(
        bt.iter().any(|l| l.contains("trigger::run")),
        "bt lacks the trigger's function:\n{out}"
    );
    if trigger != "fault" {
        assert!(
            bt.iter().any(|l| l.contains("panic_handler")
                || l.contains("rust_begin_unwind")
                || l.contains("panic_fmt")),
            "bt lacks the panic function:\n{out}"
        );
    }
    let _ = std::fs::remove_file(core);
    let _ = std::fs::remove_file(disk);
}

#[test]
fn dump_plain_readable_by_gdb() {
    dump_and_debug("plain", 4, false);
}

#[test]
fn dump_typed_on_the_usb_keyboard_readable_by_gdb() {
    dump_and_debug("plain", 4, true);
}

#[test]
fn dump_cli_typed_on_the_usb_keyboard_readable_by_gdb() {
    dump_and_debug("cli", 4, true);
}

#[test]
fn dump_usb_lock_typed_on_the_usb_keyboard_readable_by_gdb() {
    // The `usb` thread is frozen holding the driver lock on another CPU.
    dump_and_debug("usb-lock", 4, true);
}

#[test]
fn dump_lock_readable_by_gdb() {
    dump_and_debug("lock", 2, false);
}

#[test]
fn dump_fault_readable_by_gdb() {
    dump_and_debug("fault", 4, false);
}

#[test]
fn panic_dump_policy_dumps_and_reboots() {
    let (cfg, disk) = config("policy", "trigger=plain panic=dump", 2);
    let mut vm = Vm::start("dump-policy", cfg);
    vm.expect("PANIC on cpu", BOOT);
    vm.expect("panic=dump: writing a crash dump", STEP);
    vm.expect("dump: complete", DUMP);
    vm.expect("panic=dump: rebooting", STEP);
    // `-no-reboot` (set by the harness) turns the reboot into an exit.
    let code = vm.wait_exit(STEP);
    assert_eq!(code, 0, "a reboot under -no-reboot exits QEMU with 0");
    let core = scratch_dir().join("policy.vmcore");
    let s = savecore::save(&disk, &core).unwrap_or_else(|e| panic!("savecore: {e}"));
    assert_eq!(s.header.message(), "test: plain panic");
    assert_eq!(s.threads, vec![1, 2], "panic CPU (0) first, then CPU 1");
    let _ = std::fs::remove_file(core);
    let _ = std::fs::remove_file(disk);
}

#[test]
fn ctrl_c_aborts_the_dump_and_savecore_says_aborted() {
    let (mut cfg, disk) = config("abort", "trigger=plain", 2);
    cfg.memory_mib = 512;
    let mut vm = Vm::start("dump-abort", cfg);
    vm.expect("db> ", BOOT);
    // Serial: the Ctrl-C byte waits in the UART until the first poll
    // between chunks, so the abort is deterministic.
    vm.send_serial("dump full\r\x03");
    vm.expect("dump: full core", STEP);
    vm.expect(
        "dump: aborted by Ctrl-C after \\d+ of \\d+ bytes; header marked aborted",
        DUMP,
    );
    vm.expect("db> ", STEP);
    vm.send_serial("cpus\r");
    vm.expect("cpu 1: apic", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
    let core = scratch_dir().join("abort.vmcore");
    let _ = std::fs::remove_file(&core);
    match savecore::save(&disk, &core) {
        Err(e @ savecore::Error::Incomplete(_)) => {
            assert!(e.to_string().contains("aborted"), "{e}")
        }
        other => panic!("savecore must report the aborted dump, got {other:?}"),
    }
    assert!(
        !core.exists(),
        "an aborted dump must not be written out as a core"
    );
    // The command-line tool says so too, with a non-zero status.
    let out = Command::new(env!("CARGO_BIN_EXE_panicbench"))
        .args(["savecore"])
        .arg(&disk)
        .arg("-o")
        .arg(&core)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborted"),
        "{out:?}"
    );
    let _ = std::fs::remove_file(disk);
}

#[test]
fn ctrl_c_on_the_usb_keyboard_aborts_a_full_dump() {
    let (mut cfg, disk) = config("abort-usb", "trigger=plain", 2);
    cfg.memory_mib = 1024;
    let mut vm = Vm::start("dump-abort-usb", cfg);
    vm.expect_usb_keyboard_ready(BOOT);
    vm.type_text("dump full\n");
    vm.expect("dump: full core", STEP);
    vm.key("ctrl", true);
    vm.key("c", true);
    vm.key("c", false);
    vm.key("ctrl", false);
    vm.expect("dump: aborted by Ctrl-C", DUMP);
    vm.expect("db> ", STEP);
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
    let e = savecore::save(&disk, &scratch_dir().join("abort-usb.vmcore")).unwrap_err();
    assert!(e.to_string().contains("aborted"), "{e}");
    let _ = std::fs::remove_file(disk);
}

#[test]
fn no_dump_disk_is_a_one_line_error_and_the_console_lives() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = 2;
    cfg.firmware = Firmware::Qboot;
    cfg.append = "trigger=plain".into();
    cfg.dump_disk = None;
    let mut vm = Vm::start("dump-none", cfg);
    vm.expect("dump: no virtio-blk disk", BOOT);
    vm.expect("db> ", BOOT);
    vm.send_serial("dump\r");
    vm.expect("dump: no dump device", STEP);
    console_lives_then_power_off(&mut vm);
}

#[test]
fn a_write_error_names_its_sectors_and_leaves_an_aborted_dump() {
    // QEMU's blkdebug fails every write that covers sector 16384 (8 MiB,
    // inside the minidump) with EIO; virtio-blk reports it as
    // VIRTIO_BLK_S_IOERR.
    const BAD: u64 = 16384;
    let disk = fresh_disk("ioerror");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(512 << 20))
        .unwrap();
    let rules = scratch_dir().join("dump-ioerror.blkdebug");
    std::fs::write(
        &rules,
        format!("[inject-error]\nevent = \"write_aio\"\nerrno = \"5\"\nsector = \"{BAD}\"\n"),
    )
    .unwrap();
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = 2;
    cfg.firmware = Firmware::Qboot;
    cfg.append = "trigger=plain".into();
    cfg.dump_disk = None;
    cfg.extra.extend([
        "-drive".into(),
        format!(
            "file=blkdebug:{}:{},format=raw,if=none,id=baddisk",
            rules.display(),
            disk.display()
        ),
        "-device".into(),
        "virtio-blk-pci,drive=baddisk".into(),
    ]);
    let mut vm = Vm::start("dump-ioerror", cfg);
    vm.expect("dump: virtio-blk .* reserved for crash dumps", BOOT);
    vm.expect("db> ", BOOT);
    vm.send_serial("dump\r");
    let line = vm.expect(
        r"dump: I/O error: write of sectors \d+\.\.\d+ failed: device status 1 \(I/O error\)",
        DUMP,
    );
    let sectors: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // QEMU's virtio-blk merges adjacent writes that arrive in one batch
    // (`virtio_blk_submit_multireq`) and fails every request of a merged
    // write: the request named may be the bad one or a neighbour in flight
    // with it (four requests of at most 4 MiB: 32768 sectors).
    assert!(
        sectors.len() >= 2
            && sectors[0] < sectors[1]
            && sectors[0] <= BAD
            && BAD < sectors[0] + 32768,
        "the error names sectors {sectors:?}, not the failing sector {BAD} or a request merged with it: {line}"
    );
    vm.expect("dump: failed after \\d+ bytes; header marked aborted", STEP);
    console_lives_then_power_off(&mut vm);
    let e = savecore::save(&disk, &scratch_dir().join("ioerror.vmcore")).unwrap_err();
    assert!(e.to_string().contains("aborted"), "{e}");
    let _ = std::fs::remove_file(disk);
    let _ = std::fs::remove_file(rules);
}

/// Reads QMP events from a second monitor until QEMU closes it.
fn qmp_event_reader(path: PathBuf) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("second QMP socket {}: {e}", path.display()),
            }
        };
        let mut w = stream.try_clone().unwrap();
        let _ = w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n");
        BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"event\""))
            .collect()
    })
}

#[test]
fn stalled_dump_is_reset_by_the_watchdog() {
    let (mut cfg, disk) = config("stall", "trigger=plain dump.fault=stall", 2);
    // A second QMP monitor for events, its socket kept short like the
    // harness's (a unix socket path holds at most 107 bytes).
    let socket = SocketPath::new("stall-events").expect("a short socket path");
    let events = socket.path().to_path_buf();
    cfg.extra.extend([
        "-qmp".to_string(),
        format!(
            "unix:{},server=on,wait=off",
            escape_option(&events.display().to_string())
        ),
    ]);
    let mut vm = Vm::start("dump-stall", cfg);
    let reader = qmp_event_reader(events.clone());
    vm.expect("watchdog: i6300esb", BOOT);
    vm.expect("db> ", BOOT);
    vm.send_serial("dump\r");
    vm.expect("stalling without petting the watchdog", STEP);
    let stalled = Instant::now();
    // 10 s watchdog; with -no-reboot the reset exits QEMU.
    let code = vm.wait_exit(Duration::from_secs(60));
    let waited = stalled.elapsed();
    assert_eq!(
        code, 0,
        "the watchdog reset (under -no-reboot) exits QEMU with 0"
    );
    assert!(
        waited >= Duration::from_secs(5),
        "reset came too early ({waited:?}): not the 10 s watchdog"
    );
    let ev = reader.join().unwrap();
    assert!(
        ev.iter()
            .any(|e| e.contains("\"WATCHDOG\"") && e.contains("reset")),
        "no WATCHDOG event: {ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.contains("guest-reset") || e.contains("\"RESET\"")),
        "no reset: {ev:?}"
    );
    // The header still says "in progress": savecore reports a torn dump.
    match savecore::save(&disk, &scratch_dir().join("stall.vmcore")) {
        Err(e @ savecore::Error::Incomplete(_)) => assert!(e.to_string().contains("torn"), "{e}"),
        other => panic!("a stalled dump must be reported torn, got {other:?}"),
    }
    drop(socket);
    let _ = std::fs::remove_file(disk);
}
