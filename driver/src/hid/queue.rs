//! Fixed-capacity queue of decoded keys between `poll()` and `next_key()`.
#![forbid(unsafe_code)]

use pc_keyboard::DecodedKey;

/// Capacity of the key queue.
pub(crate) const KEY_QUEUE_CAPACITY: usize = 64;

/// A ring buffer of keys; when full, new keys are dropped and counted.
pub(crate) struct KeyQueue {
    keys: [DecodedKey; KEY_QUEUE_CAPACITY],
    head: usize,
    len: usize,
    pub(crate) dropped: u32,
    pub(crate) total: u32,
}

impl KeyQueue {
    pub(crate) fn new() -> Self {
        Self {
            keys: [DecodedKey::Unicode('\0'); KEY_QUEUE_CAPACITY],
            head: 0,
            len: 0,
            dropped: 0,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, key: DecodedKey) {
        if self.len >= KEY_QUEUE_CAPACITY {
            self.dropped = self.dropped.wrapping_add(1);
            return;
        }
        let index = (self.head + self.len) % KEY_QUEUE_CAPACITY;
        self.keys[index] = key;
        self.len += 1;
        self.total = self.total.wrapping_add(1);
    }

    pub(crate) fn pop(&mut self) -> Option<DecodedKey> {
        if self.len == 0 {
            return None;
        }
        let key = self.keys[self.head % KEY_QUEUE_CAPACITY];
        self.head = (self.head + 1) % KEY_QUEUE_CAPACITY;
        self.len -= 1;
        Some(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.len.min(KEY_QUEUE_CAPACITY)
    }

    /// Repairs a queue whose indices were torn by a CPU stopped mid-update.
    /// Returns whether it had to.
    pub(crate) fn sanitize(&mut self) -> bool {
        if self.head >= KEY_QUEUE_CAPACITY || self.len > KEY_QUEUE_CAPACITY {
            self.head = 0;
            self.len = 0;
            return true;
        }
        false
    }
}
