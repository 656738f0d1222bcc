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
