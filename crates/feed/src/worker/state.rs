//! What the supervisor knows about its worker, shared with readers on any thread: the exact books
//! rebuilt from the received book events, the worker's pid, liveness and restarts, and the health
//! snapshot combining the worker's own reports with what only the supervisor can see.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Instant;

use crate::book::OrderBook;
use crate::feed::health::{iso_time, unix_ms, SymbolHealth};
use crate::feed::{ConnState, FeedEvent, HealthSnapshot};
use crate::normalized::BookEvent;
use crate::protocol::ws::Level;

/// State shared between the supervisor task and its handles.
#[derive(Debug, Default)]
pub struct WorkerShared {
    /// Books by symbol, rebuilt by applying every received book event.
    pub books: RwLock<HashMap<String, OrderBook>>,
    pid: AtomicU32,
    alive: AtomicBool,
    restarts: AtomicU64,
    queue_size: AtomicU64,
    health: Mutex<Tracked>,
    /// When the current worker was last heard from (any frame), Unix ms.
    heard_ms: AtomicU64,
    /// Silence after which the worker counts as not alive (ms; 0: never).
    silent_limit_ms: AtomicU64,
    /// The supervisor is waiting for the consumer (the worker's silence is not its own).
    consumer_wait: AtomicBool,
    /// The supervisor judged the current worker hung.
    hung: AtomicBool,
}

/// Health inputs behind one lock.
#[derive(Debug)]
struct Tracked {
    /// The current worker's last report.
    worker: Option<HealthSnapshot>,
    /// Counters of the workers that came before (their last reports, summed).
    base_errors: u64,
    base_reconnects: u64,
    base_stale: u64,
    /// Errors and hangs only the supervisor sees (worker deaths, protocol errors).
    own_errors: u64,
    own_stale: u64,
    messages: u64,
    state: ConnState,
    /// Per symbol: (last market event or going live, Unix ms of the last market event or 0).
    last_event: HashMap<String, (Instant, u64)>,
    /// Per symbol, over every worker: (market events delivered, stale detections naming it).
    symbol_counts: HashMap<String, (u64, u64)>,
    last_update_ms: Option<u64>,
}

impl Default for Tracked {
    fn default() -> Self {
        Tracked {
            worker: None,
            base_errors: 0,
            base_reconnects: 0,
            base_stale: 0,
            own_errors: 0,
            own_stale: 0,
            messages: 0,
            state: ConnState::Connecting,
            last_event: HashMap::new(),
            symbol_counts: HashMap::new(),
            last_update_ms: None,
        }
    }
}

impl WorkerShared {
    fn tracked(&self) -> MutexGuard<'_, Tracked> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current worker's pid (`None` between workers).
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::Relaxed) {
            0 => None,
            p => Some(p),
        }
    }

    /// Whether a worker process is running.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Whether a worker process is running and responsive: not judged hung, and heard from
    /// within its silence limit (unless the supervisor is the one waiting, for the consumer).
    pub fn is_responsive(&self) -> bool {
        if !self.is_alive() || self.hung.load(Ordering::Relaxed) {
            return false;
        }
        let limit = self.silent_limit_ms.load(Ordering::Relaxed);
        limit == 0
            || self.consumer_wait.load(Ordering::Relaxed)
            || unix_ms().saturating_sub(self.heard_ms.load(Ordering::Relaxed)) <= limit
    }

    /// A frame arrived from the worker (or the supervisor stopped waiting for the consumer).
    pub(crate) fn heard(&self) {
        self.heard_ms.store(unix_ms(), Ordering::Relaxed);
    }

    /// Sets the silence after which the worker counts as not alive.
    pub(crate) fn set_silent_limit(&self, limit: std::time::Duration) {
        self.silent_limit_ms
            .store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    /// The supervisor starts or stops waiting for the consumer.
    pub(crate) fn set_consumer_wait(&self, waiting: bool) {
        self.consumer_wait.store(waiting, Ordering::Relaxed);
        if !waiting {
            self.heard();
        }
    }

    /// The supervisor judged the current worker hung (it is being replaced).
    pub(crate) fn set_hung(&self) {
        self.hung.store(true, Ordering::Relaxed);
    }

    /// Workers started to replace one that died, hung or broke the protocol.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Whether the worker's feed is live.
    pub fn is_connected(&self) -> bool {
        self.is_alive() && self.tracked().state == ConnState::Live
    }

    /// A copy of `symbol`'s book.
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        let books = self.books.read().unwrap_or_else(|p| p.into_inner());
        books.get(symbol).cloned()
    }

    /// The health snapshot: `process_alive` the worker process running and responsive (false while
    /// it is dead, hung or being replaced), `queue_size` the events
    /// buffered between worker and consumer, counters summed over every worker so far.
    pub fn snapshot(&self) -> HealthSnapshot {
        let alive = self.is_responsive();
        let t = self.tracked();
        let w = t.worker.as_ref();
        let now = Instant::now();
        let stalest = t
            .last_event
            .values()
            .map(|(at, _)| now.duration_since(*at).as_secs_f64())
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        let per_symbol: BTreeMap<String, SymbolHealth> = t
            .last_event
            .iter()
            .map(|(s, (at, unix))| {
                let (messages, stale_detections) =
                    t.symbol_counts.get(s).copied().unwrap_or_default();
                let h = SymbolHealth {
                    seconds_since_last_event: now.duration_since(*at).as_secs_f64(),
                    last_update_ms: (*unix > 0).then_some(*unix),
                    messages,
                    stale_detections,
                };
                (s.clone(), h)
            })
            .collect();
        HealthSnapshot {
            process_alive: alive,
            queue_size: self.queue_size.load(Ordering::Relaxed),
            error_count: t.base_errors + t.own_errors + w.map_or(0, |w| w.error_count),
            seconds_since_last_event: stalest,
            last_update: t.last_update_ms.and_then(iso_time),
            last_update_ms: t.last_update_ms,
            reconnects: t.base_reconnects + self.restarts() + w.map_or(0, |w| w.reconnects),
            stale_detections: t.base_stale + t.own_stale + w.map_or(0, |w| w.stale_detections),
            messages: t.messages,
            state: t.state,
            status: t.state.status().to_string(),
            per_symbol,
        }
    }

    pub(crate) fn set_queue_size(&self, n: usize) {
        self.queue_size.store(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_state(&self, s: ConnState) {
        self.tracked().state = s;
    }

    /// A new worker process is running.
    pub(crate) fn worker_started(&self, pid: u32, replacement: bool) {
        self.pid.store(pid, Ordering::Relaxed);
        self.alive.store(true, Ordering::Relaxed);
        self.hung.store(false, Ordering::Relaxed);
        self.heard();
        if replacement {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        self.set_state(ConnState::Connecting);
    }

    /// The worker process is gone (reaped): its counters become the base of the next one's.
    pub(crate) fn worker_exited(&self) {
        self.alive.store(false, Ordering::Relaxed);
        let mut t = self.tracked();
        if let Some(w) = t.worker.take() {
            t.base_errors += w.error_count;
            t.base_reconnects += w.reconnects;
            t.base_stale += w.stale_detections;
        }
        t.state = ConnState::Disconnected;
    }

    /// Between workers (no pid).
    pub(crate) fn clear_pid(&self) {
        self.pid.store(0, Ordering::Relaxed);
    }

    /// Counts an error only the supervisor sees; `stale` for a hung worker.
    pub(crate) fn supervisor_error(&self, stale: bool) {
        let mut t = self.tracked();
        t.own_errors += 1;
        if stale {
            t.own_stale += 1;
        }
    }

    /// The worker's periodic report.
    pub(crate) fn report(&self, h: HealthSnapshot) {
        let mut t = self.tracked();
        t.state = h.state;
        t.worker = Some(h);
    }

    /// Updates state, clocks and books for an event about to be delivered.
    pub(crate) fn observe(&self, ev: &FeedEvent) {
        match ev {
            FeedEvent::Trade(tr) => self.market(&tr.symbol, tr.recv_ns),
            FeedEvent::Book(b) => {
                self.apply_book(b);
                self.market(&b.symbol, b.recv_ns);
            }
            FeedEvent::Connected { symbols, .. } => {
                let mut t = self.tracked();
                t.state = ConnState::Live;
                let now = Instant::now();
                for s in symbols {
                    t.last_event.entry(s.clone()).or_insert((now, 0)).0 = now;
                }
            }
            FeedEvent::Disconnected { .. } => self.set_state(ConnState::Disconnected),
            FeedEvent::Stale { symbol, .. } => {
                let mut t = self.tracked();
                t.state = ConnState::Stale;
                t.symbol_counts.entry(symbol.clone()).or_default().1 += 1;
            }
            FeedEvent::SubscriptionRefused { .. } => self.set_state(ConnState::Refused),
            FeedEvent::GaveUp { .. } => self.set_state(ConnState::Stopped),
            FeedEvent::Resync { symbol, .. } => self.invalidate(Some(symbol)),
            _ => {}
        }
    }

    /// Counts a market event of `symbol`, received by the worker at `recv_ns` (one clock read
    /// per event here, not three: this runs for every message).
    fn market(&self, symbol: &str, recv_ns: Option<u64>) {
        let unix = recv_ns.map_or_else(unix_ms, |ns| ns / 1_000_000);
        let now = Instant::now();
        let mut t = self.tracked();
        t.messages += 1;
        t.last_update_ms = Some(unix);
        match t.symbol_counts.get_mut(symbol) {
            Some(c) => c.0 += 1,
            None => {
                t.symbol_counts.insert(symbol.to_string(), (1, 0));
            }
        }
        match t.last_event.get_mut(symbol) {
            Some(at) => *at = (now, unix),
            None => {
                t.last_event.insert(symbol.to_string(), (now, unix));
            }
        }
    }

    /// Applies a received book event exactly as the worker applied it.
    fn apply_book(&self, b: &BookEvent) {
        let level = |(price, qty): &(rust_decimal::Decimal, rust_decimal::Decimal)| Level {
            price: *price,
            qty: *qty,
        };
        let bids: Vec<Level> = b.bids.iter().map(level).collect();
        let asks: Vec<Level> = b.asks.iter().map(level).collect();
        let mut books = self.books.write().unwrap_or_else(|p| p.into_inner());
        let book = books
            .entry(b.symbol.clone())
            .or_insert_with(|| OrderBook::new(b.symbol.clone(), b.depth));
        let outcome = book.apply_levels(b.kind, b.u, b.seq, b.ts_ms, &bids, &asks);
        if !outcome.applied() {
            tracing::warn!(
                event = "bybit_connector_supervisor_book_mismatch",
                symbol = %b.symbol,
                u = b.u,
                outcome = ?outcome,
            );
        }
    }

    /// Marks books untrustworthy until their next snapshot (`None`: every book).
    pub(crate) fn invalidate(&self, symbol: Option<&str>) {
        let mut books = self.books.write().unwrap_or_else(|p| p.into_inner());
        match symbol {
            Some(s) => {
                if let Some(b) = books.get_mut(s) {
                    b.invalidate();
                }
            }
            None => books.values_mut().for_each(OrderBook::invalidate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ws::BookKind;
    use rust_decimal::Decimal;

    fn book(kind: BookKind, u: u64, bids: &[(i64, i64)]) -> FeedEvent {
        FeedEvent::Book(Box::new(BookEvent {
            symbol: "X".into(),
            depth: 50,
            kind,
            u,
            seq: None,
            ts_ms: u,
            cts_ms: None,
            bids: bids
                .iter()
                .map(|(p, q)| (Decimal::from(*p), Decimal::from(*q)))
                .collect(),
            asks: vec![(Decimal::from(1000), Decimal::ONE)],
            best_bid: None,
            best_ask: None,
            levels: (0, 0),
            category: None,
            recv_ns: None,
            top: None,
        }))
    }

    #[test]
    fn books_follow_received_events_and_worker_death_invalidates_them() {
        let s = WorkerShared::default();
        s.observe(&book(BookKind::Snapshot, 1, &[(10, 1), (9, 2)]));
        s.observe(&book(BookKind::Delta, 2, &[(10, 0), (8, 5)]));
        let b = s.book("X").unwrap();
        assert!(b.is_synced());
        assert_eq!(b.last_u(), Some(2));
        let prices: Vec<_> = b.bids().iter().map(|l| l.price).collect();
        assert_eq!(prices, vec![Decimal::from(9), Decimal::from(8)]);
        s.invalidate(None);
        assert!(!s.book("X").unwrap().is_synced());
    }

    #[test]
    fn counters_add_up_across_workers() {
        let s = WorkerShared::default();
        s.worker_started(10, false);
        let mut h = s.snapshot();
        h.error_count = 3;
        h.reconnects = 2;
        h.state = ConnState::Live;
        s.report(h.clone());
        assert!(s.is_connected());
        s.worker_exited();
        s.supervisor_error(false);
        assert!(!s.is_connected());
        s.worker_started(11, true);
        h.error_count = 1;
        h.reconnects = 0;
        s.report(h);
        let snap = s.snapshot();
        assert_eq!(snap.error_count, 3 + 1 + 1);
        assert_eq!(
            snap.reconnects,
            2 + 1,
            "a worker restart counts as a reconnect"
        );
        assert_eq!((s.pid(), s.restarts()), (Some(11), 1));
    }
}
