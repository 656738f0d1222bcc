//! Controllers that can only address 32 bits (HCCPARAMS1.AC64 = 0, xHCI 1.2
//! §5.3.6, or a PCI ID with Linux's `XHCI_NO_64BIT_SUPPORT` quirk): all DMA
//! memory stays below 4 GiB, while the fake HAL hands out memory above
//! 4 GiB whenever the driver allows it.
extern crate std;

use std::vec::Vec;

use super::hal::MMIO_PHYS;
use super::tests::{Ctrl, hi, type_hi};
use super::*;
use crate::types::{Config, DmaLimitReason};
use crate::{Controller, DMA_32BIT_LIMIT, Error};

/// A controller with a keyboard on port 1, AC64 as given.
fn start_dma(ac64: bool, config: Config) -> Result<(Ctrl, FakeHandle), Error> {
    let (hal, handle) = FakeHandle::new();
    handle.with(|m, mem| {
        m.set_ac64(ac64);
        m.plug(mem, 1, FakeDevice::keyboard());
    });
    // SAFETY: the fake BAR belongs to this controller alone.
    let ctrl = unsafe { Controller::new(hal, MMIO_PHYS, config) }?;
    Ok((ctrl, handle))
}

/// The last byte of every DMA region the fake HAL handed out.
fn region_ends(h: &FakeHandle) -> Vec<u64> {
    let w = h.0.borrow();
    w.allocations
        .iter()
        .map(|&(phys, _, size)| phys + size as u64 - 1)
        .collect()
}

/// Enumerates and types on a controller whose memory must stay below
/// 4 GiB for `why`; checks every region and what `info()` says.
fn stays_below_4_gib(ac64: bool, config: Config, why: DmaLimitReason) {
    let (mut c, h) = start_dma(ac64, config).expect("controller init");
    assert_eq!(c.poll_settled().attached, 1, "{why:?}");
    assert_eq!(type_hi(&mut c, &h, 1), hi(), "{why:?}");
    let ends = region_ends(&h);
    assert!(!ends.is_empty());
    assert!(
        ends.iter().all(|&end| end <= DMA_32BIT_LIMIT),
        "{why:?}: DMA memory above 4 GiB: {ends:x?}"
    );
    assert!(
        h.0.borrow()
            .max_addresses
            .iter()
            .all(|&m| m == DMA_32BIT_LIMIT),
        "{why:?}: an allocation without the 32-bit limit"
    );
    let info = c.info();
    assert_eq!(info.dma_limit, why);
    assert!(info.dma_lowest <= info.dma_highest && info.dma_highest <= DMA_32BIT_LIMIT);
    let text = std::format!("{info}");
    assert!(
        text.contains(", DMA 0x") && text.contains("(32-bit"),
        "{text}"
    );
}

#[test]
fn ac64_clear_keeps_dma_below_4_gib() {
    stays_below_4_gib(false, Config::default(), DmaLimitReason::NoAc64);
}

#[test]
fn asmedia_quirk_keeps_dma_below_4_gib() {
    for device in [0x1142, 0x1242, 0x2142, 0x3242] {
        let config = Config {
            pci_id: Some((0x1b21, device)),
            ..Config::default()
        };
        stays_below_4_gib(true, config, DmaLimitReason::Quirk);
    }
}

#[test]
fn forced_32bit_dma_keeps_dma_below_4_gib() {
    let config = Config {
        force_32bit_dma: true,
        ..Config::default()
    };
    stays_below_4_gib(true, config, DmaLimitReason::Forced);
}

/// The other side of the tests above: with AC64 set and no quirk (another
/// ASMedia part, 0x1042, has none in Linux either) the fake HAL's memory
/// lies above 4 GiB, so the limit is what keeps it low.
#[test]
fn ac64_set_lets_dma_go_above_4_gib() {
    let config = Config {
        pci_id: Some((0x1b21, 0x1042)),
        ..Config::default()
    };
    let (mut c, h) = start_dma(true, config).expect("controller init");
    assert_eq!(c.poll_settled().attached, 1);
    assert_eq!(type_hi(&mut c, &h, 1), hi());
    assert!(region_ends(&h).iter().all(|&end| end > DMA_32BIT_LIMIT));
    let info = c.info();
    assert_eq!(info.dma_limit, DmaLimitReason::None);
    assert!(info.dma_lowest > DMA_32BIT_LIMIT, "{info}");
    assert!(std::format!("{info}").contains("(64-bit)"), "{info}");
}

/// A HAL that ignores the limit: `new` fails with a clear error naming
/// the address, instead of handing the controller memory it cannot reach.
#[test]
fn hal_ignoring_the_limit_is_a_clear_error() {
    let (hal, handle) = FakeHandle::new();
    handle.0.borrow_mut().ignore_limit = true;
    handle.with(|m, _| m.set_ac64(false));
    // SAFETY: the fake BAR belongs to this controller alone.
    let result = unsafe { Controller::new(hal, MMIO_PHYS, Config::default()) };
    let Err(e) = result else {
        panic!("a controller with memory above 4 GiB started")
    };
    assert!(
        matches!(e, Error::DmaAboveLimit { phys, max_address: DMA_32BIT_LIMIT } if phys > DMA_32BIT_LIMIT),
        "{e:?}"
    );
    let text = std::format!("{e}");
    assert!(
        text.contains("beyond the controller's limit 0xffffffff"),
        "{text}"
    );
}
