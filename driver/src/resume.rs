//! The round trip of a break-in: from interrupt mode to polled mode and
//! back, on a controller in a consistent state (the kernel stops every
//! other CPU with a maskable IPI first, and the driver runs under a lock
//! that keeps interrupts off, so no method of this controller is half
//! done). Unlike the panic takeover ([`enter_polled_mode`], one way, which
//! re-derives everything), nothing is repaired here: the rings, slots and
//! devices stay exactly as they are, and only the interrupter is masked and
//! re-armed (xHCI 1.2 §4.17.2, §5.5.2.1, §5.4.1).
//!
//! FreeBSD's polled USB (`usbd_transfer_poll`) "cannot resume normal
//! operation"; Linux kdb has no USB keyboard. The re-arm follows Linux
//! `xhci_resume`'s order for the interrupter: pending flags cleared
//! (USBSTS.EINT, IMAN.IP), ERDP written with EHB cleared, then IMAN.IE and
//! USBCMD.INTE set.
//!
//! [`enter_polled_mode`]: Controller::enter_polled_mode
#![deny(unsafe_code)]

use crate::controller::Controller;
use crate::hal::Hal;
use crate::regs::EventRingDequeuePointer;

/// What [`Controller::resume_interrupt_mode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResumeReport {
    /// Keys typed in polled mode that were still queued and were dropped
    /// (the debugger consumed the rest), so they never reach the shell.
    pub keys_discarded: usize,
    /// Events wait in the event ring that were posted while the interrupter
    /// was masked: they raise no interrupt, so the caller should poll once.
    pub events_waiting: bool,
}

impl<H: Hal> Controller<H> {
    /// Masks the interrupter (IMAN.IE and USBCMD.INTE cleared, a pending
    /// IMAN.IP acknowledged) and switches `poll()` to polled mode, keeping
    /// every ring, slot and device as it is. Returns whether the controller
    /// was in interrupt mode (a controller without interrupts stays as it
    /// is, and [`resume_interrupt_mode`](Self::resume_interrupt_mode) then
    /// leaves it polled).
    ///
    /// For a break-in, where the caller owns the driver (it holds the
    /// driver's lock) and no method of it was interrupted half way; after a
    /// panic use [`enter_polled_mode`](Self::enter_polled_mode).
    pub fn pause_interrupts(&mut self) -> bool {
        let was = self.interrupts;
        self.interrupts = false;
        self.keyboard.take_break();
        if self.dead || self.regs.usbsts().is_all_ones() {
            return was;
        }
        self.set_interrupter(false);
        let cmd = self.regs.usbcmd();
        self.regs.write_usbcmd(cmd.set_interrupter_enable(false));
        was
    }

    /// Back to interrupt mode after [`pause_interrupts`](Self::pause_interrupts)
    /// returned true: USBSTS.EINT and IMAN.IP cleared (RW1C), ERDP written at
    /// the current dequeue position with EHB cleared (RW1C, §5.5.2.3.3: a
    /// handler that was busy when the interrupter was masked would otherwise
    /// block further interrupts), then IMAN.IE and USBCMD.INTE set. The keys
    /// still queued, the key repeat and a pending break request are dropped.
    /// Devices attached meanwhile were enumerated by the polled `poll()`s, or
    /// are by the next one.
    pub fn resume_interrupt_mode(&mut self) -> ResumeReport {
        let report = ResumeReport {
            keys_discarded: self.keyboard.discard_pending(),
            events_waiting: self.event_ring.peek(&self.mem.event_ring).is_some(),
        };
        if self.dead || self.regs.usbsts().is_all_ones() {
            return report;
        }
        self.interrupts = true;
        self.regs.clear_usbsts(|s| s.clear_event_interrupt());
        self.regs.write_erdp(
            EventRingDequeuePointer::default()
                .set_dequeue_pointer(self.event_ring.dequeue_phys(&self.mem.event_ring))
                .clear_event_handler_busy(),
        );
        self.set_interrupter(true);
        let cmd = self.regs.usbcmd();
        self.regs.write_usbcmd(cmd.set_interrupter_enable(true));
        report
    }

    /// True once after Ctrl+Alt+Esc was typed on a keyboard of this
    /// controller (HID boot report: either Ctrl and either Alt in the
    /// modifier byte with the Escape usage 0x29 going down, HID 1.11
    /// Appendix B.1). The key itself is not queued. The kernel reads this
    /// after `poll()` and after releasing its lock around the driver, and
    /// only then breaks into its debugger.
    pub fn take_break_request(&mut self) -> bool {
        self.keyboard.take_break()
    }

    /// Is the driver in interrupt mode (`poll()` is driven by interrupts)?
    pub fn interrupt_mode(&self) -> bool {
        self.interrupts
    }
}
