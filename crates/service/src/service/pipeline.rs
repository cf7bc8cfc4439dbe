//! One feed's pipeline in the service: takes the feed's events (in-process or from a worker) and
//! turns them into shared state (statuses, books, trades, events), live candles stitched to REST
//! history, store writes and metrics.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backfill::{stored, Job, KlineFetcher};
use super::state::{BookReader, BookTop, FeedKey, LogEvent, ServiceState};
use super::writer::StoreWriter;
use crate::backfill::plan::plan_chunks;
use crate::candles::{missing_intervals, CandleAggregator, Interval};
use crate::feed::health::{iso_time, unix_ms, HealthSnapshot};
use crate::feed::{FeedEvent, FeedHandle};
use crate::protocol::rest::Candle;
use crate::protocol::Category;
use crate::store::{Retention, StatusRecord, StoredCandle, StoredTrade};

/// What the pipeline needs from a feed, whichever way it runs.
pub trait EventSource: Send {
    /// Appends the events queued now to `out`, waiting for one if none is; how many (0: the
    /// feed ended). One hand-off per burst (`next_batch` of the feed types).
    fn next_events<'a>(
        &'a mut self,
        out: &'a mut Vec<FeedEvent>,
    ) -> impl Future<Output = usize> + Send + 'a;
    /// Health.
    fn health(&self) -> HealthSnapshot;
    /// Worker pid (process isolation).
    fn pid(&self) -> Option<u32>;
    /// Worker restarts so far.
    fn worker_restarts(&self) -> u64;
    /// A reader of the current books that outlives borrows of the source.
    fn book_reader(&self) -> BookReader;
    /// Each line of an A/B feed (empty with one line).
    fn lines(&self) -> Vec<crate::lines::LineStatus> {
        Vec::new()
    }
}

impl EventSource for FeedHandle {
    fn next_events<'a>(
        &'a mut self,
        out: &'a mut Vec<FeedEvent>,
    ) -> impl Future<Output = usize> + Send + 'a {
        self.next_batch(out)
    }
    fn health(&self) -> HealthSnapshot {
        FeedHandle::health(self)
    }
    fn pid(&self) -> Option<u32> {
        None
    }
    fn worker_restarts(&self) -> u64 {
        0
    }
    fn book_reader(&self) -> BookReader {
        let monitor = crate::source::SourceMonitor::InProcess(self.shared());
        std::sync::Arc::new(move |symbol| monitor.book(symbol))
    }
}

impl EventSource for crate::source::FeedSource {
    fn next_events<'a>(
        &'a mut self,
        out: &'a mut Vec<FeedEvent>,
    ) -> impl Future<Output = usize> + Send + 'a {
        self.next_batch(out)
    }
    fn health(&self) -> HealthSnapshot {
        crate::source::FeedSource::health(self)
    }
    fn pid(&self) -> Option<u32> {
        crate::source::FeedSource::pid(self)
    }
    fn worker_restarts(&self) -> u64 {
        crate::source::FeedSource::worker_restarts(self)
    }
    fn book_reader(&self) -> BookReader {
        let monitor = self.monitor();
        std::sync::Arc::new(move |symbol| monitor.book(symbol))
    }
    fn lines(&self) -> Vec<crate::lines::LineStatus> {
        crate::source::FeedSource::lines(self)
    }
}

/// Messages of one batch by type, counted into the metrics once per batch (one lock and no key
/// built per event).
#[derive(Default)]
struct Delivered {
    trade: u64,
    book: u64,
    lifecycle: u64,
}

impl Delivered {
    fn record(&mut self, metrics: &super::metrics::Metrics, category: Category) {
        for (kind, n) in [
            ("trade", self.trade),
            ("book", self.book),
            ("lifecycle", self.lifecycle),
        ] {
            if n > 0 {
                metrics.record_messages(category.as_str(), kind, n);
            }
        }
        *self = Delivered::default();
    }
}

/// Live candle aggregators by symbol, then (interval name, aggregator): looked up by `&str` on
/// every trade, with no key built per trade.
type Aggregators = HashMap<String, Vec<(String, CandleAggregator)>>;

/// How often statuses are refreshed and trades flushed to the store.
pub const TICK: Duration = Duration::from_millis(250);

/// A REST candle fetched to stitch live candles to history.
struct Stitch {
    symbol: String,
    interval: String,
    open: Option<Candle>,
    as_of: u64,
}

/// The pipeline of one feed (one category, its symbols).
pub struct Pipeline<S: EventSource> {
    /// The feed.
    pub source: S,
    /// Category.
    pub category: Category,
    /// Symbols.
    pub symbols: Vec<String>,
    /// Shared state.
    pub state: ServiceState,
    /// Store.
    pub store: StoreWriter,
    /// Kline fetcher for stitching and outage re-fetch.
    pub fetcher: KlineFetcher,
    /// Intervals of the live candles (Bybit names: `1`, `5`, `60`, `D`...).
    pub intervals: Vec<String>,
    /// Trade retention.
    pub retention: Retention,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn log_event(
    level: &str,
    event: &str,
    category: Category,
    symbol: Option<&str>,
    detail: String,
) -> LogEvent {
    LogEvent {
        timestamp: iso_time(unix_ms()).unwrap_or_default(),
        level: level.into(),
        event: event.into(),
        category: Some(category),
        symbol: symbol.map(str::to_string),
        detail,
    }
}

impl<S: EventSource> Pipeline<S> {
    fn key(&self, symbol: &str) -> FeedKey {
        FeedKey {
            category: self.category,
            symbol: symbol.to_string(),
        }
    }

    /// Runs until the feed ends or `cancel` fires; returns the source for shutdown.
    pub async fn run(mut self, cancel: CancellationToken) -> S {
        // Validated with the configuration; an invalid one would simply build no candles.
        let intervals: Vec<Interval> = self
            .intervals
            .iter()
            .filter_map(|i| Interval::parse(i).ok())
            .collect();
        let reader = self.source.book_reader();
        for s in &self.symbols {
            self.state.set_book_reader(&self.key(s), reader.clone());
        }
        let mut aggs: Aggregators = HashMap::new();
        for s in &self.symbols {
            for i in &intervals {
                if let Ok(a) = CandleAggregator::new(s, i.name()) {
                    aggs.entry(s.clone())
                        .or_default()
                        .push((i.name().to_string(), a));
                }
            }
        }
        let (stitch_tx, mut stitch_rx) = mpsc::channel::<Stitch>(64);
        let mut pending: Vec<StoredTrade> = Vec::new();
        let mut last_status: HashMap<String, String> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        let mut ticks: u64 = 0;
        // Everything the feed queued, taken in one wake-up (kept allocated between batches).
        let mut batch: Vec<FeedEvent> = Vec::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                stitch = stitch_rx.recv() => {
                    if let Some(st) = stitch {
                        self.on_stitch(&mut aggs, st);
                    }
                }
                n = self.source.next_events(&mut batch) => {
                    if n == 0 {
                        break;
                    }
                    let mut delivered = Delivered::default();
                    for ev in batch.drain(..) {
                        self.on_event(ev, &mut aggs, &mut pending, &stitch_tx, &intervals, &mut delivered);
                    }
                    delivered.record(self.state.metrics(), self.category);
                }
                _ = tick.tick() => {
                    ticks += 1;
                    self.store.trades(std::mem::take(&mut pending));
                    self.refresh_status(&mut last_status);
                    let now = unix_ms();
                    for (_, agg) in aggs.values_mut().flatten() {
                        let closed = agg.close_due(now);
                        self.publish_candles(&closed);
                        if ticks % 4 == 0 {
                            if let Some(open) = agg.current() {
                                self.publish_candles(std::slice::from_ref(&open));
                            }
                        }
                    }
                    if ticks % 240 == 0 {
                        self.store.prune(self.retention, now);
                    }
                }
            }
        }
        self.store.trades(pending);
        self.source
    }

    fn publish_candles(&self, candles: &[crate::candles::BuiltCandle]) {
        if candles.is_empty() {
            return;
        }
        self.store.candles(
            candles
                .iter()
                .map(|c| StoredCandle::from_built(c, self.category))
                .collect(),
        );
        let now = unix_ms();
        for c in candles {
            self.state.push_candle(self.category, c.to_kline_event(now));
        }
    }

    fn on_stitch(&self, aggs: &mut Aggregators, st: Stitch) {
        let Some((_, agg)) = aggs
            .get_mut(&st.symbol)
            .and_then(|v| v.iter_mut().find(|(name, _)| *name == st.interval))
        else {
            return;
        };
        let Some(open) = st.open else { return };
        if open.volume.is_zero() {
            // REST saw no trade in this interval yet: its flat candle (open = previous close) says
            // nothing the live trades do not, and the first live trade is the true open.
            tracing::debug!(event = "candle_stitch_not_needed", symbol = %st.symbol, start_ms = open.start_ms);
            return;
        }
        match agg.reconcile_open(&open, st.as_of) {
            Ok(r) => {
                tracing::info!(event = "candle_stitched", symbol = %st.symbol, start_ms = r.candle.start_ms, kept_live = r.kept_live, dropped_covered = r.dropped_covered);
                self.publish_candles(std::slice::from_ref(&r.candle));
            }
            // Only after an outage that began inside this interval: the trades it missed are refilled
            // from REST by the feed, so the live candle stays exact without the stitch.
            Err(e) => {
                tracing::info!(event = "candle_stitch_skipped", symbol = %st.symbol, reason = %e)
            }
        }
    }

    fn on_event(
        &mut self,
        ev: FeedEvent,
        aggs: &mut Aggregators,
        pending: &mut Vec<StoredTrade>,
        stitch: &mpsc::Sender<Stitch>,
        intervals: &[Interval],
        delivered: &mut Delivered,
    ) {
        let cat = self.category;
        if let Some(sink) = self.state.nats() {
            sink.offer(cat, &self.symbols, &ev);
        }
        let metrics = self.state.metrics();
        match ev {
            FeedEvent::Trade(t) => {
                delivered.trade += 1;
                if let Some(r) = t.recv_ns {
                    metrics.observe_latency_ns(now_ns().saturating_sub(r));
                }
                let key = self.key(&t.symbol);
                self.state.push_trade(&key, &t);
                for (_, agg) in aggs.get_mut(&t.symbol).into_iter().flatten() {
                    let pushed = agg.push(&t);
                    self.publish_candles(&pushed.closed);
                }
                pending.push(StoredTrade::from_event(&t, cat));
                if pending.len() >= 1000 {
                    self.store.trades(std::mem::take(pending));
                }
            }
            FeedEvent::Book(b) => {
                delivered.book += 1;
                if let Some(r) = b.recv_ns {
                    metrics.observe_latency_ns(now_ns().saturating_sub(r));
                }
                // No book copy per update: the top travels with the event, and /api/book reads
                // the feed's own book on request (registered in `run`).
                self.state
                    .book_updated(&self.key(&b.symbol), BookTop::of_event(&b));
            }
            FeedEvent::Connected { connection, .. } => {
                delivered.lifecycle += 1;
                for s in self.symbols.clone() {
                    self.state.push_event(log_event(
                        "INFO",
                        "bybit_connector_connected",
                        cat,
                        Some(&s),
                        format!("connection {connection}"),
                    ));
                    for i in intervals {
                        self.spawn_stitch(&s, i.clone(), stitch.clone());
                    }
                }
            }
            FeedEvent::Disconnected { reason } => {
                delivered.lifecycle += 1;
                for (_, agg) in aggs.values_mut().flatten() {
                    agg.interrupted();
                }
                self.state.push_event(log_event(
                    "WARN",
                    "connector_disconnected",
                    cat,
                    None,
                    reason.to_string(),
                ));
            }
            other => {
                delivered.lifecycle += 1;
                let (level, name, symbol, detail) = match &other {
                    FeedEvent::Stale { seconds_since_last_event, stale_threshold, symbol } => (
                        "WARN",
                        "bybit_connector_stale_connection_detected",
                        Some(symbol.clone()),
                        format!("{seconds_since_last_event:.1} s since the last event (threshold {stale_threshold} s)"),
                    ),
                    FeedEvent::Resync { symbol, depth, reason } => ("WARN", "bybit_connector_book_resync", Some(symbol.clone()), format!("orderbook.{depth}: {reason:?}")),
                    FeedEvent::TradesRecovered { symbol, count, from_ms, to_ms } => ("INFO", "bybit_connector_trades_recovered", Some(symbol.clone()), format!("{count} trades from {from_ms} to {to_ms}")),
                    FeedEvent::TradeGap { symbol, from_ms, to_ms } => ("ERROR", "bybit_connector_trade_gap_unrecoverable", Some(symbol.clone()), format!("trades between {from_ms} and {to_ms} could not be recovered")),
                    FeedEvent::SubscriptionRefused { topic, ret_msg } => ("ERROR", "bybit_connector_subscription_refused", None, format!("{topic}: {ret_msg}")),
                    FeedEvent::Malformed { error } => ("WARN", "bybit_connector_malformed_frame", None, error.clone()),
                    FeedEvent::GaveUp { attempts } => ("ERROR", "bybit_connector_gave_up", None, format!("after {attempts} attempts")),
                    _ => return,
                };
                self.state
                    .push_event(log_event(level, name, cat, symbol.as_deref(), detail));
            }
        }
    }

    /// Fetches REST candles from the last confirmed stored candle to now: closed ones fill what the
    /// outage (or the time before start) missed; the open one is stitched to the live candle.
    fn spawn_stitch(&self, symbol: &str, interval: Interval, tx: mpsc::Sender<Stitch>) {
        let store = self.store.clone();
        let fetcher = self.fetcher.clone();
        let state = self.state.clone();
        let job = Job {
            category: self.category,
            symbol: symbol.to_string(),
            interval: interval.name().to_string(),
            from_ms: 0,
            to_ms: 0,
            limit: 1000,
        };
        tokio::spawn(async move {
            let (sym, cat, name) = (job.symbol.clone(), job.category, job.interval.clone());
            let last = store
                .read(move |s| {
                    s.latest_candle(&sym, cat, &name, true)
                        .ok()
                        .flatten()
                        .map(|c| c.start_ms)
                })
                .await
                .ok()
                .flatten();
            let now = unix_ms();
            // At most one day back: older history is the backfill's job.
            let floor = interval.start_of(now.saturating_sub(86_400_000));
            let from = match last {
                Some(l) => missing_intervals(&interval, l, now)
                    .map_or(interval.start_of(now), |m| m.from_ms)
                    .max(floor),
                None => interval.start_of(now),
            };
            let to = interval.start_of(now) + interval.ms();
            let Ok(chunks) = plan_chunks(
                &job.symbol,
                job.category,
                &job.interval,
                from,
                to,
                job.limit,
            ) else {
                return;
            };
            let mut open = None;
            let mut as_of = now;
            for chunk in chunks {
                match fetcher.fetch(&chunk).await {
                    Ok((candles, t)) => {
                        as_of = t;
                        let rows = stored(&job, interval.ms(), &candles, t);
                        let n_closed = rows.iter().filter(|c| c.confirmed).count();
                        store.candles(rows.into_iter().filter(|c| c.confirmed).collect());
                        if n_closed > 0 {
                            tracing::info!(event = "candles_refetched", symbol = %job.symbol, category = %job.category, count = n_closed);
                        }
                        open = candles
                            .into_iter()
                            .rfind(|c| c.start_ms + interval.ms() > t)
                            .or(open);
                    }
                    Err(e) => {
                        tracing::warn!(event = "candles_refetch_failed", symbol = %job.symbol, error = %e);
                        state.push_event(log_event(
                            "WARN",
                            "candles_refetch_failed",
                            job.category,
                            Some(&job.symbol),
                            e.to_string(),
                        ));
                        return;
                    }
                }
            }
            let _ = tx
                .send(Stitch {
                    symbol: job.symbol,
                    interval: job.interval,
                    open,
                    as_of,
                })
                .await;
        });
    }

    fn refresh_status(&self, last_status: &mut HashMap<String, String>) {
        let h = self.source.health();
        let pid = self.source.pid();
        let restarts = self.source.worker_restarts();
        let lines = self.source.lines();
        for s in &self.symbols {
            let key = self.key(s);
            self.state.update_status(&key, |st| {
                st.apply_health(&h, pid);
                st.worker_restarts = restarts;
                st.lines.clone_from(&lines);
                true
            });
            if last_status.get(s) != Some(&h.status) {
                self.store.status(StatusRecord {
                    ts_ms: unix_ms(),
                    symbol: s.clone(),
                    category: self.category,
                    status: h.status.clone(),
                    detail: format!("{:?}", h.state),
                });
                last_status.insert(s.clone(), h.status.clone());
            }
        }
    }
}
