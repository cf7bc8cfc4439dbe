//! Counters of what the simulator did (`GET /sim/stats`): connections, frames and bytes sent,
//! faults applied, REST calls. Lock-free atomics, read into a [`SimStats`] snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// WebSocket connections accepted since start.
    pub connections_accepted: u64,
    /// WebSocket connections open now.
    pub connections_open: u64,
    /// TCP connections refused by the `refuse` fault.
    pub connections_refused: u64,
    /// Connections closed because they read too slowly (queue overflow).
    pub connections_overflowed: u64,
    /// WebSocket frames sent, over all connections.
    pub messages_sent: u64,
    /// Bytes of those frames.
    pub bytes_sent: u64,
    /// Market frames produced (each counted once, whatever the number of subscribers).
    pub frames_published: u64,
    /// Trades produced.
    pub trades: u64,
    /// REST market requests answered (any status).
    pub rest_requests: u64,
    /// REST requests answered 403 by the IP limit.
    pub rest_rate_limited: u64,
    /// REST requests answered by the `rest_error` fault (its status, or 504 after a hang).
    #[serde(default)]
    pub rest_faulted: u64,
    /// REST requests held unanswered right now (a `rest_error` hang or `blackhole`), by path
    /// (`/v5/market/kline`, ...).
    #[serde(default)]
    pub rest_held: BTreeMap<String, u64>,
    /// New connections held unanswered right now by `blackhole`.
    #[serde(default)]
    pub connections_held: u64,
    /// Faults applied, in total.
    pub faults_applied: u64,
    /// Faults applied, per kind.
    pub faults_by_kind: BTreeMap<String, u64>,
}

/// The live counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) connections_overflowed: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) frames_published: AtomicU64,
    pub(crate) trades: AtomicU64,
    pub(crate) rest_requests: AtomicU64,
    pub(crate) rest_rate_limited: AtomicU64,
    pub(crate) rest_faulted: AtomicU64,
    pub(crate) connections_held: AtomicU64,
    rest_held: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<BTreeMap<String, u64>>,
}

/// A REST request counted as held while this lives.
pub struct Held<'a> {
    stats: &'a Stats,
    path: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.stats.rest_held.lock() {
            if let Some(n) = m.get_mut(&self.path) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.path);
                }
            }
        }
    }
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a REST request to `path` as held until the guard is dropped.
    pub fn held(&self, path: &str) -> Held<'_> {
        if let Ok(mut m) = self.rest_held.lock() {
            *m.entry(path.to_string()).or_default() += 1;
        }
        Held {
            stats: self,
            path: path.to_string(),
        }
    }

    /// Counts one applied fault of `kind`.
    pub fn fault(&self, kind: &str) {
        if let Ok(mut m) = self.faults.lock() {
            *m.entry(kind.to_string()).or_default() += 1;
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let faults_by_kind = self.faults.lock().map(|m| m.clone()).unwrap_or_default();
        SimStats {
            connections_accepted: get(&self.connections_accepted),
            connections_open: get(&self.connections_open),
            connections_refused: get(&self.connections_refused),
            connections_overflowed: get(&self.connections_overflowed),
            messages_sent: get(&self.messages_sent),
            bytes_sent: get(&self.bytes_sent),
            frames_published: get(&self.frames_published),
            trades: get(&self.trades),
            rest_requests: get(&self.rest_requests),
            rest_rate_limited: get(&self.rest_rate_limited),
            rest_faulted: get(&self.rest_faulted),
            rest_held: self.rest_held.lock().map(|m| m.clone()).unwrap_or_default(),
            connections_held: get(&self.connections_held),
            faults_applied: faults_by_kind.values().sum(),
            faults_by_kind,
        }
    }
}
