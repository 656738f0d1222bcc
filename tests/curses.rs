//! A person at the keyboard: `cargo run -- --display curses` in a terminal
//! (driven through tmux, `send-keys` and `capture-pane`), the screen drawn
//! there and what is typed there arriving on the USB keyboard, at `shell>`
//! and at `db>`; the serial console meanwhile on its unix socket.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(60);

struct Tmux {
    session: String,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux runs (Debian package tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pane(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    fn send(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", &self.session, "-l", keys]);
        self.tmux(&["send-keys", "-t", &self.session, "Enter"]);
    }

    /// Waits until a line of the pane satisfies `want`.
    fn expect(&self, what: &str, deadline: Duration, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + deadline;
        loop {
            let pane = self.pane();
            if pane.lines().any(&want) {
                return pane;
            }
            assert!(
                Instant::now() < end,
                "HANG: waiting for {what} on the curses screen\n--- pane ---\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-session", "-t", &self.session]);
    }
}

#[test]
fn curses_display_types_on_the_usb_keyboard() {
    let runner = env!("CARGO_BIN_EXE_panicbench");
    let t = Tmux {
        session: format!("panicbench-curses-{}", std::process::id()),
    };
    let cmd = format!(
        "{runner} --display curses --smp 2 --no-dump-disk --no-watchdog; echo RUNNER-EXIT=$?; sleep 60"
    );
    t.tmux(&[
        "new-session",
        "-d",
        "-s",
        &t.session,
        "-x",
        "100",
        "-y",
        "30",
        &cmd,
    ]);
    t.expect("shell>", BOOT, |l| l.trim_start().starts_with("shell>"));
    // The serial console is on the socket the runner announced.
    let sock = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/serial.sock");
    // Read as a person with `socat` would, all along: QEMU holds the UART
    // busy while a connected reader does not read, and the kernel gives a
    // stuck UART up.
    let mut serial = UnixStream::connect(&sock).expect("the serial socket is there");
    let serial_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = serial_seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = serial.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("serial buffer")
                .extend_from_slice(&buf[..n]);
        }
    });
    // Keys typed in the terminal: the keyboard may still be enumerating.
    let end = Instant::now() + STEP;
    for n in 0.. {
        let token = format!("curses{n}");
        t.send(&format!("echo {token}"));
        let seen = Instant::now() + Duration::from_secs(3);
        let mut ok = false;
        while Instant::now() < seen && !ok {
            ok = t.pane().lines().any(|l| l.trim() == token);
            std::thread::sleep(Duration::from_millis(100));
        }
        if ok {
            break;
        }
        assert!(
            Instant::now() < end,
            "HANG: typing in the curses terminal never echoed\n{}",
            t.pane()
        );
    }
    // They came over USB: the driver counted them.
    t.send("kbd");
    let pane = t.expect("kbd", STEP, |l| l.contains(" keys ("));
    let keys: u64 = pane
        .lines()
        .rev()
        .find_map(|l| {
            let (before, _) = l.split_once(" keys (")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .expect("a key count");
    assert!(keys >= 10, "only {keys} keys over USB:\n{pane}");
    t.send("panic");
    t.expect("db>", STEP, |l| l.trim_start().starts_with("db>"));
    t.send("cpus");
    t.expect("cpus at db>", STEP, |l| {
        l.contains("cpu 1: apic") && l.contains("stopped")
    });
    let serial_text =
        String::from_utf8_lossy(&serial_seen.lock().expect("serial buffer")).into_owned();
    assert!(
        serial_text.contains("PANIC on cpu") && serial_text.contains("db> "),
        "the serial socket missed the panic:\n{serial_text}"
    );
    t.send("poweroff");
    t.expect("the runner's exit status", STEP, |l| {
        l.contains("RUNNER-EXIT=")
    });
    let pane = t.pane();
    assert!(
        pane.contains("RUNNER-EXIT=0"),
        "poweroff must end cargo run with 0:\n{pane}"
    );
}
