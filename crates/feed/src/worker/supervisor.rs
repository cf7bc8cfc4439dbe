//! The supervisor side of process isolation: [`WorkerFeed`] runs the live feed in a child process
//! `hft-connector worker` and delivers the same event stream, books and health as the in-process
//! feed.
//!
//! - The worker runs in its own process group; its stdin is a pipe the supervisor never writes,
//!   so the worker sees EOF and exits when the supervisor dies, even by SIGKILL.
//! - stdout frames are decoded into a BOUNDED queue (`feed.queue_capacity` events). When it is
//!   full the supervisor logs `bybit_connector_queue_full` and stops reading the pipe until the
//!   consumer catches up: the worker's writes block, its own bounded queue fills, its socket reads
//!   pause. Nothing is dropped and memory never grows; the hang detector does not count time spent
//!   waiting for the consumer.
//! - stderr is read line by line into `bybit_connector_subprocess_stderr` (`pid`, `line`).
//! - A waiter task owns the child and awaits its exit (no polling): `bybit_connector_subprocess_exited`
//!   (`pid`, `exit_code` or `signal`) is logged the moment it is reaped, so no zombie survives.
//! - An unexpected exit logs `bybit_connector_process_died`; a worker that sends nothing (not even
//!   its periodic health report) for `hung_after_s` is stale: `bybit_connector_subprocess_stale`.
//!   A dead or broken worker's process group gets SIGTERM, SIGKILL after `term_grace_s`, a hung
//!   one SIGKILL at once (`bybit_connector_subprocess_terminated`), and a new worker starts after
//!   the feed's capped, jittered backoff ([`crate::backoff`]).
//! - Trades are de-duplicated by id across workers, and each new worker is told where the tape it
//!   continues ends (`covered_ms`) so its first connection gap-fills from REST: zero lost, zero
//!   duplicated trades across a worker restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::child::WorkerConfig;
use super::forward::{close_link, LinkLog};
use super::framing::{FrameCodec, WorkerMsg};
use super::options::WorkerOptions;
use super::signals::{describe, exited, failed_status, killpg};
use super::state::WorkerShared;
use super::stderr::pump_stderr;
use crate::backoff::Backoff;
use crate::book::OrderBook;
use crate::feed::health::unix_ms;
use crate::feed::recovery::TradeTracker;
use crate::feed::{
    ConfigError, ConnState, DisconnectReason, FeedConfig, FeedEvent, HealthSnapshot,
};

/// A live feed running in a supervised worker process.
#[derive(Debug)]
pub struct WorkerFeed {
    events: crate::queue::QueueRx,
    shared: Arc<WorkerShared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl WorkerFeed {
    /// Validates `cfg` and starts supervising workers on the current Tokio runtime.
    pub fn spawn(cfg: FeedConfig, opts: WorkerOptions) -> Result<WorkerFeed, ConfigError> {
        cfg.validate()?;
        let program = match &opts.program {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| ConfigError {
                field: "isolation".into(),
                reason: format!("cannot locate the hft-connector executable for workers: {e}"),
            })?,
        };
        let (tx, events) = crate::queue::bounded(cfg.feed.queue_capacity, cfg.feed.queue_max_bytes);
        let shared = Arc::new(WorkerShared::default());
        let cancel = CancellationToken::new();
        shared.set_silent_limit(opts.silent_limit(&cfg));
        let (_, _, _, log_every) = cfg.health_durations()?;
        let label = format!("{}:{}", cfg.feed.category, cfg.feed.symbols.join(","));
        let view = shared.clone();
        let snapshot = move || (view.snapshot(), view.pid());
        tokio::spawn(
            crate::feed::health_log::log_every(snapshot, cancel.clone(), log_every, label)
                .in_current_span(),
        );
        let bursts = tx.clone();
        let sup = Supervisor {
            backoff: Backoff::new(cfg.backoff()?),
            cfg,
            opts,
            program,
            shared: shared.clone(),
            tx,
            cancel: cancel.clone(),
            trackers: HashMap::new(),
            covered_ms: HashMap::new(),
            rng: SmallRng::from_os_rng(),
            gave_up: false,
            duplicates: 0,
        };
        let task = tokio::spawn(bursts.wake_per_burst(sup.run()).in_current_span());
        Ok(WorkerFeed {
            events,
            shared,
            cancel,
            task: Some(task),
        })
    }

    /// The next event; `None` once the supervisor stopped and everything was read.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        let ev = self.events.recv().await;
        self.shared.set_queue_size(self.events.len());
        ev
    }

    /// Appends the events queued now to `events` (see [`crate::feed::FeedHandle::next_batch`]).
    pub async fn next_batch(&mut self, events: &mut Vec<FeedEvent>) -> usize {
        let n = self.events.recv_many(events).await;
        self.shared.set_queue_size(self.events.len());
        n
    }

    /// Whether the worker is alive and its feed live.
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// Health snapshot (`process_alive`: the worker process is running).
    pub fn health(&self) -> HealthSnapshot {
        let mut h = self.shared.snapshot();
        h.queue_size = self.events.len() as u64;
        h
    }

    /// The current worker's pid.
    pub fn pid(&self) -> Option<u32> {
        self.shared.pid()
    }

    /// Workers started to replace failed ones.
    pub fn worker_restarts(&self) -> u64 {
        self.shared.restarts()
    }

    /// A copy of `symbol`'s book.
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        self.shared.book(symbol)
    }

    /// The shared state (for status APIs that outlive a borrow of the handle).
    pub fn shared(&self) -> Arc<WorkerShared> {
        self.shared.clone()
    }

    /// Stops the worker (SIGTERM, SIGKILL after the grace period) and the supervisor.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WorkerFeed {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Why a worker is stopped when it stops sending anything (SIGKILL, no grace).
const UNRESPONSIVE: &str = "unresponsive";

/// How one worker's life ended.
enum End {
    /// Shutdown requested, or the consumer is gone.
    Stop,
    /// The worker exited (or was stopped after hanging or breaking the protocol).
    Failed { reason: String, live_for: Duration },
}

struct Supervisor {
    cfg: FeedConfig,
    opts: WorkerOptions,
    program: PathBuf,
    shared: Arc<WorkerShared>,
    tx: crate::queue::QueueTx,
    cancel: CancellationToken,
    trackers: HashMap<String, TradeTracker>,
    /// Per symbol, when the tape was known complete if no trade was seen yet (Unix ms).
    covered_ms: HashMap<String, u64>,
    backoff: Backoff,
    rng: SmallRng,
    gave_up: bool,
    duplicates: u64,
}

/// One running worker.
struct Worker {
    pid: u32,
    /// Held open for the worker's life: its EOF tells the worker the supervisor is gone.
    stdin: Option<tokio::process::ChildStdin>,
    exit: watch::Receiver<Option<ExitStatus>>,
    frames: FramedRead<tokio::process::ChildStdout, FrameCodec>,
    /// Re-logs the worker's stderr; ends when the worker's stderr closes.
    stderr_task: JoinHandle<()>,
    /// The connection state the worker's forwarded events tell.
    link: Arc<LinkLog>,
}

impl Supervisor {
    async fn run(mut self) {
        let mut generation = 0u64;
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            while let Err(wait_ms) = self.backoff.admit_connection(unix_ms()) {
                if self.sleep(Duration::from_millis(wait_ms)).await {
                    break;
                }
            }
            generation += 1;
            let end = match self.start(generation) {
                Ok(mut w) => {
                    let end = self.supervise(&mut w).await;
                    self.close_link(w, &end).await;
                    end
                }
                Err(e) => {
                    tracing::error!(
                        event = "bybit_connector_subprocess_spawn_failed",
                        program = %self.program.display(),
                        error = %e,
                    );
                    self.shared.supervisor_error(false);
                    End::Failed {
                        reason: format!("cannot start worker: {e}"),
                        live_for: Duration::ZERO,
                    }
                }
            };
            self.shared.clear_pid();
            let End::Failed { reason, live_for } = end else {
                break;
            };
            if self.gave_up {
                break;
            }
            self.backoff.connection_lasted(live_for);
            let delay = self.backoff.next_delay(self.rng.random::<f64>());
            tracing::warn!(
                event = "bybit_connector_subprocess_restarting",
                reason = %reason,
                retry_delay = delay.as_secs_f64(),
                restarts = self.shared.restarts(),
            );
            self.shared.set_state(ConnState::Backoff);
            if !self
                .emit(FeedEvent::Disconnected {
                    reason: DisconnectReason::Error(reason),
                })
                .await
            {
                break;
            }
            if self.sleep(delay).await {
                break;
            }
        }
        self.shared.set_state(ConnState::Stopped);
    }

    fn start(&mut self, generation: u64) -> std::io::Result<Worker> {
        let mut covered = self.covered_ms.clone();
        for (s, t) in &self.trackers {
            if let Some(ts) = t.last_ts_ms() {
                covered.insert(s.clone(), ts);
            }
        }
        let wcfg = WorkerConfig {
            feed: self.cfg.clone(),
            covered_ms: covered,
            health_report_s: self.opts.report_every(&self.cfg),
            stats_interval_s: self.opts.stats_interval_s,
            generation,
            record_raw: self.cfg.raw_tap.is_some(),
        };
        let json = serde_json::to_string(&wcfg).map_err(std::io::Error::other)?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg("worker")
            .arg("--config-json")
            .arg(json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(std::io::Error::other("worker pipes missing"));
        };
        let stdin = child.stdin.take();
        self.shared.worker_started(pid, generation > 1);
        tracing::info!(
            event = "bybit_connector_subprocess_started",
            pid,
            generation,
            category = %self.cfg.feed.category,
            symbols = %self.cfg.feed.symbols.join(","),
        );
        let (exit_tx, exit) = watch::channel(None);
        let shared = self.shared.clone();
        // The waiter owns the child: it is reaped the moment it exits, whatever else happens.
        tokio::spawn(async move {
            let status = child.wait().await;
            shared.worker_exited();
            match &status {
                Ok(st) => {
                    let (exit_code, signal) = describe(st);
                    // A clean exit (e.g. on shutdown) is not a warning; a death is
                    // (`bybit_connector_process_died` is the ERROR when it was unexpected).
                    if st.success() {
                        tracing::info!(event = "bybit_connector_subprocess_exited", pid, exit_code, signal, status = %st);
                    } else {
                        tracing::warn!(event = "bybit_connector_subprocess_exited", pid, exit_code, signal, status = %st);
                    }
                }
                Err(e) => {
                    tracing::error!(event = "bybit_connector_subprocess_exited", pid, error = %e)
                }
            }
            let _ = exit_tx.send(Some(status.unwrap_or_else(|_| failed_status())));
        });
        let link = Arc::new(LinkLog::default());
        let stderr_task = tokio::spawn(pump_stderr(pid, stderr, link.clone()).in_current_span());
        Ok(Worker {
            pid,
            stdin,
            exit,
            frames: FramedRead::with_capacity(stdout, FrameCodec, 64 * 1024),
            stderr_task,
            link,
        })
    }

    /// Runs one worker until it exits, hangs, breaks the protocol or is no longer wanted.
    async fn supervise(&mut self, w: &mut Worker) -> End {
        let pid = w.pid;
        let hung_after = self.opts.hung_after(&self.cfg);
        let check_every = (hung_after / 10).max(Duration::from_millis(10));
        let mut check = tokio::time::interval(check_every);
        let mut last_frame = Instant::now();
        let mut live_since: Option<Instant> = None;
        let mut stdout_open = true;
        let live_for = |l: Option<Instant>| l.map(|t| t.elapsed()).unwrap_or_default();
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    self.terminate(w, "shutdown").await;
                    return End::Stop;
                }
                status = exited(&mut w.exit) => {
                    // Deliver what the worker wrote before it died: the pipe outlives the process.
                    let drain_until = Instant::now() + Duration::from_secs(1);
                    while stdout_open {
                        match tokio::time::timeout_at(drain_until, w.frames.next()).await {
                            Ok(Some(Ok(msg))) => {
                                if !self.handle(msg, pid, &mut live_since).await {
                                    return End::Stop;
                                }
                            }
                            _ => stdout_open = false,
                        }
                    }
                    let (exit_code, signal) = describe(&status);
                    self.shared.supervisor_error(false);
                    self.shared.invalidate(None);
                    tracing::error!(
                        event = "bybit_connector_process_died",
                        pid,
                        exit_code,
                        signal,
                        live_for_s = live_for(live_since).as_secs_f64(),
                        restarts = self.shared.restarts(),
                    );
                    return End::Failed {
                        reason: format!("worker process {pid} died: {status}"),
                        live_for: live_for(live_since),
                    };
                }
                frame = w.frames.next(), if stdout_open => {
                    match frame {
                        Some(Ok(msg)) => {
                            if !self.handle(msg, pid, &mut live_since).await {
                                // Cancelled while waiting for room in the queue: a shutdown.
                                let why = if self.cancel.is_cancelled() {
                                    "shutdown"
                                } else {
                                    "consumer gone"
                                };
                                self.terminate(w, why).await;
                                return End::Stop;
                            }
                            // Time spent waiting for the consumer is not the worker's silence.
                            last_frame = Instant::now();
                            self.shared.heard();
                        }
                        Some(Err(e)) => {
                            tracing::error!(event = "bybit_connector_subprocess_protocol_error", pid, error = %e);
                            self.shared.supervisor_error(false);
                            self.shared.invalidate(None);
                            self.terminate(w, "protocol error").await;
                            return End::Failed {
                                reason: format!("worker process {pid} broke the frame protocol: {e}"),
                                live_for: live_for(live_since),
                            };
                        }
                        None => {
                            tracing::warn!(event = "bybit_connector_subprocess_stdout_closed", pid);
                            stdout_open = false;
                        }
                    }
                }
                _ = check.tick() => {
                    let silent = last_frame.elapsed();
                    if silent >= hung_after {
                        tracing::warn!(
                            event = "bybit_connector_subprocess_stale",
                            pid,
                            seconds_since_last_frame = silent.as_secs_f64(),
                            stale_threshold = hung_after.as_secs_f64(),
                        );
                        self.shared.supervisor_error(true);
                        self.shared.set_hung();
                        self.shared.invalidate(None);
                        self.terminate(w, UNRESPONSIVE).await;
                        return End::Failed {
                            reason: format!(
                                "worker process {pid} unresponsive for {:.1} s",
                                silent.as_secs_f64()
                            ),
                            live_for: live_for(live_since),
                        };
                    }
                }
            }
        }
    }

    /// After a worker ended, closes in the log a connection it could not ([`close_link`]).
    async fn close_link(&self, w: Worker, end: &End) {
        let reason = match end {
            End::Stop => DisconnectReason::Shutdown.to_string(),
            End::Failed { reason, .. } => reason.clone(),
        };
        let category = self.cfg.feed.category.to_string();
        close_link(w.pid, w.stderr_task, &w.link, &reason, &category).await;
    }

    /// Applies one worker message; `false` when the consumer is gone.
    async fn handle(&mut self, msg: WorkerMsg, pid: u32, live_since: &mut Option<Instant>) -> bool {
        let ev = match msg {
            WorkerMsg::Hello { pid: p, version } => {
                tracing::info!(event = "bybit_connector_subprocess_ready", pid, reported_pid = p, version = %version);
                return true;
            }
            WorkerMsg::Health(h) => {
                self.shared.report(h);
                return true;
            }
            WorkerMsg::Event(ev) => ev,
            WorkerMsg::Raw { recv_ns, text } => {
                if let Some(tap) = &self.cfg.raw_tap {
                    tap.offer(recv_ns, &text);
                }
                return true;
            }
        };
        match &ev {
            FeedEvent::Trade(t) => {
                let tracker = crate::feed::recovery::tracker_for(&mut self.trackers, &t.symbol);
                if !tracker.observe(&t.id, t.ts_ms) {
                    self.duplicates += 1;
                    tracing::debug!(event = "bybit_connector_duplicate_trade", id = %t.id, pid);
                    return true;
                }
            }
            FeedEvent::Connected {
                symbols,
                connection,
                ..
            } => {
                live_since.get_or_insert_with(Instant::now);
                let now = unix_ms();
                for s in symbols {
                    self.covered_ms.entry(s.clone()).or_insert(now);
                }
                tracing::info!(
                    event = "bybit_connector_subprocess_connected",
                    pid,
                    connection = *connection,
                    category = %self.cfg.feed.category,
                    symbols = %symbols.join(","),
                    restarts = self.shared.restarts(),
                );
            }
            FeedEvent::GaveUp { .. } => self.gave_up = true,
            _ => {}
        }
        self.shared.observe(&ev);
        self.emit(ev).await
    }

    /// Queues an event for the consumer, waiting (and no longer reading the pipe) while the
    /// bounded queue is full. `false` when the consumer is gone.
    async fn emit(&self, ev: FeedEvent) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(crate::queue::TrySendError::Full(ev)) => {
                tracing::warn!(
                    event = "bybit_connector_queue_full",
                    queue_size = self.tx.max_capacity(),
                    pid = self.shared.pid().unwrap_or(0),
                    "consumer is slow; the supervisor stops reading the worker's pipe (the worker waits) instead of dropping"
                );
                self.shared.set_consumer_wait(true);
                // A shutdown must not wait for a consumer that stopped reading (as in-process).
                let sent = tokio::select! {
                    sent = self.tx.send(ev) => sent.is_ok(),
                    _ = self.cancel.cancelled() => false,
                };
                self.shared.set_consumer_wait(false);
                if !sent {
                    return false;
                }
            }
            Err(crate::queue::TrySendError::Closed(_)) => return false,
        }
        self.shared.set_queue_size(self.tx.len());
        true
    }

    /// Stops a worker's process group: SIGTERM (and SIGCONT, so a stopped worker can act on it),
    /// then SIGKILL after the grace period; waits until it is reaped.
    async fn terminate(&self, w: &mut Worker, why: &str) {
        let pid = w.pid;
        w.stdin.take();
        let started = Instant::now();
        let mut sent = "none";
        if w.exit.borrow().is_none() {
            if why == UNRESPONSIVE {
                // A hung worker is not trusted to shut down: woken by SIGCONT it would judge its
                // connection by the clock it missed and log a stale exchange that never was.
                sent = "SIGKILL";
                killpg(pid, nix::sys::signal::Signal::SIGKILL);
            } else {
                sent = "SIGTERM";
                killpg(pid, nix::sys::signal::Signal::SIGTERM);
                killpg(pid, nix::sys::signal::Signal::SIGCONT);
            }
        }
        let grace = Duration::from_secs_f64(self.opts.term_grace_s.clamp(0.0, 600.0));
        // Keep reading (and discarding) its stdout meanwhile, so a worker flushing on its way out
        // never blocks on a full pipe.
        let frames = &mut w.frames;
        let exit = &mut w.exit;
        let drained = async {
            let mut open = true;
            loop {
                tokio::select! {
                    status = exited(exit) => break status,
                    frame = frames.next(), if open => open = frame.is_some(),
                }
            }
        };
        let status = match tokio::time::timeout(grace, drained).await {
            Ok(status) => status,
            Err(_) => {
                sent = "SIGKILL";
                killpg(pid, nix::sys::signal::Signal::SIGKILL);
                exited(&mut w.exit).await
            }
        };
        let (exit_code, signal) = describe(&status);
        tracing::info!(
            event = "bybit_connector_subprocess_terminated",
            pid,
            reason = why,
            signal_sent = sent,
            exit_code,
            signal,
            waited_ms = started.elapsed().as_millis() as u64,
        );
    }

    /// Sleeps unless cancelled; `true` if cancelled.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }
}
