//! The gdb session on COM2: gdbstub's state machine, fed one received byte
//! at a time from the `db> ` loop ([`poll`]), so the consoles and gdb are
//! served together. No allocation (the packet buffer is a static) and no
//! lock (only the CPU running the debugger calls in).
//!
//! Bounded by construction: one [`poll`] handles at most [`BYTES_PER_POLL`]
//! received bytes, each packet's reply is at most the packet buffer, and
//! every byte sent waits a bounded time ([`crate::serial::Uart::put`]). A
//! gdb that sends garbage, overflows the buffer or disconnects mid-packet
//! makes gdbstub return an error: the session is dropped and a fresh one
//! waits for the next packet (gdb retransmits what got no answer).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use gdbstub::common::Signal;
use gdbstub::conn::Connection;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{GdbStubBuilder, MultiThreadStopReason};

use super::target::{Machine, stop_thread};
use crate::serial::COM2_UART;

/// gdbstub's packet buffer: the largest packet either side sends (gdb is
/// told this size in `qSupported`; a memory read of 2 KiB fits in hex).
const PACKET_SIZE: usize = 4096;
/// Received bytes handled by one [`poll`] at most (a 16550's FIFO).
const BYTES_PER_POLL: usize = 16;
/// How often a COM2 given up on (its reader stopped reading) is tried again.
const REVIVE_US: u64 = 2_000_000;

/// COM2 as gdbstub's connection. Sending never fails: a byte the UART does
/// not take in time is dropped (gdb then retransmits or times out).
pub struct Com2;

impl Connection for Com2 {
    type Error = ();

    fn write(&mut self, byte: u8) -> Result<(), ()> {
        COM2_UART.put(byte);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ()> {
        Ok(())
    }
}

type StateMachine = GdbStubStateMachine<'static, Machine, Com2>;

/// The one session, and its target, owned by the CPU running the debugger.
struct Session {
    machine: Option<StateMachine>,
    target: Machine,
}

struct SessionCell(UnsafeCell<Session>);
// SAFETY: only the CPU running the debugger touches it (see `poll`).
unsafe impl Sync for SessionCell {}

static SESSION: SessionCell = SessionCell(UnsafeCell::new(Session {
    machine: None,
    target: Machine,
}));

struct BufferCell(UnsafeCell<[u8; PACKET_SIZE]>);
// SAFETY: lent to one gdbstub at a time (see `fresh`).
unsafe impl Sync for BufferCell {}

static PACKET: BufferCell = BufferCell(UnsafeCell::new([0; PACKET_SIZE]));

/// TSC of the last attempt to take COM2 back after it was given up on.
static LAST_REVIVE: AtomicU64 = AtomicU64::new(0);

/// A new state machine over the static packet buffer.
///
/// # Safety
/// No other gdbstub holding the packet buffer may be used again: the caller
/// has dropped the previous state machine (every path that ends one comes
/// here only after it was consumed), or a nested panic inside [`poll`] left
/// it on a stack the debugger never returns to.
unsafe fn fresh(target: &mut Machine) -> Option<StateMachine> {
    // SAFETY: per the contract, no other reference to the buffer is alive.
    let buf: &'static mut [u8] = unsafe { &mut *PACKET.0.get() };
    let stub = GdbStubBuilder::new(Com2)
        .with_packet_buffer(buf)
        .build()
        .ok()?;
    stub.run_state_machine(target).ok()
}

/// Serves gdb: drives the session with what COM2 received since the last
/// call. Does nothing when COM2 is absent.
///
/// # Safety
/// Only the CPU running the debugger may call it, with every other CPU
/// stopped, and never re-entrantly.
pub unsafe fn poll() {
    if !COM2_UART.present() {
        revive_if_due();
        return;
    }
    // SAFETY: the caller is the only CPU here (contract above).
    let session = unsafe { &mut *SESSION.0.get() };
    for _ in 0..BYTES_PER_POLL {
        let machine = match session.machine.take() {
            Some(m) => m,
            // SAFETY: the slot is empty: no state machine exists.
            None => match unsafe { fresh(&mut session.target) } {
                Some(m) => m,
                None => return,
            },
        };
        let (next, more) = step(machine, &mut session.target);
        session.machine = next;
        if !more {
            return;
        }
    }
}

/// One transition of the state machine: `(next state, go on reading)`.
/// `None` for the next state after an error (a fresh session follows).
fn step(machine: StateMachine, target: &mut Machine) -> (Option<StateMachine>, bool) {
    let next = match machine {
        GdbStubStateMachine::Idle(gdb) => {
            let Some(byte) = COM2_UART.try_get() else {
                return (Some(GdbStubStateMachine::Idle(gdb)), false);
            };
            gdb.incoming_data(target, byte)
        }
        // A resume request (`continue`, `stepi`): in panic mode nothing may
        // run, so the stop is reported at once, where it was (SIGTRAP in
        // the debugger's thread).
        GdbStubStateMachine::Running(gdb) => {
            let reason = MultiThreadStopReason::SignalWithThread {
                tid: stop_thread(),
                signal: Signal::SIGTRAP,
            };
            gdb.report_stop(target, reason)
        }
        // Ctrl-C while stopped: nothing to interrupt.
        GdbStubStateMachine::CtrlCInterrupt(gdb) => {
            gdb.interrupt_handled(target, None::<MultiThreadStopReason<u64>>)
        }
        // `detach` or `kill`: the world stays stopped; wait for the next gdb.
        GdbStubStateMachine::Disconnected(gdb) => Ok(gdb.return_to_idle()),
    };
    match next {
        Ok(m) => (Some(m), true),
        Err(_) => (None, false),
    }
}

/// Takes a given-up COM2 back every [`REVIVE_US`].
fn revive_if_due() {
    let now = crate::time::rdtsc();
    let last = LAST_REVIVE.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= crate::time::us_to_cycles(REVIVE_US) {
        LAST_REVIVE.store(now, Ordering::Relaxed);
        COM2_UART.revive();
    }
}
