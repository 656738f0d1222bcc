//! `cargo run`: builds the kernel (through `build.rs`) and boots it in QEMU
//! with a USB keyboard, the serial console on this terminal.
//!
//! Usage: `cargo run [-- OPTIONS] [-- QEMU ARGS]`, see `--help`.

use std::path::PathBuf;

use panicbench::KERNEL_ELF;
use panicbench::qemu::{Config, Firmware, Keyboard, check_qemu};

const HELP: &str = "\
usage: cargo run [--release] -- [OPTIONS] [-- QEMU-ARGS...]
       cargo run -- savecore [DISK] [-o VMCORE]

Boots the kernel in QEMU (q35, TCG) with an xHCI controller and a USB keyboard;
the serial console is this terminal (Ctrl-A X quits QEMU).

options:
  --smp N                      CPUs (default 4)
  -m, --memory MIB             memory in MiB (default 256)
  --accel tcg|kvm              accelerator (default tcg; KVM is slow when nested)
  --firmware seabios|qboot     boot firmware (default seabios)
  --controller qemu-xhci|nec-usb-xhci   USB controller (default qemu-xhci)
  --no-usb-keyboard            no USB keyboard (PS/2 and serial only)
  --hub                        put the USB keyboard behind a usb-hub
  --append \"ARGS\"              kernel command line (see README)
  --qmp PATH                   QMP unix socket
  --no-reboot                  exit QEMU instead of rebooting
  --dump-disk PATH             crash dump disk image (default target/dump-disk.img, created sparse)
  --no-dump-disk               no crash dump disk
  --no-watchdog                no i6300esb watchdog
  --no-serial                  a PC without a serial port (-serial none): the console is
                               on the screen only (add e.g. `-- -display gtk` to see it)
  --release                    use the release kernel (pass to cargo: cargo run --release)
  --print-command              print the QEMU command line and exit
  -h, --help                   this text
anything after a second `--` is passed to QEMU verbatim.";

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("savecore") {
        std::process::exit(panicbench::savecore::main(&all[1..]));
    }
    if all.first().map(String::as_str) == Some("bench") {
        std::process::exit(panicbench::bench::main(&all[1..]));
    }
    if all.first().map(String::as_str) == Some("matrix") {
        std::process::exit(panicbench::matrix_cli::main(&all[1..]));
    }
    let mut cfg = Config::new(KERNEL_ELF);
    let mut print_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| die(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return;
            }
            "--smp" => {
                cfg.smp = value("--smp")
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .unwrap_or_else(|| die("--smp takes 1..=64"))
            }
            "-m" | "--memory" => {
                cfg.memory_mib = value("--memory")
                    .parse()
                    .ok()
                    .filter(|&n| n >= 64)
                    .unwrap_or_else(|| die("--memory takes MiB >= 64"))
            }
            "--accel" => {
                cfg.accel = value("--accel");
                if cfg.accel != "tcg" && cfg.accel != "kvm" {
                    die("--accel takes tcg or kvm");
                }
            }
            "--firmware" => {
                cfg.firmware = match value("--firmware").as_str() {
                    "seabios" => Firmware::SeaBios,
                    "qboot" => Firmware::Qboot,
                    _ => die("--firmware takes seabios or qboot"),
                }
            }
            "--controller" => {
                cfg.controller = value("--controller");
                if cfg.controller != "qemu-xhci" && cfg.controller != "nec-usb-xhci" {
                    die("--controller takes qemu-xhci or nec-usb-xhci");
                }
            }
            "--no-usb-keyboard" => cfg.keyboard = Keyboard::None,
            "--hub" => cfg.keyboard = Keyboard::BehindHub,
            "--append" => cfg.append = value("--append"),
            "--qmp" => cfg.qmp = Some(PathBuf::from(value("--qmp"))),
            "--no-reboot" => cfg.no_reboot = true,
            "--dump-disk" => cfg.dump_disk = Some(PathBuf::from(value("--dump-disk"))),
            "--no-dump-disk" => cfg.dump_disk = None,
            "--no-watchdog" => cfg.watchdog = false,
            "--no-serial" => cfg.serial = false,
            // The profile is chosen by cargo (`cargo run --release`); accepted here too.
            "--release" => {}
            "--print-command" => print_only = true,
            "--" => {
                cfg.extra.extend(args.by_ref());
            }
            other => die(&format!("unknown option {other:?} (try --help)")),
        }
    }
    if print_only {
        println!("{}", cfg.command_line());
        return;
    }
    if let Err(e) = check_qemu() {
        die(&e);
    }
    let status = match cfg.command().status() {
        Ok(s) => s,
        Err(e) => die(&format!("starting QEMU: {e}")),
    };
    std::process::exit(exit_code(status));
}

/// The runner's exit status for QEMU's: the kernel's `poweroff` leaves
/// through `isa-debug-exit` with its success code (33), which a person's
/// `cargo run` reports as 0; the failure code (35) as 1; anything else
/// (a reset under `--no-reboot`, QEMU's own errors) as QEMU gave it, and a
/// signal as 128 + its number.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) if c == panicbench::harness::EXIT_SUCCESS => 0,
        (Some(c), _) if c == panicbench::harness::EXIT_FAILURE => 1,
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}
