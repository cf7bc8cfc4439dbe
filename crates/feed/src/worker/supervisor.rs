//! The supervisor side of process isolation: `Pump` starts, watches, stops and replaces the worker
//! process whose WebSocket carries the feed's connection; `Proc` is one running worker, read and
//! written by the feed's ordinary connection shell (`feed::transport::Link`).
//!
//! - The worker runs in its own process group, its stdin and stdout are the pipes of
//!   [`super::pipe`], its stderr is read line by line into `bybit_connector_subprocess_stderr`.
//! - A waiter task owns the child and awaits its exit: `bybit_connector_subprocess_exited`
//!   (`pid`, `exit_code` or `signal`) is logged the moment it is reaped, so no zombie survives.
//! - A worker that dies is noticed by its stdout's EOF (after everything it wrote was read):
//!   `bybit_connector_process_died`, and the connection ends with the death as its reason.
//! - A worker that sends nothing, not even its heartbeat, for `hung_after_s` while a connection
//!   is open or being opened is hung: `bybit_connector_subprocess_stale`, SIGKILL to its group at
//!   once, `bybit_connector_subprocess_terminated`. Not counted: time the supervisor spends not
//!   reading because its consumer is slow (the heartbeats wait in the pipe meanwhile).
//! - The next connection starts a new worker (after the feed's usual backoff): a worker restart
//!   is a reconnect the session already survives.
//! - On shutdown the worker's group gets SIGTERM (it closes its WebSocket with a close frame and
//!   exits 0), SIGKILL after `term_grace_s`.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::Instrument;

use super::child::WorkerConfig;
use super::options::WorkerOptions;
use super::pipe::{self, Down, EndKind, Up};
use super::signals::{describe, exited, failed_status, killpg};
use crate::feed::health::unix_ms;
use crate::feed::transport::Incoming;
use crate::feed::{ConfigError, FeedConfig, FeedShared};

/// Bytes read from a worker's stdout at most per read.
const READ_CHUNK: usize = 256 * 1024;

/// What the supervisor knows about its worker, for health and status readers on any thread.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    isolated: AtomicBool,
    pid: AtomicU32,
    /// The current worker has not been reaped.
    alive: AtomicBool,
    /// The current worker was judged hung.
    hung: AtomicBool,
    restarts: AtomicU64,
    /// A connection is open or being opened: the worker's heartbeat is due.
    listening: AtomicBool,
    /// When the worker was last heard from (Unix ms).
    heard_ms: AtomicU64,
    /// Silence after which the worker counts as not alive (ms).
    silent_limit_ms: AtomicU64,
    /// The feed waits for its consumer (the worker's silence is not its own).
    consumer_wait: AtomicBool,
}

impl WorkerStatus {
    /// Whether the feed runs in a worker process.
    pub fn isolated(&self) -> bool {
        self.isolated.load(Relaxed)
    }

    /// The current worker's pid.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Relaxed)).filter(|&p| p != 0)
    }

    /// Workers started to replace failed ones.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Relaxed)
    }

    /// Whether the worker process is running and responsive (always true in-process).
    pub fn process_alive(&self) -> bool {
        if !self.isolated() {
            return true;
        }
        let silent = unix_ms().saturating_sub(self.heard_ms.load(Relaxed));
        self.pid().is_some()
            && self.alive.load(Relaxed)
            && !self.hung.load(Relaxed)
            && (!self.listening.load(Relaxed)
                || self.consumer_wait.load(Relaxed)
                || silent <= self.silent_limit_ms.load(Relaxed))
    }

    /// The feed is (not) waiting for its consumer.
    pub(crate) fn set_consumer_wait(&self, waiting: bool) {
        if self.isolated() {
            self.consumer_wait.store(waiting, Relaxed);
        }
    }

    fn heard(&self) {
        self.heard_ms.store(unix_ms(), Relaxed);
    }
}

/// Starts and keeps the worker of one feed.
pub(crate) struct Pump {
    program: PathBuf,
    opts: WorkerOptions,
    worker: WorkerConfig,
    hung_after: Duration,
    /// Silence after which the session's timers wait for the hang detector's verdict.
    suspect_after: Duration,
    shared: Arc<FeedShared>,
    label: (String, String),
    proc: Option<Box<Proc>>,
}

impl Pump {
    /// The worker side of `cfg`'s feed (nothing starts before the first connection).
    pub(crate) fn new(
        cfg: &FeedConfig,
        opts: WorkerOptions,
        shared: Arc<FeedShared>,
    ) -> Result<Pump, ConfigError> {
        let program = match &opts.program {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| ConfigError {
                field: "isolation".into(),
                reason: format!("cannot locate this program's executable for workers: {e}"),
            })?,
        };
        let heartbeat = opts.heartbeat_every(cfg);
        let status = &shared.worker;
        status.isolated.store(true, Relaxed);
        status
            .silent_limit_ms
            .store(opts.silent_limit(cfg).as_millis() as u64, Relaxed);
        Ok(Pump {
            program,
            worker: WorkerConfig {
                heartbeat_s: heartbeat.as_secs_f64(),
                stats_interval_s: opts.stats_interval_s,
                generation: 0,
                busy_poll_us: cfg.feed.busy_poll_us,
            },
            hung_after: opts.hung_after(cfg),
            suspect_after: heartbeat.mul_f64(2.5),
            opts,
            shared,
            label: (cfg.feed.category.to_string(), cfg.feed.symbols.join(",")),
            proc: None,
        })
    }

    /// The span of the current worker's connection (`pid` named on every event).
    pub(crate) fn span(&self) -> tracing::Span {
        match self.shared.worker.pid() {
            Some(pid) => tracing::info_span!(super::WORKER_SPAN, pid),
            None => tracing::Span::none(),
        }
    }

    /// Opens a connection through the current worker, starting one first if none runs.
    pub(crate) async fn connect(
        &mut self,
        url: &str,
        timeout: Duration,
    ) -> Result<Box<Proc>, String> {
        let mut proc = match self.proc.take() {
            Some(p) if !p.exited() => p,
            Some(mut p) => {
                p.died().await;
                self.finish(p).await;
                self.start()?
            }
            None => self.start()?,
        };
        let status = &self.shared.worker;
        status.listening.store(true, Relaxed);
        proc.listen();
        let cmd = Down::Connect {
            timeout_ms: timeout.as_millis() as u64,
            url: url.to_string(),
        };
        if let Err(e) = proc.send(&cmd).await {
            let reason = proc.fail_write(e).await;
            self.finish(proc).await;
            return Err(reason);
        }
        loop {
            match proc.recv().await {
                Ok(Up::Connected) => return Ok(proc),
                Ok(Up::ConnectFailed(e)) => {
                    status.listening.store(false, Relaxed);
                    self.proc = Some(proc);
                    return Err(e);
                }
                Ok(_) => {} // what a previous connection left in the pipe
                Err(reason) => {
                    self.finish(proc).await;
                    return Err(reason);
                }
            }
        }
    }

    /// Takes the worker back after a connection: kept if it is sound, else stopped and reaped.
    pub(crate) async fn release(&mut self, mut proc: Box<Proc>) {
        self.shared.worker.listening.store(false, Relaxed);
        if proc.failed.is_none() && proc.exited() {
            proc.died().await;
        }
        if proc.failed.is_some() {
            self.finish(proc).await;
        } else {
            self.proc = Some(proc);
        }
    }

    /// Stops the worker for good.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.failed.get_or_insert(Failure::Stopped("shutdown"));
            self.finish(p).await;
        }
    }

    fn start(&mut self) -> Result<Box<Proc>, String> {
        self.spawn().map_err(|e| {
            tracing::error!(
                event = "bybit_connector_subprocess_spawn_failed",
                program = %self.program.display(),
                error = %e,
            );
            format!("cannot start worker: {e}")
        })
    }

    fn spawn(&mut self) -> std::io::Result<Box<Proc>> {
        if std::env::var_os(super::WORKER_ENV).is_some() {
            return Err(std::io::Error::other(
                "this process is itself a worker whose main() does not call \
                 hft_feed::worker::main() first: it starts no workers of its own",
            ));
        }
        self.worker.generation += 1;
        let generation = self.worker.generation;
        let json = serde_json::to_string(&self.worker).map_err(std::io::Error::other)?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg(super::WORKER_ARG)
            .env(super::WORKER_ENV, json)
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
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("worker pipes missing"));
        };
        let status = &self.shared.worker;
        status.pid.store(pid, Relaxed);
        status.alive.store(true, Relaxed);
        status.hung.store(false, Relaxed);
        status.heard();
        if generation > 1 {
            status.restarts.fetch_add(1, Relaxed);
        }
        tracing::info!(
            event = "bybit_connector_subprocess_started",
            pid,
            generation,
            category = %self.label.0,
            symbols = %self.label.1,
        );
        let (exit_tx, exit) = watch::channel(None);
        let shared = self.shared.clone();
        // The waiter owns the child: it is reaped the moment it exits, whatever else happens.
        tokio::spawn(async move {
            let status = child.wait().await;
            if shared.worker.pid.load(Relaxed) == pid {
                shared.worker.alive.store(false, Relaxed);
            }
            match &status {
                // A clean exit (e.g. on shutdown) is not a warning; a death is
                // (`bybit_connector_process_died` is the ERROR when it was unexpected).
                Ok(st) if st.success() => {
                    let (exit_code, signal) = describe(st);
                    tracing::info!(event = "bybit_connector_subprocess_exited", pid, exit_code, signal, status = %st);
                }
                Ok(st) => {
                    let (exit_code, signal) = describe(st);
                    tracing::warn!(event = "bybit_connector_subprocess_exited", pid, exit_code, signal, status = %st);
                }
                Err(e) => {
                    tracing::error!(event = "bybit_connector_subprocess_exited", pid, error = %e)
                }
            }
            let _ = exit_tx.send(Some(status.unwrap_or_else(|_| failed_status())));
        });
        let stderr_task = tokio::spawn(super::stderr::pump_stderr(pid, stderr).in_current_span());
        let hung_after = self.hung_after;
        Ok(Box::new(Proc {
            pid,
            stdin: Some(stdin),
            stdout,
            buf: BytesMut::with_capacity(READ_CHUNK),
            cmd: BytesMut::new(),
            exit,
            stderr_task: Some(stderr_task),
            last_heard: Instant::now(),
            hung_check: Box::pin(tokio::time::sleep(hung_after)),
            hung_after,
            suspect_after: self.suspect_after,
            shared: self.shared.clone(),
            open: false,
            failed: None,
            label: self.label.clone(),
        }))
    }

    /// Stops a worker that failed or is no longer wanted, waits until it is reaped (and its
    /// stderr read to the end), and clears it from the status.
    async fn finish(&self, mut p: Box<Proc>) {
        let pid = p.pid;
        p.stdin.take();
        let started = Instant::now();
        let why = p.failed.as_ref().map_or("stopped", Failure::name);
        let mut sent = match &p.failed {
            Some(Failure::Hung(_)) => "SIGKILL", // killed when judged hung
            _ if p.exited() => "none",
            _ => {
                killpg(pid, Signal::SIGTERM);
                killpg(pid, Signal::SIGCONT);
                "SIGTERM"
            }
        };
        let grace = Duration::from_secs_f64(self.opts.term_grace_s.clamp(0.0, 600.0));
        // Keep reading (and discarding) its stdout meanwhile, so a worker flushing on its way out
        // never blocks on a full pipe.
        let stdout = &mut p.stdout;
        let exit = &mut p.exit;
        let mut scratch = vec![0u8; 64 * 1024];
        let drained = async {
            let mut open = true;
            loop {
                tokio::select! {
                    status = exited(exit) => break status,
                    n = stdout.read(&mut scratch), if open => open = matches!(n, Ok(n) if n > 0),
                }
            }
        };
        let status = match tokio::time::timeout(grace, drained).await {
            Ok(status) => status,
            Err(_) => {
                sent = "SIGKILL";
                killpg(pid, Signal::SIGKILL);
                exited(&mut p.exit).await
            }
        };
        // Whatever else is in its group goes with it.
        killpg(pid, Signal::SIGKILL);
        if sent != "none" {
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
        if let Some(t) = p.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        let status = &self.shared.worker;
        if status.pid.load(Relaxed) == pid {
            status.pid.store(0, Relaxed);
            status.alive.store(false, Relaxed);
        }
    }
}

/// Why a worker is being stopped.
#[derive(Debug)]
enum Failure {
    /// It died by itself (the reason the connection ended).
    Died(String),
    /// It stopped answering.
    Hung(String),
    /// It wrote something that is not the pipe protocol.
    Protocol(String),
    /// It is no longer wanted.
    Stopped(&'static str),
}

impl Failure {
    fn name(&self) -> &'static str {
        match self {
            Failure::Died(_) => "died",
            Failure::Hung(_) => "unresponsive",
            Failure::Protocol(_) => "protocol error",
            Failure::Stopped(why) => why,
        }
    }

    fn reason(&self) -> String {
        match self {
            Failure::Died(r) | Failure::Hung(r) | Failure::Protocol(r) => r.clone(),
            Failure::Stopped(why) => why.to_string(),
        }
    }
}

/// One running worker.
pub(crate) struct Proc {
    pid: u32,
    /// Held open for the worker's life: its EOF tells the worker the supervisor is gone.
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::process::ChildStdout,
    /// Bytes read from stdout, not yet taken as frames.
    buf: BytesMut,
    /// Commands being encoded.
    cmd: BytesMut,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr_task: Option<JoinHandle<()>>,
    last_heard: Instant,
    /// Fires at most once per `hung_after`; re-armed from `last_heard`.
    hung_check: std::pin::Pin<Box<Sleep>>,
    hung_after: Duration,
    suspect_after: Duration,
    shared: Arc<FeedShared>,
    /// The worker has a connection open (it owes an `Ended`).
    open: bool,
    failed: Option<Failure>,
    label: (String, String),
}

impl Proc {
    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// A connection is being opened: the heartbeat is due from now on.
    fn listen(&mut self) {
        self.last_heard = Instant::now();
        self.shared.worker.heard();
        self.hung_check
            .as_mut()
            .reset(self.last_heard + self.hung_after);
    }

    /// The next frame of the connection, or its end (cancel-safe).
    pub(crate) async fn next(&mut self) -> Incoming {
        loop {
            return match self.recv().await {
                Ok(Up::Text { recv_ns, text }) => match Utf8Bytes::try_from(text) {
                    Ok(t) => Incoming::Text(t, recv_ns),
                    Err(_) => {
                        self.protocol("a text frame that is not UTF-8");
                        continue;
                    }
                },
                Ok(Up::Binary { recv_ns, data }) => Incoming::Binary(data.len(), recv_ns),
                Ok(Up::Other { recv_ns }) => Incoming::Other(recv_ns),
                Ok(Up::Ended(EndKind::CloseFrame(f))) => Incoming::Closed(Some(f)),
                Ok(Up::Ended(EndKind::StreamEnded | EndKind::Requested)) => Incoming::Closed(None),
                Ok(Up::Ended(EndKind::Error(e))) => Incoming::Error(e),
                Ok(_) => continue,
                Err(reason) => Incoming::Error(reason),
            };
        }
    }

    /// The next message that is not a heartbeat; `Err` (the reason) once the worker failed.
    async fn recv(&mut self) -> Result<Up, String> {
        loop {
            if let Some(f) = &self.failed {
                return Err(f.reason());
            }
            match pipe::take_up(&mut self.buf) {
                Ok(Some(Up::Heartbeat)) => continue,
                Ok(Some(Up::Hello { pid, version })) => {
                    tracing::info!(event = "bybit_connector_subprocess_ready", pid = self.pid, reported_pid = pid, version = %version);
                    continue;
                }
                Ok(Some(up)) => {
                    match &up {
                        Up::Connected => self.open = true,
                        Up::Ended(_) => self.open = false,
                        _ => {}
                    }
                    return Ok(up);
                }
                Ok(None) => {}
                Err(e) => {
                    self.protocol(&e.to_string());
                    continue;
                }
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                n = self.stdout.read_buf(&mut self.buf) => match n {
                    Ok(n) if n > 0 => {
                        self.last_heard = Instant::now();
                        self.shared.worker.heard();
                    }
                    _ => {
                        self.died().await;
                    }
                },
                _ = &mut self.hung_check => {
                    let silent = self.last_heard.elapsed();
                    if silent >= self.hung_after {
                        self.hung(silent);
                    } else {
                        self.hung_check.as_mut().reset(self.last_heard + self.hung_after);
                    }
                }
            }
        }
    }

    /// Its stdout ended: it died (or is about to). Logs the death once its exit status is known.
    async fn died(&mut self) {
        let pid = self.pid;
        let status =
            match tokio::time::timeout(Duration::from_secs(1), exited(&mut self.exit)).await {
                Ok(status) => status,
                Err(_) => {
                    // Closed its stdout yet runs on: no use any more.
                    self.protocol("closed its stdout");
                    return;
                }
            };
        let (exit_code, signal) = describe(&status);
        self.shared.health.error();
        tracing::error!(
            event = "bybit_connector_process_died",
            pid,
            exit_code,
            signal,
            restarts = self.shared.worker.restarts(),
        );
        self.failed = Some(Failure::Died(format!(
            "worker process {pid} died: {status}"
        )));
    }

    fn hung(&mut self, silent: Duration) {
        let pid = self.pid;
        tracing::warn!(
            event = "bybit_connector_subprocess_stale",
            pid,
            seconds_since_last_frame = silent.as_secs_f64(),
            stale_threshold = self.hung_after.as_secs_f64(),
        );
        let health = &self.shared.health;
        health.error();
        health.stale();
        self.shared.worker.hung.store(true, Relaxed);
        // A hung worker is not trusted to shut down: woken by SIGCONT it would act on a clock it
        // missed.
        killpg(pid, Signal::SIGKILL);
        self.failed = Some(Failure::Hung(format!(
            "worker process {pid} unresponsive for {:.1} s",
            silent.as_secs_f64()
        )));
    }

    fn protocol(&mut self, error: &str) {
        let pid = self.pid;
        tracing::error!(event = "bybit_connector_subprocess_protocol_error", pid, error = %error);
        self.shared.health.error();
        self.failed = Some(Failure::Protocol(format!(
            "worker process {pid} broke the pipe protocol: {error}"
        )));
    }

    /// Writing its stdin failed: it is dead or dying.
    async fn fail_write(&mut self, e: std::io::Error) -> String {
        self.died().await;
        if self.failed.is_none() {
            self.protocol(&format!("stdin write failed: {e}"));
        }
        self.failed
            .as_ref()
            .map(Failure::reason)
            .unwrap_or_default()
    }

    async fn send(&mut self, cmd: &Down) -> std::io::Result<()> {
        self.cmd.clear();
        pipe::put_down(&mut self.cmd, cmd);
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&self.cmd).await,
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Sends a text frame on the worker's WebSocket.
    pub(crate) async fn send_text(&mut self, text: String) -> Result<(), String> {
        if let Some(f) = &self.failed {
            return Err(f.reason());
        }
        match self.send(&Down::Send(text)).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail_write(e).await),
        }
    }

    /// Asks the worker to close its connection and discards what the connection still sent,
    /// up to the worker's confirmation (so the next connection starts clean).
    pub(crate) async fn close(&mut self, graceful: bool) {
        if self.failed.is_some() || !self.open {
            return;
        }
        if let Err(e) = self.send(&Down::Close { graceful }).await {
            self.fail_write(e).await;
            return;
        }
        let confirmed = tokio::time::timeout(self.hung_after.max(Duration::from_secs(2)), async {
            loop {
                match self.recv().await {
                    Ok(Up::Ended(_)) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await;
        if confirmed.is_err() {
            self.protocol("did not confirm closing its connection");
        }
    }

    /// See [`crate::feed::transport::Link::suspect`].
    pub(crate) fn suspect(&self) -> Option<Duration> {
        (self.last_heard.elapsed() > self.suspect_after).then_some(self.suspect_after / 2)
    }

    /// Logs `bybit_connector_subprocess_connected`.
    pub(crate) fn on_live(&self, connection: u64) {
        tracing::info!(
            event = "bybit_connector_subprocess_connected",
            pid = self.pid,
            connection,
            category = %self.label.0,
            symbols = %self.label.1,
            restarts = self.shared.worker.restarts(),
        );
    }
}
