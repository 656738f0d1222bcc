//! A second, independent xHCI: Bochs 2.7's (a NEC uPD720202, INTx only,
//! USB 3 ports 1-2, USB 2 ports 3-4) with its low-speed "BOCHS USB/PS2
//! Keyboard" on port 3, booting the GRUB image on 2 CPUs. Keys are typed on
//! Bochs' `term` display, which hands them to the USB keyboard
//! (`src/bochs.rs`); COM1 goes to a file that the test reads.
//!
//! One boot, slow (Bochs interprets every instruction): boot to `shell>`
//! with both CPUs online, type at `shell>` (echo, and the driver's key
//! counter rising, so the keys came over USB; `lsusb` lists the low-speed
//! keyboard on port 3), `panic usb-lock`, and at `db>`
//! `cpus` lists both CPUs, the other one stopped. `PANICBENCH_BOCHS_DEBUG=
//! usb_xhci,ioapic` puts those modules' debug messages in Bochs' log.

use std::path::Path;
use std::time::{Duration, Instant};

use panicbench::bochs::{Bochs, Config, KEYS_PER_BURST, check_installed};
use regex::Regex;

/// Boot to `shell>`: BIOS, GRUB from the CD and the kernel, interpreted.
const BOOT: Duration = Duration::from_secs(600);
/// Each later step.
const STEP: Duration = Duration::from_secs(180);

struct Run {
    bochs: Bochs,
    /// Byte offset in the serial output after the last match.
    cursor: usize,
    started: Instant,
}

impl Run {
    fn fail(&self, why: &str) -> ! {
        let serial = self.bochs.serial();
        let lines: Vec<&str> = serial.lines().collect();
        panic!(
            "[bochs] {why} (after {:.0} s)\n--- last 30 serial lines ---\n{}\n--- last 15 lines of Bochs' log ---\n{}\n--- files: {} ---",
            self.started.elapsed().as_secs_f64(),
            lines[lines.len().saturating_sub(30)..].join("\n"),
            self.bochs.log_tail(15),
            self.bochs.dir.display()
        );
    }

    /// Waits for `pattern` in the serial output after the previous match.
    fn try_expect(&mut self, pattern: &str, deadline: Duration) -> Result<String, String> {
        let re = Regex::new(pattern).expect("test regex");
        let end = Instant::now() + deadline;
        loop {
            let text = self.bochs.serial();
            if let Some(m) = re.find(&text[self.cursor.min(text.len())..]) {
                let s = m.as_str().to_string();
                self.cursor += m.end();
                return Ok(s);
            }
            if let Some(status) = self.bochs.exited() {
                return Err(format!("Bochs exited ({status}) waiting for {pattern:?}"));
            }
            if Instant::now() > end {
                return Err(format!("HANG: waiting for {pattern:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn expect(&mut self, step: &str, pattern: &str, deadline: Duration) -> String {
        let t = Instant::now();
        let s = self
            .try_expect(pattern, deadline)
            .unwrap_or_else(|e| self.fail(&format!("{e} ({step})")));
        eprintln!(
            "bochs: {step}: {:.1} s (at {:.0} s)",
            t.elapsed().as_secs_f64(),
            self.started.elapsed().as_secs_f64()
        );
        s
    }

    /// Types `line` and Enter in bursts Bochs' USB keyboard queue holds,
    /// each once the previous one has echoed.
    fn type_line(&mut self, step: &str, line: &str) {
        let text = self.bochs.serial();
        let from = text.len();
        let chars: Vec<char> = line.chars().collect();
        let mut typed = String::new();
        for burst in chars.chunks(KEYS_PER_BURST) {
            let burst: String = burst.iter().collect();
            if let Err(e) = self.bochs.type_keys(&burst) {
                self.fail(&e);
            }
            typed.push_str(&burst);
            let end = Instant::now() + STEP;
            while !self.bochs.serial()[from..].contains(&typed) {
                if Instant::now() > end {
                    self.fail(&format!(
                        "HANG: waiting for the echo of {typed:?} ({step}: typing {line:?})"
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.cursor = self.cursor.max(from);
        if let Err(e) = self.bochs.type_keys("\n") {
            self.fail(&e);
        }
    }

    /// `kbd`'s count of keys from USB keyboards.
    fn usb_keys(&mut self, step: &str) -> u64 {
        self.type_line(step, "kbd");
        let line = self.expect(step, r"[0-9]+ keys \(", STEP);
        line.split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                self.fail(&format!("no key count in {line:?}"));
            })
    }
}

#[test]
fn bochs_xhci_two_cpus_types_at_shell_and_db() {
    if let Err(e) = check_installed() {
        panic!("{e}; this test needs Bochs (CI installs it in .ci/run)");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("qemu-scratch")
        .join(format!("bochs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let image = dir.join("panicbench.iso");
    panicbench::image::build(Path::new(panicbench::KERNEL_ELF), "", &image)
        .unwrap_or_else(|e| panic!("building the GRUB image: {e}"));
    let config = Config::new(&image, &dir);
    let bochs = Bochs::start(&config, &dir, true).unwrap_or_else(|e| panic!("{e}"));
    let mut run = Run {
        bochs,
        cursor: 0,
        started: Instant::now(),
    };
    run.expect("boot: both CPUs online", r"cpus: 2 of 2 online", BOOT);
    run.expect("boot: shell>", r"shell> ", STEP);
    wait_until_usb_types(&mut run);

    let before = run.usb_keys("kbd at shell>");
    run.type_line("echo at shell>", "echo bochs");
    run.expect("echo's output", r"\nbochs\n", STEP);
    let after = run.usb_keys("kbd again at shell>");
    // `echo bochs`, Enter, `kbd`, Enter: 15 key presses.
    if after < before + 15 {
        run.fail(&format!(
            "the USB keyboard counted {before} then {after} keys: the keys did not come over USB"
        ));
    }

    // The low-speed keyboard on USB 2.0 port 3, and how its interrupts went.
    run.type_line("lsusb at shell>", "lsusb");
    let interrupts = run.expect("lsusb: interrupts", r"interrupts: [^\n]*\n", STEP);
    run.expect(
        "lsusb: the keyboard on port 3",
        r"port 3 [^\n]*04b4:0101[^\n]*low speed[^\n]*keyboard",
        STEP,
    );
    eprintln!("bochs: {}", interrupts.trim_end());

    // `usb-lock`: cpu 1 holds the USB driver's lock (interrupts off) when
    // the panic stops it, so the NMI stops it and the takeover repairs the
    // driver (`Left::Torn`) instead of keeping its state.
    run.type_line("panic usb-lock at shell>", "panic usb-lock");
    run.expect("panic report", r"PANIC on cpu 0", STEP);
    run.expect("cpu 1 stopped by NMI", r"cpu 1: stopped \(nmi\)", STEP);
    let takeover = run.expect(
        "USB takeover",
        r"usb [0-9a-f:.]+: polled mode: [^\n]*\n",
        STEP,
    );
    eprintln!("bochs: {}", takeover.trim_end());
    // Bochs runs a stopped endpoint once more (driver/src/command.rs
    // `set_tr_dequeue`): the takeover restarts it without a full reset.
    assert!(
        takeover.contains("endpoint(s) restarted") && !takeover.contains("FULL RESET"),
        "the takeover did not restart the keyboard's endpoint: {takeover}"
    );
    run.expect("db>", r"db> ", STEP);
    run.type_line("cpus at db>", "cpus");
    run.expect("cpus at db>: cpu 0", r"cpu 0: apic 0 panicked", STEP);
    run.expect("cpus at db>: cpu 1", r"cpu 1: apic 1 stopped", STEP);
    let at_db = run.usb_keys("kbd at db>");
    eprintln!(
        "bochs: {} s in all; USB keys: {before} -> {after} at shell>, {at_db} at db>",
        run.started.elapsed().as_secs()
    );
}

/// Until the keyboard is enumerated, keys typed on Bochs' terminal are lost
/// (a port reset clears its state): type `kbd` until it answers. No
/// Ctrl-U to clear a half-typed probe: Bochs' USB keyboard sends no report
/// for a modifier's release, and its queue then stalls (`src/bochs.rs`);
/// Enter ends a half-typed probe as an unknown command anyway.
fn wait_until_usb_types(run: &mut Run) {
    let end = Instant::now() + STEP;
    loop {
        if let Err(e) = run.bochs.type_keys("kbd\n") {
            run.fail(&e);
        }
        if run
            .try_expect(r"[0-9]+ keys \(", Duration::from_secs(8))
            .is_ok()
        {
            eprintln!(
                "bochs: the USB keyboard types (at {:.0} s)",
                run.started.elapsed().as_secs_f64()
            );
            return;
        }
        if Instant::now() > end {
            run.fail("HANG: the USB keyboard never typed `kbd` at shell>");
        }
    }
}
