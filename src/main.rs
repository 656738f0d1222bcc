//! `cargo run`: builds the kernel (through `build.rs`) and boots it in QEMU
//! with a USB keyboard, the serial console on this terminal.
//!
//! Usage: `cargo run [-- OPTIONS] [-- QEMU ARGS]`, see `--help`.

use std::path::PathBuf;

use panicbench::KERNEL_ELF;
use panicbench::qemu::{Config, Display, Firmware, Keyboard, check_qemu};

const HELP: &str = "\
usage: cargo run [--release] -- [OPTIONS] [-- QEMU-ARGS...]
       cargo run -- image [-o PATH] [--append \"ARGS\"]   (a BIOS/UEFI GRUB ISO)
       cargo run -- savecore [DISK] [-o VMCORE]
       cargo run -- bochs [--smp N] [--append \"ARGS\"]   (the image on Bochs 2.7, see --help)
       cargo run -- bench | matrix ...   (see README)

Boots the kernel in QEMU (q35, TCG) with an xHCI controller and a USB keyboard;
the serial console is this terminal (Ctrl-A X quits QEMU).

options:
  --smp N                      CPUs (default 4)
  -m, --memory MIB             memory in MiB (default 256)
  --accel tcg|kvm              accelerator (default tcg; KVM is slow when nested)
  --firmware seabios|qboot|ovmf  boot firmware (default seabios; ovmf is UEFI and
                               boots the GRUB image: implies --boot image)
  --boot kernel|image          the kernel ELF through PVH (default), or the GRUB
                               image (Multiboot2) built from it first
  --display none|curses|gtk|sdl  how the screen is shown (default none). Keys typed
                               in a curses terminal or a window go to the USB keyboard;
                               with curses the serial console is the unix socket
                               target/serial.sock (socat - UNIX-CONNECT:target/serial.sock)
  --controller qemu-xhci|nec-usb-xhci   USB controller (default qemu-xhci)
  --no-usb-keyboard            no USB keyboard (PS/2 and serial only)
  --hub                        put the USB keyboard behind a usb-hub
  --append \"ARGS\"              kernel command line (see README)
  --qmp PATH                   QMP unix socket
  --gdb SOCKET                 COM2 on this unix socket: after a panic, at db>,
                               gdb kernel -ex 'target remote SOCKET'
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
    match all.first().map(String::as_str) {
        Some("savecore") => std::process::exit(panicbench::savecore::main(&all[1..])),
        Some("bench") => std::process::exit(panicbench::bench::main(&all[1..])),
        Some("matrix") => std::process::exit(panicbench::matrix_cli::main(&all[1..])),
        Some("image") => std::process::exit(panicbench::image::main(&all[1..])),
        Some("bochs") => std::process::exit(panicbench::bochs_cli::main(&all[1..])),
        _ => {}
    }
    let (mut cfg, print_only, boot_image) = parse_args(&all);
    if cfg.firmware == Firmware::Ovmf || boot_image {
        if cfg.firmware == Firmware::Qboot {
            die("qboot cannot boot the image: use --firmware seabios or ovmf");
        }
        let image = panicbench::image::default_path();
        if let Err(e) = panicbench::image::build(&cfg.kernel, &cfg.append, &image) {
            die(&e);
        }
        cfg.image = Some(image);
    }
    if cfg.display == Display::Curses && cfg.serial {
        let sock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/serial.sock");
        let _ = std::fs::remove_file(&sock);
        eprintln!(
            "the screen is drawn here and keys go to the USB keyboard; serial console: socat - UNIX-CONNECT:{}",
            sock.display()
        );
        cfg.serial_socket = Some(sock);
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

/// The runner's options: (configuration, `--print-command`, `--boot image`).
fn parse_args(args: &[String]) -> (Config, bool, bool) {
    let mut cfg = Config::new(KERNEL_ELF);
    let mut print_only = false;
    let mut boot_image = false;
    let mut args = args.iter().cloned();
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| die(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
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
                    "ovmf" => Firmware::Ovmf,
                    _ => die("--firmware takes seabios, qboot or ovmf"),
                }
            }
            "--controller" => {
                cfg.controller = value("--controller");
                if cfg.controller != "qemu-xhci" && cfg.controller != "nec-usb-xhci" {
                    die("--controller takes qemu-xhci or nec-usb-xhci");
                }
            }
            "--boot" => {
                boot_image = match value("--boot").as_str() {
                    "kernel" => false,
                    "image" => true,
                    _ => die("--boot takes kernel or image"),
                }
            }
            "--display" => {
                cfg.display = Display::parse(&value("--display"))
                    .unwrap_or_else(|| die("--display takes none, curses, gtk or sdl"))
            }
            "--no-usb-keyboard" => cfg.keyboard = Keyboard::None,
            "--hub" => cfg.keyboard = Keyboard::BehindHub,
            "--append" => cfg.append = value("--append"),
            "--qmp" => cfg.qmp = Some(PathBuf::from(value("--qmp"))),
            "--gdb" => cfg.gdb = Some(PathBuf::from(value("--gdb"))),
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
    (cfg, print_only, boot_image)
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
