//! What a two-line feed shows the outside: [`LinesShared`] (health of the feed as a whole, the most
//! advanced line's book, the pid) and [`LineStatus`], each line's state for `/api/status` and
//! `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::arbiter::{line_name, Arbiter};
use super::lines::{read, write, Counter};
use crate::book::OrderBook;
use crate::feed::{ConnState, HealthSnapshot};
use crate::source::{FeedSource, SourceMonitor};

/// One line's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineStatus {
    /// `a` or `b`.
    pub line: String,
    /// The line's own feed status (`connected`, `connecting`, `disconnected`, `down`).
    pub status: String,
    /// Its subscriptions are confirmed and it has not disconnected since.
    pub connected: bool,
    /// Its worker's pid (process isolation).
    pub pid: Option<u32>,
    /// Times it went live.
    pub connects: u64,
    /// Times the arbiter replaced it because it stalled or fell behind.
    pub restarts: u64,
    /// Its reconnects (since its last restart).
    pub reconnects: u64,
    /// Market events it delivered.
    pub messages: u64,
    /// Seconds since its last market event.
    pub seconds_since_last_event: Option<f64>,
    /// Its trade tape continues the merged one for every symbol.
    pub in_sync: bool,
    /// Trades it holds back until it proves contiguity.
    pub held_trades: usize,
    /// Most book updates it is behind the merged book (over symbols; `None`: not comparable).
    pub behind_updates: Option<u64>,
    /// It has the most advanced book of at least one symbol.
    pub leader: bool,
    /// Fill time (Unix ms) of the newest trade it delivered: it stops moving while the line holds
    /// its live trades back, e.g. while it refills a hole from REST after a reconnect.
    pub last_trade_ms: Option<u64>,
}

/// State shared between the merging task and readers.
#[derive(Debug)]
pub struct LinesShared {
    monitors: RwLock<Vec<SourceMonitor>>,
    leaders: RwLock<HashMap<String, usize>>,
    lines: RwLock<Vec<LineStatus>>,
    /// Worker restarts of line instances that were replaced.
    retired_worker_restarts: AtomicU64,
    retired_reconnects: AtomicU64,
    messages: Counter,
    queue: AtomicU64,
}

impl LinesShared {
    pub(super) fn new(monitors: Vec<SourceMonitor>) -> Self {
        let lines = (0..monitors.len())
            .map(|i| LineStatus {
                line: line_name(i).into(),
                status: "connecting".into(),
                ..LineStatus::default()
            })
            .collect();
        LinesShared {
            monitors: RwLock::new(monitors),
            leaders: RwLock::new(HashMap::new()),
            lines: RwLock::new(lines),
            retired_worker_restarts: AtomicU64::new(0),
            retired_reconnects: AtomicU64::new(0),
            messages: Counter::default(),
            queue: AtomicU64::new(0),
        }
    }

    pub(super) fn count_message(&self) {
        self.messages.add();
    }

    pub(super) fn set_queue_size(&self, n: usize) {
        self.queue.store(n as u64, Ordering::Relaxed);
    }

    pub(super) fn set_leader(&self, symbol: &str, line: usize) {
        write(&self.leaders).insert(symbol.to_string(), line);
    }

    pub(super) fn line_pid(&self, line: usize) -> Option<u32> {
        read(&self.monitors).get(line).and_then(SourceMonitor::pid)
    }

    /// A line instance is being replaced: keep its counters.
    pub(super) fn retire(&self, _line: usize, old: &FeedSource) {
        self.retired_worker_restarts
            .fetch_add(old.worker_restarts(), Ordering::Relaxed);
        self.retired_reconnects
            .fetch_add(old.health().reconnects, Ordering::Relaxed);
    }

    pub(super) fn replace(&self, line: usize, monitor: SourceMonitor) {
        if let Some(m) = write(&self.monitors).get_mut(line) {
            *m = monitor;
        }
    }

    /// Refreshes every line's status from the arbiter and the lines' own health.
    pub(super) fn publish(&self, arbiter: &Arbiter, now_ms: u64) {
        let monitors = read(&self.monitors).clone();
        let leaders = read(&self.leaders).clone();
        let mut out = Vec::with_capacity(monitors.len());
        for (i, (m, st)) in monitors.iter().zip(arbiter.lines()).enumerate() {
            let h = m.health();
            let mut in_sync = true;
            let mut held = 0;
            let mut behind: Option<u64> = None;
            for s in arbiter_symbols(arbiter) {
                if let Some(t) = arbiter.trade_merge(&s) {
                    in_sync &= t.in_sync(i);
                    held += t.held(i);
                }
                if let Some(b) = arbiter.book_merge(&s).and_then(|b| b.behind(i)) {
                    behind = Some(behind.map_or(b, |x| x.max(b)));
                }
            }
            out.push(LineStatus {
                line: line_name(i).into(),
                status: h.status.clone(),
                connected: st.connected,
                pid: m.pid(),
                connects: st.connects,
                restarts: st.restarts,
                reconnects: h.reconnects,
                messages: st.messages,
                seconds_since_last_event: st
                    .last_market_ms
                    .map(|t| now_ms.saturating_sub(t) as f64 / 1000.0),
                in_sync,
                held_trades: held,
                behind_updates: behind,
                leader: leaders.values().any(|&l| l == i),
                last_trade_ms: st.last_trade_ms,
            });
        }
        *write(&self.lines) = out;
    }

    /// Each line's state (as of the last refresh: every lifecycle event and a few times a second).
    pub fn lines(&self) -> Vec<LineStatus> {
        read(&self.lines).clone()
    }

    /// The feed's health: connected while at least one line is live; counters summed over the
    /// lines; freshness from the freshest live line; `messages` counts merged market events.
    pub fn health(&self) -> HealthSnapshot {
        let snaps: Vec<HealthSnapshot> = read(&self.monitors).iter().map(|m| m.health()).collect();
        let live = |h: &HealthSnapshot| h.state == ConnState::Live;
        let best = snaps
            .iter()
            .max_by_key(|h| (live(h), h.last_update_ms.unwrap_or(0)))
            .cloned();
        let mut h = best.unwrap_or_else(|| HealthSnapshot {
            process_alive: false,
            queue_size: 0,
            error_count: 0,
            seconds_since_last_event: None,
            last_update: None,
            last_update_ms: None,
            reconnects: 0,
            stale_detections: 0,
            messages: 0,
            state: ConnState::Stopped,
            status: "down".into(),
            per_symbol: Default::default(),
        });
        h.process_alive = snaps.iter().any(|s| s.process_alive);
        h.error_count = snaps.iter().map(|s| s.error_count).sum();
        h.reconnects = snaps.iter().map(|s| s.reconnects).sum::<u64>()
            + self.retired_reconnects.load(Ordering::Relaxed);
        h.stale_detections = snaps.iter().map(|s| s.stale_detections).sum();
        h.messages = self.messages.get();
        h.queue_size = self.queue.load(Ordering::Relaxed);
        h
    }

    /// Whether at least one line is live.
    pub fn is_connected(&self) -> bool {
        read(&self.monitors).iter().any(SourceMonitor::is_connected)
    }

    /// The most advanced line's book of `symbol` (any line's when none is known yet).
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        let monitors = read(&self.monitors);
        let leader = read(&self.leaders).get(symbol).copied();
        if let Some(b) = leader
            .and_then(|l| monitors.get(l))
            .and_then(|m| m.book(symbol))
        {
            if b.is_synced() {
                return Some(b);
            }
        }
        let books: Vec<OrderBook> = monitors.iter().filter_map(|m| m.book(symbol)).collect();
        books
            .iter()
            .filter(|b| b.is_synced())
            .max_by_key(|b| b.last_u())
            .or(books.first())
            .cloned()
    }

    /// Each line's monitor (for requests made to every line).
    pub fn monitors(&self) -> Vec<SourceMonitor> {
        read(&self.monitors).clone()
    }

    /// The first line's worker pid that is running.
    pub fn pid(&self) -> Option<u32> {
        read(&self.monitors).iter().find_map(SourceMonitor::pid)
    }

    /// Worker restarts over every line (process isolation).
    pub fn worker_restarts(&self) -> u64 {
        read(&self.monitors)
            .iter()
            .map(SourceMonitor::worker_restarts)
            .sum::<u64>()
            + self.retired_worker_restarts.load(Ordering::Relaxed)
    }
}

fn arbiter_symbols(arbiter: &Arbiter) -> Vec<String> {
    arbiter.symbols().to_vec()
}
