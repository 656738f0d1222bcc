//! Host tests: QEMU 7.2's own DSDTs, hand-assembled AML for the shapes
//! real firmware uses, and malformed input (truncations, random bytes).
//!
//! `testdata/q35-dsdt.aml` and `testdata/pc-dsdt.aml` are the DSDTs QEMU
//! 7.2.22 generated for `-machine q35` and `-machine pc` with
//! `-device nec-usb-xhci -device usb-kbd` (SeaBIOS; qboot's q35 DSDT is
//! byte-identical), saved from guest memory with the monitor's `pmemsave`.

use std::vec::Vec;

use super::*;

const Q35: &[u8] = include_bytes!("testdata/q35-dsdt.aml");
const PC: &[u8] = include_bytes!("testdata/pc-dsdt.aml");

/// A table's AML body: after the 36-byte header.
fn body(table: &[u8]) -> &[u8] {
    assert_eq!(&table[..4], b"DSDT");
    &table[36..]
}

// A small AML assembler for the hand-written cases.

fn pkg_length(len: usize) -> Vec<u8> {
    // The PkgLength counts itself (§20.2.4).
    if len + 1 < 64 {
        return std::vec![(len + 1) as u8];
    }
    for follow in 1..4usize {
        let total = len + 1 + follow;
        if total < 1 << (4 + 8 * follow) {
            let mut v = std::vec![(follow as u8) << 6 | (total & 0x0F) as u8];
            v.extend((0..follow).map(|i| (total >> (4 + 8 * i)) as u8));
            return v;
        }
    }
    unreachable!("PkgLength too long")
}

fn with_pkg(op: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = op.to_vec();
    v.extend(pkg_length(body.len()));
    v.extend_from_slice(body);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn scope(name: &[u8], body: &[u8]) -> Vec<u8> {
    with_pkg(&[0x10], &cat(&[name, body]))
}

fn device(name: &[u8], body: &[u8]) -> Vec<u8> {
    with_pkg(&[0x5B, 0x82], &cat(&[name, body]))
}

fn name(n: &[u8], value: &[u8]) -> Vec<u8> {
    cat(&[&[0x08], n, value])
}

fn method(n: &[u8], args: u8, body: &[u8]) -> Vec<u8> {
    with_pkg(&[0x14], &cat(&[n, &[args], body]))
}

fn package(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut b = std::vec![elements.len() as u8];
    for e in elements {
        b.extend_from_slice(e);
    }
    with_pkg(&[0x12], &b)
}

fn dword(v: u32) -> Vec<u8> {
    cat(&[&[0x0C], &v.to_le_bytes()])
}

fn byte(v: u8) -> Vec<u8> {
    std::vec![0x0A, v]
}

fn entry(slot: u8, pin: u8, source: &[u8], index: u32) -> Vec<u8> {
    package(&[
        dword(u32::from(slot) << 16 | 0xFFFF),
        byte(pin),
        source.to_vec(),
        dword(index),
    ])
}

const EISA_PNP0A03: [u8; 5] = [0x0C, 0x41, 0xD0, 0x0A, 0x03];
const EISA_PNP0A08: [u8; 5] = [0x0C, 0x41, 0xD0, 0x0A, 0x08];

/// `Scope (\_SB) { Device (PCI0) { _HID PNP0A08, _CID PNP0A03, _BBN 0,
/// <inner> } <outer> }`.
fn sb_with_pci0(inner: &[u8], outer: &[u8]) -> Vec<u8> {
    let pci0 = device(
        b"PCI0",
        &cat(&[
            &name(b"_HID", &EISA_PNP0A08),
            &name(b"_CID", &EISA_PNP0A03),
            &name(b"_BBN", &[0x00]),
            inner,
        ]),
    );
    scope(b"\\_SB_", &cat(&[&pci0, outer]))
}

fn gsi(number: u32) -> Irq {
    Irq {
        number,
        isa: false,
        level: true,
        active_low: true,
    }
}

fn path(s: &str) -> Path {
    let mut p = Path::ROOT;
    for seg in s.trim_start_matches('\\').split('.') {
        let mut b = [b'_'; 4];
        b[..seg.len()].copy_from_slice(seg.as_bytes());
        p.push(b).unwrap();
    }
    p
}

#[test]
fn q35_prt_in_apic_mode_names_the_gsi_links_of_the_ich9_wiring() {
    let tables = [body(Q35)];
    // What `pci::intx` hard-wires for ICH9: PIRQ E + (slot + pin) mod 4,
    // PIRQ n on GSI 16 + n, through link GSIA-GSIH.
    for slot in 0..25u8 {
        for pin in 0..4u8 {
            let r = pci_intx(&tables, 0, slot, pin).unwrap();
            let pirq = 4 + (slot + pin) % 4;
            let link = std::format!("\\_SB.GSI{}", char::from(b'A' + pirq));
            assert_eq!(r.link, Some(path(&link)), "slot {slot} pin {pin}");
            // QEMU's GSI links: Interrupt (ResourceConsumer, Level,
            // ActiveHigh, Shared) { 16 + n }.
            let want = Irq {
                number: 16 + u32::from(pirq),
                isa: false,
                level: true,
                active_low: false,
            };
            assert_eq!(r.irq, want, "slot {slot} pin {pin}");
        }
    }
    // The xHCI on qboot q35 was seen at 00:03.0 INTA on pin 23.
    let r = pci_intx(&tables, 0, 3, 0).unwrap();
    assert_eq!(
        (r.irq.number, std::format!("{}", r.link.unwrap())),
        (23, "\\_SB.GSIH".into())
    );
    // Bus 1 has no root bridge.
    assert_eq!(
        pci_intx(&tables, 1, 0, 0),
        Err(Error::NoRootBridge { bus: 1 })
    );
}

#[test]
fn q35_without_pic_takes_the_pic_mode_package_and_its_method_crs_links() {
    // With `\_PIC` renamed nothing reads 1: `If (PICF == Zero)` returns
    // PRTP, whose LNKE-LNKH `_CRS` are Methods reading the PIRQ registers.
    let mut q35 = body(Q35).to_vec();
    let at = q35.windows(4).position(|w| w == b"_PIC").unwrap();
    q35[at + 3] = b'X';
    let e = pci_intx(&[&q35], 0, 3, 0).unwrap_err();
    assert_eq!(e, Error::CrsIsMethod(path("\\_SB.LNKH")));
}

#[test]
fn pc_prt_is_a_computed_method_and_says_so() {
    // QEMU pc's `_PRT` builds its package in a While loop: not evaluated.
    let e = pci_intx(&[body(PC)], 0, 3, 0).unwrap_err();
    assert!(matches!(e, Error::Unsupported { op: 0xA2, .. }), "{e:?}");
    assert!(std::format!("{e}").starts_with("opcode 0xa2 at "), "{e}");
}

#[test]
fn a_literal_prt_with_gsis_gives_them_level_active_low() {
    let prt = name(
        b"_PRT",
        &package(&[
            entry(1, 0, &[0x00], 16),
            entry(3, 0, &[0x00], 23),
            entry(3, 1, &[0x00], 20),
        ]),
    );
    let t = sb_with_pci0(&prt, &[]);
    assert_eq!(
        pci_intx(&[&t], 0, 3, 0).unwrap(),
        Route {
            link: None,
            irq: gsi(23)
        }
    );
    assert_eq!(pci_intx(&[&t], 0, 3, 1).unwrap().irq, gsi(20));
    assert_eq!(
        pci_intx(&[&t], 0, 3, 2),
        Err(Error::NoEntry { slot: 3, pin: 2 })
    );
    assert_eq!(
        pci_intx(&[&t], 0, 2, 0),
        Err(Error::NoEntry { slot: 2, pin: 0 })
    );
}

/// The AMI/Intel shape: `Method (_PRT) { If (PICM) { Return (AR00) }
/// Return (PR00) }`, the packages one scope up, `_PIC` storing into PICM.
fn picm_table(condition: &[u8], pic: &[u8]) -> Vec<u8> {
    let prt = method(
        b"_PRT",
        0,
        &cat(&[
            &with_pkg(&[0xA0], &cat(&[condition, &[0xA4], b"AR00"])),
            &[0xA4],
            b"PR00",
        ]),
    );
    let ar00 = name(b"AR00", &package(&[entry(20, 0, &[0x00], 0x12)]));
    // A link in PIC mode: IRQ descriptor IRQ 11, level, active low, shared.
    let pr00 = name(b"PR00", &package(&[entry(20, 0, b"LNKA", 0)]));
    let lnka = device(
        b"LNKA",
        &name(
            b"_CRS",
            &with_pkg(&[0x11], &[0x0A, 0x06, 0x23, 0x00, 0x08, 0x18, 0x79, 0x00]),
        ),
    );
    cat(&[
        &name(b"PICM", &[0x00]),
        &method(b"_PIC", 1, pic),
        &sb_with_pci0(&prt, &cat(&[&ar00, &pr00, &lnka])),
    ])
}

#[test]
fn a_prt_method_is_evaluated_as_if_pic_1_was_called() {
    // `Store (Arg0, PICM)` / `PICM = Arg0`: PICM reads 1, so AR00.
    let t = picm_table(b"PICM", &[0x70, 0x68, b'P', b'I', b'C', b'M']);
    assert_eq!(
        pci_intx(&[&t], 0, 20, 0).unwrap(),
        Route {
            link: None,
            irq: gsi(0x12)
        }
    );
    // `If (LEqual (PICM, Zero))` is then false: PR00 and its link.
    let lequal = cat(&[&[0x93], b"PICM", &[0x00]]);
    let t = picm_table(&lequal, &[0x70, 0x68, b'P', b'I', b'C', b'M']);
    let r = pci_intx(&[&t], 0, 20, 0).unwrap();
    assert_eq!(r.link, Some(path("\\_SB.LNKA")));
    assert_eq!(
        r.irq,
        Irq {
            number: 11,
            isa: true,
            level: true,
            active_low: true
        }
    );
    // A `_PIC` that stores nothing: PICM keeps its value 0, so PR00.
    let t = picm_table(b"PICM", &[0xA3]);
    assert_eq!(
        pci_intx(&[&t], 0, 20, 0).unwrap().link,
        Some(path("\\_SB.LNKA"))
    );
    // A condition on a Field (no value here) is an error, not a guess.
    let t = picm_table(b"GPIC", &[0x70, 0x68, b'P', b'I', b'C', b'M']);
    assert_eq!(
        pci_intx(&[&t], 0, 20, 0),
        Err(Error::NotFound(path("\\_SB.PCI0._PRT.GPIC")))
    );
}

#[test]
fn store_to_a_local_else_branches_and_prefixed_names() {
    // Method (_PRT) { If (Zero) { Return (Zero) } Else { Local0 =
    // ^^^PKGS.AR01 } Return (Local0) } with the package in \PKGS, and a
    // second root on bus 0x80 found by `_CID` Package ("PNP0A03").
    let ar01 = scope(
        b"\\PKGS",
        &name(b"AR01", &package(&[entry(2, 3, &[0x00], 40)])),
    );
    let body = cat(&[
        &with_pkg(&[0xA0], &[0x00, 0xA4, 0x00]),
        &with_pkg(
            &[0xA1],
            &cat(&[&[0x70, b'^', b'^', b'^', 0x2E], b"PKGSAR01", &[0x60]]),
        ),
        &[0xA4, 0x60],
    ]);
    let cid = cat(&[&[0x12, 0x0B, 0x01, 0x0D], b"PNP0A03", &[0x00]]);
    let pci1 = device(
        b"PCI1",
        &cat(&[
            &name(b"_CID", &cid),
            &name(b"_BBN", &byte(0x80)),
            &method(b"_PRT", 0, &body),
        ]),
    );
    let t = cat(&[&ar01, &sb_with_pci0(&[], &pci1)]);
    // PCI0 (bus 0) has no _PRT.
    assert_eq!(
        pci_intx(&[&t], 0, 2, 3),
        Err(Error::NotFound(path("\\_SB.PCI0._PRT")))
    );
    assert_eq!(pci_intx(&[&t], 0x80, 2, 3).unwrap().irq, gsi(40));
    // The package is in an SSDT: the same, across tables.
    let dsdt = sb_with_pci0(&[], &pci1);
    assert_eq!(pci_intx(&[&dsdt, &ar01], 0x80, 2, 3).unwrap().irq, gsi(40));
}

#[test]
fn behind_bridges_the_nearest_prt_or_the_swizzle() {
    // Root _PRT: 00:1c INTB -> 17, 00:02 INTB -> 22. Root port RP01
    // (00:1c.0) has its own _PRT; RP02 (00:1c.1) has none; the bridge at
    // 00:02.0 is not in the namespace at all.
    let root_prt = name(
        b"_PRT",
        &package(&[entry(0x1C, 1, &[0x00], 17), entry(2, 1, &[0x00], 22)]),
    );
    let rp01 = device(
        b"RP01",
        &cat(&[
            &name(b"_ADR", &dword(0x001C_0000)),
            &name(b"_PRT", &package(&[entry(0, 0, &[0x00], 16)])),
        ]),
    );
    let rp02 = device(b"RP02", &name(b"_ADR", &dword(0x001C_0001)));
    let t = sb_with_pci0(&cat(&[&root_prt, &rp01, &rp02]), &[]);
    let behind = |bridges: &[(u8, u8)], slot, pin| pci_intx_behind(&[&t], 0, bridges, slot, pin);
    assert_eq!(behind(&[(0x1C, 0)], 0, 0).unwrap().irq, gsi(16));
    // RP02: INTA of device 1 is INTB at 00:1c.
    assert_eq!(behind(&[(0x1C, 1)], 1, 0).unwrap().irq, gsi(17));
    // Two undescribed bridges: device 2 INTA -> INTC at 03 -> INTB at 02.
    assert_eq!(behind(&[(2, 0), (3, 0)], 2, 0).unwrap().irq, gsi(22));
    // RP01's _PRT has no INTB entry: an error, not the swizzle.
    assert_eq!(
        behind(&[(0x1C, 0)], 0, 1),
        Err(Error::NoEntry { slot: 0, pin: 1 })
    );
    let deep = [(2, 0); MAX_BRIDGES + 1];
    assert!(matches!(behind(&deep, 0, 0), Err(Error::TooDeep { .. })));
}

#[test]
fn fields_are_named_objects_that_are_not_read() {
    // `_PIC` stores into GPIC, a field of an NVS OperationRegion: the
    // condition on it reads 1; `_BBN` reading a field is an error, and
    // that root bridge is passed over.
    let region = cat(&[
        &[0x5B, 0x80],
        b"GNVS",
        &[0x00],
        &dword(0xDEAD_0000),
        &byte(0x10),
    ]);
    let field = with_pkg(
        &[0x5B, 0x81],
        &cat(&[
            b"GNVS",
            &[0x01],
            &[0x00, 0x08],
            b"GPIC",
            &[0x08],
            &[0x01, 0x01, 0x00],
            b"BNUM",
            &[0x08],
        ]),
    );
    let t = cat(&[
        &region,
        &field,
        &picm_table(b"GPIC", &[0x70, 0x68, b'G', b'P', b'I', b'C']),
    ]);
    assert_eq!(pci_intx(&[&t], 0, 20, 0).unwrap().irq, gsi(0x12));
    // Without `_PIC` storing into it, GPIC cannot be read.
    let t = cat(&[&region, &field, &picm_table(b"GPIC", &[0xA3])]);
    assert_eq!(pci_intx(&[&t], 0, 20, 0), Err(Error::Field(path("\\GPIC"))));
    let pci1 = device(
        b"PCI1",
        &cat(&[
            &name(b"_HID", &EISA_PNP0A03),
            &method(b"_BBN", 0, &cat(&[&[0xA4], b"BNUM"])),
        ]),
    );
    let prt = name(b"_PRT", &package(&[entry(1, 0, &[0x00], 16)]));
    let t = cat(&[
        &region,
        &field,
        &scope(b"\\_SB_", &pci1),
        &sb_with_pci0(&prt, &[]),
    ]);
    assert_eq!(pci_intx(&[&t], 0, 1, 0).unwrap().irq, gsi(16));
    assert_eq!(pci_intx(&[&t], 1, 1, 0), Err(Error::Field(path("\\BNUM"))));
}

#[test]
fn a_link_whose_crs_is_a_method_is_reported_by_name() {
    let prt = name(b"_PRT", &package(&[entry(1, 0, b"LNKD", 0)]));
    let lnkd = device(b"LNKD", &method(b"_CRS", 0, &[0xA4, 0x00]));
    let t = sb_with_pci0(&prt, &lnkd);
    let e = pci_intx(&[&t], 0, 1, 0).unwrap_err();
    assert_eq!(e, Error::CrsIsMethod(path("\\_SB.LNKD")));
    assert_eq!(std::format!("{e}"), "\\_SB.LNKD._CRS is a Method");
    // A link that does not exist.
    let t = sb_with_pci0(&prt, &[]);
    assert_eq!(
        pci_intx(&[&t], 0, 1, 0),
        Err(Error::NotFound(path("\\_SB.PCI0.LNKD")))
    );
}

#[test]
fn resource_templates_give_the_first_interrupt() {
    let with_crs = |buffer: &[u8]| {
        let prt = name(b"_PRT", &package(&[entry(1, 0, b"LNKB", 0)]));
        let lnkb = device(b"LNKB", &name(b"_CRS", &with_pkg(&[0x11], buffer)));
        sb_with_pci0(&prt, &lnkb)
    };
    // IRQ descriptor without flags (edge, active high), after an I/O one.
    let t = with_crs(&[
        0x0A, 0x0E, 0x47, 1, 0, 0, 0, 0, 1, 1, 0x22, 0x20, 0x00, 0x79, 0,
    ]);
    let irq = pci_intx(&[&t], 0, 1, 0).unwrap().irq;
    assert_eq!(
        (irq.number, irq.isa, irq.level, irq.active_low),
        (5, true, false, false)
    );
    // Extended Interrupt: edge, active low, GSI 0x30.
    let t = with_crs(&[0x0A, 0x0B, 0x89, 6, 0, 0x07, 1, 0x30, 0, 0, 0, 0x79, 0]);
    let irq = pci_intx(&[&t], 0, 1, 0).unwrap().irq;
    assert_eq!(
        (irq.number, irq.isa, irq.level, irq.active_low),
        (0x30, false, false, true)
    );
    // Extended Interrupt: level, active low, GSI 0x31.
    let t = with_crs(&[0x0A, 0x0B, 0x89, 6, 0, 0x05, 1, 0x31, 0, 0, 0, 0x79, 0]);
    let irq = pci_intx(&[&t], 0, 1, 0).unwrap().irq;
    assert_eq!(
        (irq.number, irq.isa, irq.level, irq.active_low),
        (0x31, false, true, true)
    );
    // Disabled (empty mask), none at all, a descriptor cut short.
    let t = with_crs(&[0x0A, 0x05, 0x22, 0, 0, 0x79, 0]);
    assert!(matches!(
        pci_intx(&[&t], 0, 1, 0),
        Err(Error::LinkDisabled { .. })
    ));
    let t = with_crs(&[0x0A, 0x02, 0x79, 0]);
    assert_eq!(pci_intx(&[&t], 0, 1, 0), Err(Error::NoInterrupt));
    let t = with_crs(&[0x0A, 0x06, 0x89, 6, 0, 0x07, 1, 0x30]);
    assert!(matches!(
        pci_intx(&[&t], 0, 1, 0),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn limits_give_errors() {
    // Scopes nested past the limit.
    let mut scopes = name(b"XXXX", &[0x00]);
    for _ in 0..40 {
        scopes = scope(b"\\S000", &scopes);
    }
    // A `_PRT` naming itself: bounded.
    let t = sb_with_pci0(&name(b"_PRT", b"_PRT"), &[]);
    assert!(matches!(
        pci_intx(&[&t], 0, 1, 0),
        Err(Error::TooDeep { .. })
    ));
    // Conditions and If blocks nested thousands deep: bounded, not a
    // stack overflow.
    let mut condition = std::vec![0x92; 3000];
    condition.push(0x01);
    let deep_lnot = cat(&[
        &with_pkg(&[0xA0], &cat(&[&condition, &[0xA4, 0x00]])),
        &[0xA4, 0x00],
    ]);
    let mut deep_if = std::vec![0xA4, 0x00];
    for _ in 0..3000 {
        deep_if = with_pkg(&[0xA0], &cat(&[&[0x01], &deep_if]));
    }
    let deep_prt = |body: &[u8]| sb_with_pci0(&method(b"_PRT", 0, body), &[]);
    // An OperationRegion offset the walk steps over, nested as deep.
    let region = cat(&[&[0x5B, 0x80], b"XREG", &[0x00], &condition, &[0x01]]);
    for t in [scopes, region, deep_prt(&deep_lnot), deep_prt(&deep_if)] {
        // In a thread with half the 256 KiB boot stack that `usb::init` runs
        // this on (a debug build takes several KiB a nesting level).
        let r = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || pci_intx(&[&t], 0, 1, 0))
            .unwrap()
            .join()
            .unwrap();
        assert!(matches!(r, Err(Error::TooDeep { .. })), "{r:?}");
    }
    // More entries than read, none matching.
    let many: Vec<Vec<u8>> = (0..1100).map(|_| entry(1, 0, &[0x00], 16)).collect();
    let mut elements = std::vec![0x0B, 0x4C, 0x04];
    elements.extend(many.concat());
    let big = name(b"_PRT", &with_pkg(&[0x13], &elements));
    let t = sb_with_pci0(&big, &[]);
    assert_eq!(pci_intx(&[&t], 0, 2, 0), Err(Error::TooManyEntries));
    // A Device whose PkgLength runs past its Scope's end (into the next
    // object) is malformed, not read on.
    let inner = device(b"PCI0", &name(b"_HID", &EISA_PNP0A03));
    let mut sb = scope(b"\\_SB_", &inner);
    let device_length = sb.iter().position(|&b| b == 0x82).unwrap() + 1;
    sb[device_length] += 4;
    let t = cat(&[&sb, &name(b"XXXX", &dword(0))]);
    assert!(matches!(
        pci_intx(&[&t], 0, 1, 0),
        Err(Error::BadPkgLength { .. })
    ));
    // An unknown opcode at namespace level.
    let t = sb_with_pci0(&[0x5B, 0x99], &[]);
    assert!(matches!(
        pci_intx(&[&t], 0, 1, 0),
        Err(Error::UnknownOpcode { op: 0x5B99, .. })
    ));
    // A reserved pin.
    assert_eq!(
        pci_intx(&[body(Q35)], 0, 1, 4),
        Err(Error::NoEntry { slot: 1, pin: 4 })
    );
}

#[test]
fn every_truncation_of_the_q35_dsdt_is_an_error_or_the_same_answer() {
    // A cut between two top-level objects leaves a valid, shorter table;
    // any other cut is an error. No cut gives a different route.
    let q35 = body(Q35);
    let full = pci_intx(&[q35], 0, 3, 0);
    let mut first_ok = q35.len();
    for len in 0..q35.len() {
        match pci_intx(&[&q35[..len]], 0, 3, 0) {
            Err(_) => {}
            r => {
                assert_eq!(r, full, "cut at {len}");
                first_ok = first_ok.min(len);
            }
        }
    }
    // Every cut before the end of the last GSI link device (inside \_SB,
    // which holds PCI0, its _PRT and the links) is an error.
    let last_link = q35.windows(4).rposition(|w| w == b"GSIH").unwrap();
    assert!(first_ok > last_link, "cut at {first_ok} gave a route");
}

/// xorshift64*: reproducible pseudo-random bytes.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn random_bytes_and_mutated_tables_never_panic() {
    let mut seed = 0x5EED_u64;
    let q35 = body(Q35);
    for round in 0..300 {
        // Random bytes, biased towards AML's structural opcodes.
        let len = (rng(&mut seed) % 512) as usize;
        let alphabet = [
            0x10, 0x08, 0x14, 0x12, 0x5B, 0x82, 0xA0, 0xA4, 0x5C, 0x2E, 0x2F, b'_', b'A',
        ];
        let random: Vec<u8> = (0..len)
            .map(|_| match rng(&mut seed) % 3 {
                0 => alphabet[(rng(&mut seed) % alphabet.len() as u64) as usize],
                _ => rng(&mut seed) as u8,
            })
            .collect();
        let _ = pci_intx(&[&random], 0, 3, 0);
        // The q35 DSDT with a few bytes changed.
        let mut m = q35.to_vec();
        for _ in 0..1 + round % 4 {
            let at = (rng(&mut seed) % m.len() as u64) as usize;
            m[at] = rng(&mut seed) as u8;
        }
        let _ = pci_intx(&[&m], 0, (round % 32) as u8, (round % 4) as u8);
        // The pc DSDT changed, with the random bytes as an SSDT, behind a
        // bridge.
        let mut m = body(PC).to_vec();
        let at = (rng(&mut seed) % m.len() as u64) as usize;
        m[at] = rng(&mut seed) as u8;
        let (slot, pin) = ((round % 32) as u8, (round % 4) as u8);
        let _ = pci_intx_behind(&[&m, &random], 0, &[(2, 0)], slot, pin);
    }
}
