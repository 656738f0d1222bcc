//! Which functions a PCI walk visits: bus 0, then the secondary bus of every
//! PCI-to-PCI bridge found, as Linux's `pci_scan_child_bus` does on a
//! machine with one host bridge, instead of probing all 256 buses (each
//! empty bus costs 32 configuration reads, about 80 ms for all of them
//! under TCG here). Machines with peer root buses (multi-socket servers,
//! whose host bridges ACPI names with `_BBN`) get every bus probed with
//! `pci.scan=all`. Pure: the configuration read is passed in, so the walk is
//! unit-tested on the host.
#![forbid(unsafe_code)]

/// A function on PCI segment 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0-31.
    pub dev: u8,
    /// Function number, 0-7.
    pub func: u8,
}

/// Vendor ID (low half) and Device ID (PCI Local Bus 3.0 §6.2.1).
const ID_DWORD: u16 = 0x00;
/// Cache line size, latency timer, Header Type (bits 16-23; bit 23:
/// multi-function), BIST (PCI Local Bus 3.0 §6.2.1).
const HEADER_DWORD: u16 = 0x0c;
/// A type 1 header's Primary (bits 0-7), Secondary (bits 8-15) and
/// Subordinate (bits 16-23) Bus Numbers (PCI-to-PCI Bridge Architecture 1.2
/// §3.2.5.3-§3.2.5.5).
const BUS_NUMBERS_DWORD: u16 = 0x18;
/// Header layout of a PCI-to-PCI bridge.
const HEADER_TYPE_BRIDGE: u32 = 1;

/// How many buses a walk visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buses {
    /// Bus 0 and the buses behind its bridges (the default).
    Bridged,
    /// Every bus number (`pci.scan=all`).
    All,
}

/// Visits every present function in bus order until `f` returns true.
/// `read(at, offset)` reads a configuration dword (all ones when nothing
/// answers). Bounded: each bus is probed at most once (a bridge whose
/// secondary bus is not above its own bus, or is unnumbered, is not
/// followed), so at most 256 x 32 x 8 functions.
pub fn walk(read: impl Fn(Bdf, u16) -> u32, buses: Buses, mut f: impl FnMut(Bdf) -> bool) {
    let mut reachable = [0u64; 4];
    reachable[0] = 1;
    for bus in 0..=255u8 {
        let reached = reachable[usize::from(bus / 64)] & (1 << (bus % 64)) != 0;
        if !reached && buses == Buses::Bridged {
            continue;
        }
        if walk_bus(&read, bus, &mut reachable, &mut f) {
            return;
        }
    }
}

/// Walks one bus; marks the secondary buses of its bridges reachable.
/// Returns true when `f` asked to stop.
fn walk_bus(
    read: &impl Fn(Bdf, u16) -> u32,
    bus: u8,
    reachable: &mut [u64; 4],
    f: &mut impl FnMut(Bdf) -> bool,
) -> bool {
    for dev in 0..32u8 {
        for func in 0..8u8 {
            let at = Bdf { bus, dev, func };
            if read(at, ID_DWORD) & 0xffff == 0xffff {
                if func == 0 {
                    break;
                }
                continue;
            }
            if f(at) {
                return true;
            }
            let header = read(at, HEADER_DWORD);
            if (header >> 16) & 0x7f == HEADER_TYPE_BRIDGE {
                let secondary = ((read(at, BUS_NUMBERS_DWORD) >> 8) & 0xff) as u8;
                if secondary > bus {
                    reachable[usize::from(secondary / 64)] |= 1 << (secondary % 64);
                }
            }
            if func == 0 && header & (1 << 23) == 0 {
                break;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::vec::Vec;

    /// A fake segment: `(bus, dev, func, header type byte, secondary bus)`.
    struct Segment {
        functions: Vec<(u8, u8, u8, u8, u8)>,
        reads: Cell<usize>,
    }

    impl Segment {
        fn new(functions: &[(u8, u8, u8, u8, u8)]) -> Self {
            Segment {
                functions: functions.to_vec(),
                reads: Cell::new(0),
            }
        }

        fn read(&self, at: Bdf, offset: u16) -> u32 {
            self.reads.set(self.reads.get() + 1);
            let Some(&(_, _, _, header, secondary)) = self
                .functions
                .iter()
                .find(|&&(b, d, f, _, _)| (b, d, f) == (at.bus, at.dev, at.func))
            else {
                return u32::MAX;
            };
            match offset {
                ID_DWORD => 0x1234_8086,
                HEADER_DWORD => u32::from(header) << 16,
                BUS_NUMBERS_DWORD => u32::from(secondary) << 8 | u32::from(at.bus),
                _ => 0,
            }
        }

        fn found(&self, buses: Buses) -> Vec<(u8, u8, u8)> {
            let mut out = Vec::new();
            walk(
                |at, o| self.read(at, o),
                buses,
                |at| {
                    out.push((at.bus, at.dev, at.func));
                    false
                },
            );
            out
        }
    }

    /// Bus 0: a host bridge, a multi-function device (functions 0 and 2), a
    /// bridge to bus 3; bus 3: a device and a bridge to bus 5; bus 5: an
    /// xHCI; bus 9: a device behind no bridge (a peer root bus).
    fn machine() -> Segment {
        Segment::new(&[
            (0, 0, 0, 0x00, 0),
            (0, 2, 0, 0x80, 0),
            (0, 2, 2, 0x00, 0),
            (0, 0x1e, 0, 0x01, 3),
            (3, 0, 0, 0x00, 0),
            (3, 1, 0, 0x01, 5),
            (5, 0, 0, 0x00, 0),
            (9, 0, 0, 0x00, 0),
        ])
    }

    #[test]
    fn bridges_are_followed_and_only_reached_buses_probed() {
        let m = machine();
        assert_eq!(
            m.found(Buses::Bridged),
            [
                (0, 0, 0),
                (0, 2, 0),
                (0, 2, 2),
                (0, 0x1e, 0),
                (3, 0, 0),
                (3, 1, 0),
                (5, 0, 0)
            ]
        );
        // Three buses of 32 slots, not 256: at most a few reads per slot.
        assert!(m.reads.get() < 3 * 32 * 3, "{} reads", m.reads.get());
    }

    #[test]
    fn every_bus_with_scan_all() {
        let m = machine();
        let found = m.found(Buses::All);
        assert_eq!(found.len(), 8);
        assert_eq!(found.last(), Some(&(9, 0, 0)));
    }

    #[test]
    fn bridges_pointing_back_or_unnumbered_are_not_followed() {
        // 00:01.0 points at bus 0 (unnumbered), 00:02.0 at bus 3 whose
        // bridge points back at bus 1: each bus is walked once.
        let m = Segment::new(&[
            (0, 1, 0, 0x01, 0),
            (0, 2, 0, 0x01, 3),
            (3, 0, 0, 0x01, 1),
            (1, 0, 0, 0x00, 0),
        ]);
        assert_eq!(m.found(Buses::Bridged), [(0, 1, 0), (0, 2, 0), (3, 0, 0)]);
    }

    #[test]
    fn the_walk_stops_when_asked() {
        let m = machine();
        let mut seen = 0;
        walk(
            |at, o| m.read(at, o),
            Buses::Bridged,
            |at| {
                seen += 1;
                at.bus == 3
            },
        );
        assert_eq!(seen, 5);
    }
}
