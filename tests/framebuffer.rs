//! The framebuffer console (`fb=bochs`: 1024x768x32 set through QEMU's
//! Bochs VBE registers) on a PC without a serial port: the shell, the panic
//! report and `db>` must be readable on the display itself. The display is
//! read back through QMP `screendump` and OCR (`tesseract`, on the image
//! made grey, inverted and doubled here); in this mode the
//! VGA text buffer is not shown, so `Vm::screen` cannot see it.
//!
//! Also times 100 lines on each screen (`test=fb-lines`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, scratch_dir};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

/// `tesseract` must be installed (`.ci/run` installs it).
fn check_tools() {
    let found = Command::new("tesseract").arg("--version").output().is_ok();
    assert!(
        found,
        "`tesseract` is missing: apt-get install tesseract-ocr"
    );
}

/// A binary PPM (`P6`, 8-bit, as QEMU's `screendump` writes) as (width,
/// height, RGB bytes).
fn read_ppm(path: &Path) -> Result<(usize, usize, Vec<u8>), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Header: "P6", width, height, maxval, each after whitespace, then one
    // whitespace byte and the pixels.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        let start = at;
        while data.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
            at += 1;
        }
        if start == at {
            return Err("truncated PPM header".into());
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    let num = |i: usize| {
        fields[i]
            .parse::<usize>()
            .map_err(|e| format!("PPM header: {e}"))
    };
    if fields[0] != "P6" || num(3)? != 255 {
        return Err(format!("not an 8-bit P6 PPM: {fields:?}"));
    }
    let (w, h) = (num(1)?, num(2)?);
    let pixels = data.get(at + 1..at + 1 + w * h * 3).ok_or("short PPM")?;
    Ok((w, h, pixels.to_vec()))
}

/// The display's text: a screendump turned grey, inverted (dark text on
/// white reads best), enlarged 200% and read by `tesseract`.
fn ocr(vm: &mut Vm, stem: &Path) -> Result<String, String> {
    let ppm = stem.with_extension("ppm");
    let pgm = stem.with_extension("pgm");
    vm.screendump(&ppm)?;
    let (w, h, rgb) = read_ppm(&ppm)?;
    let mut out = format!("P5\n{} {}\n255\n", 2 * w, 2 * h).into_bytes();
    for y in 0..2 * h {
        for x in 0..2 * w {
            let p = &rgb[((y / 2) * w + x / 2) * 3..][..3];
            let grey = (p[0] as u32 + p[1] as u32 + p[2] as u32) / 3;
            out.push(255 - grey as u8);
        }
    }
    std::fs::write(&pgm, out).map_err(|e| format!("{}: {e}", pgm.display()))?;
    let mut cmd = Command::new("tesseract");
    cmd.arg(&pgm).args(["stdout", "--psm", "6"]);
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls the OCR'd display until `found` holds; a missed deadline is a HANG
/// that shows the last text read (the last image is kept beside it).
fn expect_display(
    vm: &mut Vm,
    stem: &Path,
    what: &str,
    found: impl Fn(&str) -> bool,
    deadline: Duration,
) -> String {
    let end = Instant::now() + deadline;
    loop {
        let last = match ocr(vm, stem) {
            Ok(text) if found(&text) => return text,
            Ok(text) => text,
            Err(e) => e,
        };
        if Instant::now() > end {
            vm.fail(&format!(
                "HANG: waiting for {what} on the framebuffer ({})\n--- OCR ---\n{last}",
                stem.with_extension("pgm").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

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
