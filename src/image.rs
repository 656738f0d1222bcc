//! `cargo run -- image`: a hybrid BIOS/UEFI ISO that boots the kernel through
//! GRUB and Multiboot2, for a USB stick (`dd if=IMAGE of=/dev/sdX bs=4M`) or
//! QEMU (`cargo run -- --boot image`). Built by `grub-mkrescue` (Debian
//! `grub-common`, with `grub-pc-bin` for BIOS, `grub-efi-amd64-bin` for
//! UEFI, `xorriso` and `mtools`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages `grub-mkrescue` needs to make a BIOS+UEFI image.
pub const PACKAGES: &str = "grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools";

/// The default image of `cargo run -- --boot image`.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("panicbench.iso")
}

/// GRUB's configuration: no menu, the kernel with `append` as its command
/// line. The video drivers let GRUB set the framebuffer the kernel's
/// Multiboot2 header asks for (on UEFI through GOP or UGA, on BIOS through
/// VBE). Not `all_video`: its `vga` driver, on a BIOS without VBE (Bochs
/// with `vga: extension=none`), sets the 4-bit planar 640x480 mode, which
/// the kernel cannot draw on (it takes 16, 24 or 32 bpp) and which hides
/// VGA text; without it GRUB leaves VGA text (the tag is optional).
pub fn grub_cfg(append: &str) -> String {
    format!(
        "set timeout=0\nset default=0\n\
         if [ \"$grub_platform\" = efi ]; then insmod efi_gop; insmod efi_uga; else insmod vbe; fi\n\
         menuentry \"panicbench\" {{\n    multiboot2 /boot/kernel {append}\n    boot\n}}\n"
    )
}

/// Why an image could not be made.
fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = ["grub-mkrescue", "xorriso", "mformat"]
        .into_iter()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    let bios = Path::new("/usr/lib/grub/i386-pc").exists();
    let efi = Path::new("/usr/lib/grub/x86_64-efi").exists();
    if missing.is_empty() && bios && efi {
        return None;
    }
    let mut what: Vec<String> = missing.iter().map(|t| t.to_string()).collect();
    if !bios {
        what.push("GRUB's BIOS modules".into());
    }
    if !efi {
        what.push("GRUB's UEFI modules".into());
    }
    Some(format!(
        "making the image needs {} (Debian: apt-get install {PACKAGES})",
        what.join(", ")
    ))
}

/// Writes the image of `kernel` with command line `append` to `out`.
pub fn build(kernel: &Path, append: &str, out: &Path) -> Result<(), String> {
    if append.contains(['\n', '"', '\\', ';']) {
        return Err(format!(
            "--append {append:?}: newlines, quotes, backslashes and `;` cannot go into grub.cfg"
        ));
    }
    if let Some(e) = missing_tools() {
        return Err(e);
    }
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = crate::qemu::scratch_dir().join(format!("image-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let grub = dir.join("boot").join("grub");
    std::fs::create_dir_all(&grub).map_err(|e| format!("{}: {e}", grub.display()))?;
    std::fs::copy(kernel, dir.join("boot").join("kernel"))
        .map_err(|e| format!("copying {}: {e}", kernel.display()))?;
    std::fs::write(grub.join("grub.cfg"), grub_cfg(append))
        .map_err(|e| format!("grub.cfg: {e}"))?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let r = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(&dir)
        .output()
        .map_err(|e| format!("running grub-mkrescue: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let r = r?;
    if !r.status.success() {
        return Err(format!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&r.stderr)
        ));
    }
    Ok(())
}

/// `cargo run -- image [-o PATH] [--append ARGS]`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let mut out = default_path();
    let mut append = String::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.clone().next()) {
            ("-h" | "--help", _) => {
                println!(
                    "usage: cargo run -- image [-o PATH] [--append \"ARGS\"]\n\
                     writes a hybrid BIOS/UEFI ISO (GRUB, Multiboot2) of the kernel, default {}\n\
                     write it to a USB stick with: dd if=PATH of=/dev/sdX bs=4M conv=fsync",
                    default_path().display()
                );
                return 0;
            }
            ("-o", Some(v)) => {
                out = PathBuf::from(v);
                it.next();
            }
            ("--append", Some(v)) => {
                append = v.clone();
                it.next();
            }
            (other, _) => {
                eprintln!("error: unknown or incomplete image option {other:?} (try --help)");
                return 2;
            }
        }
    }
    match build(Path::new(crate::KERNEL_ELF), &append, &out) {
        Ok(()) => {
            println!("wrote {}", out.display());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_the_kernel_with_the_command_line() {
        let c = grub_cfg("trigger=plain quiet");
        assert!(
            c.contains("multiboot2 /boot/kernel trigger=plain quiet\n"),
            "{c}"
        );
        assert!(c.contains("set timeout=0"));
        assert!(!c.contains("all_video"), "no planar VGA mode: {c}");
    }

    #[test]
    fn a_command_line_that_would_break_grub_cfg_is_refused() {
        let e = build(Path::new("/nonexistent"), "a\"b", Path::new("/tmp/x.iso")).unwrap_err();
        assert!(e.contains("cannot go into grub.cfg"), "{e}");
    }
}
