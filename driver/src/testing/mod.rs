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
mod attach_tests;
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
mod whole_tests;

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

/// `poll()` as a kernel's loop runs it: polled again, the fake clock moving
/// 1 ms between polls (and the fake controller running), until no device is
/// being attached or waits for its turn (`attach.rs`) and no hub waits for
/// power-good, so a test can look at
/// a finished enumeration after one call. The summaries are added up.
/// Tests of the stages themselves call `poll()` directly.
#[cfg(test)]
pub(crate) trait PollSettled {
    fn poll_settled(&mut self) -> crate::PollSummary;
}

#[cfg(test)]
impl PollSettled for crate::Controller<FakeHal> {
    fn poll_settled(&mut self) -> crate::PollSummary {
        use crate::hal::Hal;
        let mut total = crate::PollSummary::default();
        for _ in 0..10_000 {
            let s = self.poll();
            total.events += s.events;
            total.keys += s.keys;
            total.attached += s.attached;
            total.detached += s.detached;
            total.errors += s.errors;
            total.last_error = s.last_error.or(total.last_error);
            if !self.enumeration_pending() {
                return total;
            }
            self.hal.delay_us(1000);
        }
        panic!("an attach never finished (10 s of fake time)");
    }
}
