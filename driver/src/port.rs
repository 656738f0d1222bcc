//! Root hub ports (xHCI 1.2 §4.19): what a Port Status Change means, the
//! connect debounce (USB 2.0 §7.1.7.3), port reset (§4.3.1), the warm reset
//! of a USB 3 port stuck in SS.Inactive or Compliance Mode (§4.19.5.1), and
//! re-enumeration of a port the controller disabled under a connected device.
#![forbid(unsafe_code)]

use crate::attach::Target;
use crate::controller::Controller;
use crate::device::Location;
use crate::error::Error;
use crate::hal::Hal;
use crate::regs::PortStatusControl;
use crate::types::Speed;

/// Port reset completion (USB 2.0 §7.1.7.5 TDRST is 10-20 ms; be generous).
const PORT_RESET_TIMEOUT_US: u64 = 500_000;
/// Warm reset completion (USB 3.2 §7.4.2: tReset 80-100 ms; Linux
/// `HUB_BH_RESET_TIME` waits up to 50 ms per try and retries; be generous).
const WARM_RESET_TIMEOUT_US: u64 = 500_000;
/// Reset recovery before the first request (USB 2.0 §7.1.7.5 TRSTRCY), a
/// stage of `attach.rs`.
pub(crate) const RESET_RECOVERY_US: u64 = 10_000;
/// PORTSC.PLS of a USB 3 port that needs a warm reset (xHCI 1.2 §5.4.8
/// Table 5-27; Linux `hub_port_warm_reset_required`): SS.Inactive ...
const LINK_SS_INACTIVE: u8 = 6;
/// ... and Compliance Mode.
const LINK_COMPLIANCE: u8 = 10;

/// The connection must be seen unchanged this long (USB 2.0 §7.1.7.3:
/// TATTDB is at least 100 ms; Linux `HUB_DEBOUNCE_STABLE`) ...
pub(crate) const DEBOUNCE_STABLE_US: u64 = 100_000;
/// ... sampled this often (Linux `HUB_DEBOUNCE_STEP`) ...
pub(crate) const DEBOUNCE_STEP_US: u64 = 25_000;
/// ... within this long, or the port is given up until its next change.
/// Linux `HUB_DEBOUNCE_TIMEOUT` is 2 s; a shorter bound keeps a bouncing
/// contact from holding up the ports waiting for their turn (`attach.rs`
/// attaches one device at a time).
pub(crate) const DEBOUNCE_TIMEOUT_US: u64 = 500_000;

impl<H: Hal> Controller<H> {
    /// Handles a root port whose status changed. Returns (0, detached): a
    /// device found is attached by the stages of `attach.rs`.
    ///
    /// The device on it (and everything behind it) is detached when the
    /// port lost its connection, saw a new one (CSC), was disabled by the
    /// controller while still connected (PED clear with CCS set, which PEC
    /// reports: Linux `port_event`, "disabled by hub (EMI?), re-enabling")
    /// or needs a warm reset; a connected port without a device is then
    /// attached (debounced first if its connection just changed). A port
    /// whose enumeration failed is not tried again until
    /// one of those changes shows up.
    pub(crate) fn port_changed(&mut self, port: u8) -> (u32, u32) {
        let mut portsc = self.regs.portsc(port);
        if portsc.is_all_ones() {
            return (0, 0);
        }
        if portsc.has_changes() {
            self.regs.write_portsc(port, |w| w.clear_changes(portsc));
        }
        let index = usize::from(port - 1);
        // a port whose last warm reset did not help is left until it
        // changes, so that a link stuck in Compliance Mode is not warm reset
        // on every event of its own warm resets
        let warm = self.needs_warm_reset(port, portsc.port_link_state())
            && (!self.ports[index].failed || portsc.connect_status_change());
        // only a connection that just changed is debounced (Linux
        // hub_port_connect_change debounces on C_CONNECTION): a device
        // connected for long, looked at again after a takeover or a full
        // event ring, is enumerated at once
        let debounce = warm || portsc.connect_status_change();
        let mut detached = 0;
        if warm {
            if self.ports[index].slot != 0 {
                self.detach(port);
                detached = 1;
            }
            match self.warm_reset_port(port) {
                Ok(after) if self.needs_warm_reset(port, after.port_link_state()) => {
                    self.note_error(Error::Timeout {
                        what: "link out of SS.Inactive after a warm reset",
                    });
                    self.ports[index].failed = true;
                    return (0, detached);
                }
                Ok(after) => portsc = after,
                Err(e) => {
                    self.note_error(e);
                    self.ports[index].failed = true;
                    return (0, detached);
                }
            }
        }
        let connected = portsc.current_connect_status();
        // a working device of ours on a port that is no longer enabled
        let lost = self.is_working(self.ports[index].slot) && connected && !portsc.port_enabled();
        let renewed = warm || portsc.connect_status_change() || portsc.port_enabled_change();
        if self.ports[index].slot != 0 && (!connected || renewed || lost) {
            self.detach(port);
            detached = 1;
        }
        let state = &mut self.ports[index];
        if !connected || renewed || lost {
            state.failed = false;
        }
        if !connected || state.slot != 0 || state.failed {
            return (0, detached);
        }
        self.start_attach(Target::Root(port), debounce);
        (0, detached)
    }

    /// Is `port` a USB 3 port whose link is in SS.Inactive or Compliance
    /// Mode (PORTSC.PLS 6 or 10), which only a warm reset leaves (xHCI 1.2
    /// §4.19.1.2.4.1, §4.19.5.1; Linux `hub_port_warm_reset_required`)?
    fn needs_warm_reset(&self, port: u8, link_state: u8) -> bool {
        self.caps.usb3_ports & (1 << (port - 1)) != 0
            && matches!(link_state, LINK_SS_INACTIVE | LINK_COMPLIANCE)
    }

    /// Warm reset of a USB 3 root port (xHCI 1.2 §4.19.5.1: PORTSC.WPR,
    /// then WRC and PRC are set when it is done), bounded. Clears both
    /// change bits. The port may have nothing connected afterwards: that is
    /// not an error. Returns PORTSC as it was when the reset completed.
    fn warm_reset_port(&mut self, port: u8) -> Result<PortStatusControl, Error> {
        self.regs.write_portsc(port, |w| w.set_warm_port_reset());
        self.wait_for(WARM_RESET_TIMEOUT_US, "warm port reset (PORTSC.WRC)", |c| {
            let sc = c.regs.portsc(port);
            Ok(sc.is_all_ones()
                || sc.warm_port_reset_change()
                || (sc.port_reset_change() && !sc.warm_port_reset()))
        })?;
        let sc = self.regs.portsc(port);
        if sc.is_all_ones() {
            return Err(Error::ControllerGone);
        }
        self.regs.write_portsc(port, |w| {
            w.clear_warm_port_reset_change().clear_port_reset_change()
        });
        Ok(sc)
    }

    /// Resets a root port and waits for it to be enabled (§4.3.1).
    fn reset_port(&mut self, port: u8) -> Result<(), Error> {
        self.regs.write_portsc(port, |w| w.set_port_reset());
        self.wait_for(PORT_RESET_TIMEOUT_US, "port reset (PORTSC.PRC)", |c| {
            let sc = c.regs.portsc(port);
            Ok(sc.is_all_ones()
                || sc.port_reset_change()
                || (sc.port_enabled() && !sc.port_reset()))
        })?;
        let sc = self.regs.portsc(port);
        if sc.port_reset_change() {
            self.regs
                .write_portsc(port, |w| w.clear_port_reset_change());
        }
        if !sc.port_enabled() || !sc.current_connect_status() {
            return Err(Error::Timeout {
                what: "port enable after reset",
            });
        }
        Ok(())
    }

    /// One connect-debounce sample of root port `port` (`attach.rs`):
    /// (connected, CSC seen), CSC cleared as it is seen.
    pub(crate) fn sample_root_port(&mut self, port: u8) -> Result<(bool, bool), Error> {
        let sc = self.regs.portsc(port);
        if sc.is_all_ones() {
            return Err(Error::ControllerGone);
        }
        if sc.connect_status_change() {
            self.regs
                .write_portsc(port, |w| w.clear_connect_status_change());
        }
        Ok((sc.current_connect_status(), sc.connect_status_change()))
    }

    /// The port reset of attempt `attempt` on root port `port`, before
    /// the reset recovery (`attach.rs` waits it out): a warm reset first if
    /// the link needs one; USB 3 ports enable themselves after link
    /// training, USB 2 ports need a reset, and so does every retry (a hot
    /// reset on USB 3, xHCI 1.2 §4.19.5). The device's location and speed
    /// (read again after the recovery, `attach.rs`), `None` if the port has
    /// nothing connected any more: the caller saw it connected just before
    /// (its port change, the debounce, or the waiting queue's check), so a
    /// reset that fails on a port found empty afterwards is no error.
    pub(crate) fn reset_root_for_attach(
        &mut self,
        port: u8,
        attempt: u32,
    ) -> Result<Option<(Location, Speed)>, Error> {
        let is_usb3 = self.caps.usb3_ports & (1 << (port - 1)) != 0;
        let mut sc = self.regs.portsc(port);
        if sc.is_all_ones() {
            return Err(Error::ControllerGone);
        }
        if self.needs_warm_reset(port, sc.port_link_state()) {
            sc = self.warm_reset_port(port)?;
        }
        if (!is_usb3 || attempt > 0 || !sc.port_enabled())
            && let Err(e) = self.reset_port(port)
        {
            if !self.regs.portsc(port).current_connect_status() {
                return Ok(None);
            }
            return Err(e);
        }
        let speed = Speed::from_id(self.regs.portsc(port).port_speed());
        Ok(Some((Location::root(port), speed)))
    }
}
