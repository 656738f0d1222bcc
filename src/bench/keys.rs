//! (d) Key latency: from a key-down to its echo on the serial console,
//! for the USB and the PS/2 keyboard, in interrupt mode (`shell> `) and in
//! polled mode (`db> `), all four in one boot, each USB figure as a ratio
//! to PS/2 in the same mode.
//!
//! QMP `input-send-event` cannot name the PS/2 keyboard under
//! `-display none` (it has no console to bind to), and without a `device`
//! QEMU hands the key to the first keyboard handler of its list
//! (`qemu_input_find_handler`, `ui/input.c`), and a `usb-kbd` moves itself
//! to the front when it is created (`hid_init` calls
//! `qemu_input_handler_activate`, `hw/input/hid.c`): the `usb-kbd` gets
//! every key while one exists. So the boot measures USB at `shell> `, unplugs the
//! `usb-kbd` ([`aim_at_ps2`]) and measures PS/2 at `shell> ` and, after
//! `panic`, at `db> `, then plugs a `usb-kbd` back ([`aim_at_usb`]), which
//! the panic console enumerates polled, and measures USB at `db> `.
//!
//! Each key is timed in stages on the host clock: `send` (before the QMP
//! command is written), `injected` (QEMU's own stamp of the key-down, from
//! its `input_event_key_qcode` trace event, see [`Trace`]), `reply` (the
//! QMP reply read), `arrival` (the serial reader thread got the echo's
//! bytes) and `seen` (the waiting harness woke up on it). The figure is
//! key-down to arrival; without a trace stamp it falls back to send to
//! arrival and says so. Controls in each mode: a byte written to the
//! serial port to its echo (no QMP, the same way out), and the QMP round
//! trips of `query-status` and of a mouse move.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BOOT, Row, STEP};
use crate::harness::Vm;

/// The `usb-kbd` id the runner's command line gives the keyboard.
const USB_KBD: &str = "kbd0";
/// The id of the keyboard plugged back for the polled USB figure.
const USB_KBD_BACK: &str = "kbd-bench";

/// One key's host timestamps.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Before the QMP command (or the serial byte) was written.
    pub send: Instant,
    /// The QMP reply read (for serial: the byte written).
    pub reply: Instant,
    /// QEMU injected the key-down (its `input_event_key_qcode` trace
    /// stamp, see [`Trace`]); `None` without a trace.
    pub injected: Option<Instant>,
    /// The serial reader thread got the echo.
    pub arrival: Instant,
    /// The waiting harness noticed it.
    pub seen: Instant,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `a - b` in ms, negative when `a` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b { ms(a - b) } else { -ms(b - a) }
}

/// Medians and spread over a run of keys, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Number of keys.
    pub keys: usize,
    /// Whether [`Summary::figure`] is key-down (QEMU's trace stamp) to
    /// echo; otherwise it is send to echo.
    pub from_key_down: bool,
    /// Median of the figure: key-down (or send) to the echo's arrival.
    pub figure: f64,
    /// 10th percentile of the figure.
    pub p10: f64,
    /// 90th percentile of the figure.
    pub p90: f64,
    /// Median of send to the echo's arrival.
    pub send_to_echo: f64,
    /// Median send to key-down (QMP request and dispatch), if traced.
    pub send_to_key_down: Option<f64>,
    /// Median send to reply.
    pub round_trip: f64,
    /// Median arrival to harness wake-up.
    pub wake: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn sorted(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v
}

impl Summary {
    /// Summarises `samples`; `None` for none.
    pub fn of(samples: &[Sample]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let down: Option<Vec<f64>> = samples
            .iter()
            .map(|s| Some(signed_ms(s.arrival, s.injected?)))
            .collect();
        let echo = sorted(samples.iter().map(|s| ms(s.arrival - s.send)));
        let figure = down
            .as_ref()
            .map_or(echo.clone(), |d| sorted(d.iter().copied()));
        Some(Self {
            keys: samples.len(),
            from_key_down: down.is_some(),
            figure: percentile(&figure, 0.5),
            p10: percentile(&figure, 0.1),
            p90: percentile(&figure, 0.9),
            send_to_echo: percentile(&echo, 0.5),
            send_to_key_down: down.is_some().then(|| {
                let v = samples
                    .iter()
                    .filter_map(|s| Some(signed_ms(s.injected?, s.send)));
                percentile(&sorted(v), 0.5)
            }),
            round_trip: percentile(&sorted(samples.iter().map(|s| ms(s.reply - s.send))), 0.5),
            wake: percentile(&sorted(samples.iter().map(|s| ms(s.seen - s.arrival))), 0.5),
        })
    }
}

/// QEMU's own stamp of each key-down: the runner starts QEMU with its
/// `input_event_key_qcode` trace event logged to a file with wall-clock
/// timestamps (`-trace`, `-msg timestamp=on`, `-D`; lines read
/// `PID@SECONDS.MICROS:input_event_key_qcode con -1, key qcode a, down 1`),
/// and [`Trace::key_downs`] maps them onto the host's monotonic clock.
pub struct Trace {
    path: std::path::PathBuf,
    /// A wall-clock time and the monotonic time taken with it.
    base: (std::time::SystemTime, Instant),
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Trace {
    /// Adds the trace arguments to `cfg`, logging to `path`.
    pub fn enable(cfg: &mut crate::qemu::Config, path: std::path::PathBuf) -> Self {
        let _ = std::fs::remove_file(&path);
        cfg.extra.extend(
            [
                "-trace",
                "input_event_key_qcode",
                "-msg",
                "timestamp=on",
                "-D",
            ]
            .map(String::from),
        );
        cfg.extra.push(path.display().to_string());
        Self {
            path,
            base: (std::time::SystemTime::now(), Instant::now()),
        }
    }

    /// Every key-down of `qcode` QEMU logged, on the monotonic clock.
    pub fn key_downs(&self, qcode: &str) -> Vec<Instant> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let tail = format!(":input_event_key_qcode con -1, key qcode {qcode}, down 1");
        let base = self
            .base
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.ends_with(&tail))
            .filter_map(|l| {
                // `SECONDS.MICROS`, kept in integers: an f64 of seconds
                // since 1970 is only good to about 0.2 us.
                let (secs, micros) = l.split_once('@')?.1.split_once(':')?.0.split_once('.')?;
                let stamp = Duration::from_secs(secs.parse().ok()?)
                    + Duration::from_micros(micros.parse().ok()?);
                match stamp.checked_sub(base) {
                    Some(after) => self.base.1.checked_add(after),
                    None => self.base.1.checked_sub(base - stamp),
                }
            })
            .collect()
    }

    /// Gives each QMP sample the key-down stamped between its send and its
    /// reply (with 1 ms of slack for the two clocks' reading); samples
    /// without one keep `None`.
    pub fn attach(&self, samples: &mut [Sample]) {
        let downs = self.key_downs("a");
        let slack = Duration::from_millis(1);
        for s in samples {
            s.injected = downs
                .iter()
                .find(|&&d| d + slack >= s.send && d <= s.reply + slack)
                .copied();
        }
    }
}

fn key(vm: &mut Vm, qcode: &str, down: bool) -> Result<(), String> {
    vm.qmp(
        "input-send-event",
        json!({"events": [{"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}]}),
    )
    .map(|_| ())
}

/// Where a timed key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// QMP `input-send-event`: whichever keyboard QEMU hands keys to.
    Qmp,
    /// The byte written to the serial port's stdin (the control: no QMP, the
    /// same way out).
    Serial,
}

/// Times `n` presses of `a` (each released and erased with Backspace) from
/// `source`; the console must be at a prompt with an empty line.
pub fn measure(vm: &mut Vm, n: usize, source: Source) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let mark = vm.raw_len();
        let send = Instant::now();
        match source {
            Source::Qmp => key(vm, "a", true)?,
            Source::Serial => vm.send_serial("a"),
        }
        let reply = Instant::now();
        vm.try_expect_at_once(r"a", Duration::from_secs(5))
            .map_err(|e| format!("key {i}: no echo: {e}"))?;
        let seen = Instant::now();
        let arrival = vm
            .arrival_of(mark, b'a')
            .ok_or_else(|| format!("key {i}: the echo matched but has no arrival stamp"))?;
        samples.push(Sample {
            send,
            reply,
            injected: None,
            arrival,
            seen,
        });
        match source {
            Source::Qmp => {
                key(vm, "a", false)?;
                std::thread::sleep(Duration::from_millis(15));
                key(vm, "backspace", true)?;
                std::thread::sleep(Duration::from_millis(15));
                key(vm, "backspace", false)?;
            }
            Source::Serial => vm.send_serial("\x08"),
        }
        std::thread::sleep(Duration::from_millis(30));
        let _ = vm.try_expect(r"\A[\x08\x7f \x1b\[0-9;A-Za-z]*", Duration::from_millis(1));
    }
    Ok(samples)
}

/// Median QMP round trip (ms) of `n` commands `cmd`: the controls, what a
/// QMP command costs with no key in it.
fn qmp_round_trip(vm: &mut Vm, n: usize, cmd: &str, args: &Value) -> Result<f64, String> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        vm.qmp(cmd, args.clone())?;
        v.push(ms(t.elapsed()));
    }
    v.sort_by(f64::total_cmp);
    Ok(percentile(&v, 0.5))
}

/// The two QMP controls, (`query-status`, `input-send-event` of a mouse
/// move) in ms: socket and dispatch alone, and the input path with nothing
/// for the guest to do (the PS/2 mouse is not enabled).
fn qmp_controls(vm: &mut Vm, n: usize) -> Result<(f64, f64), String> {
    let status = qmp_round_trip(vm, n, "query-status", &json!({}))?;
    let mouse = json!({"events": [{"type": "rel", "data": {"axis": "x", "value": 1}}]});
    Ok((status, qmp_round_trip(vm, n, "input-send-event", &mouse)?))
}

/// Unplugs the `usb-kbd` (QMP `device_del`) and waits for QEMU's
/// `DEVICE_DELETED`: from then on QMP keys go to the PS/2 keyboard.
pub fn aim_at_ps2(vm: &mut Vm) -> Result<(), String> {
    vm.qmp("device_del", json!({"id": USB_KBD}))?;
    let end = Instant::now() + STEP;
    loop {
        let gone = vm
            .qmp_events()
            .iter()
            .any(|e| e["event"] == "DEVICE_DELETED" && e["data"]["device"] == USB_KBD);
        if gone {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("HANG: no DEVICE_DELETED for {USB_KBD}"));
        }
        std::thread::sleep(Duration::from_millis(20));
        vm.qmp("query-status", json!({}))?;
    }
}

/// Plugs a `usb-kbd` back in at `db> ` and waits until the panic console
/// announces it ready: QMP keys go to it from then on.
pub fn aim_at_usb(vm: &mut Vm) -> Result<(), String> {
    vm.qmp(
        "device_add",
        json!({"driver": "usb-kbd", "bus": "xhci.0", "id": USB_KBD_BACK}),
    )?;
    vm.try_expect(r"keyboard\(s\) ready\r?\ndb> ", STEP)?;
    Ok(())
}

/// Boots to `shell> ` and waits until the USB keyboard is enumerated.
fn shell_with_usb(vm: &mut Vm) -> Result<(), String> {
    vm.try_expect("shell> ", BOOT)?;
    for _ in 0..100 {
        vm.send_serial("lsusb\r");
        if vm
            .try_expect(r"(?s)xHCI .*?shell> ", STEP)?
            .contains(", keyboard (")
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the USB keyboard never enumerated at shell>".into())
}

type Run = Result<Vec<Sample>, String>;

/// One mode's runs: USB, PS/2, the serial control, and the QMP controls.
struct Mode {
    usb: Run,
    ps2: Run,
    serial: Run,
    qmp_only: Result<(f64, f64), String>,
}

/// All of one boot, measured in this order: USB, PS/2 and serial at
/// `shell> `, then `panic`, PS/2 and serial at `db> `, then USB at `db> `.
fn run_all(vm: &mut Vm, n: usize) -> [Mode; 2] {
    let usb = shell_with_usb(vm).and_then(|_| measure(vm, n, Source::Qmp));
    let ps2 = aim_at_ps2(vm).and_then(|_| measure(vm, n, Source::Qmp));
    let serial = measure(vm, n, Source::Serial);
    let qmp_only = qmp_controls(vm, n);
    let interrupt = Mode {
        usb,
        ps2,
        serial,
        qmp_only,
    };
    vm.send_serial("\x15panic\r");
    let at_db = vm.try_expect("db> ", STEP).map(|_| ());
    let ps2 = at_db.clone().and_then(|_| measure(vm, n, Source::Qmp));
    let serial = at_db.clone().and_then(|_| measure(vm, n, Source::Serial));
    let qmp_only = qmp_controls(vm, n);
    let usb = at_db
        .and_then(|_| aim_at_usb(vm))
        .and_then(|_| measure(vm, n, Source::Qmp));
    let polled = Mode {
        usb,
        ps2,
        serial,
        qmp_only,
    };
    [interrupt, polled]
}

fn summary(r: &Run) -> Result<Summary, String> {
    match r {
        Ok(v) => Summary::of(v).ok_or_else(|| "no samples".to_string()),
        Err(e) => Err(e.clone()),
    }
}

fn value(r: &Result<Summary, String>) -> String {
    match r {
        Ok(s) => format!("{:.2} ms", s.figure),
        Err(_) => "n/a".into(),
    }
}

fn note(r: &Result<Summary, String>, ps2: Option<&Result<Summary, String>>) -> String {
    let s = match r {
        Ok(s) => s,
        Err(e) => return e.clone(),
    };
    let ratio = match ps2 {
        Some(Ok(p)) if p.figure > 0.0 => {
            format!("{:.2} x PS/2 in the same mode; ", s.figure / p.figure)
        }
        Some(_) => "n/a x PS/2; ".into(),
        None => String::new(),
    };
    let from = if s.from_key_down {
        "from QEMU's key-down stamp"
    } else {
        "from the write (no trace stamp)"
    };
    let key_down = s
        .send_to_key_down
        .map_or(String::new(), |d| format!("send->key-down {d:.2} ms, "));
    format!(
        "{ratio}{from}; p10-p90 {:.2}-{:.2} ms; send->echo {:.2} ms, {key_down}send->reply {:.2} ms, echo->harness {:.3} ms",
        s.p10, s.p90, s.send_to_echo, s.round_trip, s.wake
    )
}

/// (d) key latency: USB and PS/2, interrupt and polled mode, one boot.
pub(super) fn keys(rows: &mut Vec<Row>, n: usize) {
    let mut cfg = super::cfg(2, "");
    let trace = Trace::enable(
        &mut cfg,
        crate::qemu::scratch_dir().join(format!("bench-keys-{}.trace", std::process::id())),
    );
    let mut vm = match super::boot("bench-keys", cfg) {
        Ok(vm) => vm,
        Err(e) => return rows.push(Row("key latency".into(), "n/a".into(), e)),
    };
    let mut modes = run_all(&mut vm, n);
    vm.send_serial("\x15poweroff\r");
    let _ = vm.try_wait_exit(STEP);
    for m in &mut modes {
        for r in [&mut m.usb, &mut m.ps2].into_iter().flatten() {
            trace.attach(r);
        }
    }
    for (m, mode) in modes
        .iter()
        .zip(["interrupt mode (shell>)", "polled mode (db>)"])
    {
        let label = |what: &str| format!("key latency, {what}, {mode}, median of {n}");
        let (usb, ps2, serial) = (summary(&m.usb), summary(&m.ps2), summary(&m.serial));
        rows.push(Row(
            label("USB, key-down to echo"),
            value(&usb),
            note(&usb, Some(&ps2)),
        ));
        rows.push(Row(
            label("PS/2, key-down to echo"),
            value(&ps2),
            note(&ps2, None),
        ));
        rows.push(Row(
            label("serial byte to echo (control)"),
            value(&serial),
            note(&serial, None),
        ));
        rows.push(Row(
            label("QMP round trip of query-status, no key (control)"),
            match &m.qmp_only {
                Ok((status, _)) => format!("{status:.2} ms"),
                Err(_) => "n/a".into(),
            },
            match &m.qmp_only {
                Ok((_, mouse)) => format!("input-send-event of a mouse move: {mouse:.2} ms"),
                Err(e) => e.clone(),
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// A trace written by hand, read back onto the monotonic clock: only
    /// key-downs of the asked qcode count, each at its wall-clock offset
    /// from the base, and each sample gets the one inside its command.
    #[test]
    fn trace_stamps_map_onto_the_samples_they_fall_in() {
        let path = crate::qemu::scratch_dir().join(format!("unit-{}.trace", std::process::id()));
        let wall = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let now = Instant::now() + Duration::from_secs(10);
        let trace = Trace {
            path: path.clone(),
            base: (wall, now),
        };
        std::fs::write(
            &path,
            "1@1796000000.005000:input_event_key_qcode con -1, key qcode a, down 1\n\
             1@1796000000.005100:input_event_sync \n\
             1@1796000000.006000:input_event_key_qcode con -1, key qcode a, down 0\n\
             1@1796000000.007000:input_event_key_qcode con -1, key qcode b, down 1\n\
             1@1796000000.020000:input_event_key_qcode con -1, key qcode a, down 1\n",
        )
        .unwrap();
        let downs = trace.key_downs("a");
        assert_eq!(
            downs,
            [
                now + Duration::from_millis(5),
                now + Duration::from_millis(20)
            ]
        );
        let at = |ms: u64| now + Duration::from_millis(ms);
        let sample = |send, reply| Sample {
            send: at(send),
            reply: at(reply),
            injected: None,
            arrival: at(reply + 1),
            seen: at(reply + 2),
        };
        let mut samples = [sample(4, 6), sample(18, 21), sample(40, 42)];
        trace.attach(&mut samples);
        assert_eq!(samples[0].injected, Some(at(5)));
        assert_eq!(samples[1].injected, Some(at(20)));
        assert_eq!(samples[2].injected, None, "no key-down in [40, 42] ms");
        let s = Summary::of(&samples[..2]).unwrap();
        assert!(s.from_key_down);
        assert!((s.figure - 2.0).abs() < 1e-6, "{s:?}");
        let s = Summary::of(&samples).unwrap();
        assert!(!s.from_key_down, "one sample without a stamp: send-based");
        drop(trace);
        assert!(!path.exists(), "the trace file outlived its Trace");
    }
}
