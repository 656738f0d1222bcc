//! The framebuffer console (`fb=bochs`: 1024x768x32 set through QEMU's
//! Bochs VBE registers) on a PC without a serial port: the shell, the panic
//! report and `db>` must be readable on the display itself. The display is
//! read back through QMP `screendump` and OCR (`tesseract`, on the image
//! made grey, inverted and doubled here); in this mode the
//! VGA text buffer is not shown, so `Vm::screen` cannot see it.
//!
//! Also times 100 lines on each screen (`test=fb-lines`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::ocr::{check_tools, expect_display, ocr};
use panicbench::qemu::{Config, scratch_dir};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

fn line_is(text: &str, want: &str) -> bool {
    text.lines().any(|l| l.trim() == want)
}

fn scratch(name: &str) -> PathBuf {
    let dir = scratch_dir();
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

#[test]
fn shell_panic_report_and_debugger_on_the_framebuffer() {
    check_tools();
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.serial = false;
    cfg.smp = 2;
    cfg.append = "fb=bochs".into();
    cfg.dump_disk = None;
    let stem = scratch("framebuffer-console");
    let mut vm = Vm::start("framebuffer-console", cfg);
    expect_display(&mut vm, &stem, "shell>", |t| t.contains("shell>"), BOOT);
    // The USB keyboard may still be enumerating at the first prompt: type
    // until the echo shows (Ctrl-U clears a half-typed line first).
    let end = Instant::now() + STEP;
    loop {
        vm.key("ctrl", true);
        vm.type_text("u");
        vm.key("ctrl", false);
        vm.type_text("echo hello\n");
        let seen = Instant::now() + Duration::from_secs(3);
        let mut ok = false;
        while !ok && Instant::now() < seen {
            ok = ocr(&mut vm, &stem).is_ok_and(|t| line_is(&t, "hello"));
        }
        if ok {
            break;
        }
        if Instant::now() > end {
            let text = ocr(&mut vm, &stem).unwrap_or_else(|e| e);
            vm.fail(&format!(
                "HANG: `echo hello` never showed `hello` on the framebuffer\n--- OCR ---\n{text}"
            ));
        }
    }
    vm.type_text("panic\n");
    let text = expect_display(
        &mut vm,
        &stem,
        "the panic report and db>",
        |t| t.contains("PANIC") && t.lines().any(|l| l.trim_start().starts_with("db>")),
        STEP,
    );
    eprintln!("--- OCR of the framebuffer at db> ---\n{text}");
    // `db>` answers the USB keyboard on the framebuffer.
    vm.type_text("cpus\n");
    expect_display(
        &mut vm,
        &stem,
        "`cpus` at db> (cpu 1 stopped)",
        |t| {
            t.lines()
                .any(|l| l.contains("cpu 1") && l.contains("stopped"))
        },
        STEP,
    );
    // Enough output to scroll `echo hello` off the top (146x48 cells);
    // `cpus` last, so its lines must be readable at the bottom.
    vm.type_text("help\nhelp\nlog\ncpus\n");
    let text = expect_display(
        &mut vm,
        &stem,
        "`cpus` after the screen scrolled",
        |t| {
            !t.contains("echo hello")
                && t.contains("switch the machine off")
                && t.lines()
                    .any(|l| l.contains("cpu 1") && l.contains("stopped"))
        },
        STEP,
    );
    eprintln!("--- OCR after scrolling ---\n{text}");
    vm.type_text("poweroff\n");
    vm.expect_success_exit(STEP);
    for ext in ["ppm", "pgm"] {
        if std::env::var_os("KEEP_SCREENDUMP").is_some() {
            break;
        }
        let _ = std::fs::remove_file(stem.with_extension(ext));
    }
}

#[test]
fn hundred_lines_on_the_framebuffer_are_quick() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.append = "fb=bochs test=fb-lines".into();
    cfg.dump_disk = None;
    let mut vm = Vm::start("framebuffer-lines", cfg);
    vm.expect(
        r"fb: 1024x768x32 at 0x[0-9a-f]+ \(write-combining\), 146x48 text, shadow in RAM",
        BOOT,
    );
    let c = vm.expect_captures(
        r"fb-lines: 100 lines: vga (\d+) us, framebuffer (\d+) us, console (\d+) us",
        STEP,
    );
    vm.expect_success_exit(STEP);
    let us = |i: usize| c[i].parse::<u64>().expect("a number");
    eprintln!(
        "100 lines under {}: VGA text {} ms, framebuffer {} ms, whole console {} ms",
        Config::new(KERNEL_ELF).accel,
        us(1) / 1000,
        us(2) / 1000,
        us(3) / 1000
    );
    // A panic report is a few dozen lines: even a slow, shared TCG host
    // must print 100 in a few seconds.
    assert!(us(2) < 5_000_000, "100 framebuffer lines took {} us", us(2));
}
