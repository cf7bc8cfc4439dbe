//! The trade ids already counted in open candles, bounded: a trade delivered twice (live and
//! again from REST after a reconnect) is counted once.

use std::collections::{HashSet, VecDeque};

/// Trade ids of open buckets, newest `capacity` at most, in arrival order.
#[derive(Debug, Clone)]
pub(super) struct SeenIds {
    pub(super) set: HashSet<String>,
    pub(super) order: VecDeque<(u64, String)>,
    capacity: usize,
}

impl SeenIds {
    pub(super) fn new(capacity: usize) -> Self {
        SeenIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    pub(super) fn insert(&mut self, bucket: u64, id: &str) {
        if self.set.insert(id.to_string()) {
            self.order.push_back((bucket, id.to_string()));
        }
        while self.order.len() > self.capacity {
            self.pop_front();
        }
    }

    pub(super) fn pop_front(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            self.set.remove(&id);
        }
    }

    /// Drops ids of closed buckets from the front (arrival order is nearly bucket order; the
    /// few out-of-order ones left behind go with the capacity, and trades of closed buckets are
    /// refused as late before ids are consulted).
    pub(super) fn forget_before(&mut self, boundary: u64) {
        while self.order.front().is_some_and(|(b, _)| *b < boundary) {
            self.pop_front();
        }
    }
}
