//! Kernel command line: `key=value` words (`test=`, `trigger=`, `panic=`, `dump.fault=`,
//! `power.fault=`, `layout=`, `usb.kbpoll=`, `usb.dma32=`, `usb.dmahigh=`, `pci.scan=`, `fb=`, `bench.ipi=`, `quiet`). Garbage is reported and
//! ignored, never fatal.

#![forbid(unsafe_code)]

/// Parsed options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options<'a> {
    /// Kernel-side scenario to run instead of the shell.
    pub test: Option<&'a str>,
    /// Panic trigger to fire during boot.
    pub trigger: Option<&'a str>,
    /// Panic policy (`console`, `reboot`, `halt`, `dump`).
    pub panic: Option<&'a str>,
    /// Keyboard layout name.
    pub layout: Option<&'a str>,
    /// Longest polling period of USB keyboards in ms (`usb.kbpoll=MS`, as
    /// Linux usbhid's `kbpoll`), [`KBPOLL_MS`]; `None`: the default, 1 ms.
    pub kbpoll_ms: Option<u8>,
    /// `usb.dma32=1`: keep every xHCI controller's DMA memory below 4 GiB,
    /// as for a controller with the `XHCI_NO_64BIT_SUPPORT` quirk.
    pub usb_dma32: bool,
    /// `usb.dmahigh=1` (a test knob): USB DMA memory as high as allowed.
    pub usb_dma_high: bool,
    /// `pci.scan=all`: probe every PCI bus number, not only bus 0 and the
    /// buses behind its bridges (machines with peer root buses).
    pub pci_scan_all: bool,
    /// Do not echo info-level log lines to the console.
    pub quiet: bool,
    /// Crash dump fault injection (`dump.fault=stall`).
    pub dump_fault: Option<&'a str>,
    /// Power-off fault injection (`power.fault=stuck`: power-off does not
    /// work, as on a board whose ACPI power-off fails).
    pub power_fault: Option<&'a str>,
    /// Framebuffer console to set up (`fb=bochs`: a 1024x768x32 mode
    /// through the Bochs / QEMU VBE registers).
    pub fb: Option<&'a str>,
    /// `bench.ipi=1`: before the trigger fires, measure the IPI round trip
    /// to a halted CPU (the reference of the bench's stop latency, taken in
    /// the same boot).
    pub bench_ipi: bool,
    /// Words that were not understood (first few).
    pub unknown: [Option<&'a str>; 4],
}

/// Known values of `dump.fault=`.
pub const DUMP_FAULTS: [&str; 1] = ["stall"];

/// Known values of `power.fault=`.
pub const POWER_FAULTS: [&str; 1] = ["stuck"];

/// Known values of `fb=`.
pub const FB_MODES: [&str; 1] = ["bochs"];

/// Accepted values of `usb.kbpoll=`, in ms.
pub const KBPOLL_MS: core::ops::RangeInclusive<u8> = 1..=255;

/// Known values of `panic=`.
pub const PANIC_POLICIES: [&str; 4] = ["console", "reboot", "halt", "dump"];

impl<'a> Options<'a> {
    /// Parses a command line. Never fails: unknown words are collected.
    pub fn parse(line: &'a str) -> Self {
        let mut o = Options::default();
        let mut unknown = 0;
        for w in line.split_ascii_whitespace() {
            let (k, v) = match w.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (w, None),
            };
            let ok = match (k, v) {
                ("test", Some(v)) if !v.is_empty() => {
                    o.test = Some(v);
                    true
                }
                ("trigger", Some(v)) if !v.is_empty() => {
                    o.trigger = Some(v);
                    true
                }
                ("panic", Some(v)) if PANIC_POLICIES.contains(&v) => {
                    o.panic = Some(v);
                    true
                }
                ("layout", Some(v)) if !v.is_empty() => {
                    o.layout = Some(v);
                    true
                }
                ("usb.kbpoll", Some(v)) => match parse_kbpoll(v) {
                    Some(ms) => {
                        o.kbpoll_ms = Some(ms);
                        true
                    }
                    None => false,
                },
                ("usb.dma32", Some(v @ ("0" | "1"))) => {
                    o.usb_dma32 = v == "1";
                    true
                }
                ("usb.dmahigh", Some(v @ ("0" | "1"))) => {
                    o.usb_dma_high = v == "1";
                    true
                }
                ("pci.scan", Some(v @ ("all" | "bridges"))) => {
                    o.pci_scan_all = v == "all";
                    true
                }
                ("dump.fault", Some(v)) if DUMP_FAULTS.contains(&v) => {
                    o.dump_fault = Some(v);
                    true
                }
                ("power.fault", Some(v)) if POWER_FAULTS.contains(&v) => {
                    o.power_fault = Some(v);
                    true
                }
                ("fb", Some(v)) if FB_MODES.contains(&v) => {
                    o.fb = Some(v);
                    true
                }
                ("bench.ipi", Some(v @ ("0" | "1"))) => {
                    o.bench_ipi = v == "1";
                    true
                }
                ("quiet", None) => {
                    o.quiet = true;
                    true
                }
                _ => false,
            };
            if !ok && unknown < o.unknown.len() {
                o.unknown[unknown] = Some(w);
                unknown += 1;
            }
        }
        o
    }
}

/// A `usb.kbpoll=` value: decimal digits only, within [`KBPOLL_MS`].
fn parse_kbpoll(v: &str) -> Option<u8> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>().ok().filter(|ms| KBPOLL_MS.contains(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_words_and_collects_garbage() {
        let o = Options::parse(
            "  test=locks panic=halt quiet layout=de  bogus panic=maybe =x trigger= dump.fault=stall",
        );
        assert_eq!(o.dump_fault, Some("stall"));
        assert_eq!(o.test, Some("locks"));
        assert_eq!(o.panic, Some("halt"));
        assert_eq!(o.layout, Some("de"));
        assert!(o.quiet);
        assert_eq!(
            o.unknown,
            [
                Some("bogus"),
                Some("panic=maybe"),
                Some("=x"),
                Some("trigger=")
            ]
        );
    }

    #[test]
    fn bench_ipi_takes_0_or_1() {
        assert!(!Options::parse("").bench_ipi);
        assert!(Options::parse("trigger=cli bench.ipi=1").bench_ipi);
        assert!(!Options::parse("bench.ipi=1 bench.ipi=0").bench_ipi);
        let o = Options::parse("bench.ipi bench.ipi=yes");
        assert!(!o.bench_ipi);
        assert_eq!(o.unknown[..2], [Some("bench.ipi"), Some("bench.ipi=yes")]);
    }

    #[test]
    fn fb_takes_only_known_modes() {
        let o = Options::parse("fb=bochs quiet");
        assert_eq!(o.fb, Some("bochs"));
        assert!(o.quiet);
        assert_eq!(Options::parse("").fb, None);
        let o = Options::parse("fb=vesa fb= fb");
        assert_eq!(o.fb, None);
        assert_eq!(o.unknown, [Some("fb=vesa"), Some("fb="), Some("fb"), None]);
    }

    #[test]
    fn kbpoll_in_range_is_taken_and_bad_values_are_reported() {
        assert_eq!(Options::parse("").kbpoll_ms, None);
        for (word, ms) in [
            ("usb.kbpoll=1", 1),
            ("usb.kbpoll=8", 8),
            ("usb.kbpoll=010", 10),
            ("usb.kbpoll=255", 255),
        ] {
            let o = Options::parse(word);
            assert_eq!(o.kbpoll_ms, Some(ms), "{word}");
            assert_eq!(o.unknown, [None; 4], "{word}");
        }
        for word in [
            "usb.kbpoll=0",
            "usb.kbpoll=256",
            "usb.kbpoll=99999999999",
            "usb.kbpoll=",
            "usb.kbpoll=-1",
            "usb.kbpoll=+5",
            "usb.kbpoll=1ms",
            "usb.kbpoll= ",
            "usb.kbpoll",
        ] {
            let o = Options::parse(word);
            assert_eq!(o.kbpoll_ms, None, "{word}");
            assert_eq!(o.unknown[0], Some(word.trim()), "{word}: reported");
        }
        // the last good value wins; a bad one does not undo it
        let o = Options::parse("usb.kbpoll=4 usb.kbpoll=x usb.kbpoll=2 usb.kbpoll=0");
        assert_eq!(o.kbpoll_ms, Some(2));
        assert_eq!(
            o.unknown,
            [Some("usb.kbpoll=x"), Some("usb.kbpoll=0"), None, None]
        );
    }

    #[test]
    fn pci_scan_option() {
        assert!(Options::parse("pci.scan=all").pci_scan_all);
        let o = Options::parse("pci.scan=all pci.scan=bridges pci.scan=some");
        assert!(!o.pci_scan_all);
        assert_eq!(o.unknown, [Some("pci.scan=some"), None, None, None]);
    }

    #[test]
    fn usb_dma_options() {
        let o = Options::parse("usb.dma32=1 usb.dmahigh=1");
        assert!(o.usb_dma32 && o.usb_dma_high);
        let o = Options::parse("usb.dma32=1 usb.dma32=0 usb.dmahigh=yes usb.dma32");
        assert!(!o.usb_dma32 && !o.usb_dma_high);
        assert_eq!(
            o.unknown,
            [Some("usb.dmahigh=yes"), Some("usb.dma32"), None, None]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep over byte patterns, including non-ASCII.
        const POOL: &[u8] = b"=ab t\x00\xff panic= test= quiet";
        let mut seed = 0x1234_5678u32;
        let mut cases = 0;
        for len in 0..64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        POOL[(seed as usize) % POOL.len()]
                    })
                    .collect();
                let s = String::from_utf8_lossy(&bytes);
                let _ = Options::parse(&s);
                cases += 1;
            }
        }
        assert_eq!(cases, 64 * 200);
        std::println!("kernel command line garbage: {cases} cases, 0 crashes");
    }
}
