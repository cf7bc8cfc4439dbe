//! [`FeedSource`]: one API over the live feed whichever way it runs, in-process
//! ([`crate::feed::FeedHandle`]) or in a supervised worker process
//! ([`crate::worker::WorkerFeed`]), or over redundant lines ([`crate::lines::LinesFeed`]). The
//! service is written against this type only.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::book::OrderBook;
use crate::feed::{
    ConfigError, Feed, FeedConfig, FeedEvent, FeedHandle, FeedShared, HealthSnapshot,
};
use crate::lines::{LineStatus, LinesFeed, LinesShared};
use crate::worker::control::{WorkerReconnect, WorkerRequest};
use crate::worker::{WorkerFeed, WorkerOptions, WorkerShared};

/// How each exchange connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In a supervised child process `hft-connector worker` (default).
    Process,
    /// In the service's own process.
    InProcess,
}

impl Isolation {
    /// The name used in flags and configuration (`process`, `in-process`).
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::InProcess => "in-process",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "process" => Ok(Isolation::Process),
            "in-process" => Ok(Isolation::InProcess),
            other => Err(format!(
                "unknown isolation {other:?}: expected process or in-process"
            )),
        }
    }
}

/// A running live feed, in-process or in a worker process.
#[derive(Debug)]
pub enum FeedSource {
    /// The feed runs on this process's runtime.
    InProcess(FeedHandle),
    /// The feed runs in a supervised `hft-connector worker` child process.
    Process(WorkerFeed),
    /// The feed runs over `feed.lines` redundant lines, merged (see [`crate::lines`]).
    Lines(LinesFeed),
}

impl FeedSource {
    /// Starts `cfg` with the given isolation (process mode runs the current executable's `worker`
    /// subcommand with default [`WorkerOptions`]).
    pub fn spawn(cfg: FeedConfig, isolation: Isolation) -> Result<Self, ConfigError> {
        Self::spawn_with(cfg, isolation, WorkerOptions::default())
    }

    /// Like [`FeedSource::spawn`] with explicit worker options (ignored in-process).
    pub fn spawn_with(
        cfg: FeedConfig,
        isolation: Isolation,
        opts: WorkerOptions,
    ) -> Result<Self, ConfigError> {
        if cfg.feed.lines > 1 {
            return Ok(FeedSource::Lines(LinesFeed::spawn(cfg, isolation, opts)?));
        }
        Ok(match isolation {
            Isolation::InProcess => FeedSource::InProcess(Feed::spawn(cfg)?),
            Isolation::Process => FeedSource::Process(WorkerFeed::spawn(cfg, opts)?),
        })
    }

    /// How this source runs.
    pub fn isolation(&self) -> Isolation {
        match self {
            FeedSource::InProcess(_) => Isolation::InProcess,
            FeedSource::Process(_) => Isolation::Process,
            FeedSource::Lines(f) => f.isolation(),
        }
    }

    /// The next event; `None` once the feed stopped and everything was read.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        match self {
            FeedSource::InProcess(f) => f.next().await,
            FeedSource::Process(f) => f.next().await,
            FeedSource::Lines(f) => f.next().await,
        }
    }

    /// Appends the events queued now to `events`, waiting for one if none is, and returns how
    /// many; 0 once the feed stopped and everything was read. The same events in the same order
    /// as [`FeedSource::next`], one hand-off for all of them, at most the task's cooperative
    /// budget per call (see [`crate::feed::FeedHandle::next_batch`]).
    pub async fn next_batch(&mut self, events: &mut Vec<FeedEvent>) -> usize {
        match self {
            FeedSource::InProcess(f) => f.next_batch(events).await,
            FeedSource::Process(f) => f.next_batch(events).await,
            FeedSource::Lines(f) => f.next_batch(events).await,
        }
    }

    /// Health snapshot; in process mode `process_alive` is the worker process being alive.
    pub fn health(&self) -> HealthSnapshot {
        match self {
            FeedSource::InProcess(f) => f.health(),
            FeedSource::Process(f) => f.health(),
            FeedSource::Lines(f) => f.health(),
        }
    }

    /// The worker's pid in process mode (`None` in-process, or between workers).
    pub fn pid(&self) -> Option<u32> {
        match self {
            FeedSource::InProcess(_) => None,
            FeedSource::Process(f) => f.pid(),
            FeedSource::Lines(f) => f.shared().pid(),
        }
    }

    /// Workers started to replace failed ones (always 0 in-process).
    pub fn worker_restarts(&self) -> u64 {
        match self {
            FeedSource::InProcess(_) => 0,
            FeedSource::Process(f) => f.worker_restarts(),
            FeedSource::Lines(f) => f.shared().worker_restarts(),
        }
    }

    /// Whether the feed is live.
    pub fn is_connected(&self) -> bool {
        match self {
            FeedSource::InProcess(f) => f.is_connected(),
            FeedSource::Process(f) => f.is_connected(),
            FeedSource::Lines(f) => f.is_connected(),
        }
    }

    /// A copy of `symbol`'s exact book (check [`OrderBook::is_synced`]).
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        match self {
            FeedSource::InProcess(f) => f.book(symbol),
            FeedSource::Process(f) => f.book(symbol),
            FeedSource::Lines(f) => f.book(symbol),
        }
    }

    /// A cloneable, thread-safe view of health, books and pid that outlives borrows of `self`
    /// (for status APIs while another task consumes events).
    pub fn monitor(&self) -> SourceMonitor {
        match self {
            FeedSource::InProcess(f) => SourceMonitor::InProcess(f.shared()),
            FeedSource::Process(f) => SourceMonitor::Process(f.shared()),
            FeedSource::Lines(f) => SourceMonitor::Lines(f.shared()),
        }
    }

    /// Each line's state when the feed runs over redundant lines (empty otherwise).
    pub fn lines(&self) -> Vec<LineStatus> {
        match self {
            FeedSource::Lines(f) => f.lines(),
            _ => Vec::new(),
        }
    }

    /// Asks the feed to drop its connection now and reconnect (see [`SourceMonitor::reconnect`]).
    pub fn reconnect(&self, reason: &str) -> RequestOutcome {
        self.monitor().reconnect(reason)
    }

    /// Asks the feed for fresh book snapshots (see [`SourceMonitor::resync`]).
    pub fn resync(&self, reason: &str) -> RequestOutcome {
        self.monitor().resync(reason)
    }

    /// Stops the feed (in process mode: the worker gets SIGTERM, SIGKILL after a grace period).
    pub async fn shutdown(self) {
        match self {
            FeedSource::InProcess(f) => f.shutdown().await,
            FeedSource::Process(f) => f.shutdown().await,
            FeedSource::Lines(f) => f.shutdown().await,
        }
    }
}

/// What a reconnect or resync request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The in-process feed was asked. A reconnect drops its connection now (or, between
    /// connections, ends its backoff wait) and reconnects: resubscribe, fresh book snapshots, REST
    /// trade gap-fill. A resync resubscribes the live connection's book topics.
    Requested,
    /// The worker `pid` was told (SIGUSR1 reconnect, SIGUSR2 resync) to do the same; it keeps
    /// running.
    WorkerSignalled {
        /// The worker's pid.
        pid: u32,
    },
    /// No worker is ready to be told: none is running, or one has just started and is opening
    /// its connection (a fresh one: nothing to drop).
    WorkerNotReady,
}

/// Read access to a [`FeedSource`]'s state from anywhere.
#[derive(Debug, Clone)]
pub enum SourceMonitor {
    /// In-process feed state.
    InProcess(Arc<FeedShared>),
    /// Supervisor state.
    Process(Arc<WorkerShared>),
    /// Redundant lines' state.
    Lines(Arc<LinesShared>),
}

impl SourceMonitor {
    /// Health snapshot (see [`FeedSource::health`]).
    pub fn health(&self) -> HealthSnapshot {
        match self {
            SourceMonitor::InProcess(s) => s.health.snapshot(),
            SourceMonitor::Process(s) => s.snapshot(),
            SourceMonitor::Lines(s) => s.health(),
        }
    }

    /// Whether the feed is live.
    pub fn is_connected(&self) -> bool {
        match self {
            SourceMonitor::InProcess(s) => s.health.state() == crate::feed::ConnState::Live,
            SourceMonitor::Process(s) => s.is_connected(),
            SourceMonitor::Lines(s) => s.is_connected(),
        }
    }

    /// A copy of `symbol`'s book.
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        match self {
            SourceMonitor::InProcess(s) => {
                let books = s.books.read().unwrap_or_else(|p| p.into_inner());
                books.get(symbol).cloned()
            }
            SourceMonitor::Process(s) => s.book(symbol),
            SourceMonitor::Lines(s) => s.book(symbol),
        }
    }

    /// The worker's pid (process mode).
    pub fn pid(&self) -> Option<u32> {
        match self {
            SourceMonitor::InProcess(_) => None,
            SourceMonitor::Process(s) => s.pid(),
            SourceMonitor::Lines(s) => s.pid(),
        }
    }

    /// Worker restarts (process mode).
    pub fn worker_restarts(&self) -> u64 {
        match self {
            SourceMonitor::InProcess(_) => 0,
            SourceMonitor::Process(s) => s.restarts(),
            SourceMonitor::Lines(s) => s.worker_restarts(),
        }
    }

    /// Each line's state when the feed runs over redundant lines (empty otherwise).
    pub fn lines(&self) -> Vec<LineStatus> {
        match self {
            SourceMonitor::Lines(s) => s.lines(),
            _ => Vec::new(),
        }
    }

    /// Asks the feed to drop its connection now and reconnect the normal way; `reason` (who
    /// asked, why) ends up in the connection's `connector_disconnected` line in-process. In
    /// process mode the worker is told with SIGUSR1 ([`crate::worker::control`]).
    pub fn reconnect(&self, reason: &str) -> RequestOutcome {
        match self {
            SourceMonitor::InProcess(s) => {
                s.control.request_reconnect(reason);
                RequestOutcome::Requested
            }
            SourceMonitor::Process(s) => tell_worker(s, WorkerRequest::Reconnect),
            // Every line reconnects (each refills its own trades; the merge de-duplicates).
            SourceMonitor::Lines(s) => every_line(s, |m| m.reconnect(reason)),
        }
    }

    /// Asks the live connection to resubscribe its book topics for fresh snapshots (each book
    /// announces `Resync` with reason `requested`, then rebuilds from its snapshot); the
    /// connection and the trade tape go on. In process mode the worker is told with SIGUSR2.
    pub fn resync(&self, reason: &str) -> RequestOutcome {
        match self {
            SourceMonitor::InProcess(s) => {
                s.control.request_resync(reason);
                RequestOutcome::Requested
            }
            SourceMonitor::Process(s) => tell_worker(s, WorkerRequest::Resync),
            SourceMonitor::Lines(s) => every_line(s, |m| m.resync(reason)),
        }
    }
}

/// Asks every line; the first line's answer unless another one was told and it was not.
fn every_line(s: &LinesShared, ask: impl Fn(&SourceMonitor) -> RequestOutcome) -> RequestOutcome {
    let outcomes: Vec<RequestOutcome> = s.monitors().iter().map(ask).collect();
    outcomes
        .iter()
        .find(|o| !matches!(o, RequestOutcome::WorkerNotReady))
        .or(outcomes.first())
        .cloned()
        .unwrap_or(RequestOutcome::WorkerNotReady)
}

fn tell_worker(s: &WorkerShared, request: WorkerRequest) -> RequestOutcome {
    match crate::worker::control::tell(s, request) {
        WorkerReconnect::Signalled { pid } => RequestOutcome::WorkerSignalled { pid },
        WorkerReconnect::NotReady => RequestOutcome::WorkerNotReady,
    }
}
