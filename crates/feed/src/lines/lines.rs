//! [`LinesFeed`]: one feed carried by two redundant lines, each an ordinary [`FeedSource`]
//! (in-process, or its own worker process), merged by the [`Arbiter`] into one event stream; a
//! line that stalls or falls behind is replaced without disturbing the merged stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::arbiter::{line_name, Arbiter, Lag, LagPolicy, LineNote};
use super::status::{LineStatus, LinesShared};
use crate::book::OrderBook;
use crate::feed::{ConfigError, FeedConfig, FeedEvent, HealthSnapshot};
use crate::source::{FeedSource, Isolation};
use crate::worker::WorkerOptions;

/// A feed over `feed.lines` redundant lines.
#[derive(Debug)]
pub struct LinesFeed {
    events: crate::queue::QueueRx,
    shared: Arc<LinesShared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    isolation: Isolation,
}

impl LinesFeed {
    /// Starts `cfg.feed.lines` lines of `cfg`, each with `isolation` (a worker process per line in
    /// process isolation).
    pub fn spawn(
        cfg: FeedConfig,
        isolation: Isolation,
        opts: WorkerOptions,
    ) -> Result<LinesFeed, ConfigError> {
        cfg.validate()?;
        let n = usize::from(cfg.feed.lines.max(1));
        let mut line_cfg = cfg.clone();
        line_cfg.feed.lines = 1;
        let mut sources = Vec::with_capacity(n);
        for i in 0..n {
            // Every event the line's own feed (or its worker's supervisor) logs carries `line`.
            let _line = line_span(i).entered();
            sources.push(Some(FeedSource::spawn_with(
                line_cfg.clone(),
                isolation,
                opts.clone(),
            )?));
        }
        let monitors = sources.iter().flatten().map(FeedSource::monitor).collect();
        let shared = Arc::new(LinesShared::new(monitors));
        // Bounded in events only, as before (each line's own queue bounds its bytes).
        let (tx, rx) = crate::queue::bounded(cfg.feed.queue_capacity, usize::MAX);
        let bursts = tx.clone();
        let cancel = CancellationToken::new();
        let policy = LagPolicy {
            stall_ms: (cfg.feed.line_stall_s * 1000.0).round() as u64,
            max_behind_updates: cfg.feed.line_behind_updates,
            promote_after_ms: (cfg.feed.line_stall_s * 1000.0).round() as u64,
        };
        let arbiter = Arbiter::new(n, cfg.feed.category.as_str(), &cfg.feed.symbols);
        let runner = Runner {
            line_cfg,
            isolation,
            opts,
            sources,
            arbiter,
            policy,
            shared: shared.clone(),
            tx,
            cancel: cancel.clone(),
            epoch: Instant::now(),
            leaders: HashMap::new(),
            last_restart_ms: vec![None; n],
        };
        let task = tokio::spawn(bursts.wake_per_burst(runner.run()));
        Ok(LinesFeed {
            events: rx,
            shared,
            cancel,
            task: Some(task),
            isolation,
        })
    }

    /// The next merged event; `None` once every line stopped and everything was read.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        let ev = self.events.recv().await;
        self.shared.set_queue_size(self.events.len());
        ev
    }

    /// Appends the merged events queued now to `events` (see
    /// [`crate::feed::FeedHandle::next_batch`]).
    pub async fn next_batch(&mut self, events: &mut Vec<FeedEvent>) -> usize {
        let n = self.events.recv_many(events).await;
        self.shared.set_queue_size(self.events.len());
        n
    }

    /// How each line runs.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Health of the feed: connected while any line is (see [`LinesShared::health`]).
    pub fn health(&self) -> HealthSnapshot {
        let mut h = self.shared.health();
        h.queue_size = self.events.len() as u64;
        h
    }

    /// Whether at least one line is live.
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// The most advanced line's book of `symbol`.
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        self.shared.book(symbol)
    }

    /// Each line's status.
    pub fn lines(&self) -> Vec<LineStatus> {
        self.shared.lines()
    }

    /// The shared view (for status APIs).
    pub fn shared(&self) -> Arc<LinesShared> {
        self.shared.clone()
    }

    /// Stops every line.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LinesFeed {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct Runner {
    line_cfg: FeedConfig,
    isolation: Isolation,
    opts: WorkerOptions,
    sources: Vec<Option<FeedSource>>,
    arbiter: Arbiter,
    policy: LagPolicy,
    shared: Arc<LinesShared>,
    tx: crate::queue::QueueTx,
    cancel: CancellationToken,
    epoch: Instant,
    leaders: HashMap<String, usize>,
    last_restart_ms: Vec<Option<u64>>,
}

/// The next event of a line, or never if the line is gone.
async fn next_of(source: &mut Option<FeedSource>) -> Option<FeedEvent> {
    match source {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

impl Runner {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn run(mut self) {
        let every = Duration::from_millis((self.policy.stall_ms / 4).clamp(50, 1000));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_status();
        while let [a, b, ..] = self.sources.as_mut_slice() {
            let (line, ev) = tokio::select! {
                _ = self.cancel.cancelled() => break,
                ev = next_of(a) => (0, ev),
                ev = next_of(b) => (1, ev),
                _ = tick.tick() => {
                    if !self.check_lag().await {
                        break;
                    }
                    continue;
                }
            };
            let step = match ev {
                Some(ev) => {
                    let lifecycle = !ev.is_market();
                    let symbol = match &ev {
                        FeedEvent::Book(b) => Some(b.symbol.clone()),
                        _ => None,
                    };
                    let now = self.now_ms();
                    let step = self.arbiter.on_event(line, ev, now);
                    if let Some(symbol) = symbol {
                        self.update_leader(&symbol);
                    }
                    if lifecycle {
                        self.publish_status();
                    }
                    step
                }
                None => {
                    self.sources[line] = None;
                    let step = self.arbiter.line_ended(line);
                    self.publish_status();
                    step
                }
            };
            if !self.deliver(step).await {
                break;
            }
            if self.sources.iter().all(Option::is_none) {
                break;
            }
        }
        let stops: Vec<_> = self
            .sources
            .drain(..)
            .flatten()
            .map(FeedSource::shutdown)
            .collect();
        futures_util::future::join_all(stops).await;
    }

    /// Logs the notes and sends the events; `false` when the consumer is gone.
    async fn deliver(&mut self, step: super::arbiter::Step) -> bool {
        for note in &step.notes {
            self.log_note(note);
        }
        for ev in step.events {
            if ev.is_market() {
                self.shared.count_message();
            }
            tokio::select! {
                sent = self.tx.send(ev) => if sent.is_err() { return false },
                _ = self.cancel.cancelled() => return false,
            }
        }
        true
    }

    fn update_leader(&mut self, symbol: &str) {
        let Some(leader) = self.arbiter.book_leader(symbol) else {
            return;
        };
        if self.leaders.get(symbol) != Some(&leader) {
            self.leaders.insert(symbol.to_string(), leader);
            self.shared.set_leader(symbol, leader);
        }
    }

    fn publish_status(&self) {
        self.shared.publish(&self.arbiter, self.now_ms());
    }

    fn log_note(&self, note: &LineNote) {
        let category = self.line_cfg.feed.category.as_str();
        match note {
            LineNote::Up { line, live_lines } => tracing::info!(
                event = "feed_line_up",
                line = line_name(*line),
                category,
                live_lines,
                pid = self.shared.line_pid(*line),
                degraded = *live_lines < self.sources.len(),
            ),
            LineNote::Down {
                line,
                reason,
                live_lines,
            } => tracing::warn!(
                event = "feed_line_down",
                line = line_name(*line),
                category,
                reason = %reason,
                live_lines,
                degraded = *live_lines > 0,
            ),
            LineNote::LineTradeGap {
                line,
                symbol,
                covered,
            } => tracing::info!(
                event = "feed_line_trade_gap",
                line = line_name(*line),
                category,
                symbol = %symbol,
                covered,
            ),
            LineNote::MergedTradeGap { line, symbol, gap } => tracing::error!(
                event = "feed_lines_trade_gap",
                line = line_name(*line),
                category,
                symbol = %symbol,
                from_ms = gap.from_ms,
                to_ms = gap.to_ms,
            ),
        }
    }

    /// Restarts lines that stalled or fell behind; `false` when the consumer is gone.
    async fn check_lag(&mut self) -> bool {
        let now = self.now_ms();
        self.publish_status();
        let step = self.arbiter.on_tick(now, self.policy);
        if !self.deliver(step).await {
            return false;
        }
        for (line, lag) in self.arbiter.laggards(now, self.policy) {
            let cooled = self.last_restart_ms[line]
                .is_none_or(|t| now.saturating_sub(t) >= self.policy.stall_ms.saturating_mul(2));
            if !cooled {
                continue;
            }
            self.last_restart_ms[line] = Some(now);
            match &lag {
                Lag::Stalled { ms } => tracing::warn!(
                    event = "feed_line_lagging",
                    line = line_name(line),
                    category = self.line_cfg.feed.category.as_str(),
                    kind = "stalled",
                    stalled_ms = *ms,
                ),
                Lag::Behind { symbol, updates } => tracing::warn!(
                    event = "feed_line_lagging",
                    line = line_name(line),
                    category = self.line_cfg.feed.category.as_str(),
                    kind = "behind",
                    symbol = %symbol,
                    behind_updates = *updates,
                ),
            }
            let step = self.arbiter.line_restarted(line, &lag);
            if let Some(old) = self.sources[line].take() {
                self.shared.retire(line, &old);
                tokio::spawn(old.shutdown());
            }
            let spawned = {
                let _line = line_span(line).entered();
                FeedSource::spawn_with(self.line_cfg.clone(), self.isolation, self.opts.clone())
            };
            match spawned {
                Ok(source) => {
                    self.shared.replace(line, source.monitor());
                    self.sources[line] = Some(source);
                    tracing::warn!(
                        event = "feed_line_restarted",
                        line = line_name(line),
                        category = self.line_cfg.feed.category.as_str(),
                        restarts = self.arbiter.lines()[line].restarts,
                    );
                }
                Err(e) => tracing::error!(
                    event = "feed_line_restart_failed",
                    line = line_name(line),
                    error = %e,
                ),
            }
            self.publish_status();
            if !self.deliver(step).await {
                return false;
            }
        }
        true
    }
}

/// Messages counted by the merged feed.
#[derive(Debug, Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    pub(super) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Keeps `RwLock` poisoning from taking the status API down.
pub(super) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// See [`read`].
pub(super) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// The span a line's feed runs in: the JSON log lifts its `line` field to top level
/// (`hft_connector::log_merge`), so a line's `bybit_connector_connected` and the rest name it.
pub fn line_span(i: usize) -> tracing::Span {
    tracing::info_span!(LINE_SPAN, line = super::arbiter::line_name(i))
}

/// The name of [`line_span`].
pub const LINE_SPAN: &str = "feed_line";
