//! `cargo run -- bochs`: the GRUB image on Bochs 2.7 ([`crate::bochs`]),
//! its `term` display in this terminal, what is typed here going to its USB
//! keyboard, COM1 in a file.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::bochs::{Bochs, Config, default_dir};

const HELP: &str = "\
usage: cargo run -- bochs [--smp N] [-m MIB] [--ips N] [--append \"ARGS\"] [--print-config]

Builds the GRUB image and boots it on Bochs 2.7 (Debian: apt-get install
bochs bochs-term bochsbios vgabios): its xHCI (a NEC uPD720202, INTx) with a
low-speed USB keyboard on port 3. The VGA text screen is drawn in this
terminal and what is typed here goes to the USB keyboard (Bochs queues only
16 key events: paste at most 7 characters at once). COM1 goes to
target/bochs/serial.log (tail -f it), Bochs' log to target/bochs/bochs.log.
Ctrl-A X quits.

options:
  --smp N            CPUs (default 2)
  -m, --memory MIB   memory (default 256)
  --ips N            emulated instructions per second, the guest's clock (default 50000000)
  --append \"ARGS\"    kernel command line (in the image's grub.cfg)
  --print-config     print the bochsrc and exit";

/// Runs the subcommand; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let dir = default_dir();
    let image = dir.join("panicbench.iso");
    let mut cfg = Config::new(&image, &dir);
    let mut append = String::new();
    let mut print_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return 0;
            }
            "--smp" => match value().parse() {
                Ok(n) if (1..=8).contains(&n) => cfg.smp = n,
                _ => return usage("--smp takes 1..=8"),
            },
            "-m" | "--memory" => match value().parse() {
                Ok(n) if n >= 64 => cfg.memory_mib = n,
                _ => return usage("--memory takes MiB >= 64"),
            },
            "--ips" => match value().parse() {
                Ok(n) if n >= 1_000_000 => cfg.ips = n,
                _ => return usage("--ips takes a number >= 1000000"),
            },
            "--append" => append = value(),
            "--print-config" => print_only = true,
            other => return usage(&format!("unknown bochs option {other:?}")),
        }
    }
    if print_only {
        print!("{}", cfg.bochsrc());
        return 0;
    }
    if let Err(e) = crate::bochs::check_installed().and_then(|()| {
        crate::image::build(std::path::Path::new(crate::KERNEL_ELF), &append, &image)
    }) {
        eprintln!("error: {e}");
        return 1;
    }
    eprintln!(
        "Bochs: the screen is drawn here, keys go to its USB keyboard; COM1: {}; Ctrl-A X quits",
        cfg.serial.display()
    );
    std::thread::sleep(Duration::from_secs(2));
    match run(&cfg, &dir) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg} (try --help)");
    2
}

/// Bridges this terminal (raw) and Bochs' screen until Bochs exits or
/// Ctrl-A X.
fn run(cfg: &Config, dir: &std::path::Path) -> Result<i32, String> {
    let mut bochs = Bochs::start(cfg, dir, false)?;
    let saved = RawTerminal::enter();
    let quit = Arc::new(AtomicBool::new(false));
    let mut from = bochs.screen().try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut to = bochs.screen().try_clone().map_err(|e| e.to_string())?;
    let stop = quit.clone();
    std::thread::spawn(move || {
        let mut input = std::io::stdin();
        let mut byte = [0u8; 1];
        let mut escape = false;
        while let Ok(1) = input.read(&mut byte) {
            match (escape, byte[0]) {
                (true, b'x' | b'X') => {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                (false, 0x01) => escape = true,
                // A raw terminal's Enter is CR; Bochs' term display reads
                // LF as Enter (CR as the keypad's Delete).
                (_, b'\r') => {
                    escape = false;
                    let _ = to.write_all(b"\n");
                }
                (_, b) => {
                    escape = false;
                    let _ = to.write_all(&[b]);
                }
            }
        }
    });
    let code = loop {
        if let Some(status) = bochs.exited() {
            break status.code().unwrap_or(1);
        }
        if quit.load(Ordering::Relaxed) {
            break 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(bochs);
    drop(saved);
    eprintln!(
        "\r\nBochs ended; COM1 was written to {}",
        cfg.serial.display()
    );
    Ok(code)
}

/// This terminal in raw mode while it lives (`stty raw -echo`), restored on
/// drop; nothing when stdin is not a terminal.
struct RawTerminal {
    saved: Option<String>,
}

impl RawTerminal {
    fn enter() -> RawTerminal {
        let stty = |args: &[&str]| {
            std::process::Command::new("stty")
                .args(args)
                .stdin(std::process::Stdio::inherit())
                .output()
                .ok()
                .filter(|o| o.status.success())
        };
        let saved = stty(&["-g"]).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if saved.is_some() {
            stty(&["raw", "-echo"]);
        }
        RawTerminal { saved }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(s) = &self.saved {
            let _ = std::process::Command::new("stty")
                .arg(s)
                .stdin(std::process::Stdio::inherit())
                .status();
        }
    }
}
