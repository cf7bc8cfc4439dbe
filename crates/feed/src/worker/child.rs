//! The worker side of process isolation (`hft-connector worker --config-json JSON`): runs the live
//! feed in-process and forwards every event as a frame on stdout; logs only to stderr.
//!
//! - Start-up progress, the feed's own logs (subscription confirmations, errors with context) and
//!   `bybit_connector_worker_stats` every `stats_interval_s` go to stderr as JSON lines.
//! - A `Health` frame every `health_report_s` is the worker's heartbeat; the supervisor's stale
//!   detector replaces a worker that stops sending anything.
//! - Frames are encoded on the feed's task and written in bursts (everything already queued) by
//!   `worker/stdout.rs`: a blocking writer thread, or with `feed.busy_poll_us` the task itself on a
//!   non-blocking pipe. Delivery is prompt, and a full pipe (a slow supervisor) backs up into the
//!   feed's bounded queue: lossless.
//! - SIGUSR1 makes its feed drop the connection and reconnect, SIGUSR2 resubscribe its books
//!   for fresh snapshots ([`super::control`]).
//! - It exits cleanly on SIGTERM or SIGINT, and on its own when the supervisor goes away: stdin (a
//!   pipe from the supervisor) reaches EOF, or writing stdout fails with EPIPE. Never an orphan.
//!
//! Test hook: `HFT_CONNECTOR_WORKER_PANIC_AFTER=N` makes the FIRST worker generation panic after
//! forwarding N events (the tests' way to crash a worker; replacements run normally).

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::framing::{encode, WorkerMsg};
use crate::feed::{Feed, FeedConfig, FeedEvent};

/// Environment variable of the panic test hook (see the module docs).
pub const PANIC_AFTER_ENV: &str = "HFT_CONNECTOR_WORKER_PANIC_AFTER";

/// Most bytes gathered into one write before flushing.
const BURST_BYTES: usize = 64 * 1024;

/// What the supervisor passes to a worker (as JSON on its command line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// The feed to run.
    pub feed: FeedConfig,
    /// Per symbol, Unix ms up to which the supervisor already holds every trade: the first
    /// connection gap-fills from there (see [`Feed::spawn_resuming`]).
    pub covered_ms: HashMap<String, u64>,
    /// Seconds between `Health` frames (the worker's heartbeat).
    pub health_report_s: f64,
    /// Seconds between `bybit_connector_worker_stats` log lines.
    pub stats_interval_s: f64,
    /// 1 for the first worker of a supervisor, 2 for its first replacement, ...
    pub generation: u64,
    /// Forward every raw frame (`WorkerMsg::Raw`): the supervisor is recording.
    pub record_raw: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            feed: FeedConfig::default(),
            covered_ms: HashMap::new(),
            health_report_s: 1.0,
            stats_interval_s: 60.0,
            generation: 1,
            record_raw: false,
        }
    }
}

#[derive(Default)]
struct Counters {
    events: u64,
    trades: u64,
    books: u64,
    frames: u64,
    bytes: u64,
}

/// Runs a worker until SIGTERM/SIGINT, the supervisor going away, or the feed ending.
pub async fn run(cfg: WorkerConfig) -> ExitCode {
    let pid = std::process::id();
    tracing::info!(
        event = "bybit_connector_worker_starting",
        pid,
        generation = cfg.generation,
        category = %cfg.feed.feed.category,
        symbols = %cfg.feed.feed.symbols.join(","),
        depth = cfg.feed.feed.depth,
        ws_url = %cfg.feed.ws_endpoint(),
        resume_from = ?cfg.covered_ms,
    );
    let panic_after: Option<u64> = if cfg.generation == 1 {
        std::env::var(PANIC_AFTER_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
    } else {
        None
    };
    let stop = CancellationToken::new();
    let reason = Arc::new(Mutex::new(String::from("feed ended")));
    if let Err(e) = watch_exit_signals(stop.clone(), reason.clone()) {
        tracing::error!(event = "bybit_connector_worker_signal_setup_failed", pid, error = %e);
        return ExitCode::from(2);
    }
    // Before anything is reported: the supervisor signals only workers that reported a state.
    let requests = match super::control::listen() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(event = "bybit_connector_worker_signal_setup_failed", pid, error = %e);
            return ExitCode::from(2);
        }
    };
    watch_stdin(stop.clone(), reason.clone());
    let busy = cfg.feed.feed.busy_poll_us > 0;
    let mut out = super::stdout::Stdout::open(busy, stop.clone(), reason.clone());

    let report_every = Duration::from_secs_f64(cfg.health_report_s.clamp(0.01, 60.0));
    let stats_every = Duration::from_secs_f64(cfg.stats_interval_s.clamp(0.01, 86_400.0));
    let mut raw = super::raw::RawForward::new(cfg.record_raw);
    let mut feed_cfg = cfg.feed.clone();
    feed_cfg.raw_tap = raw.tap();
    // The supervisor's queue is the consumer's buffer; this one only bridges the feed task and
    // the pipe, so a quarter of the budget (at least 256 KiB) keeps the worker's memory small.
    feed_cfg.feed.queue_max_bytes = (feed_cfg.feed.queue_max_bytes / 4).max(256 * 1024);
    // The health check is the supervisor's to log (its view of this process).
    let mut feed = match Feed::spawn_logging(feed_cfg, cfg.covered_ms.clone(), false) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(event = "bybit_connector_worker_config_invalid", pid, error = %e);
            return ExitCode::from(2);
        }
    };
    tokio::spawn(super::control::forward(requests, feed.shared()));
    tracing::info!(
        event = "bybit_connector_worker_feed_started",
        pid,
        health_report_s = report_every.as_secs_f64(),
        stats_interval_s = stats_every.as_secs_f64(),
        stdout = out.kind(),
    );
    let hello = WorkerMsg::Hello {
        pid,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut c = Counters::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut last_stats = (Instant::now(), 0u64);
    let started = Instant::now();
    let mut report = tokio::time::interval(report_every);
    let mut stats =
        tokio::time::interval_at(tokio::time::Instant::now() + stats_every, stats_every);
    let mut code = ExitCode::SUCCESS;
    push(&mut buf, &hello, &mut c);
    loop {
        if !buf.is_empty() && !out.send(&stop, &reason, std::mem::take(&mut buf)).await {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = report.tick() => push(&mut buf, &WorkerMsg::Health(feed.health()), &mut c),
            msg = raw.next() => {
                push(&mut buf, &msg, &mut c);
                while buf.len() < BURST_BYTES {
                    match raw.try_next() {
                        Some(m) => push(&mut buf, &m, &mut c),
                        None => break,
                    }
                }
            }
            _ = stats.tick() => {
                let h = feed.health();
                let dt = last_stats.0.elapsed().as_secs_f64().max(1e-9);
                tracing::info!(
                    event = "bybit_connector_worker_stats",
                    pid,
                    uptime_s = started.elapsed().as_secs_f64(),
                    events = c.events,
                    trades = c.trades,
                    books = c.books,
                    frames = c.frames,
                    bytes = c.bytes,
                    events_per_s = (c.events - last_stats.1) as f64 / dt,
                    status = %h.status,
                    queue_size = h.queue_size,
                    error_count = h.error_count,
                    reconnects = h.reconnects,
                    seconds_since_last_event = h.seconds_since_last_event.unwrap_or(-1.0),
                );
                last_stats = (Instant::now(), c.events);
            }
            ev = feed.next() => {
                let Some(ev) = ev else {
                    tracing::error!(event = "bybit_connector_worker_feed_ended", pid, events = c.events);
                    code = ExitCode::FAILURE;
                    break;
                };
                forward(&mut buf, ev, &mut c, pid);
                // Everything already queued goes in the same write (one flush per burst).
                while buf.len() < BURST_BYTES {
                    match feed.next().now_or_never() {
                        Some(Some(ev)) => forward(&mut buf, ev, &mut c, pid),
                        Some(None) | None => break,
                    }
                }
                if let Some(n) = panic_after {
                    if c.events >= n {
                        // Deliver what was promised first, like a real crash after a write.
                        let _ = out.send(&stop, &reason, std::mem::take(&mut buf)).await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        panic!("{PANIC_AFTER_ENV}={n}: test-hook panic after {} events", c.events);
                    }
                }
            }
        }
    }
    let why = reason.lock().map(|r| r.clone()).unwrap_or_default();
    tracing::info!(event = "bybit_connector_worker_stopping", pid, reason = %why);
    let _ = tokio::time::timeout(Duration::from_secs(2), feed.shutdown()).await;
    out.close().await;
    tracing::info!(
        event = "bybit_connector_worker_stopped",
        pid,
        reason = %why,
        events = c.events,
        frames = c.frames,
        bytes = c.bytes,
    );
    code
}

fn push(buf: &mut Vec<u8>, msg: &WorkerMsg, c: &mut Counters) {
    let before = buf.len();
    match encode(msg, buf) {
        Ok(()) => {
            c.frames += 1;
            c.bytes += (buf.len() - before) as u64;
        }
        Err(e) => tracing::error!(event = "bybit_connector_worker_encode_failed", error = %e),
    }
}

fn forward(buf: &mut Vec<u8>, ev: FeedEvent, c: &mut Counters, pid: u32) {
    c.events += 1;
    match &ev {
        FeedEvent::Trade(_) => c.trades += 1,
        FeedEvent::Book(_) => c.books += 1,
        FeedEvent::Connected { connection, .. } => {
            tracing::info!(
                event = "bybit_connector_worker_connected",
                pid,
                connection = *connection
            );
        }
        _ => {}
    }
    push(buf, &WorkerMsg::Event(ev), c);
}

pub(crate) fn set_reason(reason: &Mutex<String>, why: String) {
    if let Ok(mut r) = reason.lock() {
        if *r == "feed ended" {
            *r = why;
        }
    }
}

/// SIGTERM and SIGINT stop the worker cleanly.
fn watch_exit_signals(stop: CancellationToken, reason: Arc<Mutex<String>>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(event = "bybit_connector_worker_signal", signal = name);
        set_reason(&reason, name.to_string());
        stop.cancel();
    });
    Ok(())
}

/// The supervisor holds the other end of stdin and never writes: EOF means it is gone.
fn watch_stdin(stop: CancellationToken, reason: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        tracing::warn!(
            event = "bybit_connector_worker_supervisor_gone",
            reason = "stdin closed"
        );
        set_reason(&reason, "supervisor gone (stdin closed)".to_string());
        stop.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_as_json_with_defaults() {
        let mut cfg = WorkerConfig::default();
        cfg.covered_ms.insert("BTCUSDT".into(), 123);
        cfg.generation = 3;
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<WorkerConfig>(&json).unwrap(), cfg);
        let minimal: WorkerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(minimal, WorkerConfig::default());
    }
}
