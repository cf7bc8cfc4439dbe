//! The NATS JetStream sink: a bounded buffer the feed offers events to without ever waiting (full:
//! dropped and counted), and one task that connects (and reconnects) to NATS, creates the stream if
//! missing, publishes with `Nats-Msg-Id` and awaits acks within a bounded in-flight window, re-sending
//! whatever failed or timed out (JetStream drops the re-sends it already stored).

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{Publish, PublishErrorKind};
use async_nats::jetstream::{self, stream, Context};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{BooksMode, NatsSection};
use super::message::{self, Outgoing};
use super::stats::{NatsStats, NatsStatus};
use crate::feed::health::unix_ms;
use crate::feed::FeedEvent;
use crate::protocol::Category;

type AckFuture = Pin<
    Box<
        dyn Future<
                Output = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
            > + Send,
    >,
>;

/// What the feed hands the sink: market events are encoded in the sink's task, off the feed's path.
enum Item {
    Market(Category, Box<FeedEvent>),
    Ready(Outgoing),
}

/// A running sink. Cheap to clone; every clone offers into the same buffer.
#[derive(Clone)]
pub struct NatsSink {
    tx: mpsc::Sender<Item>,
    stats: Arc<NatsStats>,
    cfg: Arc<NatsSection>,
    publisher: Arc<str>,
    last_drop_log_ms: Arc<AtomicU64>,
    dropped_logged: Arc<AtomicU64>,
    cancel: CancellationToken,
    /// How long [`NatsSink::close`] lets the task flush (set before it cancels).
    grace: Arc<Mutex<Option<Duration>>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &self.cfg.url)
            .field("stream", &self.cfg.stream)
            .finish()
    }
}

/// This publisher's name in status messages: `{hostname}:{pid}`.
pub fn publisher_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

impl NatsSink {
    /// Starts the sink's task (needs a tokio runtime). Never fails: an unreachable server is retried.
    pub fn start(cfg: NatsSection) -> NatsSink {
        let cfg = Arc::new(cfg);
        let (tx, rx) = mpsc::channel(cfg.buffer.max(1));
        let stats = Arc::new(NatsStats::default());
        let cancel = CancellationToken::new();
        tracing::info!(
            event = "nats_sink_started",
            url = %cfg.url,
            stream = %cfg.stream,
            subject_prefix = %cfg.subject_prefix,
            books = ?cfg.books,
            buffer = cfg.buffer,
            max_in_flight = cfg.max_in_flight,
        );
        let grace = Arc::new(Mutex::new(None));
        let task = tokio::spawn(run(
            cfg.clone(),
            rx,
            stats.clone(),
            cancel.clone(),
            grace.clone(),
        ));
        NatsSink {
            tx,
            stats,
            cfg,
            publisher: publisher_id().into(),
            last_drop_log_ms: Arc::new(AtomicU64::new(0)),
            dropped_logged: Arc::new(AtomicU64::new(0)),
            cancel,
            grace,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<NatsStats> {
        &self.stats
    }

    /// The `/api/status` line.
    pub fn status(&self) -> NatsStatus {
        self.stats.status(&self.cfg.url, &self.cfg.stream)
    }

    /// The `hft_connector_nats_*` metrics.
    pub fn prometheus(&self) -> String {
        self.stats.prometheus(&self.cfg.stream)
    }

    /// Offers an event of the `category` feed streaming `symbols`; never waits. Market events go to
    /// `trade`/`book` subjects, lifecycle events to each concerned symbol's `status` subject.
    pub fn offer(&self, category: Category, symbols: &[String], ev: &FeedEvent) {
        if ev.is_market() {
            if matches!(ev, FeedEvent::Book(_)) && self.cfg.books == BooksMode::None {
                return;
            }
            match self.tx.try_reserve() {
                Ok(permit) => {
                    permit.send(Item::Market(category, Box::new(ev.clone())));
                    self.stats.buffered.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => self.dropped(),
            }
        } else {
            let now = unix_ms();
            let outs = message::status(
                &self.cfg.subject_prefix,
                category,
                symbols,
                &self.publisher,
                now,
                ev,
            );
            for out in outs {
                match self.tx.try_send(Item::Ready(out)) {
                    Ok(()) => {
                        self.stats.buffered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => self.dropped(),
                }
            }
        }
    }

    /// Counts a dropped message; logs `nats_sink_dropped` at most once a second.
    fn dropped(&self) {
        let total = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = unix_ms();
        let last = self.last_drop_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_drop_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let before = self.dropped_logged.swap(total, Ordering::Relaxed);
            tracing::warn!(
                event = "nats_sink_dropped",
                dropped = total.saturating_sub(before),
                dropped_total = total,
                buffer = self.cfg.buffer,
                state = self.stats.state(),
            );
        }
    }

    /// Stops: publishes what is buffered and awaits the acks for at most `grace` (and at most
    /// `ack_timeout_s`), then ends, reporting what it could not flush (`nats_sink_unflushed`) and
    /// its final counts (`nats_sink_stopped`). Never waits longer than `grace` plus a moment, even
    /// with NATS unreachable.
    pub async fn close(&self, grace: Duration) {
        *self.grace.lock().unwrap_or_else(|p| p.into_inner()) = Some(grace);
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(grace + CLOSE_MARGIN.min(grace / 2), &mut task)
                .await
                .is_err()
            {
                // Not expected (every wait of the task is bounded by the grace): report anyway.
                task.abort();
                tracing::warn!(
                    event = "nats_sink_unflushed",
                    in_flight = self.stats.in_flight.load(Ordering::Relaxed),
                    buffered = self.stats.buffered.load(Ordering::Relaxed),
                    retry = 0u64,
                    aborted = true,
                );
            }
        }
    }
}

struct InFlight {
    out: Outgoing,
    sent: Instant,
    ack: AckFuture,
}

/// The front's ack (acks are handled in publish order); pending forever when nothing is in flight.
async fn front_ack(
    inflight: &mut VecDeque<InFlight>,
) -> Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
    match inflight.front_mut() {
        Some(f) => (&mut f.ack).await,
        None => std::future::pending().await,
    }
}

async fn connect(cfg: &NatsSection, stats: &Arc<NatsStats>) -> Result<async_nats::Client, String> {
    let st = stats.clone();
    let url = cfg.url.clone();
    let seen = Arc::new(AtomicU64::new(0));
    async_nats::ConnectOptions::new()
        .name("hft-connector")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100u64 << attempts.min(5) as u32).min(2_000))
        })
        .event_callback(move |ev| {
            let st = st.clone();
            let url = url.clone();
            let seen = seen.clone();
            async move {
                match ev {
                    async_nats::Event::Connected => {
                        st.set_state("connected");
                        if seen.fetch_add(1, Ordering::Relaxed) > 0 {
                            st.reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::info!(event = "nats_connected", url = %url);
                    }
                    async_nats::Event::Disconnected => {
                        st.set_state("disconnected");
                        tracing::warn!(event = "nats_disconnected", url = %url);
                    }
                    other => {
                        st.error(other.to_string());
                        tracing::warn!(event = "nats_client_event", url = %url, detail = %other);
                    }
                }
            }
        })
        .connect(cfg.url.trim())
        .await
        .map_err(|e| e.to_string())
}

/// Creates the stream if missing (subjects `{prefix}.>`, file storage, the duplicate window).
async fn ensure_stream(js: &Context, cfg: &NatsSection, stats: &NatsStats) -> Result<(), String> {
    let subjects = format!("{}.>", cfg.subject_prefix);
    let mut s = js
        .get_or_create_stream(stream::Config {
            name: cfg.stream.clone(),
            subjects: vec![subjects.clone()],
            duplicate_window: Duration::from_secs_f64(cfg.dedup_window_s),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let info = s.info().await.map_err(|e| e.to_string())?;
    if !info
        .config
        .subjects
        .iter()
        .any(|x| x == &subjects || x == ">")
    {
        tracing::warn!(event = "nats_stream_subjects_differ", stream = %cfg.stream, subjects = ?info.config.subjects, expected = %subjects);
    }
    tracing::info!(
        event = "nats_stream_ready",
        stream = %cfg.stream,
        subjects = ?info.config.subjects,
        duplicate_window_s = info.config.duplicate_window.as_secs_f64(),
        messages = info.state.messages,
    );
    stats.stream_ready.store(true, Ordering::Relaxed);
    Ok(())
}

/// The error of a publish cut short by the stop ([`unless_stopped`]).
const STOPPING: &str = "stopping";

/// Publishes `out`; on success its ack joins the in-flight window. Cut short by the stop
/// (`Err` with [`STOPPING`]): a disconnected client's full buffer does not hold a shutdown up.
async fn send(
    js: &Context,
    out: Outgoing,
    inflight: &mut VecDeque<InFlight>,
    stats: &NatsStats,
    cancel: &CancellationToken,
    stop_at: Option<Instant>,
) -> Result<(), (Outgoing, String)> {
    let mut p = Publish::build().payload(out.payload.clone());
    if let Some(id) = &out.msg_id {
        p = p.message_id(id.as_str());
    }
    let Some(published) =
        unless_stopped(js.send_publish(out.subject.clone(), p), cancel, stop_at).await
    else {
        return Err((out, STOPPING.into()));
    };
    match published {
        Ok(ack) => {
            inflight.push_back(InFlight {
                out,
                sent: Instant::now(),
                ack: ack.into_future(),
            });
            stats.in_flight.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err((out, e.to_string())),
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How much longer than its grace [`NatsSink::close`] waits for the task.
const CLOSE_MARGIN: Duration = Duration::from_secs(1);
/// The last flush of the client's own buffer at the end (skipped after `nats_sink_unflushed`).
const FINAL_FLUSH: Duration = Duration::from_millis(250);

/// Runs `fut` unless the sink is told to stop first: before the stop, until `cancel` (the flush
/// then begins); during it, until `stop_at` (the flush is over). `None` when cut short.
async fn unless_stopped<F: Future>(
    fut: F,
    cancel: &CancellationToken,
    stop_at: Option<Instant>,
) -> Option<F::Output> {
    match stop_at {
        None => tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            out = fut => Some(out),
        },
        Some(at) => tokio::time::timeout_at(at, fut).await.ok(),
    }
}

/// The sink's task.
async fn run(
    cfg: Arc<NatsSection>,
    mut rx: mpsc::Receiver<Item>,
    stats: Arc<NatsStats>,
    cancel: CancellationToken,
    grace: Arc<Mutex<Option<Duration>>>,
) {
    let client = match unless_stopped(connect(&cfg, &stats), &cancel, None).await {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            stats.error(e.clone());
            tracing::error!(event = "nats_sink_failed", url = %cfg.url, error = %e);
            return;
        }
        None => return,
    };
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs_f64(cfg.ack_timeout_s));
    let mut backoff = MIN_BACKOFF;
    let mut need_stream = true;
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut retry: VecDeque<Outgoing> = VecDeque::new();
    let mut retry_at = Instant::now();
    let mut stop_at: Option<Instant> = None;
    let mut rx_done = false;
    let mut failures_logged: u64 = 0;
    let mut unflushed = false;
    loop {
        if rx_done && inflight.is_empty() && retry.is_empty() {
            break;
        }
        let room = inflight.len() < cfg.max_in_flight;
        let blocked = need_stream || !retry.is_empty();
        tokio::select! {
            biased;
            _ = cancel.cancelled(), if stop_at.is_none() => {
                let mut flush = Duration::from_secs_f64(cfg.ack_timeout_s);
                if let Some(g) = *grace.lock().unwrap_or_else(|p| p.into_inner()) {
                    flush = flush.min(g);
                }
                stop_at = Some(Instant::now() + flush);
                rx.close();
            }
            _ = tokio::time::sleep_until(stop_at.unwrap_or_else(Instant::now)), if stop_at.is_some() => {
                tracing::warn!(event = "nats_sink_unflushed", in_flight = inflight.len(), retry = retry.len(), buffered = rx.len());
                unflushed = true;
                break;
            }
            res = front_ack(&mut inflight) => {
                let Some(f) = inflight.pop_front() else { continue };
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                match res {
                    Ok(ack) => {
                        backoff = MIN_BACKOFF;
                        if ack.duplicate {
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        } else {
                            stats.published.fetch_add(1, Ordering::Relaxed);
                        }
                        stats.acks.fetch_add(1, Ordering::Relaxed);
                        stats.ack_us_sum.fetch_add(f.sent.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if matches!(e.kind(), PublishErrorKind::StreamNotFound) {
                            need_stream = true;
                        }
                        // Re-send this one and everything after it, in order: what was stored
                        // already comes back as a duplicate.
                        retry.push_back(f.out);
                        let n = inflight.len() as u64;
                        retry.extend(inflight.drain(..).map(|f| f.out));
                        stats.in_flight.fetch_sub(n, Ordering::Relaxed);
                        failed(&stats, &mut failures_logged, &e.to_string(), retry.len());
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            _ = tokio::time::sleep_until(retry_at), if blocked && room => {
                if need_stream {
                    let Some(ensured) = unless_stopped(ensure_stream(&js, &cfg, &stats), &cancel, stop_at).await else {
                        continue;
                    };
                    match ensured {
                        Ok(()) => need_stream = false,
                        Err(e) => {
                            stats.error(format!("stream: {e}"));
                            tracing::warn!(event = "nats_stream_error", stream = %cfg.stream, error = %e);
                            retry_at = Instant::now() + backoff;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                    }
                }
                while inflight.len() < cfg.max_in_flight {
                    let Some(out) = retry.pop_front() else { break };
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    if let Err((out, e)) = send(&js, out, &mut inflight, &stats, &cancel, stop_at).await {
                        retry.push_front(out);
                        if e == STOPPING {
                            break;
                        }
                        failed(&stats, &mut failures_logged, &e, retry.len());
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                }
            }
            item = rx.recv(), if room && !blocked && !rx_done => {
                let Some(item) = item else {
                    rx_done = true;
                    continue;
                };
                stats.buffered.fetch_sub(1, Ordering::Relaxed);
                let out = match item {
                    Item::Market(category, ev) => message::market(&cfg.subject_prefix, cfg.books, category, *ev),
                    Item::Ready(out) => Some(out),
                };
                if let Some(out) = out {
                    if let Err((out, e)) = send(&js, out, &mut inflight, &stats, &cancel, stop_at).await {
                        retry.push_back(out);
                        if e == STOPPING {
                            // Cut short by the stop: still to be published (and reported).
                            continue;
                        }
                        failed(&stats, &mut failures_logged, &e, retry.len());
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
    if !unflushed {
        let _ = tokio::time::timeout(FINAL_FLUSH, client.flush()).await;
    }
    tracing::info!(
        event = "nats_sink_stopped",
        published = stats.published.load(Ordering::Relaxed),
        duplicates = stats.duplicates.load(Ordering::Relaxed),
        dropped = stats.dropped.load(Ordering::Relaxed),
        errors = stats.errors.load(Ordering::Relaxed),
    );
}

/// Counts a failed publish; logs `nats_publish_failed` for the first and then every 100th.
fn failed(stats: &NatsStats, logged: &mut u64, error: &str, pending: usize) {
    let n = stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
    stats.error(error.to_string());
    if *logged == 0 || n >= *logged + 100 {
        *logged = n;
        tracing::warn!(event = "nats_publish_failed", error = %error, errors_total = n, pending_resend = pending);
    }
}
