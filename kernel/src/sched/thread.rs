//! Kernel threads: a stack, a saved stack pointer, state and accounting.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::wait::WaitQueue;
use crate::sync::SpinLock;

/// Size of a kernel thread stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// [`Thread::magic`] of a live thread ("thread!!"), checked by the panic
/// console before it reads any other field.
pub const THREAD_MAGIC: u64 = u64::from_be_bytes(*b"thread!!");
/// [`Thread::magic`] once the thread is dropped ("deadthrd").
pub const THREAD_DEAD: u64 = u64::from_be_bytes(*b"deadthrd");

/// Scheduling state of a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThreadState {
    /// In a run queue.
    Runnable = 0,
    /// On a CPU.
    Running = 1,
    /// Waiting on a wait queue.
    Blocked = 2,
    /// Sleeping until a deadline.
    Sleeping = 3,
    /// Finished; waiting to be joined.
    Exited = 4,
    /// A CPU's idle thread.
    Idle = 5,
}

impl ThreadState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Runnable,
            1 => Self::Running,
            2 => Self::Blocked,
            3 => Self::Sleeping,
            4 => Self::Exited,
            _ => Self::Idle,
        }
    }

    /// Short name for `ps`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Runnable => "ready",
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Sleeping => "sleeping",
            Self::Exited => "exited",
            Self::Idle => "idle",
        }
    }
}

/// Entry closure of a thread.
pub type Entry = Box<dyn FnOnce() + Send + 'static>;

/// A kernel thread.
pub struct Thread {
    /// [`THREAD_MAGIC`] while the thread is alive, [`THREAD_DEAD`] after.
    pub(super) magic: AtomicU64,
    /// Unique id (0.. in creation order).
    pub id: u64,
    /// Name shown by `ps`.
    pub name: String,
    state: AtomicU8,
    /// CPU the thread last ran or is queued on.
    pub cpu: AtomicU32,
    /// True from being switched to until the switch away has saved its context.
    pub on_cpu: AtomicBool,
    /// Saved stack pointer while not running.
    pub(super) ctx_rsp: UnsafeCell<u64>,
    stack: Vec<u8>,
    /// Accumulated CPU time in TSC cycles.
    pub cpu_cycles: AtomicU64,
    /// Times this thread was switched to.
    pub switches: AtomicU64,
    /// TSC deadline while sleeping.
    pub wake_at: AtomicU64,
    /// If set, the thread only runs on this CPU.
    pub pinned: Option<u32>,
    /// Set to ask a cooperative thread to exit (`kill-load`).
    pub stop_requested: AtomicBool,
    pub(super) entry: SpinLock<Option<Entry>>,
    pub(super) exited: WaitQueue,
}

// SAFETY: `ctx_rsp` is written only by the CPU switching away from the thread
// (while `on_cpu` is set) and read only by the CPU switching to it after it
// observed `on_cpu == false` with acquire ordering.
unsafe impl Sync for Thread {}

impl Thread {
    pub(super) fn new(id: u64, name: String, pinned: Option<u32>, entry: Option<Entry>) -> Self {
        let stack = if entry.is_some() {
            vec![0u8; STACK_SIZE]
        } else {
            Vec::new()
        };
        Self {
            magic: AtomicU64::new(THREAD_MAGIC),
            id,
            name,
            state: AtomicU8::new(ThreadState::Runnable as u8),
            cpu: AtomicU32::new(pinned.unwrap_or(0)),
            on_cpu: AtomicBool::new(false),
            ctx_rsp: UnsafeCell::new(0),
            stack,
            cpu_cycles: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            wake_at: AtomicU64::new(0),
            pinned,
            stop_requested: AtomicBool::new(false),
            entry: SpinLock::new(entry),
            exited: WaitQueue::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> ThreadState {
        ThreadState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(super) fn set_state(&self, s: ThreadState) {
        self.state.store(s as u8, Ordering::Release);
    }

    pub(super) fn transition(&self, from: ThreadState, to: ThreadState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Stack bounds `[low, high)` (empty for boot/idle threads on boot stacks).
    pub fn stack_range(&self) -> (u64, u64) {
        let lo = self.stack.as_ptr() as u64;
        (lo, lo + self.stack.len() as u64)
    }

    /// Saved stack pointer (meaningful while the thread is not running).
    pub fn saved_rsp(&self) -> u64 {
        // SAFETY: a plain read of a word only written during a context switch;
        // a torn/stale value is only used for display and bounded walks.
        unsafe { *self.ctx_rsp.get() }
    }

    /// Prepares the initial stack so the first switch "returns" into
    /// `thread_trampoline` with `r12` = this thread.
    pub(super) fn prepare_stack(&self, trampoline: u64) {
        let (_, top) = self.stack_range();
        let top = top & !0xf;
        // Layout popped by `switch_context`: r15 r14 r13 r12 rbx rbp, then ret.
        let frame: [u64; 8] = [0, 0, 0, self as *const Thread as u64, 0, 0, trampoline, 0];
        let base = top - (frame.len() as u64) * 8;
        // SAFETY: [base, top) lies inside this thread's own, not yet running stack.
        unsafe {
            core::ptr::copy_nonoverlapping(frame.as_ptr(), base as *mut u64, frame.len());
            *self.ctx_rsp.get() = base;
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // An atomic store, so the compiler keeps it although the memory is
        // freed next: a stale pointer to the freed thread then fails the
        // panic console's magic check.
        self.magic.store(THREAD_DEAD, Ordering::Relaxed);
    }
}
