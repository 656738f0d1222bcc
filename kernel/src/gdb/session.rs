//! The gdb session on COM2: gdbstub's state machine, fed one received byte
//! at a time from the `db> ` loop ([`poll`]), so the consoles and gdb are
//! served together. No allocation (the packet buffer is a static) and no
//! lock (only the CPU running the debugger calls in).
//!
//! Across a resume the session stays: gdbstub's machine is `Running` while
//! the world runs, and the next entry of the debugger, whatever its cause,
//! is reported to gdb as a stop ([`entered`]). While the world runs COM2 is
//! only peeked at, from CPU 0's timer tick ([`tick`]): a Ctrl-C (0x03) or
//! the first byte of a packet (`$`, a gdb attaching to the running kernel)
//! breaks in.
//!
//! Bounded by construction: one [`poll`] handles at most [`BYTES_PER_POLL`]
//! received bytes, each packet's reply is at most the packet buffer, and
//! every byte sent waits a bounded time ([`crate::serial::Uart::put`]). A
//! gdb that sends garbage, overflows the buffer or disconnects mid-packet
//! makes gdbstub return an error: the session is dropped and a fresh one
//! waits for the next packet (gdb retransmits what got no answer).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use gdbstub::common::Signal;
use gdbstub::conn::Connection;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStubBuilder, MultiThreadStopReason};

use super::hooks::{Cause, debugger};
use super::target::{Machine, stop_thread, tid_of};
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
    target: Machine::new(),
}));

struct BufferCell(UnsafeCell<[u8; PACKET_SIZE]>);
// SAFETY: lent to one gdbstub at a time (see `fresh`).
unsafe impl Sync for BufferCell {}

static PACKET: BufferCell = BufferCell(UnsafeCell::new([0; PACKET_SIZE]));

/// TSC of the last attempt to take COM2 back after it was given up on.
static LAST_REVIVE: AtomicU64 = AtomicU64::new(0);

/// The stop gdb has not been told about yet: [`STOP_SET`] | cause << 8 |
/// CPU, or 0. Written by the debugger's entry, taken by [`poll`].
static STOP: AtomicU32 = AtomicU32::new(0);
const STOP_SET: u32 = 1 << 31;

/// A byte [`tick`] took from COM2 that gdbstub must still see (`$`):
/// `0x100 | byte`, or 0.
static PENDING: AtomicU16 = AtomicU16::new(0);

/// Ctrl-C in gdb (the remote protocol's interrupt, sent outside packets).
const INTERRUPT: u8 = 0x03;
/// The first byte of a packet.
const PACKET_START: u8 = b'$';

fn cause_code(cause: Option<Cause>) -> u32 {
    match cause {
        None => 0,
        Some(Cause::Breakpoint) => 1,
        Some(Cause::SingleStep) => 2,
        Some(Cause::Interrupt) => 3,
    }
}

/// The debugger was entered on CPU `cpu`, for `cause` (`None`: a break-in
/// of its own, a panic): gdb, if it waits for a stop, is told at the next
/// [`poll`]. Breakpoints are lifted by the caller ([`super::entered`]).
pub fn entered(cpu: usize, cause: Option<Cause>) {
    STOP.store(
        STOP_SET | cause_code(cause) << 8 | cpu as u32,
        Ordering::Release,
    );
}

/// Forgets an untold stop (the world is resumed by gdb's request).
pub fn clear_stop() {
    STOP.store(0, Ordering::Release);
}

/// Sets the stop gdb is told at once (a resume it asked for was refused).
pub fn stop_at_once() {
    entered(crate::arch::cpu::current_index(), None);
}

/// The untold stop as gdb's stop reason: a breakpoint hit is `swbreak`
/// (SIGTRAP, PC at the breakpoint), a step SIGTRAP, an interrupt SIGINT,
/// each with the thread (CPU) it happened on.
fn take_stop() -> Option<MultiThreadStopReason<u64>> {
    let v = STOP.swap(0, Ordering::AcqRel);
    if v & STOP_SET == 0 {
        return None;
    }
    let tid = tid_of((v & 0xff) as usize);
    Some(match (v >> 8) & 0xff {
        1 => MultiThreadStopReason::SwBreak(tid),
        3 => MultiThreadStopReason::SignalWithThread {
            tid,
            signal: Signal::SIGINT,
        },
        _ => MultiThreadStopReason::SignalWithThread {
            tid,
            signal: Signal::SIGTRAP,
        },
    })
}

/// From CPU 0's timer tick while the world runs: takes at most one byte
/// from COM2; a Ctrl-C or a packet's start breaks in (the `$` is kept for
/// gdbstub), anything else (gdb's late `+` acks, noise) is dropped.
/// Lock-free and bounded: two port reads, no wait. The debugger CPU never
/// touches COM2 at the same time: it polls only with every other CPU
/// stopped, and CPU 0 takes its stop only after this tick returns.
pub fn tick() {
    if crate::panic::panicking() {
        return;
    }
    let Some(byte) = COM2_UART.try_get() else {
        return;
    };
    if byte != INTERRUPT && byte != PACKET_START {
        return;
    }
    if byte == PACKET_START {
        PENDING.store(0x100 | byte as u16, Ordering::Release);
    }
    if let Some(d) = debugger() {
        (d.break_in)(Cause::Interrupt);
    }
}

/// The next byte for gdbstub: one [`tick`] kept, else one from COM2.
fn next_byte() -> Option<u8> {
    let kept = PENDING.swap(0, Ordering::AcqRel);
    if kept != 0 {
        return Some(kept as u8);
    }
    COM2_UART.try_get()
}

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
            let Some(byte) = next_byte() else {
                return (Some(GdbStubStateMachine::Idle(gdb)), false);
            };
            gdb.incoming_data(target, byte)
        }
        // After a panic nothing may run: a resume request (`continue`,
        // `stepi`) is answered at once by a stop where it was (SIGTRAP in
        // the debugger's thread).
        GdbStubStateMachine::Running(gdb) if crate::panic::panicking() => {
            let reason = MultiThreadStopReason::SignalWithThread {
                tid: stop_thread(),
                signal: Signal::SIGTRAP,
            };
            gdb.report_stop(target, reason)
        }
        // After a break-in: the world resumes once the debugger's loop
        // sees the request; the next entry's stop is reported then.
        GdbStubStateMachine::Running(gdb) => match take_stop() {
            Some(reason) => gdb.report_stop(target, reason),
            None => return (Some(GdbStubStateMachine::Running(gdb)), false),
        },
        // Ctrl-C while stopped: nothing to interrupt.
        GdbStubStateMachine::CtrlCInterrupt(gdb) => {
            gdb.interrupt_handled(target, None::<MultiThreadStopReason<u64>>)
        }
        // `detach` after a break-in resumes the world, as gdb means it;
        // after a panic, or on `kill`, the world stays stopped. Either way
        // the next gdb is awaited.
        GdbStubStateMachine::Disconnected(gdb) => {
            if gdb.get_reason() == DisconnectReason::Disconnect {
                target.detached();
            }
            Ok(gdb.return_to_idle())
        }
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
