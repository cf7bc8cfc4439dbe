//! The service's shared state: what every feed is doing, the latest books, recent trades, recent
//! lifecycle events, backfill progress, and a broadcast of changes. The service writes it; the HTTP
//! API, metrics and dashboard read it.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::metrics::Metrics;
use crate::backfill::BackfillProgress;
use crate::book::OrderBook;
use crate::feed::health::HealthSnapshot;
use crate::normalized::{BookEvent, KlineEvent, Pair, TradeEvent};
use crate::protocol::Category;

/// Trades kept in memory per feed for `/api/trades` (older ones are in the store).
pub const RECENT_TRADES: usize = 2_000;
/// Lifecycle events kept for the dashboard.
pub const RECENT_EVENTS: usize = 200;

/// Identifies one symbol of one category.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FeedKey {
    /// Category.
    pub category: Category,
    /// Symbol.
    pub symbol: String,
}

/// Backfill progress as the status API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackfillStatus {
    /// Chunks stored.
    pub done: u64,
    /// Chunks planned.
    pub total: u64,
    /// `pending`, `running`, `done`, `failed` or `disabled`.
    pub state: String,
}

impl From<&BackfillProgress> for BackfillStatus {
    fn from(p: &BackfillProgress) -> Self {
        let state = serde_json::to_value(p.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        BackfillStatus {
            done: p.done,
            total: p.total,
            state,
        }
    }
}

/// One feed's status: the `/api/status` contract (fields may be added, never renamed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// `connected`, `connecting`, `disconnected` or `down`.
    pub status: String,
    /// Time of the last market event (ISO-8601 UTC).
    pub last_update: Option<String>,
    /// Seconds since the last market event.
    pub seconds_since_last_event: Option<f64>,
    /// The feed's task or worker process is alive.
    pub process_alive: bool,
    /// Worker process id (process isolation only).
    pub pid: Option<u32>,
    /// Events buffered between the feed and the service.
    pub queue_size: u64,
    /// Errors so far.
    pub error_count: u64,
    /// Reconnects so far.
    pub reconnects: u64,
    /// Kline backfill progress.
    pub backfill: BackfillStatus,
    /// Stale detections so far.
    pub stale_detections: u64,
    /// Worker restarts so far (process isolation).
    pub worker_restarts: u64,
    /// Market events so far.
    pub messages: u64,
    /// Best bid / best ask of the current book.
    pub best_bid: Option<Pair>,
    /// Best ask.
    pub best_ask: Option<Pair>,
    /// Each line of an A/B feed (`[feed] lines = 2`); absent with one line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<crate::lines::LineStatus>,
}

impl FeedStatus {
    /// A status for a feed that has not started yet.
    pub fn new(key: &FeedKey) -> Self {
        FeedStatus {
            symbol: key.symbol.clone(),
            category: key.category,
            status: "connecting".into(),
            last_update: None,
            seconds_since_last_event: None,
            process_alive: false,
            pid: None,
            queue_size: 0,
            error_count: 0,
            reconnects: 0,
            backfill: BackfillStatus {
                state: "pending".into(),
                ..Default::default()
            },
            stale_detections: 0,
            worker_restarts: 0,
            messages: 0,
            best_bid: None,
            best_ask: None,
            lines: Vec::new(),
        }
    }

    /// Copies the health fields in (this symbol's freshness when the feed reports it).
    pub fn apply_health(&mut self, h: &HealthSnapshot, pid: Option<u32>) {
        self.status = h.status.clone();
        // Counts and freshness are this symbol's own, never its connection's (which carries
        // every symbol of the category); a symbol the feed has not reported yet has none.
        let own = h.per_symbol.get(&self.symbol).cloned().unwrap_or_default();
        let seen = h.per_symbol.contains_key(&self.symbol);
        self.seconds_since_last_event = seen.then_some(own.seconds_since_last_event);
        self.last_update = own.last_update_ms.and_then(crate::feed::health::iso_time);
        self.process_alive = h.process_alive;
        self.pid = pid;
        self.queue_size = h.queue_size;
        self.error_count = h.error_count;
        self.reconnects = h.reconnects;
        self.stale_detections = own.stale_detections;
        self.messages = own.messages;
    }
}

/// A notable event for operators (also streamed), in the shape of a log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// UTC time, ISO-8601.
    pub timestamp: String,
    /// `INFO`, `WARN` or `ERROR`.
    pub level: String,
    /// Stable event name (e.g. `bybit_connector_stale_connection_detected`).
    pub event: String,
    /// Category.
    pub category: Option<Category>,
    /// Symbol.
    pub symbol: Option<String>,
    /// Details.
    pub detail: String,
}

/// What the live event stream carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A feed's status changed (or its periodic refresh).
    Status(FeedStatus),
    /// A trade.
    Trade(TradeEvent),
    /// The top of a book changed.
    BookTop {
        /// Category.
        category: Category,
        /// Symbol.
        symbol: String,
        /// Update id.
        u: u64,
        /// Best bid.
        best_bid: Option<Pair>,
        /// Best ask.
        best_ask: Option<Pair>,
        /// Exchange time (ms).
        ts_ms: u64,
    },
    /// A candle changed (live or backfilled).
    Candle {
        /// Category.
        category: Category,
        /// The candle.
        candle: KlineEvent,
    },
    /// A lifecycle event.
    Log(LogEvent),
}

#[derive(Default)]
struct Entry {
    status: Option<FeedStatus>,
    /// Reads the feed's own book on request: the service keeps no copy per update.
    book: Option<BookReader>,
    /// The top of book last broadcast: (u, best bid, best ask).
    top: Option<(u64, Option<Pair>, Option<Pair>)>,
    trades: VecDeque<TradeEvent>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("status", &self.status)
            .field("book", &self.book.as_ref().map(|_| "reader"))
            .field("top", &self.top)
            .field("trades", &self.trades.len())
            .finish()
    }
}

/// The top of a book after an update: what the status and the live stream show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookTop {
    /// Update id.
    pub u: u64,
    /// Best bid.
    pub best_bid: Option<Pair>,
    /// Best ask.
    pub best_ask: Option<Pair>,
    /// Exchange time (ms).
    pub ts_ms: u64,
}

impl BookTop {
    /// The top carried by an applied update.
    pub fn of_event(b: &BookEvent) -> Self {
        BookTop {
            u: b.u,
            best_bid: b.best_bid,
            best_ask: b.best_ask,
            ts_ms: b.ts_ms,
        }
    }

    /// The top of a whole book.
    pub fn of_book(book: &OrderBook) -> Self {
        BookTop {
            u: book.last_u().unwrap_or(0),
            best_bid: book.best_bid().map(|l| (l.price, l.qty)),
            best_ask: book.best_ask().map(|l| (l.price, l.qty)),
            ts_ms: book.ts_ms(),
        }
    }
}

/// Reads the current exact book of a symbol from wherever the feed keeps it (the in-process
/// feed's books, or the worker supervisor's).
pub type BookReader = Arc<dyn Fn(&str) -> Option<OrderBook> + Send + Sync>;

/// Shared service state. Cheap to clone (`Arc` inside).
#[derive(Debug, Clone)]
pub struct ServiceState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    feeds: RwLock<BTreeMap<FeedKey, Entry>>,
    events: Mutex<VecDeque<LogEvent>>,
    tx: broadcast::Sender<StreamEvent>,
    token: Option<String>,
    store_path: Option<PathBuf>,
    metrics: Metrics,
    nats: std::sync::OnceLock<crate::sinks::NatsSink>,
    record: std::sync::OnceLock<Arc<crate::record::RecordStats>>,
    /// The store writer's count of live batches dropped on a full queue.
    store_dropped: std::sync::OnceLock<Arc<std::sync::atomic::AtomicU64>>,
    /// The running feeds, for the HTTP actions.
    controls: super::controls::FeedControls,
}

impl ServiceState {
    /// State for these feeds; `token` guards state-changing HTTP routes (none: they are refused).
    pub fn new(keys: &[FeedKey], token: Option<String>) -> Self {
        Self::with_store(keys, token, None)
    }

    /// As [`ServiceState::new`], with the SQLite store file readers may open (read-only) for
    /// candles and older trades.
    pub fn with_store(
        keys: &[FeedKey],
        token: Option<String>,
        store_path: Option<PathBuf>,
    ) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let feeds = keys
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    Entry {
                        status: Some(FeedStatus::new(k)),
                        ..Default::default()
                    },
                )
            })
            .collect();
        ServiceState {
            inner: Arc::new(Inner {
                feeds: RwLock::new(feeds),
                events: Mutex::new(VecDeque::new()),
                tx,
                token,
                store_path,
                metrics: Metrics::default(),
                nats: std::sync::OnceLock::new(),
                record: std::sync::OnceLock::new(),
                store_dropped: std::sync::OnceLock::new(),
                controls: Default::default(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<FeedKey, Entry>> {
        self.inner.feeds.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<FeedKey, Entry>> {
        self.inner.feeds.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The store file, when the service keeps one.
    pub fn store_path(&self) -> Option<&Path> {
        self.inner.store_path.as_deref()
    }

    /// Attaches the NATS sink the pipelines publish to (once; later calls are ignored).
    pub fn set_nats(&self, sink: crate::sinks::NatsSink) {
        let _ = self.inner.nats.set(sink);
    }

    /// The NATS sink, when one is configured.
    pub fn nats(&self) -> Option<&crate::sinks::NatsSink> {
        self.inner.nats.get()
    }

    /// Hot-path counters for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Shows this recorder's counters in `/api/status` (`record`); set once.
    pub fn set_record(&self, stats: Arc<crate::record::RecordStats>) {
        let _ = self.inner.record.set(stats);
    }

    /// Shows the store writer's dropped-batch count in `/metrics`; set once.
    pub fn set_store_dropped(&self, counter: Arc<std::sync::atomic::AtomicU64>) {
        let _ = self.inner.store_dropped.set(counter);
    }

    /// Live store batches dropped on a full writer queue, when a store is attached.
    pub fn store_dropped(&self) -> Option<u64> {
        self.inner
            .store_dropped
            .get()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The recorder's state, when recording (`[sinks.record]`).
    pub fn record_status(&self) -> Option<crate::record::RecordStatus> {
        self.inner.record.get().map(|s| s.status())
    }

    /// The running feeds by category (for state-changing routes such as reconnect).
    pub fn controls(&self) -> &super::controls::FeedControls {
        &self.inner.controls
    }

    /// The token state-changing routes require.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// Every feed's status, ordered by category then symbol.
    pub fn statuses(&self) -> Vec<FeedStatus> {
        self.read()
            .values()
            .filter_map(|e| e.status.clone())
            .collect()
    }

    /// The feeds configured.
    pub fn keys(&self) -> Vec<FeedKey> {
        self.read().keys().cloned().collect()
    }

    /// One feed's status.
    pub fn status(&self, key: &FeedKey) -> Option<FeedStatus> {
        self.read().get(key).and_then(|e| e.status.clone())
    }

    /// Updates a feed's status with `f`; broadcasts it when `f` returns true (a visible change).
    pub fn update_status(&self, key: &FeedKey, f: impl FnOnce(&mut FeedStatus) -> bool) {
        let changed = {
            let mut feeds = self.write();
            let entry = feeds.entry(key.clone()).or_default();
            let status = entry.status.get_or_insert_with(|| FeedStatus::new(key));
            f(status).then(|| status.clone())
        };
        if let Some(s) = changed {
            let _ = self.inner.tx.send(StreamEvent::Status(s));
        }
    }

    /// The current book of a feed, read from the feed itself (a copy is made only here, on
    /// request).
    pub fn book(&self, key: &FeedKey) -> Option<OrderBook> {
        let reader = self.read().get(key).and_then(|e| e.book.clone())?;
        reader(&key.symbol)
    }

    /// Where the book of a feed is read from (registered once when its pipeline starts).
    pub fn set_book_reader(&self, key: &FeedKey, reader: BookReader) {
        self.write().entry(key.clone()).or_default().book = Some(reader);
    }

    /// Serves a fixed book for a feed (tests, replays).
    pub fn set_book(&self, key: &FeedKey, book: &OrderBook) {
        self.book_updated(key, BookTop::of_book(book));
        let book = book.clone();
        self.set_book_reader(key, Arc::new(move |_| Some(book.clone())));
    }

    /// A book update was applied: updates the status's top of book and broadcasts it when it
    /// moved. Reads only the event (no book copy); the write lock is taken only on a move.
    pub fn book_updated(&self, key: &FeedKey, top: BookTop) {
        let BookTop {
            u,
            best_bid,
            best_ask,
            ts_ms,
        } = top;
        let moved = self
            .read()
            .get(key)
            .and_then(|e| e.top)
            .is_none_or(|(_, b, a)| b != best_bid || a != best_ask);
        if !moved {
            return;
        }
        {
            let mut feeds = self.write();
            let entry = feeds.entry(key.clone()).or_default();
            entry.top = Some((u, best_bid, best_ask));
            if let Some(s) = &mut entry.status {
                s.best_bid = best_bid;
                s.best_ask = best_ask;
            }
        }
        let _ = self.inner.tx.send(StreamEvent::BookTop {
            category: key.category,
            symbol: key.symbol.clone(),
            u,
            best_bid,
            best_ask,
            ts_ms,
        });
    }

    /// Records a trade (kept in a bounded ring) and broadcasts it.
    pub fn push_trade(&self, key: &FeedKey, trade: &TradeEvent) {
        {
            let mut feeds = self.write();
            let entry = feeds.entry(key.clone()).or_default();
            if entry.trades.len() >= RECENT_TRADES {
                entry.trades.pop_front();
            }
            entry.trades.push_back(trade.clone());
        }
        let _ = self.inner.tx.send(StreamEvent::Trade(trade.clone()));
    }

    /// Recent trades of a feed with `ts_ms >= since_ms`, oldest first, at most `limit` (the newest).
    pub fn trades(&self, key: &FeedKey, since_ms: Option<u64>, limit: usize) -> Vec<TradeEvent> {
        let feeds = self.read();
        let Some(e) = feeds.get(key) else {
            return Vec::new();
        };
        let matching: Vec<&TradeEvent> = e
            .trades
            .iter()
            .filter(|t| since_ms.is_none_or(|s| t.ts_ms >= s))
            .collect();
        let skip = matching.len().saturating_sub(limit);
        matching.into_iter().skip(skip).cloned().collect()
    }

    /// Broadcasts a candle change.
    pub fn push_candle(&self, category: Category, candle: KlineEvent) {
        let _ = self.inner.tx.send(StreamEvent::Candle { category, candle });
    }

    /// Records a lifecycle event (bounded) and broadcasts it.
    pub fn push_event(&self, e: LogEvent) {
        {
            let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
            if events.len() >= RECENT_EVENTS {
                events.pop_front();
            }
            events.push_back(e.clone());
        }
        let _ = self.inner.tx.send(StreamEvent::Log(e));
    }

    /// Recent lifecycle events, oldest first.
    pub fn recent_events(&self) -> Vec<LogEvent> {
        let events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().cloned().collect()
    }

    /// Subscribes to the live stream of changes.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.inner.tx.subscribe()
    }
}
