//! Which IOAPIC pin a PCI function's INTx reaches, free of hardware so it
//! is unit-tested on the host. In order, as Linux's `acpi_pci_irq_lookup`
//! and then its legacy fallbacks:
//! - ACPI's `_PRT` (ACPI 6.5 §6.2.13), read by [`crate::acpi::aml`]: a GSI,
//!   or a link device whose `_CRS` is a literal interrupt. Firmware of real
//!   PCs routes INTx only there. When `_PRT` cannot be read (QEMU pc's is a
//!   computed Method, and its LNKA-LNKD `_CRS` are Methods), the caller
//!   says why and passes `None`:
//! - ICH9 (q35; LPC 8086:2918): in APIC mode PIRQ A-H drive IOAPIC inputs
//!   16-23 whatever the firmware did (ICH9 datasheet, I/O APIC interrupt
//!   inputs; QEMU `ich9_pirq_to_gsi`, its q35
//!   `_PRT` in APIC mode and its GSIA-GSIH link devices). A device on bus 0
//!   below slot 25 raises PIRQ E + (slot + pin) mod 4 (QEMU `ich9_cc_init`,
//!   matching its `_PRT`). The firmware-programmed PIRQ route registers
//!   (0x60-0x63, 0x68-0x6B) only add an ISA IRQ: qboot leaves them
//!   disabled, which is why the Interrupt Line cannot be trusted there.
//! - PIIX3/PIIX4 (pc; ISA bridge 8086:7000 or 8086:7110): a device on bus 0
//!   raises PIRQ (slot + pin - 1) mod 4 (QEMU `pci_slot_get_pirq`, the same
//!   wiring in Bochs), and PIRQ n reaches the ISA IRQ in `PIRQRC[n]` (config
//!   0x60 + n; bit 7 disables) if the firmware routed it: QEMU's LNKA-LNKD
//!   `_CRS` read exactly these registers. The ISA IRQ goes through the
//!   MADT's interrupt source overrides like any other.
//! - Anything else: the Interrupt Line register (0x3C, PCI 3.0 §6.2.4) as
//!   the firmware wrote it, if it names an ISA IRQ.
//!
//! A PCI INTx is level triggered and active low (PCI 3.0 §2.2.6; ACPI §6.2.13
//! for a `_PRT` entry with a GSI), except where the MADT overrides an ISA
//! IRQ's polarity or a link's `_CRS` says otherwise (QEMU's GSI links say
//! active high; Linux follows the `_CRS`, and so does this).

#![forbid(unsafe_code)]

use core::fmt;

use crate::acpi::aml;

/// A chipset whose PIRQ wiring [`route`] knows, with its PIRQ route
/// registers as the firmware left them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chipset {
    /// PIIX3/PIIX4: PIRQRC[A-D] (ISA bridge config 0x60-0x63).
    Piix {
        /// The four route registers.
        pirq: [u8; 4],
    },
    /// ICH9: PIRQ[A-H] route control (LPC config 0x60-0x63, 0x68-0x6B).
    Ich9 {
        /// The eight route registers.
        pirq: [u8; 8],
    },
}

/// PIRQ route register bit 7: the PIRQ is not routed to an ISA IRQ
/// (PIIX3/PIIX4 datasheets: PIRQRC; ICH9 datasheet: `PIRQ[n]_ROUT`).
const ROUTE_DISABLED: u8 = 0x80;

/// A PCI function's INTx as configuration space describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number.
    pub slot: u8,
    /// Interrupt Pin (0x3D): 1-4 for INTA#-INTD#, 0 for none.
    pub pin: u8,
    /// Interrupt Line (0x3C) as the firmware wrote it.
    pub line: u8,
}

/// Trigger mode and polarity of an IOAPIC input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// Level (true) or edge triggered.
    pub level: bool,
    /// Active low (true) or high.
    pub active_low: bool,
}

/// A PCI INTx: level, active low.
pub const PCI_INTX: Trigger = Trigger {
    level: true,
    active_low: true,
};

/// Where the route came from (printed in the boot line and `lsusb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// ACPI `_PRT`: a GSI (`None`) or this link device, whose `_CRS` gave
    /// an ISA IRQ (`Some`) or a GSI.
    Prt(Option<aml::Path>, Option<u8>),
    /// ICH9 PIRQ n hard-wired to IOAPIC input 16 + n.
    Ich9Pirq(u8),
    /// PIIX PIRQ n routed by the firmware to an ISA IRQ.
    PiixPirq(u8, u8),
    /// The Interrupt Line register.
    InterruptLine(u8),
}

/// The IOAPIC input (GSI) a function's INTx reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Global system interrupt: the IOAPIC pin with one IOAPIC at GSI 0.
    pub gsi: u8,
    /// Its trigger mode and polarity.
    pub trigger: Trigger,
    /// How it was found.
    pub source: Source,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pirq = |n: u8| char::from(b'A' + n);
        write!(
            f,
            "pin {}, {}, active-{}, ",
            self.gsi,
            if self.trigger.level { "level" } else { "edge" },
            if self.trigger.active_low {
                "low"
            } else {
                "high"
            }
        )?;
        match self.source {
            Source::Prt(None, _) => write!(f, "_PRT GSI"),
            Source::Prt(Some(link), None) => write!(f, "_PRT {link}"),
            Source::Prt(Some(link), Some(irq)) => write!(f, "_PRT {link} -> IRQ {irq}"),
            Source::Ich9Pirq(n) => write!(f, "ICH9 PIRQ{}", pirq(n)),
            Source::PiixPirq(n, irq) => write!(f, "PIIX PIRQ{} -> IRQ {irq}", pirq(n)),
            Source::InterruptLine(l) => write!(f, "Interrupt Line {l}"),
        }
    }
}

/// Why no route was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Interrupt Pin 0: the function has no INTx.
    NoPin,
    /// Interrupt Pin above 4 (reserved, PCI 3.0 §6.2.4).
    BadPin(u8),
    /// The chipset's PIRQ is not routed and the Interrupt Line names no
    /// ISA IRQ (0, 0xFF or above 15).
    NoRoute {
        /// The Interrupt Line read.
        line: u8,
    },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPin => write!(f, "no INTx pin"),
            Self::BadPin(p) => write!(f, "reserved Interrupt Pin {p}"),
            Self::NoRoute { line } => write!(
                f,
                "no PIRQ route and no usable Interrupt Line ({line:#04x})"
            ),
        }
    }
}

/// An ISA IRQ carrying a PCI INTx (a PIRQ routed to it, or the Interrupt
/// Line), given its MADT interrupt source override `(gsi, MPS INTI flags)`
/// if any (ACPI 6.5 §5.2.12.5): the override's GSI, level triggered
/// whatever the override says of the trigger, and active low unless the
/// override says active high (polarity bits 1:0: 01 high, 11 low, 00
/// conforming to the bus, which for a PCI INTx is low).
pub fn isa_irq(irq: u8, source_override: Option<(u8, u16)>) -> (u8, Trigger) {
    match source_override {
        None => (irq, PCI_INTX),
        Some((gsi, flags)) => (
            gsi,
            Trigger {
                level: true,
                active_low: flags & 0b11 != 0b01,
            },
        ),
    }
}

/// The IOAPIC input of a `_PRT` route: a GSI as it is; an IRQ
/// descriptor's ISA IRQ through `isa` for its GSI, keeping the
/// descriptor's trigger and polarity. `None` for a GSI past the 8-bit pin
/// numbers (or an ISA IRQ past 15).
fn prt_route(prt: aml::Route, isa: impl Fn(u8) -> (u8, Trigger)) -> Option<Route> {
    let trigger = Trigger {
        level: prt.irq.level,
        active_low: prt.irq.active_low,
    };
    let number = u8::try_from(prt.irq.number).ok()?;
    let (gsi, irq) = if prt.irq.isa {
        if number > 15 {
            return None;
        }
        (isa(number).0, Some(number))
    } else {
        (number, None)
    };
    Some(Route {
        gsi,
        trigger,
        source: Source::Prt(prt.link, irq),
    })
}

/// The IOAPIC input of `func`'s INTx: `prt`, the `_PRT` route if ACPI gave
/// one, wins; then the chipset's wiring, then the Interrupt Line.
/// `isa(irq)` maps an ISA IRQ through the MADT's interrupt source overrides
/// to its GSI and trigger (for an ISA IRQ without an override: the same
/// number, and PCI's level/active low).
pub fn route(
    prt: Option<aml::Route>,
    chipset: Option<Chipset>,
    func: Function,
    isa: impl Fn(u8) -> (u8, Trigger),
) -> Result<Route, RouteError> {
    let pin = match func.pin {
        0 => return Err(RouteError::NoPin),
        p @ 1..=4 => p - 1,
        p => return Err(RouteError::BadPin(p)),
    };
    if let Some(r) = prt.and_then(|p| prt_route(p, &isa)) {
        return Ok(r);
    }
    let on_root = func.bus == 0;
    match chipset {
        Some(Chipset::Ich9 { .. }) if on_root && func.slot < 25 => {
            let pirq = 4 + (func.slot + pin) % 4;
            return Ok(Route {
                gsi: 16 + pirq,
                trigger: PCI_INTX,
                source: Source::Ich9Pirq(pirq),
            });
        }
        Some(Chipset::Piix { pirq: regs }) if on_root => {
            let pirq = (func.slot + pin + 3) % 4;
            let reg = regs[usize::from(pirq)];
            if reg & ROUTE_DISABLED == 0 && (1..16).contains(&(reg & 0x0f)) {
                let irq = reg & 0x0f;
                let (gsi, t) = isa(irq);
                return Ok(Route {
                    gsi,
                    // An ISA IRQ carrying a PCI INTx is level triggered
                    // whatever an override says of its trigger.
                    trigger: Trigger { level: true, ..t },
                    source: Source::PiixPirq(pirq, irq),
                });
            }
        }
        _ => {}
    }
    match func.line {
        line @ 1..=15 => {
            let (gsi, t) = isa(line);
            Ok(Route {
                gsi,
                trigger: Trigger { level: true, ..t },
                source: Source::InterruptLine(line),
            })
        }
        line => Err(RouteError::NoRoute { line }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU pc's MADT: IRQ 0 -> GSI 2, 5/9/10/11 level active high.
    fn pc_isa(irq: u8) -> (u8, Trigger) {
        match irq {
            0 => (
                2,
                Trigger {
                    level: false,
                    active_low: false,
                },
            ),
            5 | 9 | 10 | 11 => (
                irq,
                Trigger {
                    level: true,
                    active_low: false,
                },
            ),
            _ => (irq, PCI_INTX),
        }
    }

    fn func(slot: u8, pin: u8, line: u8) -> Function {
        Function {
            bus: 0,
            slot,
            pin,
            line,
        }
    }

    #[test]
    fn q35_routes_to_gsi_20_to_23_even_without_firmware_routing() {
        // qboot: PIRQ route registers disabled, Interrupt Line 0.
        let qboot = Some(Chipset::Ich9 { pirq: [0x80; 8] });
        // QEMU's q35 _PRT: slot 1 INTA -> GSIF (21), slot 3 INTA -> GSIH
        // (23), slot 4 INTA -> GSIE (20), slot 1 INTD -> GSIE (20).
        for (slot, pin, gsi, pirq) in [(1, 1, 21, 5), (3, 1, 23, 7), (4, 1, 20, 4), (1, 4, 20, 4)] {
            let r = route(None, qboot, func(slot, pin, 0), pc_isa).unwrap();
            assert_eq!(r.gsi, gsi, "slot {slot} pin {pin}");
            assert_eq!(r.source, Source::Ich9Pirq(pirq));
            assert_eq!(r.trigger, PCI_INTX);
        }
        // SeaBIOS's Interrupt Line (10) does not win over the hard wiring.
        let seabios = Some(Chipset::Ich9 {
            pirq: [10, 10, 11, 11, 10, 10, 11, 11],
        });
        assert_eq!(
            route(None, seabios, func(1, 1, 10), pc_isa).unwrap().gsi,
            21
        );
        assert_eq!(
            route(None, qboot, func(1, 1, 10), pc_isa)
                .unwrap()
                .to_string(),
            "pin 21, level, active-low, ICH9 PIRQF"
        );
    }

    #[test]
    fn piix_follows_the_firmware_programmed_pirq_registers() {
        let regs = Some(Chipset::Piix {
            pirq: [11, 10, 0x80, 11],
        });
        // Slot 3 INTA: PIRQ (3 + 0 - 1) % 4 = C: disabled, so the line.
        assert_eq!(
            route(None, regs, func(3, 1, 0), pc_isa),
            Err(RouteError::NoRoute { line: 0 })
        );
        let r = route(None, regs, func(3, 1, 9), pc_isa).unwrap();
        assert_eq!(r.source, Source::InterruptLine(9));
        // Slot 4 INTA: PIRQD -> IRQ 11, level and the MADT's active high.
        let r = route(None, regs, func(4, 1, 0), pc_isa).unwrap();
        assert_eq!(r.source, Source::PiixPirq(3, 11));
        assert_eq!(
            (r.gsi, r.trigger),
            (
                11,
                Trigger {
                    level: true,
                    active_low: false
                }
            )
        );
        // Slot 1 INTB: PIRQ (1 + 1 - 1) % 4 = B -> IRQ 10.
        assert_eq!(
            route(None, regs, func(1, 2, 0), pc_isa).unwrap().source,
            Source::PiixPirq(1, 10)
        );
    }

    #[test]
    fn unknown_chipsets_and_bridged_devices_use_the_interrupt_line() {
        let r = route(None, None, func(5, 1, 11), pc_isa).unwrap();
        assert_eq!((r.gsi, r.source), (11, Source::InterruptLine(11)));
        let behind_bridge = Function {
            bus: 2,
            ..func(0, 1, 10)
        };
        let ich9 = Some(Chipset::Ich9 { pirq: [0x80; 8] });
        assert_eq!(
            route(None, ich9, behind_bridge, pc_isa).unwrap().source,
            Source::InterruptLine(10)
        );
        // IRQ 0 is overridden to GSI 2 by the MADT, and made level.
        let r = route(None, None, func(5, 1, 14), |_| {
            (
                2,
                Trigger {
                    level: false,
                    active_low: false,
                },
            )
        })
        .unwrap();
        assert_eq!(r.gsi, 2);
        assert!(r.trigger.level);
    }

    #[test]
    fn isa_overrides_give_the_gsi_and_polarity_but_always_level() {
        assert_eq!(isa_irq(11, None), (11, PCI_INTX));
        // QEMU pc: IRQ 11 level, active high (flags 0x000d).
        assert_eq!(
            isa_irq(11, Some((11, 0x000d))),
            (
                11,
                Trigger {
                    level: true,
                    active_low: false
                }
            )
        );
        // Edge, active low, moved to GSI 20: level all the same.
        assert_eq!(isa_irq(9, Some((20, 0x0007))), (20, PCI_INTX));
        // Conforming polarity: PCI's, active low.
        assert_eq!(isa_irq(10, Some((10, 0x000c))), (10, PCI_INTX));
    }

    fn prt(link: Option<&[u8; 4]>, number: u32, isa: bool) -> aml::Route {
        aml::Route {
            link: link.map(|l| aml::Path::from_segments(&[*b"_SB_", *l]).unwrap()),
            irq: aml::Irq {
                number,
                isa,
                level: true,
                active_low: false,
            },
        }
    }

    #[test]
    fn a_prt_route_comes_first_and_is_named() {
        let ich9 = Some(Chipset::Ich9 { pirq: [0x80; 8] });
        // QEMU q35's GSIH link: GSI 23, level, active high as its _CRS says.
        let r = route(
            Some(prt(Some(b"GSIH"), 23, false)),
            ich9,
            func(3, 1, 10),
            pc_isa,
        )
        .unwrap();
        assert_eq!(r.to_string(), "pin 23, level, active-high, _PRT \\_SB.GSIH");
        // A GSI straight from _PRT, on a chipset nobody knows.
        let gsi = aml::Route {
            link: None,
            irq: aml::Irq {
                number: 40,
                isa: false,
                level: true,
                active_low: true,
            },
        };
        let r = route(Some(gsi), None, func(5, 1, 0), pc_isa).unwrap();
        assert_eq!(r.to_string(), "pin 40, level, active-low, _PRT GSI");
        // A link's ISA IRQ goes through the MADT override (IRQ 0 -> GSI 2)
        // but keeps the descriptor's trigger.
        let r = route(
            Some(prt(Some(b"LNKA"), 0, true)),
            None,
            func(5, 1, 0),
            pc_isa,
        )
        .unwrap();
        assert_eq!(
            r.to_string(),
            "pin 2, level, active-high, _PRT \\_SB.LNKA -> IRQ 0"
        );
        // Past the 8-bit pins, or an ISA IRQ above 15: the chipset wiring.
        for bad in [prt(None, 300, false), prt(Some(b"LNKB"), 16, true)] {
            let r = route(Some(bad), ich9, func(3, 1, 10), pc_isa).unwrap();
            assert_eq!(r.source, Source::Ich9Pirq(7));
        }
        // No pin: no route, whatever _PRT would say.
        assert_eq!(
            route(Some(prt(None, 20, false)), ich9, func(3, 0, 10), pc_isa),
            Err(RouteError::NoPin)
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_guess() {
        let none = None;
        assert_eq!(
            route(None, none, func(1, 0, 11), pc_isa),
            Err(RouteError::NoPin)
        );
        assert_eq!(
            route(None, none, func(1, 5, 11), pc_isa),
            Err(RouteError::BadPin(5))
        );
        for line in [0, 0xff, 16, 0x80] {
            assert_eq!(
                route(None, none, func(1, 1, line), pc_isa),
                Err(RouteError::NoRoute { line })
            );
        }
        // A PIIX register naming IRQ 0 is not a route.
        let regs = Some(Chipset::Piix { pirq: [0; 4] });
        assert_eq!(
            route(None, regs, func(1, 1, 0xff), pc_isa),
            Err(RouteError::NoRoute { line: 0xff })
        );
    }
}
