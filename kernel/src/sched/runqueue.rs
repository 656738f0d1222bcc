//! Run-queue policy, kept free of hardware so it is unit-tested on the host:
//! FIFO per CPU, placement on the shortest queue, stealing from the longest.

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;

/// One CPU's FIFO of runnable items.
#[derive(Debug)]
pub struct RunQueue<T> {
    items: VecDeque<T>,
}

impl<T> RunQueue<T> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            items: VecDeque::new(),
        }
    }

    /// Appends a runnable item.
    pub fn push(&mut self, t: T) {
        self.items.push_back(t);
    }

    /// Takes the next item in FIFO order.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Takes an item for another CPU: the one queued last (coldest cache
    /// affinity loss for the victim is the most recently queued work).
    pub fn steal(&mut self, can_move: impl Fn(&T) -> bool) -> Option<T> {
        let pos = self.items.iter().rposition(can_move)?;
        self.items.remove(pos)
    }

    /// Removes the first item matching `pred`.
    pub fn remove(&mut self, pred: impl Fn(&T) -> bool) -> Option<T> {
        let pos = self.items.iter().position(pred)?;
        self.items.remove(pos)
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Index of the least loaded CPU among `loads` (ties: the lowest index at or
/// after `hint`, so equal loads spread round-robin).
pub fn least_loaded(loads: &[usize], hint: usize) -> usize {
    let n = loads.len();
    let mut best = hint % n.max(1);
    for k in 0..n {
        let i = (hint + k) % n;
        if loads[i] < loads[best] {
            best = i;
        }
    }
    best
}

/// The CPU to steal from: the most loaded one other than `me`, if it has at
/// least `min` queued items.
pub fn steal_victim(loads: &[usize], me: usize, min: usize) -> Option<usize> {
    loads
        .iter()
        .enumerate()
        .filter(|&(i, &l)| i != me && l >= min)
        .max_by_key(|&(_, &l)| l)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_steal_from_the_back() {
        let mut q = RunQueue::new();
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.steal(|_| true), Some(4));
        assert_eq!(q.steal(|&x| x < 2), Some(1));
        assert_eq!(q.remove(|&x| x == 3), Some(3));
        assert_eq!(q.pop(), Some(2));
        assert!(q.is_empty());
        assert_eq!(q.steal(|_| true), None);
    }

    #[test]
    fn placement_spreads_and_steals_from_busiest() {
        let mut loads = [0usize; 4];
        for n in 0..8 {
            let cpu = least_loaded(&loads, n);
            loads[cpu] += 1;
        }
        assert_eq!(loads, [2, 2, 2, 2]);
        assert_eq!(least_loaded(&[3, 1, 1, 2], 0), 1);
        assert_eq!(steal_victim(&[0, 3, 5, 1], 0, 1), Some(2));
        assert_eq!(steal_victim(&[0, 0, 0, 0], 0, 1), None);
        assert_eq!(
            steal_victim(&[9, 0], 0, 1),
            None,
            "never steal from oneself"
        );
    }
}
