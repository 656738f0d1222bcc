//! Stop points: places inside the driver where a test stops the CPU, for
//! windows that no HAL call or enumeration probe reaches. The driver calls
//! [`stop_point`] there in test builds only; a test arms one with
//! [`stop_at`] and catches the unwind, which leaves the driver's state as a
//! CPU stopped at that point (by the panic IPI) would.
extern crate std;

/// Places inside the driver where a test can stop the CPU, for windows that
/// no HAL call or probe reaches (test builds only; see [`stop_point`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopPoint {
    /// A control transfer's Setup TRB is on the EP0 ring, nothing more.
    ControlSetupQueued,
    /// Its Data TRB too (requests with a data stage), no Status TRB yet.
    ControlDataQueued,
}

std::thread_local! {
    static STOP_AT: core::cell::Cell<Option<StopPoint>> = const { core::cell::Cell::new(None) };
}

/// The next time the driver passes `point` it unwinds out, leaving its state
/// as a CPU stopped there would (once; `None` cancels).
pub(crate) fn stop_at(point: Option<StopPoint>) {
    STOP_AT.set(point);
}

/// Called by the driver at `point`: unwinds if a test asked to stop there.
pub(crate) fn stop_point(point: StopPoint) {
    if STOP_AT.get() == Some(point) {
        STOP_AT.set(None);
        std::panic!("simulated CPU stop at {point:?}");
    }
}
