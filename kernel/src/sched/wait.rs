//! Wait queues with wake-one / wake-all. The FIFO policy ([`WaitList`]) is
//! plain logic tested on the host; `WaitQueue` adds blocking in the kernel build.

use alloc::collections::VecDeque;

/// FIFO of waiters with the queue discipline of a wait queue.
#[derive(Debug)]
pub struct WaitList<T> {
    waiters: VecDeque<T>,
}

impl<T> WaitList<T> {
    /// Empty list.
    pub const fn new() -> Self {
        Self {
            waiters: VecDeque::new(),
        }
    }

    /// Adds a waiter at the back.
    pub fn enqueue(&mut self, t: T) {
        self.waiters.push_back(t);
    }

    /// Removes a specific waiter (it saw its condition before sleeping).
    pub fn cancel(&mut self, is_me: impl Fn(&T) -> bool) -> Option<T> {
        let pos = self.waiters.iter().position(is_me)?;
        self.waiters.remove(pos)
    }

    /// The longest waiting waiter.
    pub fn wake_one(&mut self) -> Option<T> {
        self.waiters.pop_front()
    }

    /// Every waiter, oldest first.
    pub fn wake_all(&mut self) -> impl Iterator<Item = T> + '_ {
        self.waiters.drain(..)
    }

    /// Number of waiters.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// True without waiters.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

impl<T> Default for WaitList<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "none")]
pub use kernel_queue::WaitQueue;

#[cfg(target_os = "none")]
mod kernel_queue {
    use alloc::sync::Arc;

    use super::WaitList;
    use crate::sched::{self, thread::Thread, thread::ThreadState};
    use crate::sync::{SpinLock, irq, scheduler_stopped};

    /// A queue of blocked threads.
    pub struct WaitQueue {
        list: SpinLock<WaitList<Arc<Thread>>>,
    }

    impl WaitQueue {
        /// Empty queue.
        pub const fn new() -> Self {
            Self {
                list: SpinLock::new(WaitList::new()),
            }
        }

        /// Blocks until `cond()` holds. Never blocks after the panic stop or
        /// where blocking is impossible (interrupt context, before the
        /// scheduler runs): then it busy-waits up to 100 ms and returns
        /// whether `cond` came true.
        pub fn wait_until(&self, cond: impl Fn() -> bool) -> bool {
            loop {
                if cond() {
                    return true;
                }
                if scheduler_stopped() || !sched::can_block() {
                    let deadline = crate::time::deadline_after_us(100_000);
                    while !cond() {
                        if crate::time::passed(deadline) {
                            return false;
                        }
                        core::hint::spin_loop();
                    }
                    return true;
                }
                irq::push_irq_off();
                let me = sched::current_arc();
                me.set_state(ThreadState::Blocked);
                self.list.lock().enqueue(me.clone());
                if cond() {
                    let mut l = self.list.lock();
                    if l.cancel(|t| Arc::ptr_eq(t, &me)).is_some() {
                        me.set_state(ThreadState::Running);
                        drop(l);
                        irq::pop_irq_off();
                        return true;
                    }
                    // Already dequeued by a waker: it will make us runnable.
                }
                drop(me);
                sched::schedule();
                irq::pop_irq_off();
            }
        }

        /// Wakes the longest waiter. A no-op after the panic stop.
        pub fn wake_one(&self) {
            if scheduler_stopped() {
                return;
            }
            let t = self.list.lock().wake_one();
            if let Some(t) = t {
                sched::make_runnable(t, ThreadState::Blocked);
            }
        }

        /// Wakes every waiter. A no-op after the panic stop.
        pub fn wake_all(&self) {
            if scheduler_stopped() {
                return;
            }
            let all: alloc::vec::Vec<_> = self.list.lock().wake_all().collect();
            for t in all {
                sched::make_runnable(t, ThreadState::Blocked);
            }
        }

        /// Number of blocked threads.
        pub fn len(&self) -> usize {
            self.list.lock().len()
        }

        /// True when no thread is blocked here.
        pub fn is_empty(&self) -> bool {
            self.list.lock().is_empty()
        }
    }

    impl Default for WaitQueue {
        fn default() -> Self {
            Self::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_one_is_fifo_and_cancel_removes() {
        let mut w = WaitList::new();
        w.enqueue("a");
        w.enqueue("b");
        w.enqueue("c");
        assert_eq!(w.cancel(|&t| t == "b"), Some("b"));
        assert_eq!(w.cancel(|&t| t == "zz"), None);
        assert_eq!(w.wake_one(), Some("a"));
        w.enqueue("d");
        assert_eq!(w.wake_all().collect::<Vec<_>>(), ["c", "d"]);
        assert!(w.is_empty());
        assert_eq!(w.wake_one(), None);
    }
}
