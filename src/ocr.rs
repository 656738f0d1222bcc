//! Reading a VM's display back as text: QMP `screendump` (a PPM), made
//! grey, inverted and doubled here, then `tesseract` (Debian
//! `tesseract-ocr`). For consoles that only exist as pixels (the
//! framebuffer console on UEFI machines and under GRUB).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Vm;

/// `tesseract` must be installed (`.ci/run` installs it).
pub fn check_tools() {
    let found = Command::new("tesseract").arg("--version").output().is_ok();
    assert!(
        found,
        "`tesseract` is missing: apt-get install tesseract-ocr"
    );
}

/// A binary PPM (`P6`, 8-bit, as QEMU's `screendump` writes) as (width,
/// height, RGB bytes).
pub fn read_ppm(path: &Path) -> Result<(usize, usize, Vec<u8>), String> {
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
pub fn ocr(vm: &mut Vm, stem: &Path) -> Result<String, String> {
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
pub fn expect_display(
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
