//! Counters the service records on its hot path for `/metrics`: messages by type and the
//! receive-to-delivery latency histogram. Everything else in `/metrics` is read from feed statuses.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

/// Hot-path counters.
#[derive(Debug, Default)]
pub struct Metrics {
    messages: Mutex<BTreeMap<(String, String), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    /// Sum of observed latencies in nanoseconds.
    latency_sum_ns: AtomicU64,
}

/// A histogram snapshot: cumulative bucket counts, count and sum (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// (upper bound in seconds, cumulative count).
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of observations (s).
    pub sum: f64,
}

impl Metrics {
    /// Counts one delivered message of `kind` (`trade`, `book`, `lifecycle`...) for `category`.
    pub fn record_message(&self, category: &str, kind: &str) {
        self.record_messages(category, kind, 1);
    }

    /// Counts `n` delivered messages of `kind` for `category` (a batch).
    pub fn record_messages(&self, category: &str, kind: &str, n: u64) {
        let mut m = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((category.to_string(), kind.to_string()))
            .or_default() += n;
    }

    /// Records the time from a frame's local receipt to its delivery to consumers.
    pub fn observe_latency_ns(&self, ns: u64) {
        let secs = ns as f64 / 1e9;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Messages by (category, kind).
    pub fn messages(&self) -> BTreeMap<(String, String), u64> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The latency histogram with cumulative buckets (Prometheus style).
    pub fn latency(&self) -> Histogram {
        let mut cumulative = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.latency_buckets)
            .map(|(&b, c)| {
                cumulative += c.load(Ordering::Relaxed);
                (b, cumulative)
            })
            .collect();
        Histogram {
            buckets,
            count: self.latency_count.load(Ordering::Relaxed),
            sum: self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_latency_ns(40_000); // 40 µs
        m.observe_latency_ns(3_000_000); // 3 ms
        m.observe_latency_ns(5_000_000_000); // 5 s: only in +Inf
        let h = m.latency();
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], (0.000_05, 1));
        assert_eq!(h.buckets[6], (0.005, 2));
        assert_eq!(h.buckets.last().unwrap().1, 2);
        assert!((h.sum - 5.00304).abs() < 1e-9);
        m.record_message("linear", "trade");
        m.record_message("linear", "trade");
        assert_eq!(
            m.messages()[&("linear".to_string(), "trade".to_string())],
            2
        );
        // A batch counts as its events.
        m.record_messages("linear", "trade", 3);
        assert_eq!(
            m.messages()[&("linear".to_string(), "trade".to_string())],
            5
        );
    }
}
