//! The self-healing live feed: one WebSocket connection for a category's symbols, supervised by a
//! reconnect loop, exposing an ordered stream of normalized and lifecycle events, the exact books,
//! `is_connected()` and a health snapshot.
//!
//! # Layout
//! - [`config`]: the `[feed]`, `[health]`, `[heartbeat]`, `[reconnect]` settings.
//! - [`event`]: [`FeedEvent`], what consumers receive.
//! - [`health`]: the state machine states, shared counters, the stale rule.
//! - [`recovery`]: trade de-duplication and REST gap-fill after reconnects.
//! - [`session`]: the connection as a sans-IO state machine: subscribe and verify, heartbeat,
//!   stale detection, book resync, trade gap-fill; frames and timer ticks in, actions out.
//! - [`control`]: operator requests to a running feed (reconnect now).
//! - [`connection`]: the async shell around a session: moves bytes, stamps times, sleeps until the
//!   next deadline, fetches from REST and routes events.
//! - this file: [`Feed::spawn`], the reconnect loop and [`FeedHandle`].

pub mod config;
pub mod connection;
pub mod control;
pub mod event;
pub mod health;
pub mod health_log;
pub mod recovery;
pub mod session;
pub mod trade_key;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::book::OrderBook;
use crate::conn_budget::ConnectionBudget;
pub use config::{ConfigError, FeedConfig};
pub use event::{DisconnectReason, FeedEvent, ResyncReason};
pub use health::{ConnState, HealthSnapshot, SharedHealth};

use connection::{Connection, Ended};
use session::{Session, SessionConfig};

/// State shared between the feed task and its handle.
#[derive(Debug, Default)]
pub struct FeedShared {
    /// Health counters and state.
    pub health: SharedHealth,
    /// Books by symbol (one depth per feed).
    pub books: RwLock<HashMap<String, OrderBook>>,
    /// Operator requests (reconnect now).
    pub control: control::FeedControl,
    /// Frames read, for the busy-poll spinner (`feed.busy_poll_us`).
    pub activity: Arc<crate::busy_poll::Activity>,
}

/// Starts feeds.
pub struct Feed;

impl Feed {
    /// Validates `config` and starts the feed task on the current Tokio runtime.
    pub fn spawn(config: FeedConfig) -> Result<FeedHandle, ConfigError> {
        Feed::spawn_resuming(config, HashMap::new())
    }

    /// Like [`Feed::spawn`], but continues a trade tape another feed delivered: for each symbol in
    /// `covered_ms` (Unix ms up to which the consumer already has every trade, e.g. the fill time
    /// of the last trade it received), the first connection gap-fills from REST like a reconnect
    /// instead of starting the tape afresh. Used when a worker process replaces a dead one.
    pub fn spawn_resuming(
        config: FeedConfig,
        covered_ms: HashMap<String, u64>,
    ) -> Result<FeedHandle, ConfigError> {
        Feed::spawn_logging(config, covered_ms, true)
    }

    /// [`Feed::spawn_resuming`]; `health_check: false` leaves `bybit_connector_health_check` to
    /// someone else (a worker's supervisor logs its own view).
    pub(crate) fn spawn_logging(
        config: FeedConfig,
        covered_ms: HashMap<String, u64>,
        health_check: bool,
    ) -> Result<FeedHandle, ConfigError> {
        config.validate()?;
        let (tx, rx) =
            crate::queue::bounded(config.feed.queue_capacity, config.feed.queue_max_bytes);
        let shared = Arc::new(FeedShared::default());
        let cancel = CancellationToken::new();
        let (_, _, _, log_every) = config.health_durations()?;
        let label = format!("{}:{}", config.feed.category, config.feed.symbols.join(","));
        crate::busy_poll::spawn(
            shared.activity.clone(),
            config.feed.busy_poll_us,
            cancel.clone(),
        );
        // The feed task wakes its consumer once per read burst, not once per event (`queue`).
        let bursts = tx.clone();
        let mut runner = Runner::new(config, shared.clone(), tx, cancel.clone())?;
        runner.session.resume(covered_ms);
        if health_check {
            tokio::spawn(
                log_health(shared.clone(), cancel.clone(), log_every, label).in_current_span(),
            );
        }
        // The caller's span (e.g. an A/B line's `feed_line`) names every event the feed logs.
        let task = tokio::spawn(bursts.wake_per_burst(runner.run()).in_current_span());
        Ok(FeedHandle {
            events: rx,
            shared,
            cancel,
            task: Some(task),
        })
    }
}

/// A running feed: read its events, ask its health, read its books, stop it.
#[derive(Debug)]
pub struct FeedHandle {
    events: crate::queue::QueueRx,
    shared: Arc<FeedShared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl FeedHandle {
    /// The next event; `None` once the feed has stopped and everything was read. Events come
    /// from a local batch: one wake-up takes everything queued (see [`crate::queue`]).
    pub async fn next(&mut self) -> Option<FeedEvent> {
        let ev = self.events.recv().await;
        self.shared.health.set_queue_size(self.events.len());
        ev
    }

    /// Appends the events queued now to `events` (waiting for one if none is) and returns how
    /// many; 0 once the feed has stopped and everything was read. The same events, in the same
    /// order, as calling [`FeedHandle::next`] that many times, with one hand-off for all of
    /// them: for high rates. A call appends everything queued, or as many events as the task's
    /// cooperative budget allows (Tokio's, 128 per poll; see [`crate::queue`]): a deep queue
    /// comes in a few calls, and the task lets others run in between. `events` is not cleared.
    pub async fn next_batch(&mut self, events: &mut Vec<FeedEvent>) -> usize {
        let n = self.events.recv_many(events).await;
        self.shared.health.set_queue_size(self.events.len());
        n
    }

    /// Whether the feed is live (every subscription confirmed, data not stale).
    pub fn is_connected(&self) -> bool {
        self.shared.health.state() == ConnState::Live
    }

    /// Health snapshot.
    pub fn health(&self) -> HealthSnapshot {
        let mut h = self.shared.health.snapshot();
        h.queue_size = self.events.len() as u64;
        h
    }

    /// The shared state (for status APIs that outlive a borrow of the handle).
    pub fn shared(&self) -> Arc<FeedShared> {
        self.shared.clone()
    }

    /// A copy of the current book of `symbol` (exact, never built across a gap: check
    /// [`OrderBook::is_synced`]).
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        self.with_book(symbol, Clone::clone)
    }

    /// Reads the current book of `symbol` without copying it.
    pub fn with_book<R>(&self, symbol: &str, f: impl FnOnce(&OrderBook) -> R) -> Option<R> {
        let books = self.shared.books.read().unwrap_or_else(|p| p.into_inner());
        books.get(symbol).map(f)
    }

    /// Stops the feed: closes the socket and ends the task.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FeedHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Logs `bybit_connector_health_check` every `every` until cancelled.
async fn log_health(
    shared: Arc<FeedShared>,
    cancel: CancellationToken,
    every: Duration,
    feed: String,
) {
    let snapshot = move || (shared.health.snapshot(), None);
    health_log::log_every(snapshot, cancel, every, feed).await;
}

/// The reconnect loop and the state that outlives connections.
pub(crate) struct Runner {
    pub(crate) cfg: FeedConfig,
    pub(crate) shared: Arc<FeedShared>,
    pub(crate) tx: crate::queue::QueueTx,
    pub(crate) cancel: CancellationToken,
    pub(crate) http: reqwest::Client,
    /// The protocol state machine, kept across connections (request ids, the trade tape).
    pub(crate) session: Session,
    pub(crate) connections: u64,
    /// Reconnect and resync requests ([`control`]) not yet acted on.
    pub(crate) control: tokio::sync::watch::Receiver<control::ControlRequest>,
    pub(crate) resync: tokio::sync::watch::Receiver<control::ControlRequest>,
    /// When `bybit_connector_queue_full` was last logged, and the waits since.
    queue_full_logged: std::sync::atomic::AtomicU64,
    queue_full_waits: std::sync::atomic::AtomicU64,
    backoff: Backoff,
    rng: SmallRng,
}

impl Runner {
    fn new(
        cfg: FeedConfig,
        shared: Arc<FeedShared>,
        tx: crate::queue::QueueTx,
        cancel: CancellationToken,
    ) -> Result<Self, ConfigError> {
        let backoff = Backoff::new(cfg.backoff()?);
        let session = Session::new(SessionConfig::from_feed(&cfg)?);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(cfg.reconnect.connect_timeout_s))
            .build()
            .map_err(|e| ConfigError {
                field: "feed.rest_url".into(),
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Runner {
            control: shared.control.subscribe(),
            resync: shared.control.subscribe_resync(),
            cfg,
            shared,
            tx,
            cancel,
            http,
            session,
            connections: 0,
            queue_full_logged: std::sync::atomic::AtomicU64::new(0),
            queue_full_waits: std::sync::atomic::AtomicU64::new(0),
            backoff,
            rng: SmallRng::from_os_rng(),
        })
    }

    /// Sends an event to the consumer, waiting if its queue is full (lossless backpressure).
    /// `false` when the consumer is gone.
    pub(crate) async fn emit(&self, ev: FeedEvent) -> bool {
        let health = &self.shared.health;
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(crate::queue::TrySendError::Full(ev)) => {
                // Logged at most once a second however long the consumer stays slow.
                use std::sync::atomic::Ordering::Relaxed;
                let waits = self.queue_full_waits.fetch_add(1, Relaxed) + 1;
                // Monotonic ms + 1, so 0 means "never logged".
                let now = health.mono_ms() + 1;
                let last = self.queue_full_logged.load(Relaxed);
                if last == 0 || now.saturating_sub(last) >= 1000 {
                    self.queue_full_logged.store(now, Relaxed);
                    self.queue_full_waits.store(0, Relaxed);
                    tracing::warn!(
                        event = "bybit_connector_queue_full",
                        queue_size = self.tx.max_capacity(),
                        waits,
                        "consumer is slow; the feed waits (socket reads pause) instead of dropping"
                    );
                }
                // A shutdown must not wait for a consumer that stopped reading.
                tokio::select! {
                    sent = self.tx.send(ev) => if sent.is_err() { return false },
                    _ = self.cancel.cancelled() => return false,
                }
            }
            Err(crate::queue::TrySendError::Closed(_)) => return false,
        }
        health.set_queue_size(self.tx.len());
        true
    }

    async fn run(mut self) {
        let health = &self.shared.health;
        health.set_alive(true);
        let url = self.cfg.ws_endpoint();
        let budget = ConnectionBudget::for_url(
            &url,
            crate::backoff::BYBIT_CONNECTIONS_PER_WINDOW,
            crate::backoff::BYBIT_CONNECTION_WINDOW_MS,
        );
        let mut failures_in_row: u32 = 0;
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            // Stay within Bybit's connection budget whatever the backoff says: this feed's own
            // window, and the machine-wide one every feed and worker of this address shares.
            while let Err(wait_ms) = self.backoff.admit_connection(self.shared.health.mono_ms()) {
                if self.sleep(Duration::from_millis(wait_ms)).await {
                    break;
                }
            }
            if self.admit_shared(&budget).await {
                break;
            }
            self.shared.health.set_state(ConnState::Connecting);
            let attempt = self.backoff.attempt() + 1;
            let connect_timeout = Duration::from_secs_f64(self.cfg.reconnect.connect_timeout_s);
            let error =
                match tokio::time::timeout(connect_timeout, tokio_tungstenite::connect_async(&url))
                    .await
                {
                    Ok(Ok((ws, _))) => {
                        self.connections += 1;
                        if self.connections > 1 {
                            self.shared.health.reconnect();
                        }
                        let Ended { reason, live_for } = Connection::run(&mut self, ws).await;
                        self.backoff.connection_lasted(live_for);
                        if live_for > Duration::ZERO {
                            failures_in_row = 0;
                        }
                        tracing::warn!(
                            event = "connector_disconnected",
                            connector = "hft",
                            reason = %reason,
                            category = %self.cfg.feed.category,
                            live_for_s = live_for.as_secs_f64(),
                        );
                        let shutdown = reason == DisconnectReason::Shutdown;
                        let ok = self
                            .emit(FeedEvent::Disconnected {
                                reason: reason.clone(),
                            })
                            .await;
                        if shutdown || !ok {
                            break;
                        }
                        if matches!(reason, DisconnectReason::SubscribeRefused(_)) {
                            Some(reason.to_string())
                        } else {
                            None
                        }
                    }
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!(
                        "connect timed out after {:.1} s",
                        connect_timeout.as_secs_f64()
                    )),
                };
            let refused = self.shared.health.state() == ConnState::Refused;
            // A connection attempt that failed (not a connection that ended) means the exchange
            // cannot be reached: operators see `down` until a connection goes live again.
            let unreachable = error.is_some() && !refused;
            let delay = self.backoff.next_delay(self.rng.random::<f64>());
            if let Some(error) = error {
                failures_in_row += 1;
                self.shared.health.error();
                tracing::error!(
                    event = "connector_connection_error",
                    attempt,
                    retry_delay = delay.as_secs_f64(),
                    error = %error,
                    url = %url,
                );
            }
            let max = self.cfg.reconnect.max_attempts;
            if max > 0 && failures_in_row >= max {
                tracing::error!(
                    event = "bybit_connector_gave_up",
                    attempts = failures_in_row
                );
                let _ = self
                    .emit(FeedEvent::GaveUp {
                        attempts: failures_in_row,
                    })
                    .await;
                break;
            }
            if unreachable {
                self.shared.health.set_state(ConnState::Unreachable);
            } else if !refused {
                self.shared.health.set_state(ConnState::Backoff);
            }
            if self.backoff_sleep(delay).await {
                break;
            }
        }
        self.shared.health.set_state(ConnState::Stopped);
        self.shared.health.set_alive(false);
    }

    /// Sleeps unless cancelled; `true` if cancelled.
    /// Takes a slot of the machine-wide connection budget, waiting (logged) while it is spent;
    /// `true` when the feed was cancelled meanwhile. An unusable budget file is logged once per
    /// attempt and does not block connecting (the feed's own window still applies).
    async fn admit_shared(&self, budget: &ConnectionBudget) -> bool {
        loop {
            match budget.try_admit(health::unix_ms()) {
                Ok(()) => return false,
                Err(Ok(wait_ms)) => {
                    tracing::warn!(
                        event = "bybit_connector_connection_budget_wait",
                        wait_ms,
                        budget_file = %budget.path().display(),
                        "500 connections per 5 minutes to this address are spent (all feeds and workers on this machine count)"
                    );
                    if self.sleep(Duration::from_millis(wait_ms)).await {
                        return true;
                    }
                }
                Err(Err(e)) => {
                    tracing::warn!(
                        event = "bybit_connector_connection_budget_unavailable",
                        error = %e,
                        budget_file = %budget.path().display(),
                    );
                    return false;
                }
            }
        }
    }

    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }

    /// The backoff wait before reconnecting, ended early by a reconnect request; `true` if
    /// cancelled.
    async fn backoff_sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
            _ = control::requested(&mut self.control) => false,
        }
    }
}

impl FeedShared {
    /// The health counters.
    pub fn health_handle(&self) -> &SharedHealth {
        &self.health
    }
}
