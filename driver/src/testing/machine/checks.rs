//! What the fake xHC checks in a slot context before it talks to the device
//! (xHCI 1.2 §6.2.2): the speed, and for a low- or full-speed device behind a
//! high-speed hub the transaction translator fields. A real xHC with these
//! wrong sends SET_ADDRESS at the wrong speed or through no TT and gets no
//! answer, so Address Device completes with USB Transaction Error (§4.6.5).
extern crate std;

use std::format;
use std::string::String;

use super::{Machine, SLOTS};
use crate::testing::descriptors::HIGH_SPEED;
use crate::testing::hal::Memory;

/// The TT a device's split transactions go through, from the fake's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tt {
    /// Route string of the high-speed hub that holds the TT.
    hub_route: u32,
    /// Port of that hub the device's branch hangs on.
    port: u8,
    /// That hub runs one TT per port (multiple-TT interface selected).
    multi: bool,
}

impl Machine {
    /// The TT serving the device at root port index `root`, `route` (the
    /// deepest high-speed hub whose child on the path is not high speed),
    /// and whether the device's slot context must have MTT set: a
    /// high-speed hub with its multiple-TT interface enabled, or a LS/FS
    /// device behind such a hub's TT (§6.2.2 MTT).
    fn expected_tt(&self, root: usize, route: u32) -> Option<(Option<Tt>, bool)> {
        let mut dev = self.ports.get(root)?.as_ref()?;
        let mut prefix = 0u32;
        let mut tt = None;
        for tier in 0..5 {
            let port = (route >> (4 * tier)) & 0xf;
            if port == 0 {
                break;
            }
            let child = dev
                .hub
                .as_ref()?
                .ports
                .get(port as usize - 1)?
                .device
                .as_ref()?;
            if dev.speed == HIGH_SPEED && child.speed != HIGH_SPEED {
                tt = Some(Tt {
                    hub_route: prefix,
                    port: port as u8,
                    multi: dev.multi_tt_enabled(),
                });
            }
            prefix |= port << (4 * tier);
            dev = child;
        }
        let mtt = if dev.hub.is_some() && dev.speed == HIGH_SPEED {
            dev.multi_tt_enabled()
        } else {
            tt.is_some_and(|t| t.multi)
        };
        Some((tt, mtt))
    }

    /// Checks the slot context at `at` (input or output context) of the
    /// device at root port index `root`, `route`: speed, TT Hub Slot ID, TT
    /// Port Number and MTT (§6.2.2). The reason for a refusal is returned
    /// (and kept in `refusals` for the test to read).
    pub(super) fn check_slot_context(
        &mut self,
        mem: &Memory,
        at: u64,
        root: usize,
        route: u32,
    ) -> Result<(), String> {
        let dword0 = mem.read32(at);
        let dword2 = mem.read32(at + 8);
        let speed = (dword0 >> 20) & 0xf;
        let mtt = dword0 & (1 << 25) != 0;
        let (tt_slot, tt_port) = ((dword2 & 0xff) as usize, ((dword2 >> 8) & 0xff) as u8);
        let result = (|| {
            let dev = self
                .device_at(root, route)
                .ok_or_else(|| String::from("no device"))?;
            if speed != dev.speed {
                return Err(format!("speed {speed}, the device runs at {}", dev.speed));
            }
            let (tt, want_mtt) = self
                .expected_tt(root, route)
                .ok_or_else(|| String::from("no device"))?;
            let (want_slot, want_port) = match tt {
                Some(tt) => {
                    let hub_slot = (1..=SLOTS).find(|&s| {
                        self.slots[s].enabled
                            && self.slots[s].port == Some(root)
                            && self.slots[s].route == tt.hub_route
                    });
                    (hub_slot.unwrap_or(usize::MAX), tt.port)
                }
                None => (0, 0),
            };
            if (tt_slot, tt_port) != (want_slot, want_port) {
                return Err(format!(
                    "TT hub slot {tt_slot} port {tt_port}, the TT is slot {want_slot} port {want_port}"
                ));
            }
            if mtt != want_mtt {
                return Err(format!("MTT {mtt}, the hub's TT mode says {want_mtt}"));
            }
            Ok(())
        })();
        if let Err(why) = &result {
            self.refusals.push(format!(
                "slot context of port {}/{route:#x}: {why}",
                root + 1
            ));
        }
        result
    }
}
