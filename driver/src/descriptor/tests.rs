extern crate std;
use super::*;
use proptest::prelude::*;
use std::vec::Vec;

/// QEMU usb-kbd's configuration (interface, HID, endpoint).
pub(crate) const KBD_CONFIG: [u8; 34] = [
    9, 2, 34, 0, 1, 1, 0, 0xa0, 50, //
    9, 4, 0, 0, 1, 3, 1, 1, 0, //
    9, 0x21, 0x11, 1, 0, 1, 0x22, 63, 0, //
    7, 5, 0x81, 3, 8, 0, 7,
];

#[test]
fn keyboard_config() {
    let s = ConfigSummary::parse(&KBD_CONFIG).unwrap();
    assert_eq!(s.value, 1);
    assert_eq!(s.first_interface_class, 3);
    assert_eq!(
        s.keyboard,
        Some(InterruptInterface {
            interface: 0,
            alternate: 0,
            endpoint: 1,
            max_packet: 8,
            interval: 7
        })
    );
    assert_eq!(s.hub, None);
}

#[test]
fn tablet_is_not_a_keyboard() {
    let mut c = KBD_CONFIG;
    c[16] = 2; // protocol mouse (usb-tablet uses protocol 0 or 2)
    let s = ConfigSummary::parse(&c).unwrap();
    assert_eq!(s.keyboard, None);
    assert_eq!(s.first_interface_class, 3);
}

#[test]
fn malformed_configs() {
    assert_eq!(ConfigSummary::parse(&[]), Err(DescriptorError::Truncated));
    assert_eq!(
        ConfigSummary::parse(&KBD_CONFIG[..5]),
        Err(DescriptorError::Truncated)
    );
    let mut c = KBD_CONFIG;
    c[9] = 0; // zero-length descriptor would loop forever
    assert_eq!(ConfigSummary::parse(&c), Err(DescriptorError::BadLength(0)));
    let mut c = KBD_CONFIG;
    c[27] = 40; // endpoint runs past the end
    assert!(ConfigSummary::parse(&c).is_err());
    let mut c = KBD_CONFIG;
    c[1] = 1;
    assert_eq!(ConfigSummary::parse(&c), Err(DescriptorError::WrongType(1)));
    // wTotalLength shorter than the buffer: the tail is ignored
    let mut c = KBD_CONFIG;
    c[2] = 27;
    assert_eq!(ConfigSummary::parse(&c).unwrap().keyboard, None);
}

#[test]
fn device_descriptor() {
    let d = [
        18, 1, 0, 2, 0, 0, 0, 64, 0x27, 0x06, 0x01, 0x00, 0, 0, 1, 2, 3, 1,
    ];
    let p = DeviceDescriptor::parse(&d).unwrap();
    assert_eq!(
        (p.vendor, p.product, p.max_packet_size0, p.usb_version),
        (0x0627, 1, 64, 0x200)
    );
    assert_eq!(parse_device_prefix(&d[..8]), Ok(64));
    assert_eq!(
        DeviceDescriptor::parse(&d[..17]),
        Err(DescriptorError::Truncated)
    );
    assert_eq!(
        parse_device_prefix(&d[..7]),
        Err(DescriptorError::Truncated)
    );
}

#[test]
fn hub_descriptor() {
    let h = [9, 0x29, 8, 0x0a, 0, 50, 0, 0, 0xff];
    assert_eq!(HubDescriptor::parse(&h).unwrap().ports, 8);
    assert!(HubDescriptor::parse(&h[..6]).is_err());
}

#[test]
fn arbitrary_bytes_never_panic() {
    crate::testing::check(
        "descriptors: arbitrary bytes",
        2000,
        proptest::collection::vec(any::<u8>(), 0..300),
        |bytes| {
            let _ = ConfigSummary::parse(&bytes);
            let _ = DeviceDescriptor::parse(&bytes);
            let _ = HubDescriptor::parse(&bytes);
            let _ = parse_device_prefix(&bytes);
            Ok(())
        },
    );
}

#[test]
fn mutated_keyboard_config_never_panics() {
    crate::testing::check(
        "descriptors: mutated keyboard configuration",
        2000,
        (0usize..34, any::<u8>(), 0usize..=34),
        |(i, v, cut)| {
            let mut c: Vec<u8> = KBD_CONFIG.to_vec();
            c[i] = v;
            c.truncate(cut);
            if let Ok(s) = ConfigSummary::parse(&c)
                && let Some(k) = s.keyboard
            {
                prop_assert!(k.endpoint >= 1 && k.endpoint <= 15);
            }
            Ok(())
        },
    );
}

/// A composite configuration: a boot mouse on interface 0, a keyboard
/// without the boot subclass on interface 1 (report descriptor of 92
/// bytes), a boot keyboard on interface 2: every HID interface is listed
/// with its report descriptor length, and the boot keyboard is picked.
#[test]
fn hid_interfaces_are_listed_with_report_lengths() {
    let mut c: Vec<u8> = std::vec![9, 2, 0, 0, 3, 1, 0, 0xa0, 50];
    for (number, subclass, protocol, length) in
        [(0u8, 1u8, 2u8, 50u8), (1, 0, 0, 92), (2, 1, 1, 63)]
    {
        c.extend([9, 4, number, 0, 1, 3, subclass, protocol, 0]);
        c.extend([9, 0x21, 0x11, 1, 0, 1, 0x22, length, 0]);
        c.extend([7, 5, 0x81 + number, 3, 8, 0, 10]);
    }
    c[2] = c.len() as u8;
    let s = ConfigSummary::parse(&c).unwrap();
    let listed: Vec<_> = s
        .hid
        .iter()
        .flatten()
        .map(|h| {
            (
                h.interrupt.interface,
                h.subclass,
                h.protocol,
                h.report_length,
            )
        })
        .collect();
    assert_eq!(listed, [(0, 1, 2, 50), (1, 0, 0, 92), (2, 1, 1, 63)]);
    assert_eq!(s.keyboard.map(|k| (k.interface, k.endpoint)), Some((2, 3)));
    assert!(!s.truncated);
}

/// Bytes fewer than wTotalLength (a read bounded by the control buffer):
/// the walk ends at the last whole descriptor instead of failing; within
/// wTotalLength a descriptor running past it is still an error.
#[test]
fn configuration_cut_by_the_read_bound_is_parsed_up_to_it() {
    let mut c = KBD_CONFIG.to_vec();
    c.extend([9, 4, 1, 0, 1, 3, 1, 1, 0]); // a second interface...
    let total = c.len() as u16 + 16;
    c[2..4].copy_from_slice(&total.to_le_bytes());
    c.extend([9, 0x21, 0x11]); // ...whose HID descriptor the bound cut
    let s = ConfigSummary::parse(&c).unwrap();
    assert!(s.truncated);
    assert_eq!(s.keyboard.map(|k| k.interface), Some(0));
    let mut whole = KBD_CONFIG;
    whole[27] = 9; // the endpoint runs past wTotalLength: an error
    assert_eq!(
        ConfigSummary::parse(&whole),
        Err(DescriptorError::BadLength(9))
    );
}
