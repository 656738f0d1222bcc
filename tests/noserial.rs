//! A PC without a serial port (`-serial none`: port 0x3F8 reads 0xFF, as on
//! most PCs and laptops today). The console lives on the screen alone: the
//! tests type only on the USB keyboard and read the VGA text screen back
//! (`Vm::screen`: the rows at the CRTC start address) and, once, as QEMU
//! draws it (a screendump read by OCR).

use std::time::{Duration, Instant};

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::ocr::{check_tools, expect_display};
use panicbench::qemu::{Config, scratch_dir};
use panicbench::savecore;

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);
const DUMP: Duration = Duration::from_secs(180);

fn no_serial(append: &str) -> Config {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.serial = false;
    cfg.smp = 2;
    cfg.append = append.into();
    cfg.dump_disk = None;
    cfg
}

/// Types `echo <token>` until the screen shows the token on a line of its
/// own (the USB keyboard may still be enumerating when the prompt appears).
/// Ctrl-U first clears whatever a half-typed attempt left on the line.
fn wait_typing_works(vm: &mut Vm, what: &str) {
    let end = Instant::now() + STEP;
    for n in 0.. {
        let token = format!("ping{n}");
        vm.key("ctrl", true);
        vm.type_text("u");
        vm.key("ctrl", false);
        vm.type_text(&format!("echo {token}\n"));
        let seen = Instant::now() + Duration::from_secs(2);
        while Instant::now() < seen {
            if vm.screen().is_ok_and(|s| s.lines().any(|l| l == token)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if Instant::now() > end {
            let screen = vm.screen().unwrap_or_default();
            vm.fail(&format!(
                "HANG: typing on the USB keyboard at {what} never echoed on the screen\n--- screen ---\n{screen}"
            ));
        }
    }
}

/// `mem` at `db>` dumps 4096 bytes: 256 lines of 85 characters, two rows
/// each, so the VGA console scrolls 512 rows and its start address goes
/// round the 204-row text window more than twice. The screen must then
/// show exactly the dump's last 12 lines (the rows the start address points
/// at, not what lies at the window's top) and the prompt on the last row.
fn screen_after_the_window_wrapped(vm: &mut Vm) {
    const FROM: u64 = 0x10_0000;
    vm.type_text(&format!("mem {FROM:#x} 4096\n"));
    let mut whole = String::from(r"\A");
    for line in 0..12 {
        let at = FROM + 4096 - 16 * (12 - line);
        whole += &format!(r"{at:#018x}:(?: [0-9a-f]{{2}}){{16}}  [^\n]*\n[^\n]*\n");
    }
    whole += r"db>\z";
    vm.expect_screen(&whole, STEP);
    // What QEMU draws (`vga_draw_text`, from the CRTC start address), read
    // by OCR (which reads VGA's 0 as O, G or 9 and d as i: only the shape
    // is checked): dump lines, their ASCII column of dots, down to the
    // prompt on the last row.
    let stem = scratch_dir().join("noserial-wrapped");
    let text = expect_display(
        vm,
        &stem,
        "the dump's last lines and db> on the VGA display",
        |t| {
            let rows: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
            rows.iter().filter(|l| l.contains("...........")).count() >= 10
                && rows.last().is_some_and(|l| l.trim().ends_with("b>"))
        },
        STEP,
    );
    eprintln!("--- OCR of the VGA display after the wrap ---\n{text}");
    for ext in ["ppm", "pgm"] {
        let _ = std::fs::remove_file(stem.with_extension(ext));
    }
}

#[test]
fn shell_and_panic_console_on_the_screen_with_the_usb_keyboard() {
    check_tools();
    let mut vm = Vm::start("noserial-console", no_serial(""));
    vm.expect_screen("serial: no UART at COM1", BOOT);
    vm.expect_screen(r"(?m)^shell>", BOOT);
    wait_typing_works(&mut vm, "shell>");
    vm.type_text("echo Hello, Screen!\n");
    vm.expect_screen(r"(?m)^Hello, Screen!$", STEP);
    vm.type_text("panic\n");
    vm.expect_screen(r"PANIC on cpu 0 [^\n]*: test: plain panic", STEP);
    vm.expect_screen(r"(?m)^db>", STEP);
    // `db>` is typed at with no echo unless the USB keyboard works (there is
    // no serial port; PS/2 gets no keys while a usb-kbd exists).
    vm.type_text("cpus\n");
    vm.expect_screen(r"(?m)^cpu 1: apic \d+ stopped \(nmi\)", STEP);
    screen_after_the_window_wrapped(&mut vm);
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
}

#[test]
fn panic_dump_completes_without_a_serial_port() {
    let disk = scratch_dir().join("dump-noserial.img");
    let _ = std::fs::remove_file(&disk);
    let mut cfg = no_serial("trigger=plain panic=dump");
    cfg.dump_disk = Some(disk.clone());
    let mut vm = Vm::start("noserial-dump", cfg);
    vm.expect_screen("panic=dump: writing a crash dump", BOOT);
    // `-no-reboot` (set by the harness) turns the reboot into an exit.
    let code = vm.wait_exit(DUMP);
    assert_eq!(
        code, 0,
        "the dump ends in a reboot (exit 0 under -no-reboot)"
    );
    let core = scratch_dir().join("noserial.vmcore");
    let s = savecore::save(&disk, &core).unwrap_or_else(|e| panic!("savecore: {e}"));
    assert_eq!(s.header.message(), "test: plain panic");
    let _ = std::fs::remove_file(core);
    let _ = std::fs::remove_file(disk);
}
