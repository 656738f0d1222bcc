//! The QEMU test harness: starts QEMU through the same [`crate::qemu::Config`]
//! as the runner, captures the serial console, talks QMP, types on the USB
//! keyboard, and turns every missed deadline into a `HANG:` failure that
//! names the step and shows the last console lines. QEMU is killed on drop,
//! so no test can hang the suite.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::qemu::{Config, SocketPath, check_qemu, scratch_dir};
use crate::qmp::{Qmp, qcode_for};

/// `isa-debug-exit` status of a kernel that reported success.
pub const EXIT_SUCCESS: i32 = 33;
/// `isa-debug-exit` status of a kernel that reported failure.
pub const EXIT_FAILURE: i32 = 35;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The colour VGA text window: physical 0xB8000-0xBFFFF, two bytes a cell.
const TEXT_WINDOW: u64 = 0xb8000;
const TEXT_WINDOW_BYTES: usize = 0x8000;
/// VGA mode 3: 80x25 cells.
const TEXT_COLUMNS: usize = 80;
const TEXT_ROWS: usize = 25;
/// The colour CRTC's index port (data at the next port) and its Start
/// Address registers (high, low; in cells).
const CRTC_INDEX: u16 = 0x3d4;
const CRTC_START_HIGH: u8 = 0x0c;
const CRTC_START_LOW: u8 = 0x0d;

/// The 25 rows of 80 cells of `window` (the text window's bytes) from cell
/// `start` on, one line per row, trailing blanks removed; cells past the
/// window's end show blank. Non-printable characters show as spaces.
fn visible_text(window: &[u8], start: usize) -> String {
    (0..TEXT_ROWS)
        .map(|row| {
            let line: String = (0..TEXT_COLUMNS)
                .map(|col| {
                    let at = (start + row * TEXT_COLUMNS + col) * 2;
                    match window.get(at) {
                        Some(&b) if (0x20..0x7f).contains(&b) => b as char,
                        _ => ' ',
                    }
                })
                .collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A running QEMU with its console and QMP.
pub struct Vm {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Mutex<Vec<u8>>>,
    /// Notified by the reader threads whenever console output arrives, so
    /// [`Vm::try_expect_at_once`] ends as soon as the text is there (key
    /// latency is measured through it: not a polling interval).
    arrived: Arc<Condvar>,
    /// When each chunk of console output arrived: (raw length of the output
    /// after the chunk, host time the reader thread got it), for
    /// [`Vm::arrival_of`].
    arrivals: Arc<Mutex<Vec<(usize, Instant)>>>,
    /// Byte offset in the console output after the last match.
    cursor: usize,
    qmp: Option<Qmp>,
    /// The QMP socket, in the short per-process socket directory (a deep
    /// checkout would overflow a unix socket path under `target/`).
    qmp_socket: SocketPath,
    /// The dump disk image made for this VM alone (removed on drop).
    own_disk: Option<PathBuf>,
    started: Instant,
}

impl Vm {
    /// Starts QEMU for test `name` with `cfg` (its `qmp` and `serial_stdio`
    /// are set by the harness).
    pub fn start(name: &str, cfg: Config) -> Vm {
        match Self::try_start(name, cfg) {
            Ok(vm) => vm,
            Err(err) => match *err {
                (Some(mut vm), e) => vm.fail(&e),
                (None, e) => panic!("{e}"),
            },
        }
    }

    /// Like [`Vm::start`] but returns an error instead of panicking (for the
    /// matrix runner, whose binary is built with `panic = "abort"`). The
    /// error carries the VM when QEMU started but QMP did not come up.
    pub fn try_start(name: &str, mut cfg: Config) -> Result<Vm, Box<(Option<Vm>, String)>> {
        if let Err(e) = check_qemu() {
            return Err(Box::new((None, format!("cannot run QEMU tests: {e}"))));
        }
        let id = COUNTER.fetch_add(1, Ordering::Relaxed);
        let qmp_socket = match SocketPath::new(&format!("{id}.qmp")) {
            Ok(s) => s,
            Err(e) => return Err(Box::new((None, format!("QMP socket for {name}: {e}")))),
        };
        cfg.qmp = Some(qmp_socket.path().to_path_buf());
        // Tests run in parallel: the runner's shared dump disk would be locked
        // by the first QEMU, so each VM gets its own image.
        let mut own_disk = None;
        if cfg.dump_disk.as_deref() == Some(crate::qemu::default_dump_disk().as_path()) {
            let disk = scratch_dir().join(format!(
                "{}-{}-{id}.img",
                name.replace(['/', ' '], "_"),
                std::process::id()
            ));
            cfg.dump_disk = Some(disk.clone());
            own_disk = Some(disk);
        }
        cfg.serial_stdio = false;
        cfg.no_reboot = true;
        let mut cmd = cfg.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Err(Box::new((None, format!("spawning QEMU for {name}: {e}")))),
        };
        let console = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Condvar::new());
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let console = console.clone();
            let arrived = arrived.clone();
            let arrivals = arrivals.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let at = Instant::now();
                    let mut c = console.lock().unwrap();
                    c.extend_from_slice(&buf[..n]);
                    arrivals.lock().unwrap().push((c.len(), at));
                    drop(c);
                    arrived.notify_all();
                }
            });
        }
        let stdin = child.stdin.take();
        let mut vm = Vm {
            name: name.into(),
            child,
            stdin,
            console,
            arrived,
            arrivals,
            cursor: 0,
            qmp: None,
            qmp_socket,
            own_disk,
            started: Instant::now(),
        };
        match Qmp::connect(vm.qmp_socket.path(), Duration::from_secs(20)) {
            Ok(q) => vm.qmp = Some(q),
            Err(e) => return Err(Box::new((Some(vm), format!("QMP did not come up: {e}")))),
        }
        Ok(vm)
    }

    /// The whole console output so far (lossy UTF-8, CRs removed).
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().unwrap()).replace('\r', "")
    }

    fn tail(&self, lines: usize) -> String {
        let c = self.console();
        let v: Vec<&str> = c.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails the test with the last console lines and the QMP log.
    pub fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let qmp_log = self
            .qmp
            .as_ref()
            .map(|q| q.log[q.log.len().saturating_sub(10)..].join("\n"))
            .unwrap_or_default();
        let log_path = scratch_dir().join(format!(
            "{}-{}.log",
            self.name.replace(['/', ' '], "_"),
            std::process::id()
        ));
        let _ = std::fs::write(
            &log_path,
            format!(
                "{}\n--- QMP ---\n{}",
                self.console(),
                self.qmp
                    .as_ref()
                    .map(|q| q.log.join("\n"))
                    .unwrap_or_default()
            ),
        );
        panic!(
            "[{}] {why} (after {:.1}s)\n--- last 30 console lines ---\n{}\n--- last QMP messages ---\n{}\n--- full log: {} ---",
            self.name,
            self.started.elapsed().as_secs_f64(),
            self.tail(30),
            qmp_log,
            log_path.display()
        );
    }

    /// Waits until `pattern` (a regex) appears in console output after the
    /// previous match; returns the matched text. A missed deadline is a HANG.
    pub fn expect(&mut self, pattern: &str, deadline: Duration) -> String {
        match self.try_expect(pattern, deadline) {
            Ok(s) => s,
            Err(e) => self.fail(&e),
        }
    }

    /// Like [`Vm::expect`] but returns the failure (`HANG: ...` for a missed
    /// deadline) instead of panicking. Looks every 10 ms, so a pattern that
    /// ends in an open repetition (`0x[0-9a-f]+`) mostly sees whole lines.
    pub fn try_expect(&mut self, pattern: &str, deadline: Duration) -> Result<String, String> {
        self.wait_for(pattern, deadline, false)
    }

    /// Like [`Vm::try_expect`], but looks again as soon as output arrives:
    /// for timing (key latency), with patterns that cannot match a partial
    /// line.
    pub fn try_expect_at_once(
        &mut self,
        pattern: &str,
        deadline: Duration,
    ) -> Result<String, String> {
        self.wait_for(pattern, deadline, true)
    }

    fn wait_for(
        &mut self,
        pattern: &str,
        deadline: Duration,
        at_once: bool,
    ) -> Result<String, String> {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("bad test regex {pattern:?}: {e}"));
        let end = Instant::now() + deadline;
        loop {
            let raw_len = self.console.lock().unwrap().len();
            let text = self.console();
            if let Some(m) = re.find(&text[self.cursor.min(text.len())..]) {
                let s = m.as_str().to_string();
                self.cursor += m.end();
                return Ok(s);
            }
            if Instant::now() > end {
                return Err(format!("HANG: waiting for {pattern:?}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the reader threads a moment to collect the last output.
                std::thread::sleep(Duration::from_millis(100));
                let text = self.console();
                if re.is_match(&text[self.cursor.min(text.len())..]) {
                    continue;
                }
                return Err(format!(
                    "QEMU exited ({status}) while waiting for {pattern:?}"
                ));
            }
            if at_once {
                // Until more output arrives (at most 10 ms: QEMU's exit is
                // noticed by polling).
                let g = self.console.lock().unwrap();
                if g.len() == raw_len {
                    let _ = self.arrived.wait_timeout(g, Duration::from_millis(10));
                }
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Like [`Vm::expect`] but returns the regex captures of the match.
    pub fn expect_captures(&mut self, pattern: &str, deadline: Duration) -> Vec<String> {
        let text = self.expect(pattern, deadline);
        let re = Regex::new(pattern).expect("regex compiled above");
        re.captures(&text)
            .map(|c| {
                c.iter()
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Length of the raw console output so far (bytes, CRs included): a
    /// mark for [`Vm::arrival_of`].
    pub fn raw_len(&self) -> usize {
        self.console.lock().unwrap().len()
    }

    /// When the first `byte` after raw offset `from` (a [`Vm::raw_len`]
    /// mark) reached the host: the time its reader thread got the chunk,
    /// before any waiter woke up. `None` while it has not arrived.
    pub fn arrival_of(&self, from: usize, byte: u8) -> Option<Instant> {
        let c = self.console.lock().unwrap();
        let at = from + c.get(from..)?.iter().position(|&b| b == byte)?;
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.iter().find(|(end, _)| *end > at).map(|(_, t)| *t)
    }

    /// Where `needle` first ends in the raw console after raw offset `from`
    /// (a [`Vm::raw_len`] mark), and when the chunk holding its last byte
    /// reached the host (as [`Vm::arrival_of`]). `None` while it has not
    /// arrived.
    pub fn arrival_of_str(&self, from: usize, needle: &str) -> Option<(usize, Instant)> {
        let c = self.console.lock().unwrap();
        let rest = c.get(from..)?;
        let n = needle.as_bytes();
        let end = from + rest.windows(n.len()).position(|w| w == n)? + n.len();
        let arrivals = self.arrivals.lock().unwrap();
        let at = arrivals.iter().find(|(e, _)| *e >= end).map(|(_, t)| *t)?;
        Some((end, at))
    }

    /// Output after the last match (for negative checks).
    pub fn unread(&self) -> String {
        let t = self.console();
        t[self.cursor.min(t.len())..].to_string()
    }

    /// Sends bytes to the serial port.
    pub fn send_serial(&mut self, s: &str) {
        let ok = self
            .stdin
            .as_mut()
            .is_some_and(|i| i.write_all(s.as_bytes()).and_then(|_| i.flush()).is_ok());
        if !ok {
            self.fail("serial input closed");
        }
    }

    /// Types `text` on the USB keyboard through QMP (press and release per
    /// key, Shift for capitals and symbols).
    pub fn type_text(&mut self, text: &str) {
        if let Err(e) = self.try_type_text(text) {
            self.fail(&e);
        }
    }

    /// One key event by qcode.
    pub fn key(&mut self, qcode: &str, down: bool) {
        if let Err(e) = self.try_key(qcode, down) {
            self.fail(&e);
        }
    }

    /// Like [`Vm::key`] but returns a QMP error instead of panicking.
    pub fn try_key(&mut self, qcode: &str, down: bool) -> Result<(), String> {
        let r = self.qmp.as_mut().map(|q| q.key(qcode, down));
        // Keep events apart: usb-kbd queues 16 and hands out one per poll.
        std::thread::sleep(Duration::from_millis(12));
        match r {
            Some(Ok(())) => Ok(()),
            // The key ended the VM (e.g. the release after `poweroff`'s
            // Enter): not a typing error; the next step judges the exit.
            // QEMU closes its QMP socket a moment before the process ends.
            Some(Err(_)) if self.exits_within(Duration::from_secs(2)) => Ok(()),
            Some(Err(e)) => Err(format!("QMP key {qcode}: {e}")),
            None => Err("no QMP connection".into()),
        }
    }

    /// Types `probeN` and Enter on the USB keyboard, N = 0, 1, ..., until the
    /// console answers `unknown command: probeN` (a keyboard that is still
    /// enumerating loses keys); a HANG naming `what` after `deadline`.
    pub fn wait_until_usb_types(&mut self, what: &str, deadline: Duration) {
        let end = Instant::now() + deadline;
        for n in 0.. {
            self.type_text(&format!("probe{n}\n"));
            if self
                .try_expect(
                    &format!("unknown command: probe{n}\n"),
                    Duration::from_millis(700),
                )
                .is_ok()
            {
                return;
            }
            if Instant::now() > end {
                break;
            }
        }
        self.fail(&format!(
            "HANG: the USB keyboard never typed a line at {what}"
        ));
    }

    /// Waits, after a panic, until the `db> ` console's USB keyboard is
    /// ready to type on, and consumes the prompt that follows: the
    /// takeover's `usb: N keyboard(s) ready` line with N at least 1 and no
    /// device still being attached, else the console's later announcement
    /// `usb: K device(s) attached; N keyboard(s) ready` with N at least 1
    /// (a keyboard caught before or during its enumeration finishes inside
    /// the console loop, debounce included). Returns the ready line and
    /// what followed it up to that prompt. A HANG names the step.
    pub fn expect_usb_keyboard_ready(&mut self, deadline: Duration) -> String {
        match self.try_expect_usb_keyboard_ready(deadline) {
            Ok(s) => s,
            Err(e) => self.fail(&e),
        }
    }

    /// Like [`Vm::expect_usb_keyboard_ready`] but returns the failure.
    pub fn try_expect_usb_keyboard_ready(&mut self, deadline: Duration) -> Result<String, String> {
        let end = Instant::now() + deadline;
        let left = |end: Instant| end.saturating_duration_since(Instant::now());
        let ready = Regex::new(r"usb: (\d+) keyboard\(s\) ready \(\d+ ms\)([^\n]*)\n")
            .expect("static regex");
        let mut text = self
            .try_expect(ready.as_str(), left(end))
            .map_err(|e| format!("{e}: no `usb: ... keyboard(s) ready` line after the panic"))?;
        let (mut keyboards, pending) = ready
            .captures(&text)
            .map(|c| {
                (
                    c[1].parse().unwrap_or(0u32),
                    c[2].contains("being attached"),
                )
            })
            .unwrap_or((0, false));
        if keyboards > 0 && !pending {
            text += &self.try_expect("db> ", left(end))?;
            return Ok(text);
        }
        // announced once the bus has settled; again if that brought no keyboard
        let announced =
            Regex::new(r"usb: \d+ device\(s\) attached; (\d+) keyboard\(s\) ready\r?\ndb> ")
                .expect("static regex");
        let mut announcements = 0;
        while keyboards == 0 || announcements == 0 {
            let line = self
                .try_expect(announced.as_str(), left(end))
                .map_err(|e| {
                    format!("{e}: the USB keyboard never became ready at db> (after {text:?})")
                })?;
            keyboards = announced
                .captures(&line)
                .and_then(|c| c[1].parse().ok())
                .unwrap_or(0);
            announcements += 1;
            text += &line;
        }
        Ok(text)
    }

    /// True if QEMU exits (or has exited) within `d`.
    fn exits_within(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like [`Vm::type_text`] but returns the first QMP error.
    pub fn try_type_text(&mut self, text: &str) -> Result<(), String> {
        for c in text.chars() {
            let Some((code, shift)) = qcode_for(c) else {
                return Err(format!("type_text: no key for {c:?}"));
            };
            if shift {
                self.try_key("shift", true)?;
            }
            self.try_key(code, true)?;
            self.try_key(code, false)?;
            if shift {
                self.try_key("shift", false)?;
            }
        }
        Ok(())
    }

    /// The VGA text screen as the display shows it: the 25 rows of 80 cells
    /// from the CRTC start address on (the kernel scrolls by moving it
    /// through the 32 KiB window at physical 0xB8000, as Linux's vgacon),
    /// one line per row, trailing blanks removed. For machines without a
    /// serial port, whose console is the screen alone.
    ///
    /// Race-free: the VM is paused (QMP `stop`, then `cont`) while the
    /// start address is read through the CRTC ports and the window through
    /// `pmemsave`, so the rows and the start belong together and the
    /// guest never sees the CRTC index changed (it is restored). QEMU 7.2's
    /// `vga_draw_text` draws from `vram + start * 4` in the same cells.
    pub fn screen(&mut self) -> Result<String, String> {
        let status = self.qmp("query-status", serde_json::json!({}))?;
        let running = status["running"].as_bool().unwrap_or(false);
        if running {
            self.qmp("stop", serde_json::json!({}))?;
        }
        let window = self.text_window();
        if running {
            self.qmp("cont", serde_json::json!({}))?;
        }
        let (start, bytes) = window?;
        Ok(visible_text(&bytes, start))
    }

    /// The CRTC start address (in cells) and the bytes of the text window,
    /// read with the VM paused. The CRTC index register is restored.
    fn text_window(&mut self) -> Result<(usize, Vec<u8>), String> {
        let index = self.port_in(CRTC_INDEX)?;
        let start = (|| {
            let mut start = 0;
            for register in [CRTC_START_HIGH, CRTC_START_LOW] {
                self.port_out(CRTC_INDEX, register)?;
                start = start << 8 | usize::from(self.port_in(CRTC_INDEX + 1)?);
            }
            Ok::<_, String>(start)
        })();
        self.port_out(CRTC_INDEX, index)?;
        let start = start?;
        let file = self.qmp_socket.path().with_extension("screen");
        let _ = std::fs::remove_file(&file);
        self.qmp(
            "pmemsave",
            serde_json::json!({"val": TEXT_WINDOW, "size": TEXT_WINDOW_BYTES, "filename": file.display().to_string()}),
        )?;
        let bytes = std::fs::read(&file).map_err(|e| format!("reading the screen dump: {e}"))?;
        let _ = std::fs::remove_file(&file);
        Ok((start, bytes))
    }

    /// An HMP command through QMP `human-monitor-command`; its output.
    fn hmp(&mut self, command: &str) -> Result<String, String> {
        let out = self.qmp(
            "human-monitor-command",
            serde_json::json!({ "command-line": command }),
        )?;
        Ok(out.as_str().unwrap_or_default().to_string())
    }

    /// Reads an I/O port (HMP `i /b`, whose answer reads
    /// `portb[0x03d4] = 0x0e`).
    fn port_in(&mut self, port: u16) -> Result<u8, String> {
        let out = self.hmp(&format!("i /b {port:#x}"))?;
        out.rsplit_once("= 0x")
            .and_then(|(_, v)| u8::from_str_radix(v.trim(), 16).ok())
            .ok_or_else(|| format!("HMP i /b {port:#x}: unexpected answer {out:?}"))
    }

    /// Writes an I/O port (HMP `o /b`).
    fn port_out(&mut self, port: u16, value: u8) -> Result<(), String> {
        let out = self.hmp(&format!("o /b {port:#x} {value:#x}"))?;
        if out.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("HMP o /b {port:#x}: {out:?}"))
        }
    }

    /// The display as QEMU draws it (whatever mode the adapter is in: VGA
    /// text or a framebuffer), written to `path` as a PPM image through QMP
    /// `screendump`.
    pub fn screendump(&mut self, path: &std::path::Path) -> Result<(), String> {
        let _ = std::fs::remove_file(path);
        self.qmp(
            "screendump",
            serde_json::json!({"filename": path.display().to_string()}),
        )?;
        Ok(())
    }

    /// Waits until the screen matches `pattern` (a regex over [`Vm::screen`]);
    /// returns the matched text. A missed deadline is a HANG that shows the
    /// screen.
    pub fn expect_screen(&mut self, pattern: &str, deadline: Duration) -> String {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("bad test regex {pattern:?}: {e}"));
        let end = Instant::now() + deadline;
        let mut last = String::new();
        loop {
            match self.screen() {
                Ok(text) => {
                    if let Some(m) = re.find(&text) {
                        return m.as_str().to_string();
                    }
                    last = text;
                }
                Err(e) if matches!(self.child.try_wait(), Ok(Some(_))) => {
                    self.fail(&format!("QEMU exited while waiting for {pattern:?} on the screen ({e});\n--- screen ---\n{last}"))
                }
                Err(_) => {}
            }
            if Instant::now() > end {
                self.fail(&format!(
                    "HANG: waiting for {pattern:?} on the screen\n--- screen ---\n{last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes the full console log and the full QMP log to two files (kept
    /// by the matrix for every hang or failure).
    pub fn save_logs(
        &self,
        console: &std::path::Path,
        qmp: &std::path::Path,
    ) -> std::io::Result<()> {
        std::fs::write(console, self.console())?;
        let log = self
            .qmp
            .as_ref()
            .map(|q| q.log.join("\n"))
            .unwrap_or_default();
        std::fs::write(qmp, log + "\n")
    }

    /// Seconds since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A QMP command.
    pub fn qmp(&mut self, cmd: &str, args: serde_json::Value) -> Result<serde_json::Value, String> {
        match self.qmp.as_mut() {
            Some(q) => q.execute(cmd, args),
            None => Err("no QMP connection".into()),
        }
    }

    /// QMP events seen so far.
    pub fn qmp_events(&self) -> Vec<serde_json::Value> {
        self.qmp
            .as_ref()
            .map(|q| q.events.clone())
            .unwrap_or_default()
    }

    /// Waits for QEMU to exit and returns its status code.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        match self.try_wait_exit(deadline) {
            Ok(code) => code,
            Err(e) => self.fail(&e),
        }
    }

    /// Like [`Vm::wait_exit`] but returns a missed deadline (`HANG: ...`).
    pub fn try_wait_exit(&mut self, deadline: Duration) -> Result<i32, String> {
        let end = Instant::now() + deadline;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return Ok(st.code().unwrap_or(-1));
            }
            if Instant::now() > end {
                return Err("HANG: waiting for QEMU to exit".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Requires the kernel's `isa-debug-exit` success code (a triple fault
    /// exits with status 0 and is not success).
    pub fn expect_success_exit(&mut self, deadline: Duration) {
        let code = self.wait_exit(deadline);
        if code != EXIT_SUCCESS {
            self.fail(&format!(
                "QEMU exit status {code}, expected {EXIT_SUCCESS} (isa-debug-exit success)"
            ));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(disk) = &self.own_disk {
            let _ = std::fs::remove_file(disk);
        }
        // `qmp_socket` removes the socket (and, if it is the last, the
        // directory) when the fields are dropped, after QEMU is gone.
    }
}

/// Runs one QEMU scenario; if QEMU itself died of a signal (an emulator
/// crash, e.g. the rare SIGSEGV seen in QEMU 7.2 under load right after the
/// kernel's USB and virtio set-up), says so loudly and runs it once more.
/// Hangs, wrong output and wrong exit codes are never retried.
pub fn retry_emulator_crash(name: &str, scenario: impl Fn()) {
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&scenario));
    let Err(e) = first else { return };
    let msg = e
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    if !msg.contains("QEMU exited (signal:") {
        std::panic::resume_unwind(e);
    }
    eprintln!(
        "EMULATOR CRASH in {name} (QEMU died of a signal, not a kernel failure); retrying once:\n{msg}"
    );
    scenario();
}

/// Repetitions of each panic scenario: `PANIC_REPS`, default 10 (the
/// issues ask for at least 10).
pub fn panic_reps() -> usize {
    std::env::var("PANIC_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_visible_rows_start_at_the_start_address() {
        let mut window = vec![0u8; TEXT_WINDOW_BYTES];
        for (cell, pair) in window.chunks_mut(2).enumerate() {
            pair[0] = b'a' + (cell / TEXT_COLUMNS % 26) as u8;
            pair[1] = 0x07;
        }
        let text = visible_text(&window, 3 * TEXT_COLUMNS);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), TEXT_ROWS);
        assert_eq!(rows[0], "d".repeat(TEXT_COLUMNS));
        assert_eq!(rows[24], "b".repeat(TEXT_COLUMNS));
        // A start too close to the end: the rows past the window are blank.
        let last = TEXT_WINDOW_BYTES / 2 - 2 * TEXT_COLUMNS;
        let text = visible_text(&window, last);
        assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), 2);
    }
}
