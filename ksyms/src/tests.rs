//! Round trips, lookups at every edge, and tables corrupted every way a
//! byte can be: a bad table gives no name, never a panic.

use std::string::{String, ToString};
use std::vec::Vec;

use crate::format::{HEADER_LEN, RECORD_LEN, header, record};
use crate::{ParseError, Symbol, Table, encode};

fn sym(start: u64, size: u64, name: &str) -> Symbol {
    Symbol {
        start,
        size,
        name: name.to_string(),
    }
}

/// Out of order, with a gap, a shared name, a zero-sized symbol and two
/// symbols at one address.
fn sample() -> Vec<Symbol> {
    std::vec![
        sym(0x20_1000, 0x40, "kernel::panic::trigger::run"),
        sym(0x20_0000, 0x10, "pvh_start"),
        sym(0x20_0010, 0x20, "core::fmt::write"),
        sym(0x20_0100, 0x30, "core::fmt::write"),
        sym(0x20_0200, 0, "zero_sized"),
        sym(0x20_0300, 0x8, "short_alias"),
        sym(0x20_0300, 0x18, "long_one"),
        sym(0x20_2000, 0x1, "rust_begin_unwind"),
    ]
}

#[test]
fn round_trip_names_every_address_of_every_function() {
    let bytes = encode(&sample()).unwrap();
    let table = Table::parse(&bytes).unwrap();
    assert_eq!(
        table.len(),
        6,
        "zero-sized dropped, one of two aliases kept"
    );
    let mut starts = Vec::new();
    for i in 0..table.len() {
        let (start, size, name) = table.get(i).unwrap();
        starts.push(start);
        assert_eq!(table.lookup(start), Some((name, 0)));
        assert_eq!(table.lookup(start + size - 1), Some((name, size - 1)));
    }
    assert!(starts.is_sorted());
    assert_eq!(
        table.lookup(0x20_1023),
        Some(("kernel::panic::trigger::run", 0x23))
    );
    assert_eq!(
        table.lookup(0x20_0305),
        Some(("long_one", 5)),
        "the larger alias"
    );
    assert_eq!(table.lookup(0x20_0317), Some(("long_one", 0x17)));
    assert_eq!(table.lookup(0x20_0120), Some(("core::fmt::write", 0x20)));
    // Gaps, before the first, after the last, the zero-sized symbol.
    for addr in [
        0,
        0x1f_ffff,
        0x20_0030,
        0x20_0200,
        0x20_1040,
        0x20_2001,
        u64::MAX,
    ] {
        assert_eq!(table.lookup(addr), None, "{addr:#x}");
    }
    assert_eq!(table.get(6), None);
    assert_eq!(table.get(usize::MAX), None);
}

#[test]
fn names_are_stored_once() {
    let bytes = encode(&sample()).unwrap();
    let table = Table::parse(&bytes).unwrap();
    let strings = u32::from_le_bytes(bytes[header::STRINGS_LEN..][..4].try_into().unwrap());
    let distinct: usize = [
        "kernel::panic::trigger::run",
        "pvh_start",
        "core::fmt::write",
        "long_one",
        "rust_begin_unwind",
    ]
    .iter()
    .map(|n| n.len())
    .sum();
    assert_eq!(strings as usize, distinct);
    assert_eq!(
        bytes.len(),
        HEADER_LEN + table.len() * RECORD_LEN + distinct
    );
}

#[test]
fn encoding_is_deterministic_and_ignores_input_order() {
    let mut reversed = sample();
    reversed.reverse();
    assert_eq!(encode(&sample()).unwrap(), encode(&reversed).unwrap());
}

#[test]
fn an_empty_table_has_no_names() {
    let bytes = encode(&[]).unwrap();
    let table = Table::parse(&bytes).unwrap();
    assert!(table.is_empty());
    assert_eq!(table.lookup(0x20_0000), None);
}

#[test]
fn a_reserved_section_is_empty_not_corrupt() {
    // What the linker script writes: the magic, then zeros.
    let mut reserved = std::vec![0u8; 4096];
    reserved[..8].copy_from_slice(&crate::MAGIC);
    assert_eq!(Table::parse(&reserved).unwrap_err(), ParseError::Empty);
    assert_eq!(
        Table::parse(&reserved[..5]).unwrap_err(),
        ParseError::Truncated
    );
    reserved[0] ^= 1;
    assert_eq!(Table::parse(&reserved).unwrap_err(), ParseError::BadMagic);
}

#[test]
fn spans_and_sizes_beyond_u32_are_refused() {
    assert!(encode(&[sym(0, 1, "a"), sym(1 << 32, 1, "b")]).is_err());
    assert!(encode(&[sym(0, 1 << 32, "huge")]).is_err());
    assert!(encode(&[sym(0xffff_ffff_8000_0000, 1, "high")]).is_ok());
}

fn put(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

/// Every lookup the tests make on a damaged table (must not panic).
fn probe(bytes: &[u8]) -> Vec<Option<(String, u64)>> {
    let Ok(table) = Table::parse(bytes) else {
        return Vec::new();
    };
    let mut seen: Vec<_> = [
        0,
        0x20_0000,
        0x20_0011,
        0x20_0305,
        0x20_1023,
        0x20_2000,
        u64::MAX,
    ]
    .into_iter()
    .map(|a| table.lookup(a).map(|(n, o)| (n.to_string(), o)))
    .collect();
    seen.extend((0..table.len() + 2).map(|i| table.get(i).map(|(_, _, n)| (n.to_string(), 0))));
    seen
}

#[test]
fn truncated_tables_are_refused_or_shorter_never_a_panic() {
    let bytes = encode(&sample()).unwrap();
    for len in 0..bytes.len() {
        assert!(Table::parse(&bytes[..len]).is_err(), "accepted {len} bytes");
    }
}

#[test]
fn every_corrupted_byte_is_survived() {
    let bytes = encode(&sample()).unwrap();
    for offset in 0..bytes.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xc3, 0xff] {
            let mut bad = bytes.clone();
            bad[offset] = value;
            probe(&bad);
        }
    }
}

#[test]
fn out_of_range_fields_give_no_name() {
    let bytes = encode(&sample()).unwrap();
    let table = Table::parse(&bytes).unwrap();
    let first = HEADER_LEN; // record 0: pvh_start at the base
    let base = table.get(0).unwrap().0;
    for (field, value) in [
        (record::NAME_OFFSET, u32::MAX),
        (record::NAME_OFFSET, 0xffff),
        (record::NAME_LEN, u32::MAX),
        (record::NAME_LEN, 0x10_0000),
    ] {
        let mut bad = bytes.clone();
        put(&mut bad, first + field, value);
        let t = Table::parse(&bad).unwrap();
        assert_eq!(t.lookup(base), None, "field {field} = {value:#x}");
        assert_eq!(t.get(0), None);
    }
    // Counts and lengths that point past the end.
    for (field, value) in [
        (header::COUNT, u32::MAX),
        (header::COUNT, table.len() as u32 + 100),
        (header::STRINGS_LEN, u32::MAX),
    ] {
        let mut bad = bytes.clone();
        put(&mut bad, field, value);
        assert_eq!(Table::parse(&bad).unwrap_err(), ParseError::OutOfBounds);
    }
    let mut bad = bytes.clone();
    put(&mut bad, header::VERSION, 7);
    assert_eq!(
        Table::parse(&bad).unwrap_err(),
        ParseError::UnknownVersion(7)
    );
    // A base near the top: starts overflow and give no name.
    let mut bad = bytes.clone();
    bad[header::BASE..header::BASE + 8].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
    probe(&bad);
    // Names that are not UTF-8.
    let mut bad = bytes.clone();
    let strings = HEADER_LEN + table.len() * RECORD_LEN;
    bad[strings..].fill(0xff);
    assert!(probe(&bad).iter().all(Option::is_none));
}
