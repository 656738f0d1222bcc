//! A lock-free interrupt acknowledge handle: what an interrupt handler needs
//! when the driver itself sits under a lock that another CPU may hold.
//!
//! With a level-triggered INTx line the controller keeps the line asserted
//! for as long as IMAN.IP is set (xHCI 1.2 §4.17.2: the interrupt is
//! asserted while IP = 1 and IE = 1), so a handler that skips the
//! acknowledgement because the driver lock is busy returns to a line that
//! fires again at once: an interrupt storm for as long as the lock is held.
//! With MSI/MSI-X the controller clears IP itself when the message is sent
//! (§4.17.5), and acknowledging again is harmless.
//!
//! [`InterruptAck`] holds only the address of interrupter 0's IMAN and of
//! USBSTS and writes nothing but RW1C bits as 1 (IP, EINT), so it may run on
//! any CPU at any time, concurrently with [`Controller::poll`]
//! (crate::Controller::poll) on another: a clear that races a poll only
//! clears a flag the poll does not read (the poll drains the event ring by
//! its cycle bits, §4.9.4).

use crate::regs::Registers;

/// Acknowledges interrupter 0 of one controller: clears IMAN.IP (RW1C,
/// written with IE as read, xHCI 1.2 §5.5.2.1) and USBSTS.EINT (RW1C,
/// §5.4.2), EINT first as Linux `xhci_irq` does (§4.17.2). Made by
/// [`Controller::interrupt_ack`](crate::Controller::interrupt_ack).
///
/// `Send + Sync` and `Copy`: the kernel keeps one per controller beside its
/// lock and calls [`acknowledge`](Self::acknowledge) from the interrupt
/// handler without taking that lock (Linux `xhci_irq` acknowledges under
/// its own spinlock; a kernel whose driver lock may be held by a frozen CPU
/// cannot do that).
#[derive(Debug, Clone, Copy)]
pub struct InterruptAck {
    regs: Registers,
}

// SAFETY: the handle is an address of MMIO registers plus offsets; its only
// accesses are single volatile 32-bit reads and RW1C writes, which the
// controller serialises and which are correct from any CPU concurrently with
// the driver (see the module docs). `Controller::interrupt_ack`'s contract
// keeps the mapping valid for every use.
unsafe impl Send for InterruptAck {}
// SAFETY: as for `Send`: `acknowledge` takes `&self` and mutates no memory,
// only device registers with write-1-to-clear semantics.
unsafe impl Sync for InterruptAck {}

impl InterruptAck {
    /// Wraps the controller's register block.
    ///
    /// # Safety
    /// The mapping behind `regs` must stay valid for every use of the handle.
    pub(crate) unsafe fn new(regs: Registers) -> Self {
        Self { regs }
    }

    /// Clears a pending IMAN.IP (keeping IE as read) and USBSTS.EINT.
    /// Returns whether this controller had an interrupt pending (false for
    /// a shared INTx line raised by another device, and for a controller
    /// that reads as all ones: removed or not answering).
    pub fn acknowledge(&self) -> bool {
        let sts = self.regs.usbsts();
        if sts.is_all_ones() {
            return false;
        }
        if sts.event_interrupt() {
            // Only EINT is written as 1; the other RW1C bits as 0.
            self.regs.clear_usbsts(|s| s.clear_event_interrupt());
        }
        let iman = self.regs.iman();
        if iman.interrupt_pending() {
            self.regs.write_iman(iman, |m| m.clear_interrupt_pending());
        }
        iman.interrupt_pending() || sts.event_interrupt()
    }
}
