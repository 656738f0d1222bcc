//! Attaching a device as a state machine that [`poll`](Controller::poll)
//! advances: the connect debounce (USB 2.0 §7.1.7.3), the port reset and
//! its recovery (§7.1.7.5 TRSTRCY), the two-step address with the
//! SET_ADDRESS recovery (§9.2.6.3) and the retries of Linux
//! `hub_port_connect` / `hub_port_init` become stages with a wake-up time,
//! so no `poll()` waits out a time delay: each stage runs when its time has
//! come and does only what the hardware answers at once (a port reset, a
//! command, a control transfer: each a bounded wait on a completion).
//!
//! One device is attached at a time, as USB 2.0 §9.1.2 requires of the
//! default address (only one device may answer at address 0) and as Linux
//! serialises it (`hub_port_connect` under the hub's `address0_mutex`);
//! ports that ask meanwhile wait their turn (`PortState::waiting`,
//! `HubEndpoint::waiting`). Every USB 2.0 timing is kept: it just no longer
//! blocks, in interrupt and polled mode alike (the kernel polls while
//! [`timer_pending`](Controller::timer_pending) says a stage waits).
#![forbid(unsafe_code)]

use crate::controller::Controller;
use crate::device::Location;
use crate::enumerate::{ENUMERATION_BUDGET_US, PORT_INIT_TRIES, retryable};
use crate::error::Error;
use crate::hal::Hal;
use crate::port::{DEBOUNCE_STABLE_US, DEBOUNCE_STEP_US, DEBOUNCE_TIMEOUT_US, RESET_RECOVERY_US};
use crate::types::{EnumerationStep, Speed};

/// Stages run by one `poll()` at most (each is bounded; a stage whose
/// wake-up time has not come ends the `poll()`'s share at once).
const STAGES_PER_POLL: usize = 8;

/// The port a device is being attached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Root hub port (1-based).
    Root(u8),
    /// Port `port` (1-based) of the hub in record `hub`.
    Hub { hub: usize, port: u8 },
}

/// Where an attach stands; each stage runs once its wake-up time came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Connect debounce: the connection was `connected` (`None`: not
    /// sampled yet) and unchanged since `stable_since_us`; sampled every
    /// [`DEBOUNCE_STEP_US`], given up at `give_up_us`.
    Debounce {
        connected: Option<bool>,
        stable_since_us: u64,
        give_up_us: u64,
    },
    /// Reset the port (attempt `Attach::attempt`).
    Reset,
    /// Reset recovery is over: Enable Slot, Address Device (BSR = 1), the
    /// first 64-byte read, SET_ADDRESS.
    Address { at: Location, speed: Speed },
    /// SET_ADDRESS failed and is tried again (`tries` so far) on record
    /// `index`, whose EP0 guess and reported bMaxPacketSize0 are kept.
    AddressRetry {
        index: usize,
        guess: u16,
        reported: u8,
        tries: u32,
    },
    /// SET_ADDRESS recovery is over: Evaluate Context, the device
    /// descriptor, the configuration.
    Identify {
        index: usize,
        guess: u16,
        reported: u8,
    },
}

impl Stage {
    /// The device record this stage works on (it exists from Enable Slot on).
    fn record(&self) -> Option<usize> {
        match *self {
            Stage::AddressRetry { index, .. } | Stage::Identify { index, .. } => Some(index),
            _ => None,
        }
    }
}

/// The one attach in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attach {
    pub(crate) target: Target,
    pub(crate) stage: Stage,
    /// Port initialisation attempt (Linux `PORT_INIT_TRIES`).
    pub(crate) attempt: u32,
    /// When the first attempt began ([`ENUMERATION_BUDGET_US`]).
    pub(crate) started_us: u64,
    /// HAL time before which the stage does not run.
    pub(crate) wake_us: u64,
}

/// What one stage led to.
enum Next {
    /// Another stage, at its wake-up time.
    Stage(Stage, u64),
    /// The device was attached (`true`) or was gone (`false`).
    Done(bool),
    /// The attempt failed but another one may work: the port is reset
    /// again, now.
    Retry,
    /// The attach failed; the port waits for its next change.
    Failed(Error),
}

impl<H: Hal> Controller<H> {
    /// Starts attaching a device on `target`, with the connect debounce if
    /// its connection just changed; if another attach is in progress the
    /// port waits its turn (and keeps the debounce it asked for).
    pub(crate) fn start_attach(&mut self, target: Target, debounce: bool) {
        if self.attach.is_some_and(|a| a.target != target) {
            self.set_waiting(target, Some(debounce));
            return;
        }
        let debounce = debounce || self.waiting(target) == Some(true);
        self.set_waiting(target, None);
        let now = self.hal.now_us();
        let stage = if debounce {
            Stage::Debounce {
                connected: None,
                stable_since_us: now,
                give_up_us: now.saturating_add(DEBOUNCE_TIMEOUT_US),
            }
        } else {
            Stage::Reset
        };
        self.attach = Some(Attach {
            target,
            stage,
            attempt: 0,
            started_us: now,
            wake_us: now,
        });
    }

    /// Advances the attach in progress as far as time allows, starting the
    /// next waiting port's when one ends. Returns the devices attached.
    pub(crate) fn run_attach(&mut self) -> u32 {
        let mut attached = 0;
        for _ in 0..STAGES_PER_POLL {
            if self.attach.is_none() && !self.start_next_waiting() {
                break;
            }
            let Some(job) = self.attach else { break };
            if self.hal.now_us() < job.wake_us {
                break;
            }
            match self.run_stage(job) {
                Next::Stage(stage, wake_us) => {
                    self.attach = Some(Attach {
                        stage,
                        wake_us,
                        ..job
                    });
                }
                Next::Retry => {
                    self.attach = Some(Attach {
                        stage: Stage::Reset,
                        attempt: job.attempt + 1,
                        wake_us: self.hal.now_us(),
                        ..job
                    });
                }
                Next::Done(done) => {
                    self.attach = None;
                    attached += u32::from(done);
                }
                Next::Failed(e) => {
                    self.attach = None;
                    self.note_error(e);
                    self.mark_failed(job.target);
                }
            }
        }
        attached
    }

    /// Is a device being attached, or a port waiting for its turn?
    pub(crate) fn attach_in_progress(&self) -> bool {
        self.attach.is_some()
            || self.ports.iter().any(|p| p.waiting.is_some())
            || self
                .devices
                .iter()
                .any(|d| d.hub.is_some_and(|h| h.waiting != 0))
    }

    /// Is enumeration waiting on the clock: an attach in progress or
    /// waiting, or a hub whose ports are not power-good yet?
    pub(crate) fn enumeration_pending(&self) -> bool {
        let now = self.hal.now_us();
        self.attach_in_progress()
            || self
                .devices
                .iter()
                .any(|d| d.hub.is_some_and(|h| h.ports_ready_us > now))
    }

    /// Is the attach in progress on `target`? Its port's changes wait
    /// until it is done (the stages read and clear them themselves).
    pub(crate) fn attaching(&self, target: Target) -> bool {
        self.attach.is_some_and(|a| a.target == target)
    }

    /// Drops the attach in progress if it works on record `index` or on a
    /// port of the hub in it (the record is being detached).
    pub(crate) fn cancel_attach_of(&mut self, index: usize) {
        if let Some(job) = self.attach
            && (job.stage.record() == Some(index)
                || matches!(job.target, Target::Hub { hub, .. } if hub == index))
        {
            self.attach = None;
        }
    }

    /// The takeover's view of an attach a stopped CPU left: it is dropped
    /// and its port waits for a fresh one (the debounce starts over if it
    /// was being debounced); a record it had is restarted by the takeover
    /// like any device caught enumerating.
    pub(crate) fn requeue_attach(&mut self) {
        if let Some(job) = self.attach.take() {
            let debounce = matches!(job.stage, Stage::Debounce { .. });
            self.set_waiting(job.target, Some(debounce));
        }
    }

    /// One stage of `job`.
    fn run_stage(&mut self, job: Attach) -> Next {
        let now = self.hal.now_us();
        match job.stage {
            Stage::Debounce {
                connected,
                stable_since_us,
                give_up_us,
            } => match self.sample_connection(job.target) {
                Err(e) => Next::Failed(e),
                Ok((now_connected, changed)) => {
                    let next_sample = now.saturating_add(DEBOUNCE_STEP_US);
                    match connected {
                        Some(was) if !changed && was == now_connected => {
                            if now.saturating_sub(stable_since_us) >= DEBOUNCE_STABLE_US {
                                if now_connected {
                                    Next::Stage(Stage::Reset, now)
                                } else {
                                    Next::Done(false)
                                }
                            } else if now >= give_up_us {
                                Next::Failed(Error::Timeout {
                                    what: "connect debounce (USB 2.0 §7.1.7.3)",
                                })
                            } else {
                                Next::Stage(job.stage, next_sample)
                            }
                        }
                        _ if connected.is_some() && now >= give_up_us => {
                            Next::Failed(Error::Timeout {
                                what: "connect debounce (USB 2.0 §7.1.7.3)",
                            })
                        }
                        // first sample, or a change: the stable time starts now
                        _ => Next::Stage(
                            Stage::Debounce {
                                connected: Some(now_connected),
                                stable_since_us: now,
                                give_up_us,
                            },
                            next_sample,
                        ),
                    }
                }
            },
            Stage::Reset => match self.reset_target(job.target, job.attempt) {
                Ok(Some((at, speed))) => Next::Stage(
                    Stage::Address { at, speed },
                    now.saturating_add(RESET_RECOVERY_US),
                ),
                Ok(None) => Next::Done(false),
                Err(e) => Next::Failed(e),
            },
            Stage::Address { at, speed } => {
                match self.enable_and_address(at, self.speed_now(job.target, speed)) {
                    Err(e) => Next::Failed(e),
                    Ok((index, Err(e))) => self.attempt_failed(job, index, e),
                    Ok((index, Ok((guess, reported)))) => {
                        self.address_step(job, index, guess, reported, 1)
                    }
                }
            }
            Stage::AddressRetry {
                index,
                guess,
                reported,
                tries,
            } => self.address_step(job, index, guess, reported, tries + 1),
            Stage::Identify {
                index,
                guess,
                reported,
            } => match self.identify(index, guess, reported) {
                Err(e) => self.attempt_failed(job, index, e),
                Ok(descriptor) => match self.finish_enumeration(index, descriptor) {
                    Ok(()) => Next::Done(true),
                    Err(e) => Next::Failed(e),
                },
            },
        }
    }

    /// SET_ADDRESS (try `tries`) on record `index`; then the SET_ADDRESS
    /// recovery, a retry [`SET_ADDRESS_RETRY_US`](crate::enumerate) later,
    /// or the attempt's failure.
    fn address_step(
        &mut self,
        job: Attach,
        index: usize,
        guess: u16,
        reported: u8,
        tries: u32,
    ) -> Next {
        let now = self.hal.now_us();
        match self.set_address(index, guess, tries) {
            Ok(Ok(())) => {
                self.probe(EnumerationStep::Addressed);
                Next::Stage(
                    Stage::Identify {
                        index,
                        guess,
                        reported,
                    },
                    now.saturating_add(crate::enumerate::SET_ADDRESS_RECOVERY_US),
                )
            }
            Ok(Err(retry_us)) => Next::Stage(
                Stage::AddressRetry {
                    index,
                    guess,
                    reported,
                    tries,
                },
                now.saturating_add(retry_us),
            ),
            Err(e) => self.attempt_failed(job, index, e),
        }
    }

    /// An attempt failed on record `index`: a device that did not answer
    /// yet gets its slot back and another attempt from the port reset (up
    /// to [`PORT_INIT_TRIES`], within [`ENUMERATION_BUDGET_US`]); else it
    /// stays listed as failed, without a slot.
    fn attempt_failed(&mut self, job: Attach, index: usize, e: Error) -> Next {
        let now = self.hal.now_us();
        let more = job.attempt + 1 < PORT_INIT_TRIES
            && now.saturating_sub(job.started_us) < ENUMERATION_BUDGET_US;
        if more && retryable(e) {
            // Linux hub_port_connect: hub_free_dev, then the next try
            self.detach_slot(index as u8 + 1);
            return Next::Retry;
        }
        self.fail_enumeration(index);
        Next::Failed(e)
    }

    /// Starts the attach of the first port that waits for its turn and
    /// still has no device (and no failure); false if there is none.
    fn start_next_waiting(&mut self) -> bool {
        let ports = usize::from(self.caps.ports).min(self.ports.len());
        for index in 0..ports {
            if let Some(debounce) = self.ports[index].waiting.take() {
                let p = self.ports[index];
                let port = index as u8 + 1;
                // it may have gone while it waited (a port reset of an
                // empty port may never complete, §4.19.5)
                if p.slot == 0 && !p.failed && self.regs.portsc(port).current_connect_status() {
                    self.start_attach(Target::Root(port), debounce);
                    return true;
                }
            }
        }
        for hub in 0..self.devices.len() {
            let Some(h) = self.devices[hub].hub else {
                continue;
            };
            if self.devices[hub].state != Some(crate::types::DeviceState::Hub) {
                continue;
            }
            for port in 1..=h.ports {
                let bit = 1u16 << port;
                if h.waiting & bit == 0 {
                    continue;
                }
                let debounce = h.waiting_debounce & bit != 0;
                self.set_waiting(Target::Hub { hub, port }, None);
                if h.children[usize::from(port - 1)] == 0 && h.failed & bit == 0 {
                    self.start_attach(Target::Hub { hub, port }, debounce);
                    return true;
                }
            }
        }
        false
    }

    /// Whether `target` waits for its turn (`Some(debounce)`).
    fn waiting(&self, target: Target) -> Option<bool> {
        match target {
            Target::Root(port) => self.ports.get(usize::from(port).wrapping_sub(1))?.waiting,
            Target::Hub { hub, port } => {
                let h = self.devices.get(hub)?.hub?;
                let bit = 1u16.checked_shl(u32::from(port))?;
                (h.waiting & bit != 0).then_some(h.waiting_debounce & bit != 0)
            }
        }
    }

    /// Marks `target` as waiting for its turn (`Some(debounce)`), keeping a
    /// debounce asked for before, or clears it (`None`).
    fn set_waiting(&mut self, target: Target, waiting: Option<bool>) {
        let before = self.waiting(target) == Some(true);
        match target {
            Target::Root(port) => {
                if let Some(p) = self.ports.get_mut(usize::from(port).wrapping_sub(1)) {
                    p.waiting = waiting.map(|d| d || before);
                }
            }
            Target::Hub { hub, port } => {
                let Some(h) = self.devices.get_mut(hub).and_then(|d| d.hub.as_mut()) else {
                    return;
                };
                let Some(bit) = 1u16.checked_shl(u32::from(port)) else {
                    return;
                };
                h.waiting &= !bit;
                h.waiting_debounce &= !bit;
                if let Some(debounce) = waiting {
                    h.waiting |= bit;
                    if debounce || before {
                        h.waiting_debounce |= bit;
                    }
                }
            }
        }
    }

    /// The port of a failed attach is left alone until it changes.
    fn mark_failed(&mut self, target: Target) {
        match target {
            Target::Root(port) => {
                if let Some(p) = self.ports.get_mut(usize::from(port).wrapping_sub(1)) {
                    p.failed = true;
                }
            }
            Target::Hub { hub, port } => {
                if let Some(h) = self.devices.get_mut(hub).and_then(|d| d.hub.as_mut()) {
                    h.failed |= 1u16.checked_shl(u32::from(port)).unwrap_or(0);
                }
            }
        }
    }

    /// One debounce sample of `target`: (connected, connect change seen),
    /// the change cleared as it is seen.
    fn sample_connection(&mut self, target: Target) -> Result<(bool, bool), Error> {
        match target {
            Target::Root(port) => self.sample_root_port(port),
            Target::Hub { hub, port } => self.sample_hub_port(hub, port),
        }
    }

    /// The device's speed after the reset recovery: a root port's as
    /// PORTSC says it now (xHCI 1.2 §4.19.2: valid once the port is
    /// enabled), a hub port's from its status after the reset.
    fn speed_now(&self, target: Target, after_reset: Speed) -> Speed {
        match target {
            Target::Root(port) => Speed::from_id(self.regs.portsc(port).port_speed()),
            Target::Hub { .. } => after_reset,
        }
    }

    /// Resets `target` for attempt `attempt`: the device's location and
    /// speed, `None` if nothing is connected any more.
    fn reset_target(
        &mut self,
        target: Target,
        attempt: u32,
    ) -> Result<Option<(Location, Speed)>, Error> {
        match target {
            Target::Root(port) => self.reset_root_for_attach(port, attempt),
            Target::Hub { hub, port } => self.reset_hub_for_attach(hub, port),
        }
    }
}
