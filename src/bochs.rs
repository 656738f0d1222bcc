//! Bochs 2.7, a second and independent xHCI model (a NEC uPD720202 with a
//! low-speed "BOCHS USB/PS2 Keyboard", 04b4:0101, on USB 2.0 root port 3):
//! the bochsrc, starting Bochs on the GRUB image, its `term` display and
//! typing on its USB keyboard. `cargo run -- bochs` and `tests/bochs.rs`.
//!
//! Facts of Debian's build (`bochs bochs-term bochsbios vgabios`) this
//! relies on:
//! - No `nogui` display is built in; `term` is, and because the debugger is
//!   built in too, `term` draws on a pseudo-terminal of its own: Bochs says
//!   `Bochs connected to screen "/dev/pts/N"` on stderr. What is written to
//!   that terminal is read as keys, and Bochs hands keys to a connected USB
//!   keyboard before the PS/2 one (`bx_devices_c::gen_scancode`).
//! - `term` quits on a graphics mode ("32 bpp graphics mode not
//!   supported"), so VBE is off (`vga: extension=none`): GRUB then cannot
//!   set the framebuffer the kernel's Multiboot2 header asks for (optional)
//!   and leaves VGA text (the image loads no planar `vga` video driver,
//!   `src/image.rs`).
//! - It stops in its debugger at start: `-rc FILE` holds `c`.
//! - Its USB keyboard queues at most 16 key events beyond the one in its
//!   report and drops the rest (`usb_hid_device_c::gen_scancode`), and the
//!   `term` display reads everything waiting at once: type at most
//!   [`KEYS_PER_BURST`] characters at a time (a dropped release leaves a key
//!   held: `panic cli` became `panic cliiiii...`).
//! - A modifier's press or release alone sends no report, and a queued
//!   one stalls the queue until the next key: Ctrl-U (Ctrl, U) left the
//!   letters after it arriving with Ctrl held. Type no modifiers (no
//!   capitals, no Ctrl).
//! - `\n` is the keypad's Enter; `\r` would be the keypad's Delete.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian packages Bochs needs here.
pub const PACKAGES: &str = "bochs bochs-term bochsbios vgabios";
/// Bochs' own BIOS (package `bochsbios`).
pub const BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// The LGPL VGA BIOS (package `vgabios`).
pub const VGA_BIOS: &str = "/usr/share/vgabios/vgabios.bin";
/// Where Debian's Bochs keeps its plugins; the `term` display is one
/// (package `bochs-term`).
const TERM_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so";
/// Characters typed at once, so their press and release events (two each)
/// fit Bochs' USB keyboard queue of 16 beyond its current report.
pub const KEYS_PER_BURST: usize = 7;

/// One Bochs machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// CPUs (`cpu: count`).
    pub smp: u8,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Emulated instructions per second: the guest's clock (and its TSC)
    /// runs at this rate whatever the host's speed (`clock: sync=none`).
    pub ips: u32,
    /// The GRUB ISO (`cargo run -- image`) on the first ATA channel's CD.
    pub image: PathBuf,
    /// COM1 is written to this file.
    pub serial: PathBuf,
    /// Bochs' own log.
    pub log: PathBuf,
    /// Bochs modules whose debug messages go to the log (`usb_xhci`,
    /// `ioapic`, ...); from `PANICBENCH_BOCHS_DEBUG` (comma-separated).
    pub debug: Vec<String>,
}

impl Config {
    /// 2 CPUs, 256 MiB, files in `dir`.
    pub fn new(image: &Path, dir: &Path) -> Config {
        Config {
            smp: 2,
            memory_mib: 256,
            ips: 50_000_000,
            image: image.to_path_buf(),
            serial: dir.join("serial.log"),
            log: dir.join("bochs.log"),
            debug: std::env::var("PANICBENCH_BOCHS_DEBUG")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    /// The bochsrc. An i440FX PC with its ACPI tables and IOAPIC, a CPU
    /// model with long mode, the xHCI with the keyboard on port 3 (ports 1-2
    /// are USB 3 and refuse it: "Only super-speed devices supported on USB3
    /// port"), no VBE (the `term` display shows text modes only), COM1 to a
    /// file.
    pub fn bochsrc(&self) -> String {
        format!(
            "megs: {mem}\n\
             cpu: count={smp}, model=corei7_sandy_bridge_2600k, ips={ips}, reset_on_triple_fault=0\n\
             romimage: file={BIOS}\n\
             vgaromimage: file={VGA_BIOS}\n\
             vga: extension=none\n\
             display_library: term\n\
             pci: enabled=1, chipset=i440fx\n\
             usb_xhci: enabled=1, port3=keyboard\n\
             ata0-master: type=cdrom, path=\"{image}\", status=inserted\n\
             boot: cdrom\n\
             com1: enabled=1, mode=file, dev=\"{serial}\"\n\
             clock: sync=none, time0=local\n\
             log: \"{log}\"\n\
             debug: action=ignore{debug}\n\
             info: action=report\n\
             error: action=report\n\
             panic: action=fatal\n",
            mem = self.memory_mib,
            smp = self.smp,
            ips = self.ips,
            image = self.image.display(),
            serial = self.serial.display(),
            log = self.log.display(),
            debug = self
                .debug
                .iter()
                .map(|m| format!(", {m}=report"))
                .collect::<String>(),
        )
    }
}

/// Why Bochs cannot run here, naming the packages to install.
pub fn check_installed() -> Result<(), String> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("bochs").is_file()))
        .unwrap_or(false);
    let mut missing = Vec::new();
    if !on_path {
        missing.push("bochs".to_string());
    }
    for f in [BIOS, VGA_BIOS] {
        if !Path::new(f).is_file() {
            missing.push(f.to_string());
        }
    }
    let plugins = Path::new(TERM_PLUGIN).parent().unwrap_or(Path::new("/"));
    if plugins.is_dir() && !Path::new(TERM_PLUGIN).is_file() {
        missing.push("the term display (bochs-term)".to_string());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Bochs is missing ({}): install it with `apt-get install {PACKAGES}` (Debian/Ubuntu)",
            missing.join(", ")
        ))
    }
}

/// A running Bochs: its screen terminal (write keys there) and its files.
/// Killed on drop.
pub struct Bochs {
    child: Child,
    screen: std::fs::File,
    /// Files of this run: `bochsrc`, `rc`, `bochs.out` (its stdout and
    /// stderr), and the configured serial and log files.
    pub dir: PathBuf,
    /// The configuration it runs.
    pub config: Config,
}

impl Bochs {
    /// Writes `dir/bochsrc` and starts Bochs, waiting (at most 30 s) for its
    /// screen terminal. Drains (discards) what Bochs draws there in a
    /// thread, so that Bochs never blocks on a full terminal, unless `drain`
    /// is false (then the caller must read [`Bochs::screen`] itself).
    pub fn start(config: &Config, dir: &Path, drain: bool) -> Result<Bochs, String> {
        check_installed()?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for f in [&config.serial, &config.log] {
            let _ = std::fs::remove_file(f);
        }
        let rc_file = dir.join("bochsrc");
        let commands = dir.join("rc");
        let out_path = dir.join("bochs.out");
        std::fs::write(&rc_file, config.bochsrc()).map_err(|e| format!("bochsrc: {e}"))?;
        std::fs::write(&commands, "c\n").map_err(|e| format!("rc: {e}"))?;
        let out = std::fs::File::create(&out_path).map_err(|e| format!("bochs.out: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("bochs.out: {e}"))?;
        let child = Command::new("bochs")
            .arg("-q")
            .arg("-f")
            .arg(&rc_file)
            .arg("-rc")
            .arg(&commands)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting bochs: {e}"))?;
        let mut b = Bochs {
            child,
            screen: std::fs::File::open("/dev/null").map_err(|e| e.to_string())?,
            dir: dir.to_path_buf(),
            config: config.clone(),
        };
        let pty = b.wait_for_screen(&out_path)?;
        b.screen = open_raw(&pty)?;
        if drain {
            let mut reader = b.screen.try_clone().map_err(|e| e.to_string())?;
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
        Ok(b)
    }

    /// The pseudo-terminal `term` draws on, from Bochs' stderr.
    fn wait_for_screen(&mut self, out: &Path) -> Result<PathBuf, String> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(out).unwrap_or_default();
            if let Some(rest) = text.split("Bochs connected to screen \"").nth(1)
                && let Some((pty, _)) = rest.split_once('"')
            {
                return Ok(PathBuf::from(pty));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "bochs exited ({status}) before its term display started:\n{}",
                    last_lines(&text, 20)
                ));
            }
            if Instant::now() > end {
                return Err(format!(
                    "HANG: waiting for Bochs' term display (no `Bochs connected to screen` in {}):\n{}",
                    out.display(),
                    last_lines(&text, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The terminal Bochs draws on and reads keys from.
    pub fn screen(&self) -> &std::fs::File {
        &self.screen
    }

    /// Types `text` on the keyboard (the USB one when it is connected); at
    /// most [`KEYS_PER_BURST`] characters should be waiting at a time.
    pub fn type_keys(&mut self, text: &str) -> Result<(), String> {
        self.screen
            .write_all(text.as_bytes())
            .map_err(|e| format!("typing on Bochs' terminal: {e}"))
    }

    /// COM1's output so far (lossy UTF-8, CRs removed).
    pub fn serial(&self) -> String {
        let bytes = std::fs::read(&self.config.serial).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    /// The last `n` lines of Bochs' log.
    pub fn log_tail(&self, n: usize) -> String {
        last_lines(
            &std::fs::read_to_string(&self.config.log).unwrap_or_default(),
            n,
        )
    }

    /// Whether Bochs has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Bochs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens the pseudo-terminal's other end and makes it a plain byte pipe
/// (`stty raw -echo`): no echo of Bochs' drawing back to it as keys, `\n`
/// passed as it is.
fn open_raw(pty: &Path) -> Result<std::fs::File, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pty)
        .map_err(|e| format!("{}: {e}", pty.display()))?;
    let s = Command::new("stty")
        .arg("-F")
        .arg(pty)
        .args(["raw", "-echo"])
        .status()
        .map_err(|e| format!("stty: {e}"))?;
    if !s.success() {
        return Err(format!("stty -F {} raw -echo failed", pty.display()));
    }
    Ok(f)
}

fn last_lines(text: &str, n: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// The directory of `cargo run -- bochs`.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bochs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bochsrc_puts_the_keyboard_on_a_usb2_port_and_turns_vbe_off() {
        let c = Config::new(Path::new("/x/a.iso"), Path::new("/d"));
        let rc = c.bochsrc();
        assert!(rc.contains("usb_xhci: enabled=1, port3=keyboard\n"), "{rc}");
        assert!(rc.contains("vga: extension=none\n"), "{rc}");
        assert!(rc.contains("cpu: count=2,"), "{rc}");
        assert!(rc.contains("path=\"/x/a.iso\""), "{rc}");
        assert!(rc.contains("com1: enabled=1, mode=file, dev=\"/d/serial.log\""));
        assert!(rc.contains("display_library: term\n"));
    }
}
