//! Fake HAL and fake xHCI controller for host tests.
//!
//! The fake controller lives in host memory: a register file the driver
//! accesses through its normal volatile MMIO path, and DMA memory handed out
//! by the fake HAL at physical addresses that differ from the virtual ones
//! (so phys/virt mix-ups fault in tests). It runs whenever the driver busy-
//! waits (`delay_us`) or the test calls [`FakeHandle::run`]: it consumes
//! command TRBs and control/interrupt TRBs from the driver's rings and posts
//! events, like QEMU's `hcd-xhci.c` does.

mod descriptors;
mod device;
mod hal;
mod machine;
mod stop;

pub(crate) use descriptors::{
    BOOT_KEYBOARD_REPORT, MOUSE_REPORT, NKRO_KEYBOARD, REPORT_ID_KEYBOARD,
};
pub(crate) use descriptors::{FULL_SPEED, FakeInterface, HIGH_SPEED, LOW_SPEED};
pub(crate) use device::FakeDevice;
pub(crate) use hal::{FakeHal, FakeHandle};
pub(crate) use stop::{StopPoint, stop_at, stop_point};

#[cfg(test)]
mod dma_tests;
#[cfg(test)]
mod enumeration_tests;
#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod hook_tests;
#[cfg(test)]
mod hub_enum_tests;
#[cfg(test)]
mod hub_tests;
#[cfg(test)]
mod report_protocol_tests;
#[cfg(test)]
mod reset_tests;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod shape_tests;
#[cfg(test)]
mod slot_tests;
#[cfg(test)]
mod tests;

/// Runs property `test` on `cases` random inputs from `strategy` (proptest,
/// no failure files) and prints the case count: every hostile-input suite
/// reports how many cases it ran.
#[cfg(test)]
pub(crate) fn check<S: proptest::strategy::Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), proptest::test_runner::TestCaseError>,
) {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
    extern crate std;
    std::println!("{name}: {cases} cases, 0 crashes");
}
