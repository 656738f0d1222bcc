//! The report-descriptor parser and the report-protocol decoder on real
//! descriptor shapes (QEMU's boot keyboard, Report IDs with a consumer
//! collection, an NKRO bitmap), malformed descriptors, and arbitrary bytes.
extern crate std;

use proptest::prelude::*;
use std::vec::Vec;

use super::input::{ReportFormat, decode};
use super::report_descriptor::{KeyField, parse};
use crate::descriptor::DescriptorError;
use crate::testing::{BOOT_KEYBOARD_REPORT, MOUSE_REPORT, NKRO_KEYBOARD, REPORT_ID_KEYBOARD};

/// An error naming a malformed item.
fn malformed(bytes: &[u8]) -> &'static str {
    match parse(bytes) {
        Err(DescriptorError::BadReportDescriptor { what, .. }) => what,
        other => panic!("expected a malformed descriptor, got {other:?}"),
    }
}

#[test]
fn qemu_keyboard_descriptor_is_the_boot_shape() {
    let layout = parse(&BOOT_KEYBOARD_REPORT).expect("QEMU usb-kbd descriptor");
    assert!(layout.is_boot_shaped(), "{layout:?}");
    assert_eq!(layout.wire_bytes(), 8);
    // Logical Maximum 0xff with a 1-byte item is 255, not -1 (Linux reads
    // it unsigned when the minimum is not negative)
    assert!(matches!(
        layout.fields[1],
        Some(KeyField::Array {
            first: 0,
            last: 0xff,
            ..
        })
    ));
    let leds = layout.leds.expect("LEDs");
    assert_eq!((leds.report_id, leds.bits, leds.bytes), (0, [0, 1, 2], 1));
    let report = [0x02, 0, 0x04, 0x05, 0, 0, 0, 0];
    assert_eq!(decode(&layout, &report), Some(report));
}

#[test]
fn report_ids_select_the_keyboard_report() {
    let layout = parse(&REPORT_ID_KEYBOARD).expect("descriptor with Report IDs");
    assert_eq!((layout.report_id, layout.report_bytes), (1, 8));
    assert_eq!(layout.wire_bytes(), 9);
    assert!(!layout.is_boot_shaped());
    let leds = layout.leds.expect("LEDs");
    assert_eq!((leds.report_id, leds.bytes), (1, 1));
    // report 1: Left Shift + a
    let shift_a = [1, 0x02, 0, 0x04, 0, 0, 0, 0, 0];
    assert_eq!(
        decode(&layout, &shift_a),
        Some([0x02, 0, 0x04, 0, 0, 0, 0, 0])
    );
    // report 2 (Consumer Control: Volume Up) is not the keyboard's
    assert_eq!(decode(&layout, &[2, 0xe9, 0x00]), None);
    // a short report reads as zeros past its end (Linux zero-pads)
    assert_eq!(
        decode(&layout, &[1, 0, 0, 0x05]),
        Some([0, 0, 0x05, 0, 0, 0, 0, 0])
    );
}

#[test]
fn nkro_bitmap_decodes_to_the_boot_shape() {
    let layout = parse(&NKRO_KEYBOARD).expect("NKRO descriptor");
    assert_eq!((layout.report_id, layout.report_bytes), (0, 16));
    assert_eq!(
        layout.fields[1],
        Some(KeyField::Bitmap {
            offset: 8,
            first: 0,
            count: 0x78
        })
    );
    let mut report = [0u8; 16];
    report[0] = 0x20; // Right Shift
    let set = |r: &mut [u8; 16], usage: usize| r[1 + usage / 8] |= 1 << (usage % 8);
    set(&mut report, 0x04); // a
    set(&mut report, 0x1d); // z
    assert_eq!(
        decode(&layout, &report),
        Some([0x20, 0, 0x04, 0x1d, 0, 0, 0, 0])
    );
    // seven keys do not fit the six-key shape: ErrorRollOver (HID 1.11 Appendix C)
    for usage in 0x1e..0x23 {
        set(&mut report, usage);
    }
    assert_eq!(decode(&layout, &report), Some([0x20, 0, 1, 1, 1, 1, 1, 1]));
}

#[test]
fn boot_format_switches_to_report_protocol_on_report_length() {
    let layout = parse(&REPORT_ID_KEYBOARD).unwrap();
    let mut format = ReportFormat::Boot {
        fallback: Some(layout),
    };
    // an 8-byte report is a boot report
    assert_eq!(
        format.boot_report(&[0, 0, 0x04, 0, 0, 0, 0, 0]),
        Some([0, 0, 0x04, 0, 0, 0, 0, 0])
    );
    assert!(!format.is_report_protocol());
    // 9 bytes, the report-protocol length with the ID byte: SET_PROTOCOL was ignored
    assert_eq!(
        format.boot_report(&[1, 0, 0, 0x05, 0, 0, 0, 0, 0]),
        Some([0, 0, 0x05, 0, 0, 0, 0, 0])
    );
    assert!(format.is_report_protocol());
}

#[test]
fn mouse_is_not_a_keyboard() {
    assert_eq!(parse(&MOUSE_REPORT), Err(DescriptorError::NotAKeyboard));
    assert_eq!(parse(&[]), Err(DescriptorError::NotAKeyboard));
    // keys outside a Keyboard application collection do not count
    let keys_alone = [
        0x05, 0x07, 0x19, 0, 0x29, 0xff, 0x75, 8, 0x95, 6, 0x81, 0x00,
    ];
    assert_eq!(parse(&keys_alone), Err(DescriptorError::NotAKeyboard));
}

#[test]
fn malformed_descriptors_give_clear_errors() {
    let cut = &BOOT_KEYBOARD_REPORT[..BOOT_KEYBOARD_REPORT.len() - 1];
    assert_eq!(malformed(cut), "collection not closed");
    assert_eq!(
        malformed(&BOOT_KEYBOARD_REPORT[..39]),
        "item data runs past the end"
    );
    assert_eq!(malformed(&[0xb4]), "Pop without Push");
    assert_eq!(malformed(&[0xa4; 5]), "Push: global item stack full");
    assert_eq!(malformed(&[0xc0]), "End Collection without Collection");
    assert_eq!(
        malformed(&[0xa1, 0x01].repeat(17)),
        "collections nested too deep"
    );
    assert_eq!(malformed(&[0x85, 0x00]), "Report ID not in 1..=255");
    assert_eq!(malformed(&[0x75, 0x00]), "Report Size not in 1..=256");
    assert_eq!(
        malformed(&[0xfe, 0x10, 0x00, 1, 2]),
        "long item runs past the end"
    );
    let huge = [0x97, 0x01, 0x00, 0x01, 0x00];
    assert_eq!(malformed(&huge), "Report Count too large");
    let long = [
        0x76, 0x00, 0x01, 0x95, 0xff, 0x81, 0x01, 0x81, 0x01, 0x81, 0x01,
    ];
    assert_eq!(malformed(&long), "report longer than 8 KiB");
    // four key arrays in the keyboard collection: more than a layout holds
    let mut four = Vec::from([0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07]);
    for _ in 0..4 {
        four.extend([
            0x19, 0x00, 0x29, 0x65, 0x25, 0x65, 0x75, 0x08, 0x95, 0x01, 0x81, 0x00,
        ]);
    }
    four.push(0xc0);
    assert_eq!(malformed(&four), "more than 3 key fields");
    let errors = std::format!("{}", parse(&[0xb4]).unwrap_err());
    assert_eq!(errors, "bad report descriptor at byte 0: Pop without Push");
}

/// A long item (HID 1.11 §6.2.2.3) is skipped whole; Push/Pop restore the
/// globals (§6.2.2.7).
#[test]
fn long_items_and_push_pop() {
    let mut d = Vec::from([0xfe, 0x02, 0x10, 0xaa, 0xbb]);
    d.extend([0x05, 0x07, 0xa4, 0x05, 0x0c, 0xb4]); // page 7, push, page 12, pop
    d.extend_from_slice(&BOOT_KEYBOARD_REPORT);
    assert!(parse(&d).unwrap().is_boot_shaped());
}

#[test]
fn arbitrary_bytes_never_panic() {
    crate::testing::check(
        "HID report descriptors: arbitrary bytes",
        3000,
        (
            proptest::collection::vec(any::<u8>(), 0..400),
            proptest::collection::vec(any::<u8>(), 0..64),
        ),
        |(descriptor, report)| {
            if let Ok(layout) = parse(&descriptor)
                && let Some(boot) = decode(&layout, &report)
            {
                prop_assert_eq!(boot[1], 0);
            }
            Ok(())
        },
    );
}

#[test]
fn mutated_keyboard_descriptors_never_panic() {
    crate::testing::check(
        "HID report descriptors: mutated keyboards",
        3000,
        (
            0usize..3,
            0usize..92,
            any::<u8>(),
            0usize..=92,
            proptest::collection::vec(any::<u8>(), 0..64),
        ),
        |(which, i, v, cut, report)| {
            let mut d: Vec<u8> = match which {
                0 => BOOT_KEYBOARD_REPORT.to_vec(),
                1 => REPORT_ID_KEYBOARD.to_vec(),
                _ => NKRO_KEYBOARD.to_vec(),
            };
            let i = i % d.len();
            d[i] = v;
            d.truncate(cut);
            if let Ok(layout) = parse(&d) {
                prop_assert!(layout.wire_bytes() <= 8193);
                let mut format = ReportFormat::Report(layout);
                let _ = format.boot_report(&report);
            }
            Ok(())
        },
    );
}

/// Any report, of any length (an empty one too), through each real layout:
/// never a panic, and always the boot shape: byte 1 zero, keys packed
/// from byte 2, no key twice, or all six ErrorRollOver.
#[test]
fn arbitrary_reports_decode_to_the_boot_shape() {
    let layouts = [
        parse(&BOOT_KEYBOARD_REPORT).unwrap(),
        parse(&REPORT_ID_KEYBOARD).unwrap(),
        parse(&NKRO_KEYBOARD).unwrap(),
    ];
    crate::testing::check(
        "HID report protocol: arbitrary reports",
        3000,
        (0usize..3, proptest::collection::vec(any::<u8>(), 0..64)),
        |(which, mut report)| {
            if which == 1 && !report.is_empty() && report[0] % 2 == 0 {
                report[0] = 1; // half of them the keyboard's Report ID
            }
            let Some(boot) = decode(&layouts[which], &report) else {
                prop_assert!(which == 1 && report.first() != Some(&1));
                return Ok(());
            };
            prop_assert_eq!(boot[1], 0);
            let keys = &boot[2..];
            if keys != [1; 6] {
                let n = keys.iter().take_while(|&&k| k != 0).count();
                prop_assert!(keys[n..].iter().all(|&k| k == 0), "{:?}", boot);
                for (i, k) in keys[..n].iter().enumerate() {
                    prop_assert!(*k >= 4 && !keys[..i].contains(k), "{:?}", boot);
                }
            }
            Ok(())
        },
    );
}

/// A key array given as a Usage list: a contiguous list is a range; a
/// list with gaps cannot be held by the fixed layout and is not used.
#[test]
fn key_array_usage_lists() {
    let array = |usages: &[u8]| {
        let mut d = Vec::from([0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07]);
        for &u in usages {
            d.extend([0x09, u]);
        }
        // Logical Minimum 1: value 0 is out of range, no key (HID 1.11 §6.2.2.5)
        d.extend([
            0x15, 0x01, 0x25, 0x03, 0x75, 0x08, 0x95, 0x02, 0x81, 0x00, 0xc0,
        ]);
        parse(&d)
    };
    let layout = array(&[0x04, 0x05, 0x06]).expect("contiguous list");
    assert_eq!(decode(&layout, &[2, 0]), Some([0, 0, 0x05, 0, 0, 0, 0, 0]));
    assert_eq!(
        decode(&layout, &[3, 1]),
        Some([0, 0, 0x06, 0x04, 0, 0, 0, 0])
    );
    assert_eq!(
        array(&[0x04, 0x10, 0x20]),
        Err(DescriptorError::NotAKeyboard)
    );
}
