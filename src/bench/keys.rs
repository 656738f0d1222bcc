//! (d) Key latency: from a QMP key-down to its echo on the serial console,
//! for the USB and the PS/2 keyboard, in interrupt mode (`shell> `) and in
//! polled mode (`db> `), all four in one boot, each USB figure as a ratio
//! to PS/2 in the same mode.
//!
//! QMP `input-send-event` cannot name the PS/2 keyboard under
//! `-display none` (it has no console to bind to) and without a `device`
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
//! command is written), `reply` (its reply read: QEMU has injected the key
//! by then, `qmp_input_send_event` queues and syncs before it returns),
//! `arrival` (the serial reader thread got the echo's bytes) and `seen`
//! (the waiting harness woke up on it). The figure is send to arrival:
//! key-down to echo plus the one-way QMP request, at most the QMP round
//! trip more than the true key-down to echo.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BOOT, Row, STEP};
use crate::harness::Vm;

/// The `usb-kbd` id the runner's command line gives the keyboard.
const USB_KBD: &str = "kbd0";
/// The id of the keyboard plugged back for the polled USB figure.
const USB_KBD_BACK: &str = "kbd-bench";

/// One key's stages, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// QMP `input-send-event` round trip (send to reply).
    pub round_trip: f64,
    /// Send to the echo's arrival at the host: the figure.
    pub echo: f64,
    /// Reply to the echo's arrival (negative when the echo came first).
    pub after_reply: f64,
    /// Arrival to the waiting harness noticing it.
    pub wake: f64,
}

/// Medians and spread over a run of keys.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Number of keys.
    pub keys: usize,
    /// Median of send to echo arrival (ms).
    pub echo: f64,
    /// 10th and 90th percentile of send to echo arrival (ms).
    pub echo_p10: f64,
    /// See [`Summary::echo_p10`].
    pub echo_p90: f64,
    /// Median QMP round trip (ms).
    pub round_trip: f64,
    /// Median reply to echo arrival (ms).
    pub after_reply: f64,
    /// Median arrival to harness wake-up (ms).
    pub wake: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

impl Summary {
    /// Summarises `samples` (at least one).
    pub fn of(samples: &[Sample]) -> Self {
        let sorted = |f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let echo = sorted(|s| s.echo);
        Self {
            keys: samples.len(),
            echo: percentile(&echo, 0.5),
            echo_p10: percentile(&echo, 0.1),
            echo_p90: percentile(&echo, 0.9),
            round_trip: percentile(&sorted(|s| s.round_trip), 0.5),
            after_reply: percentile(&sorted(|s| s.after_reply), 0.5),
            wake: percentile(&sorted(|s| s.wake), 0.5),
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
        let signed = |a: Instant, b: Instant| {
            if a >= b { ms(a - b) } else { -ms(b - a) }
        };
        samples.push(Sample {
            round_trip: ms(reply - send),
            echo: ms(arrival.saturating_duration_since(send)),
            after_reply: signed(arrival, reply),
            wake: ms(seen.saturating_duration_since(arrival)),
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

type Run = Result<Summary, String>;

/// One mode's runs: USB, PS/2, the serial control, and a QMP command with
/// no key (`query-status`).
struct Mode {
    usb: Run,
    ps2: Run,
    serial: Run,
    qmp_only: Result<(f64, f64), String>,
}

/// All of one boot, measured in this order: USB, PS/2 and serial at
/// `shell> `, then `panic`, PS/2 and serial at `db> `, then USB at `db> `.
fn run_all(vm: &mut Vm, n: usize) -> [Mode; 2] {
    let sum = |r: Result<Vec<Sample>, String>| r.map(|s| Summary::of(&s));
    let usb = sum(shell_with_usb(vm).and_then(|_| measure(vm, n, Source::Qmp)));
    let ps2 = sum(aim_at_ps2(vm).and_then(|_| measure(vm, n, Source::Qmp)));
    let serial = sum(measure(vm, n, Source::Serial));
    let qmp_only = qmp_controls(vm, n);
    let interrupt = Mode {
        usb,
        ps2,
        serial,
        qmp_only,
    };
    vm.send_serial("\x15panic\r");
    let at_db = vm.try_expect("db> ", STEP).map(|_| ());
    let ps2 = sum(at_db.clone().and_then(|_| measure(vm, n, Source::Qmp)));
    let serial = sum(at_db.clone().and_then(|_| measure(vm, n, Source::Serial)));
    let qmp_only = qmp_controls(vm, n);
    let usb = sum(at_db
        .and_then(|_| aim_at_usb(vm))
        .and_then(|_| measure(vm, n, Source::Qmp)));
    let polled = Mode {
        usb,
        ps2,
        serial,
        qmp_only,
    };
    [interrupt, polled]
}

fn value(r: &Run) -> String {
    match r {
        Ok(s) => format!("{:.2} ms", s.echo),
        Err(_) => "n/a".into(),
    }
}

fn spread(s: &Summary) -> String {
    format!(
        "p10-p90 {:.2}-{:.2} ms; send->reply {:.2} ms, reply->echo {:+.2} ms, echo->harness {:.3} ms",
        s.echo_p10, s.echo_p90, s.round_trip, s.after_reply, s.wake
    )
}

fn note(r: &Run, ps2: Option<&Run>) -> String {
    let s = match r {
        Ok(s) => s,
        Err(e) => return e.clone(),
    };
    let ratio = match ps2 {
        Some(Ok(p)) if p.echo > 0.0 => format!("{:.2} x PS/2 in the same mode; ", s.echo / p.echo),
        Some(_) => "n/a x PS/2; ".into(),
        None => String::new(),
    };
    format!("{ratio}{}", spread(s))
}

/// (d) key latency: USB and PS/2, interrupt and polled mode, one boot.
pub(super) fn keys(rows: &mut Vec<Row>, n: usize) {
    let mut vm = match super::boot("bench-keys", super::cfg(2, "")) {
        Ok(vm) => vm,
        Err(e) => return rows.push(Row("key latency".into(), "n/a".into(), e)),
    };
    let modes = run_all(&mut vm, n);
    for (m, mode) in modes
        .iter()
        .zip(["interrupt mode (shell>)", "polled mode (db>)"])
    {
        let label = |what: &str| format!("key latency, {what}, {mode}, median of {n}");
        rows.push(Row(
            label("USB, QMP key-down to echo"),
            value(&m.usb),
            note(&m.usb, Some(&m.ps2)),
        ));
        rows.push(Row(
            label("PS/2, QMP key-down to echo"),
            value(&m.ps2),
            note(&m.ps2, None),
        ));
        rows.push(Row(
            label("serial byte to echo (control)"),
            value(&m.serial),
            note(&m.serial, None),
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
    vm.send_serial("\x15poweroff\r");
    let _ = vm.try_wait_exit(STEP);
}
