//! Starting and stopping the service: open the store (failing fast), check the symbols exist,
//! serve HTTP, start a feed and pipeline per category, backfill, and on Ctrl-C / SIGTERM stop
//! everything within `[service] shutdown_timeout_s`.
//!
//! # The stop
//! Every long-lived task is registered by name ([`crate::shutdown::Tasks`]) and observes one
//! token. When it is cancelled:
//! 1. abandoned at once, wherever they wait (a backoff, a ban, the request budget, a REST request
//!    in flight, which is dropped): backfills and their chunk fetches, symbol checks, candle
//!    re-fetches;
//! 2. each pipeline hands its last trades to the store writer and returns its feed, which is
//!    stopped (in process isolation: the worker's process group gets SIGTERM, SIGKILL after the
//!    grace period); the HTTP server stops taking connections (event streams end) and drops what
//!    is still open after [`HTTP_GRACE`];
//! 3. at the same time: the NATS sink publishes what it holds for at most its ack timeout and
//!    half of what the bound leaves, reporting what it could not (`nats_sink_unflushed`); the recorder
//!    (once the feeds stopped) writes what is queued and closes its files (`record_stopped`); the
//!    store writer writes what is queued, skipping backfill chunks nobody awaits any more,
//!    attempts a WAL checkpoint and closes (`store_closed`);
//! 4. `service_stopped`. [`Running::shutdown`] waits for all of it at most the configured bound,
//!    then logs `service_shutdown_incomplete` with the names of what is still running.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::backfill::{run_job, Job, KlineFetcher};
use super::pipeline::{EventSource, Pipeline};
use super::state::{FeedKey, ServiceState};
use super::verify::{until_verified, verify, Pending};
use super::writer::StoreWriter;
use crate::backfill::RetryPolicy;
use crate::budget::RateBudget;
use crate::config::ServiceConfig;
use crate::feed::health::unix_ms;
use crate::feed::FeedConfig;
use crate::protocol::rest::{self, InstrumentsResult};
use crate::protocol::{Category, RestError};
use crate::shutdown::Tasks;
use crate::store::{Retention, Store};

/// A feed the runner can start and stop.
pub trait Source: EventSource + Sized + 'static {
    /// Stops the feed (and its worker).
    fn stop(self) -> impl Future<Output = ()> + Send;

    /// The feed's monitor, through which HTTP actions (reconnect) reach it; `None`: no actions.
    fn monitor(&self) -> Option<crate::source::SourceMonitor> {
        None
    }
}

impl Source for crate::feed::FeedHandle {
    fn stop(self) -> impl Future<Output = ()> + Send {
        self.shutdown()
    }

    fn monitor(&self) -> Option<crate::source::SourceMonitor> {
        Some(crate::source::SourceMonitor::InProcess(self.shared()))
    }
}

impl Source for crate::source::FeedSource {
    fn stop(self) -> impl Future<Output = ()> + Send {
        self.shutdown()
    }

    fn monitor(&self) -> Option<crate::source::SourceMonitor> {
        Some(crate::source::FeedSource::monitor(self))
    }
}

/// Why the service could not start or ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A configuration value is wrong.
    #[error(transparent)]
    Config(#[from] crate::feed::ConfigError),
    /// The data dir or database cannot be used.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The exchange does not know a configured symbol.
    #[error("unknown symbol {symbol} in category {category}: {message}")]
    UnknownSymbol {
        /// Symbol.
        symbol: String,
        /// Category.
        category: Category,
        /// What the exchange said.
        message: String,
    },
    /// The HTTP address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A feed could not start.
    #[error("cannot start the {category} feed: {message}")]
    Feed {
        /// Category.
        category: Category,
        /// Why.
        message: String,
    },
    /// The recorder (`[sinks.record]`) cannot start.
    #[error("cannot start the recorder: {0}")]
    Record(String),
    /// A backfill failed for good.
    #[error(transparent)]
    Backfill(#[from] crate::backfill::FatalError),
    /// Told to stop while still starting (a clean stop: nothing had started yet).
    #[error("stopped while starting")]
    Stopped,
    /// The stop did not complete within `[service] shutdown_timeout_s`.
    #[error(transparent)]
    ShutdownIncomplete(#[from] crate::shutdown::Incomplete),
}

/// How long the HTTP server may finish requests in flight once stopping (event streams end at
/// once); connections still open then are dropped.
pub const HTTP_GRACE: Duration = Duration::from_secs(1);

/// Checks that every symbol exists (`instruments-info`). An unknown symbol is fatal; an unreachable
/// exchange is not (the feeds retry, status shows `down`): the symbols it could not check are
/// returned, to be verified once it answers ([`super::verify`]).
pub async fn check_symbols(
    http: &reqwest::Client,
    rest_url: &str,
    category: Category,
    symbols: &[String],
) -> Result<Vec<String>, ServiceError> {
    let mut unverified = Vec::new();
    let url = format!(
        "{}/v5/market/instruments-info",
        rest_url.trim_end_matches('/')
    );
    for symbol in symbols {
        let resp = http
            .get(&url)
            .query(&[("category", category.as_str()), ("symbol", symbol)])
            .send()
            .await;
        let body = match resp {
            Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
            Ok(r) => {
                tracing::warn!(event = "symbol_check_skipped", symbol = %symbol, category = %category, status = r.status().as_u16());
                unverified.push(symbol.clone());
                continue;
            }
            Err(e) => {
                tracing::warn!(event = "symbol_check_skipped", symbol = %symbol, category = %category, error = %e);
                unverified.push(symbol.clone());
                continue;
            }
        };
        match rest::decode::<InstrumentsResult>(&body) {
            Ok(r) if r.result.list.iter().any(|i| &i.symbol == symbol) => {}
            Ok(_) => {
                return Err(ServiceError::UnknownSymbol {
                    symbol: symbol.clone(),
                    category,
                    message: "not listed by instruments-info".into(),
                })
            }
            Err(RestError::Api {
                code: 10001,
                message,
            }) => {
                return Err(ServiceError::UnknownSymbol {
                    symbol: symbol.clone(),
                    category,
                    message: format!("retCode 10001: {message}"),
                })
            }
            Err(e) => {
                tracing::warn!(event = "symbol_check_skipped", symbol = %symbol, error = %e);
                unverified.push(symbol.clone());
            }
        }
    }
    Ok(unverified)
}

/// A started service.
pub struct Running {
    /// The HTTP address actually bound.
    pub addr: SocketAddr,
    /// Shared state.
    pub state: ServiceState,
    cancel: CancellationToken,
    tasks: Tasks,
    shutdown_timeout: Duration,
    done: tokio::task::JoinHandle<Result<(), ServiceError>>,
}

impl Running {
    /// Asks the service to stop.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Resolves when the service is stopping (asked to, or after a fatal error).
    pub async fn ended(&self) {
        self.cancel.cancelled().await
    }

    /// The service's long-lived tasks, by name, while they run.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// `[service] shutdown_timeout_s`.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Waits for the service to end (after [`Running::stop`], or a fatal error), however long.
    pub async fn wait(self) -> Result<(), ServiceError> {
        join_done(self.done).await
    }

    /// Stops the service and waits at most `[service] shutdown_timeout_s` for the stop to
    /// complete; then logs `service_shutdown_incomplete` (the tasks still running) and returns
    /// [`ServiceError::ShutdownIncomplete`], leaving them behind (a process exits next: see
    /// [`crate::shutdown::kill_children`]).
    pub async fn shutdown(self) -> Result<(), ServiceError> {
        self.cancel.cancel();
        let tasks = self.tasks.clone();
        crate::shutdown::bounded(self.shutdown_timeout, &tasks, join_done(self.done)).await?
    }
}

async fn join_done(
    done: tokio::task::JoinHandle<Result<(), ServiceError>>,
) -> Result<(), ServiceError> {
    match done.await {
        Ok(r) => r,
        Err(e) => Err(ServiceError::Feed {
            category: Category::Linear,
            message: format!("service task failed: {e}"),
        }),
    }
}

/// Starts the service; `spawn` starts one feed, `router` builds the HTTP routes (its event streams
/// must end when the token is cancelled, or graceful shutdown would wait for them).
pub async fn start<S: Source>(
    cfg: ServiceConfig,
    spawn: impl Fn(FeedConfig) -> Result<S, String>,
    router: impl FnOnce(ServiceState, CancellationToken) -> axum::Router,
) -> Result<Running, ServiceError> {
    start_until(cfg, spawn, router, CancellationToken::new()).await
}

/// [`start`], stopped by `stop` too (e.g. the first SIGTERM): cancelled while the symbols are
/// still being checked, it returns [`ServiceError::Stopped`] at once; afterwards it stops the
/// running service like [`Running::stop`].
pub async fn start_until<S: Source>(
    cfg: ServiceConfig,
    spawn: impl Fn(FeedConfig) -> Result<S, String>,
    router: impl FnOnce(ServiceState, CancellationToken) -> axum::Router,
    stop: CancellationToken,
) -> Result<Running, ServiceError> {
    cfg.validate()?;
    let store = Store::open(&cfg.store.data_dir)?;
    let store_path = store.path().to_path_buf();
    let listen = cfg.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServiceError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServiceError::Listen {
            addr: listen,
            source,
        })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ServiceError::Feed {
            category: Category::Linear,
            message: e.to_string(),
        })?;
    let categories = cfg.categories();
    // Symbols REST could not confirm now are verified once it answers; their backfill waits.
    let mut pending = Vec::new();
    let mut verified_rx = std::collections::HashMap::new();
    for c in &categories {
        let checked = tokio::select! {
            // An exchange that stopped answering does not hold a stop up.
            _ = stop.cancelled() => return Err(ServiceError::Stopped),
            checked = check_symbols(&http, &cfg.feed.rest_url, *c, &cfg.feed.symbols) => checked,
        };
        for symbol in checked? {
            let (tx, rx) = tokio::sync::watch::channel(false);
            verified_rx.insert((*c, symbol.clone()), rx);
            pending.push(Pending {
                category: *c,
                symbol,
                verified: tx,
            });
        }
    }
    let keys: Vec<FeedKey> = categories
        .iter()
        .flat_map(|c| {
            cfg.feed.symbols.iter().map(|s| FeedKey {
                category: *c,
                symbol: s.clone(),
            })
        })
        .collect();
    let state = ServiceState::with_store(&keys, cfg.http.token.clone(), Some(store_path));
    if cfg.sinks.nats.enabled() {
        state.set_nats(crate::sinks::NatsSink::start(cfg.sinks.nats.clone()));
    }
    let recorder = match &cfg.sinks.record {
        Some(r) => {
            let rec = crate::record::Recorder::start(r.clone())
                .map_err(|e| ServiceError::Record(e.to_string()))?;
            state.set_record(rec.stats());
            Some(rec)
        }
        None => None,
    };
    let (writer, writer_thread) = StoreWriter::start(store);
    state.set_store_dropped(writer.dropped_counter());
    let cancel = stop.child_token();
    let tasks = Tasks::new();
    let shutdown_timeout = cfg.service.shutdown_timeout();
    // The threads and the sink are listed for their whole life.
    let writer_guard = tasks.register("store_writer");
    let recorder_guard = recorder.as_ref().map(|_| tasks.register("recorder"));
    let nats_guard = state.nats().map(|_| tasks.register("nats_sink"));

    let app = router(state.clone(), cancel.clone());
    let http_cancel = cancel.clone();
    let mut server = tasks.spawn("http_server", async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_cancel.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!(event = "http_server_failed", error = %e);
        }
    });
    tracing::info!(event = "http_listening", addr = %addr, url = %format!("http://{addr}/"));

    let budget = RateBudget::new(
        cfg.backfill.requests_per_window,
        Duration::from_secs_f64(cfg.backfill.window_s),
    );
    let policy = RetryPolicy {
        ban_wait_ms: (cfg.backfill.ban_s * 1000.0) as u64,
        ..RetryPolicy::default()
    };
    let fetcher = KlineFetcher {
        http: http.clone(),
        rest_url: cfg.feed.rest_url.clone(),
        budget,
        policy,
    };
    let retention = Retention::hours(cfg.store.trade_retention_hours.ceil() as u64);

    let mut pipelines = Vec::new();
    for mut feed_cfg in cfg.feeds() {
        let category = feed_cfg.feed.category;
        feed_cfg.raw_tap = recorder.as_ref().map(|r| r.tap(category));
        let source = spawn(feed_cfg).map_err(|message| ServiceError::Feed { category, message })?;
        if let Some(monitor) = source.monitor() {
            state.controls().register(category, monitor);
        }
        let pipeline = Pipeline {
            source,
            category,
            symbols: cfg.feed.symbols.clone(),
            state: state.clone(),
            store: writer.clone(),
            fetcher: fetcher.clone(),
            intervals: cfg.store.candle_intervals.clone(),
            retention,
            tasks: tasks.clone(),
        };
        let task = tasks.spawn(format!("pipeline {category}"), pipeline.run(cancel.clone()));
        pipelines.push((category, task));
    }

    let mut backfills = tokio::task::JoinSet::new();
    if cfg.backfill.enabled {
        let permits = Arc::new(Semaphore::new(cfg.backfill.concurrency));
        let now = unix_ms();
        let from = now.saturating_sub((cfg.backfill.days * 86_400_000.0) as u64);
        for key in &keys {
            let job = Job {
                category: key.category,
                symbol: key.symbol.clone(),
                interval: cfg.backfill.interval.clone(),
                from_ms: from,
                to_ms: now,
                limit: cfg.backfill.chunk_limit,
            };
            let verified = verified_rx
                .get(&(key.category, key.symbol.clone()))
                .cloned();
            let (fetcher, permits) = (fetcher.clone(), permits.clone());
            let (writer, state) = (writer.clone(), state.clone());
            let name = format!("backfill {} {}", key.category, key.symbol);
            let job_cancel = cancel.clone();
            // Ends the moment the service stops, wherever it waits (a ban, a retry's backoff, the
            // budget, a request in flight): the chunk fetches are dropped with it.
            backfills.spawn(tasks.track(name, async move {
                tokio::select! {
                    biased;
                    _ = job_cancel.cancelled() => None,
                    r = async {
                        until_verified(verified).await;
                        run_job(job, fetcher, permits, writer, state).await
                    } => Some(r),
                }
            }));
        }
    } else {
        for key in &keys {
            state.update_status(key, |s| {
                s.backfill.state = "disabled".into();
                true
            });
        }
    }

    let mut checks = tokio::task::JoinSet::new();
    for p in pending {
        let name = format!("symbol_check {} {}", p.category, p.symbol);
        checks.spawn(tasks.track(
            name,
            verify(http.clone(), cfg.feed.rest_url.clone(), p, cancel.clone()),
        ));
    }
    let run_cancel = cancel.clone();
    let state_done = state.clone();
    let stop_tasks = tasks.clone();
    let done = tokio::spawn(async move {
        let tasks = stop_tasks;
        let mut fatal = None;
        loop {
            tokio::select! {
                _ = run_cancel.cancelled() => break,
                r = checks.join_next(), if !checks.is_empty() => {
                    if let Some(Ok(Err(e))) = r {
                        fatal = Some(e);
                        run_cancel.cancel();
                        break;
                    }
                }
                r = backfills.join_next(), if !backfills.is_empty() => {
                    if let Some(Ok(Some(Err(e)))) = r {
                        if matches!(e, crate::backfill::FatalError::UnknownSymbol { .. }) {
                            fatal = Some(ServiceError::Backfill(e));
                            run_cancel.cancel();
                            break;
                        }
                    }
                }
            }
        }
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        // 1. Abandoned at once (they observe the token too; this also drops their requests).
        backfills.abort_all();
        checks.abort_all();
        // 2. The pipelines end on the token, their last trades handed to the writer.
        let mut feeds = Vec::new();
        for (category, p) in pipelines {
            if let Ok(source) = p.await {
                feeds.push(tasks.spawn(format!("feed {category}"), source.stop()));
            }
        }
        let http_stop = async {
            if tokio::time::timeout(HTTP_GRACE, &mut server).await.is_err() {
                server.abort();
                tracing::warn!(
                    event = "http_connections_dropped",
                    grace_s = HTTP_GRACE.as_secs_f64()
                );
            }
        };
        // 3. Sinks and the store, side by side.
        let nats_stop = async {
            if let Some(sink) = state_done.nats() {
                // Half of what the bound leaves (the default 10 s: the 5 s ack timeout), so
                // that reporting what is left fits in it too.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let grace = left / 2;
                sink.close(grace).await;
            }
            drop(nats_guard);
        };
        let record_stop = async {
            // Once the feeds stopped: their last frames are recorded too.
            for f in feeds {
                let _ = f.await;
            }
            if let Some(rec) = recorder {
                let _ = tokio::task::spawn_blocking(move || {
                    rec.stop();
                    drop(recorder_guard);
                })
                .await;
            }
        };
        writer.close();
        drop(writer);
        let store_stop = tokio::task::spawn_blocking(move || {
            let _ = writer_thread.join();
            drop(writer_guard);
        });
        let _ = tokio::join!(http_stop, nats_stop, record_stop, store_stop);
        tracing::info!(event = "service_stopped");
        fatal.map_or(Ok(()), Err)
    });
    Ok(Running {
        addr,
        state,
        cancel,
        tasks,
        shutdown_timeout,
        done,
    })
}
