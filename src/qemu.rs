//! The QEMU command line, built in one place for `cargo run`, the tests, the
//! matrix and the benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// Boot firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default BIOS (it drives the xHCI controller before us).
    SeaBios,
    /// qboot (fast; leaves USB untouched).
    Qboot,
    /// UEFI (Debian's `ovmf`): boots the GRUB image only; its own xHCI
    /// driver runs the controller until `ExitBootServices`.
    Ovmf,
}

/// OVMF's code and variable store (Debian `ovmf`, 4 MiB flash layout).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// The variable store template; opened with `snapshot=on`, so every VM
/// starts from it and writes nothing back.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// How QEMU shows the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// No window (the default: the serial console is the terminal).
    None,
    /// Drawn in this terminal (keys typed there go to the USB keyboard);
    /// the serial console moves to a unix socket.
    Curses,
    /// A GTK window (keys typed in it go to the USB keyboard).
    Gtk,
    /// An SDL window.
    Sdl,
}

impl Display {
    /// Parses `none`, `curses`, `gtk`, `sdl`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "curses" => Self::Curses,
            "gtk" => Self::Gtk,
            "sdl" => Self::Sdl,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Curses => "curses",
            Self::Gtk => "gtk",
            Self::Sdl => "sdl",
        }
    }
}

/// Where the USB keyboard is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyboard {
    /// No USB keyboard.
    None,
    /// On a root port of the xHCI controller.
    RootPort,
    /// Behind a `usb-hub`.
    BehindHub,
}

/// Everything that varies between QEMU runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Kernel ELF.
    pub kernel: PathBuf,
    /// A GRUB image to boot from CD instead of the kernel ELF (PVH); the
    /// command line is then the image's (`append` is not used).
    pub image: Option<PathBuf>,
    /// How the screen is shown.
    pub display: Display,
    /// With [`Display::Curses`]: where the serial console goes (a unix
    /// socket, `socat - UNIX-CONNECT:PATH`).
    pub serial_socket: Option<PathBuf>,
    /// `-smp`.
    pub smp: u32,
    /// `-m` in MiB.
    pub memory_mib: u32,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// Boot firmware.
    pub firmware: Firmware,
    /// `qemu-xhci` or `nec-usb-xhci`.
    pub controller: String,
    /// USB keyboard attachment.
    pub keyboard: Keyboard,
    /// Kernel command line.
    pub append: String,
    /// QMP unix socket, if any.
    pub qmp: Option<PathBuf>,
    /// Serial console on stdio (interactive runs).
    pub serial_stdio: bool,
    /// A COM1 UART at all. `false` gives a PC without a serial port
    /// (`-serial none`: port 0x3F8 reads 0xFF); the console is then on the
    /// screen alone.
    pub serial: bool,
    /// A second UART, COM2, on this unix socket (QEMU listens): the kernel's
    /// gdb stub at `db> ` (`gdb kernel -ex 'target remote SOCKET'`).
    pub gdb: Option<PathBuf>,
    /// Exit on reboot instead of rebooting.
    pub no_reboot: bool,
    /// Extra arguments passed verbatim.
    pub extra: Vec<String>,
    /// Crash dump disk (raw image, attached as virtio-blk; created sparse if
    /// missing and grown to [`Config::dump_disk_bytes`] if smaller). `None`: no dump disk.
    pub dump_disk: Option<PathBuf>,
    /// An `i6300esb` watchdog whose expiry resets the machine.
    pub watchdog: bool,
}

/// The default dump disk image of `cargo run` (under `target/`).
pub fn default_dump_disk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("dump-disk.img")
}

impl Config {
    /// The defaults of `cargo run`.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self {
            kernel: kernel.into(),
            image: None,
            display: Display::None,
            serial_socket: None,
            smp: 4,
            memory_mib: 256,
            accel: "tcg".into(),
            firmware: Firmware::SeaBios,
            controller: "qemu-xhci".into(),
            keyboard: Keyboard::RootPort,
            append: String::new(),
            qmp: None,
            serial_stdio: true,
            serial: true,
            gdb: None,
            no_reboot: false,
            extra: Vec::new(),
            dump_disk: Some(default_dump_disk()),
            watchdog: true,
        }
    }

    /// Size of the dump disk: room for a full dump of all RAM plus the
    /// headers (the image is sparse, so unused space costs nothing).
    pub fn dump_disk_bytes(&self) -> u64 {
        (self.memory_mib as u64 + 64) << 20
    }

    /// Creates the dump disk image if missing and grows it to
    /// [`Config::dump_disk_bytes`] (sparse). Never shrinks or clears it.
    pub fn prepare_dump_disk(&self) -> std::io::Result<()> {
        let Some(p) = &self.dump_disk else {
            return Ok(());
        };
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)?;
        if f.metadata()?.len() < self.dump_disk_bytes() {
            f.set_len(self.dump_disk_bytes())?;
        }
        Ok(())
    }

    /// The QEMU arguments (without the program name).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        for s in ["-machine", "q35", "-accel", &self.accel, "-smp"] {
            a.push(s.to_string());
        }
        a.push(self.smp.to_string());
        a.push("-m".into());
        a.push(format!("{}M", self.memory_mib));
        self.boot_args(&mut a);
        self.console_args(&mut a);
        self.device_args(&mut a);
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Firmware, and what it boots: the kernel ELF through PVH, or the image.
    fn boot_args(&self, a: &mut Vec<String>) {
        let mut push = |s: &str| a.push(s.to_string());
        match self.firmware {
            Firmware::SeaBios => {}
            Firmware::Qboot => {
                push("-bios");
                push("qboot.rom");
            }
            Firmware::Ovmf => {
                push("-drive");
                push(&format!(
                    "if=pflash,format=raw,readonly=on,file={OVMF_CODE}"
                ));
                push("-drive");
                push(&format!(
                    "if=pflash,format=raw,snapshot=on,file={OVMF_VARS}"
                ));
            }
        }
        if let Some(image) = &self.image {
            push("-drive");
            push(&format!(
                "file={},format=raw,media=cdrom,readonly=on",
                escape_option(&image.display().to_string())
            ));
        } else {
            push("-kernel");
            push(&self.kernel.display().to_string());
            push("-append");
            push(&self.append);
        }
    }

    /// The screen, the serial port and the monitor.
    fn console_args(&self, a: &mut Vec<String>) {
        let mut push = |s: &str| a.push(s.to_string());
        push("-display");
        push(self.display.name());
        push("-vga");
        push("std");
        push("-serial");
        let socket = self.serial_socket.as_ref().map(|p| {
            format!(
                "unix:{},server=on,wait=off",
                escape_option(&p.display().to_string())
            )
        });
        push(match (self.serial, &socket, self.serial_stdio) {
            (false, _, _) => "none",
            (true, Some(s), _) => s,
            (true, None, true) => "mon:stdio",
            (true, None, false) => "stdio",
        });
        if !self.serial_stdio || socket.is_some() {
            push("-monitor");
            push("none");
        }
        // COM2 as a device of its own (`index=1`: I/O 0x2F8, IRQ 3), so it
        // is COM2 whatever COM1 is (a second `-serial` would become COM1
        // after `-serial none`).
        if let Some(gdb) = &self.gdb {
            push("-chardev");
            push(&format!(
                "socket,id=gdb0,path={},server=on,wait=off",
                escape_option(&gdb.display().to_string())
            ));
            push("-device");
            push("isa-serial,chardev=gdb0,index=1");
        }
    }

    /// The exit device, the USB controller and keyboard, QMP, the dump disk
    /// and the watchdog; no network card.
    fn device_args(&self, a: &mut Vec<String>) {
        let mut push = |s: &str| a.push(s.to_string());
        // QEMU's default NIC (an e1000e on q35, user networking behind it)
        // is a device the kernel has no driver for, and it costs every boot:
        // SeaBIOS runs its iPXE option ROM (the firmware alone, measured
        // with the bench's floor kernel: 321 ms with it, 297 without) and
        // QEMU starts its user-mode network stack.
        push("-nic");
        push("none");
        push("-device");
        push("isa-debug-exit,iobase=0xf4,iosize=0x04");
        push("-device");
        push(&format!("{},id=xhci", self.controller));
        match self.keyboard {
            Keyboard::None => {}
            Keyboard::RootPort => {
                push("-device");
                push("usb-kbd,bus=xhci.0,id=kbd0");
            }
            Keyboard::BehindHub => {
                push("-device");
                push("usb-hub,bus=xhci.0,port=1,id=hub0");
                push("-device");
                push("usb-kbd,bus=xhci.0,port=1.1,id=kbd0");
            }
        }
        if let Some(q) = &self.qmp {
            push("-qmp");
            push(&format!(
                "unix:{},server=on,wait=off",
                escape_option(&q.display().to_string())
            ));
        }
        if self.no_reboot {
            push("-no-reboot");
        }
        if let Some(disk) = &self.dump_disk {
            push("-drive");
            // The default image is shared by every VM that does not pick its
            // own (parallel tests among them): no image lock for it. Only a
            // `dump` writes to it; tests that dump use their own images.
            let locking = if *disk == default_dump_disk() {
                ",file.locking=off"
            } else {
                ""
            };
            push(&format!(
                "file={},format=raw,if=none,id=dumpdisk,cache=writeback{locking}",
                escape_option(&disk.display().to_string())
            ));
            push("-device");
            push("virtio-blk-pci,drive=dumpdisk,id=dump0");
        }
        if self.watchdog {
            push("-device");
            push("i6300esb,id=watchdog0");
            push("-action");
            push("watchdog=reset");
        }
    }

    /// A ready-to-spawn command (creates the dump disk image first; a failure
    /// there shows up as QEMU's own error about the drive).
    pub fn command(&self) -> Command {
        if let Err(e) = self.prepare_dump_disk() {
            eprintln!("warning: dump disk {:?}: {e}", self.dump_disk);
        }
        let mut c = Command::new(qemu_binary());
        c.args(self.args());
        c
    }

    /// The command line as one shell-quoted string (`--print-command`).
    pub fn command_line(&self) -> String {
        std::iter::once(qemu_binary().to_string())
            .chain(self.args().iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A value inside a QEMU `key=value,...` option string: a comma is doubled.
pub fn escape_option(value: &str) -> String {
    value.replace(',', ",,")
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=.,/:+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The QEMU binary name.
pub fn qemu_binary() -> &'static str {
    "qemu-system-x86_64"
}

/// Checks that QEMU is installed; the error names the package to install.
pub fn check_qemu() -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(qemu_binary()).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(format!(
            "{} not found: install it with `apt-get install qemu-system-x86` (Debian/Ubuntu)",
            qemu_binary()
        ))
    }
}

/// Directory for scratch files (logs, disk images, crash dumps). Unix
/// sockets do not go here: see [`SocketPath`].
pub fn scratch_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("qemu-scratch");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Longest directory [`SocketPath`] puts its sockets in: a unix socket path
/// holds at most 107 bytes (`sun_path` is 108 with the NUL, Linux
/// `unix(7)`), and the file name needs room after it.
const SOCKET_DIR_MAX: usize = 80;

/// Stale socket directories of dead processes are removed once they have
/// been untouched this long (a live process in another PID namespace that
/// shares the temp dir is not visible in `/proc`).
const STALE_SOCKET_DIR: Duration = Duration::from_secs(3600);

/// How many [`SocketPath`]s of this process are alive; the last one to go
/// removes the directory.
static LIVE_SOCKETS: Mutex<usize> = Mutex::new(0);

/// A unix socket path that stays short however deep the checkout is:
/// `<temp dir>/panicbench-<pid>/<name>` (`/tmp/panicbench-<pid>/` when the
/// temp dir itself is long). The directory is private to this user (mode
/// 0700) and is removed when the last `SocketPath` of the process is
/// dropped; directories left by processes that died without dropping theirs
/// are swept by the next process. Logs and disk images stay in
/// [`scratch_dir`].
#[derive(Debug)]
pub struct SocketPath {
    path: PathBuf,
}

impl SocketPath {
    /// Reserves `name` (keep it short: a counter, e.g. `7.qmp`) in this
    /// process's socket directory; removes a stale file of that name.
    pub fn new(name: &str) -> std::io::Result<Self> {
        let mut live = LIVE_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = socket_dir();
        if *live == 0 {
            sweep_stale_socket_dirs(&dir);
            create_private_dir(&dir)?;
        }
        let path = dir.join(name);
        if path.as_os_str().len() > 107 {
            return Err(std::io::Error::other(format!(
                "unix socket path {} is longer than 107 bytes",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(&path);
        *live += 1;
        Ok(Self { path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let mut live = LIVE_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = std::fs::remove_file(&self.path);
        *live = live.saturating_sub(1);
        if *live == 0
            && let Some(dir) = self.path.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// This process's socket directory (see [`SocketPath`]).
pub fn socket_dir() -> PathBuf {
    let name = format!("panicbench-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    if dir.as_os_str().len() <= SOCKET_DIR_MAX {
        dir
    } else {
        Path::new("/tmp").join(name)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        // Left by an earlier process with our PID: reuse it if it is a
        // real directory (not a symlink planted in a shared temp dir).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(dir)?.is_dir() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "{} exists and is not a directory",
                    dir.display()
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// Removes `panicbench-<pid>` directories beside `ours` whose process is
/// gone (by `/proc`) and which were untouched for [`STALE_SOCKET_DIR`].
/// Best effort; does nothing without `/proc`.
fn sweep_stale_socket_dirs(ours: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Some(parent) = ours.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("panicbench-"))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let path = e.path();
        let stale = std::fs::symlink_metadata(&path).is_ok_and(|m| {
            m.is_dir()
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_SOCKET_DIR)
        });
        if path != ours && stale && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn socket_paths_are_short_private_and_cleaned_up() {
        let a = SocketPath::new("0.qmp").unwrap();
        let b = SocketPath::new("1.qmp").unwrap();
        let dir = a.path().parent().unwrap().to_path_buf();
        assert_eq!(dir, socket_dir());
        assert_eq!(b.path().parent(), Some(dir.as_path()));
        assert!(a.path().as_os_str().len() <= 107);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(a);
        assert!(dir.is_dir(), "removed while a socket path is alive");
        drop(b);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[test]
    fn gdb_gets_com2_even_without_com1() {
        let mut cfg = Config::new("/k");
        cfg.serial = false;
        cfg.gdb = Some("/tmp/g.sock".into());
        let args = cfg.args();
        let at = |s: &str| args.iter().position(|a| a == s);
        assert!(args.windows(2).any(|w| w == ["-serial", "none"]));
        assert!(at("socket,id=gdb0,path=/tmp/g.sock,server=on,wait=off").is_some());
        assert!(at("isa-serial,chardev=gdb0,index=1").is_some());
        assert!(!Config::new("/k").args().iter().any(|a| a.contains("gdb0")));
    }

    #[test]
    fn a_comma_in_an_option_value_is_doubled() {
        let mut cfg = Config::new("/k");
        cfg.qmp = Some("/tmp/a,b/0.qmp".into());
        cfg.dump_disk = Some("/x,y/d.img".into());
        let args = cfg.args();
        assert!(args.contains(&"unix:/tmp/a,,b/0.qmp,server=on,wait=off".to_string()));
        assert!(
            args.iter()
                .any(|a| a.starts_with("file=/x,,y/d.img,format=raw"))
        );
    }
}
