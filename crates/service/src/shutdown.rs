//! Every stop completes: one shutdown signal that every long-lived task observes, a registry that
//! names what is still running, and a bounded wait.
//!
//! - [`Signals`]: SIGINT and SIGTERM handlers installed at once, on a thread of their own (so
//!   they are heard even when every runtime thread is busy or blocked). The first signal cancels
//!   [`Signals::token`]: the command's clean stop begins. A second one exits at once
//!   ([`exit_now`]): `service_shutdown_forced`, worker process groups killed and reaped, exit
//!   status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). The same thread is a
//!   watchdog: a stop still running [`WATCHDOG_MARGIN`] after its bound (a thread blocked where
//!   it cannot even give up) ends the process there (status 1).
//! - [`Tasks`]: long-lived tasks (and threads) registered by name while they run. A task spawned
//!   with [`Tasks::spawn_until_cancelled`] ends the moment the token is cancelled, wherever it is
//!   waiting: a backoff sleep, a request budget, a REST request in flight (dropped, not awaited to
//!   its timeout).
//! - [`bounded`]: waits for a stop for at most `[service] shutdown_timeout_s`; when that runs out
//!   it logs `service_shutdown_incomplete` once, with the names of the tasks still running, and
//!   the caller exits non-zero (after [`kill_children`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default of `[service] shutdown_timeout_s`.
pub const DEFAULT_TIMEOUT_S: f64 = 10.0;

/// How long [`kill_children`] waits for killed workers to be reaped.
const REAP_WAIT: Duration = Duration::from_millis(1_000);

/// How much longer than the bound the watchdog of [`Signals`] gives a stop before it exits the
/// process itself: only a stop stuck where it cannot even give up (a thread blocked on a write
/// to a reader that stopped reading) gets that far.
pub const WATCHDOG_MARGIN: Duration = Duration::from_secs(2);

/// `service_shutdown_incomplete` is logged once per process.
static INCOMPLETE_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn log_incomplete(timeout: Duration, names: &[String], watchdog: bool) {
    if INCOMPLETE_LOGGED.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::error!(
        event = "service_shutdown_incomplete",
        timeout_s = timeout.as_secs_f64(),
        tasks = %names.join(", "),
        count = names.len(),
        watchdog,
        "the stop did not complete in time: exiting without waiting for these",
    );
}

#[derive(Debug, Default)]
struct Inner {
    next: AtomicU64,
    running: Mutex<BTreeMap<u64, String>>,
    idle: Notify,
}

impl Inner {
    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Named long-lived tasks, registered while they run (clones share the registry).
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    inner: Arc<Inner>,
}

/// A registration: the name is listed until this is dropped.
#[derive(Debug)]
pub struct TaskGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let mut running = self.inner.running();
        running.remove(&self.id);
        if running.is_empty() {
            self.inner.idle.notify_waiters();
        }
    }
}

impl Tasks {
    /// An empty registry.
    pub fn new() -> Self {
        Tasks::default()
    }

    /// Lists `name` until the guard is dropped (for threads and work that is not a task).
    pub fn register(&self, name: impl Into<String>) -> TaskGuard {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner.running().insert(id, name.into());
        TaskGuard {
            inner: self.inner.clone(),
            id,
        }
    }

    /// Spawns `fut` on the current runtime, listed as `name` until it ends (or is aborted).
    pub fn spawn<F>(&self, name: impl Into<String>, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let guard = self.register(name);
        tokio::spawn(async move {
            let _guard = guard;
            fut.await
        })
    }

    /// Like [`Tasks::spawn`], but the task ends as soon as `cancel` is cancelled, wherever `fut`
    /// is waiting (`None` then).
    pub fn spawn_until_cancelled<F>(
        &self,
        name: impl Into<String>,
        cancel: CancellationToken,
        fut: F,
    ) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(name, async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                out = fut => Some(out),
            }
        })
    }

    /// `fut`, listed as `name` from now until it ends or is dropped (for a `JoinSet`).
    pub fn track<F: Future>(
        &self,
        name: impl Into<String>,
        fut: F,
    ) -> impl Future<Output = F::Output> {
        let guard = self.register(name);
        async move {
            let _guard = guard;
            fut.await
        }
    }

    /// Runs blocking `f` on the runtime's blocking pool, listed as `name` until it returns.
    pub fn spawn_blocking<F, R>(&self, name: impl Into<String>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let guard = self.register(name);
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            f()
        })
    }

    /// The names of what is running, sorted; a name registered several times appears once as
    /// `name (xN)`.
    pub fn running(&self) -> Vec<String> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for name in self.inner.running().values() {
            *counts.entry(name.clone()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(name, n)| match n {
                1 => name,
                n => format!("{name} (x{n})"),
            })
            .collect()
    }

    /// Whether nothing is registered.
    pub fn is_idle(&self) -> bool {
        self.inner.running().is_empty()
    }

    /// Resolves once nothing is registered.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_idle() {
                return;
            }
            notified.await;
        }
    }
}

/// A stop that did not complete within its bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the stop did not complete within {timeout_s} s; still running: {}", tasks.join(", "))]
pub struct Incomplete {
    /// The tasks still running, by name.
    pub tasks: Vec<String>,
    /// The bound (s).
    pub timeout_s: f64,
}

/// Waits for `stop` at most `timeout`. When it runs out, logs `service_shutdown_incomplete` (the
/// names of `tasks` still running, the bound) and gives up on `stop` (it is dropped).
pub async fn bounded<F: Future>(
    timeout: Duration,
    tasks: &Tasks,
    stop: F,
) -> Result<F::Output, Incomplete> {
    match tokio::time::timeout(timeout, stop).await {
        Ok(out) => Ok(out),
        Err(_) => {
            let names = tasks.running();
            log_incomplete(timeout, &names, false);
            Err(Incomplete {
                tasks: names,
                timeout_s: timeout.as_secs_f64(),
            })
        }
    }
}

/// The `[service] shutdown_timeout_s` bound as a duration (the default when invalid).
pub fn timeout_of(seconds: f64) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::from_secs_f64(seconds.min(86_400.0))
    } else {
        Duration::from_secs_f64(DEFAULT_TIMEOUT_S)
    }
}

/// Kills every worker process group this process started and has not reaped, and reaps them
/// (for a process about to exit: no child outlives it, none is left a zombie).
pub fn kill_children() {
    let live = hft_feed::children::live();
    if live.is_empty() {
        return;
    }
    let left = hft_feed::children::kill_all(REAP_WAIT);
    tracing::warn!(
        event = "service_children_killed",
        pids = ?live,
        not_reaped = ?left,
    );
}

/// Exits the process now with `code`: worker process groups are killed and reaped first, the
/// terminal's progress bars cleared. Nothing else is waited for: what SQLite committed is on
/// disk (a transaction cut short is rolled back on the next open), recordings read up to their
/// last flush.
pub fn exit_now(code: i32) -> ! {
    kill_children();
    crate::terminal::bars::clear();
    std::process::exit(code)
}

/// SIGINT and SIGTERM, handled on a thread of their own from the moment they are installed.
///
/// The same thread is the stop's watchdog: once a stop began (the first signal, or
/// [`Signals::stopping`]) and its bound ([`Signals::set_bound`], default 10 s) plus
/// [`WATCHDOG_MARGIN`] passed with the process still there, it logs `service_shutdown_incomplete`
/// (unless the command already did) and exits with status 1, whatever the command's own threads
/// are stuck in.
#[derive(Clone)]
pub struct Signals {
    token: CancellationToken,
    received: Arc<Mutex<Option<&'static str>>>,
    tasks: Arc<Mutex<Vec<Tasks>>>,
    bound: Arc<Mutex<Duration>>,
    watchdog: Arc<Mutex<Option<std::time::Instant>>>,
    rearm: Arc<Notify>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("received", &self.received())
            .finish()
    }
}

impl Signals {
    /// Installs the handlers NOW (a signal from here on never kills the process with the default
    /// action): the first SIGINT / SIGTERM cancels [`Signals::token`], a second one exits at once
    /// ([`exit_now`], status 128 + its number) after logging `service_shutdown_forced` with the
    /// tasks still running (those of every registry [`Signals::watch`] was given).
    pub fn install() -> Signals {
        let signals = Signals {
            token: CancellationToken::new(),
            received: Arc::new(Mutex::new(None)),
            tasks: Arc::new(Mutex::new(Vec::new())),
            bound: Arc::new(Mutex::new(Duration::from_secs_f64(DEFAULT_TIMEOUT_S))),
            watchdog: Arc::new(Mutex::new(None)),
            rearm: Arc::new(Notify::new()),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
        let s = signals.clone();
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => {
                        let _ = ready_tx.send(false);
                        return;
                    }
                };
                rt.block_on(s.listen(ready_tx));
            });
        let ready = spawned.is_ok() && ready_rx.recv().unwrap_or(false);
        if !ready {
            tracing::error!(
                event = "signal_handlers_unavailable",
                "SIGINT / SIGTERM keep their default action"
            );
        }
        signals
    }

    async fn listen(self, ready: std::sync::mpsc::Sender<bool>) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            let _ = ready.send(false);
            return;
        };
        let _ = ready.send(true);
        loop {
            let watchdog = *self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
            let expired = async {
                match watchdog {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let (name, number) = tokio::select! {
                _ = int.recv() => ("SIGINT", libc_number(SignalKind::interrupt())),
                _ = term.recv() => ("SIGTERM", libc_number(SignalKind::terminate())),
                _ = self.rearm.notified() => continue,
                _ = expired => {
                    let bound = *self.bound.lock().unwrap_or_else(|p| p.into_inner());
                    log_incomplete(bound, &self.running(), true);
                    exit_now(1);
                }
            };
            let first = {
                let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
                let first = received.is_none();
                received.get_or_insert(name);
                first
            };
            if first {
                tracing::info!(event = "shutdown_signal", signal = name);
                self.stopping();
                self.token.cancel();
                continue;
            }
            let tasks = self.running();
            tracing::warn!(
                event = "service_shutdown_forced",
                signal = name,
                tasks = %tasks.join(", "),
                "second signal: exiting at once",
            );
            exit_now(128 + number);
        }
    }

    /// The tasks still running in every watched registry.
    fn running(&self) -> Vec<String> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(Tasks::running)
            .collect()
    }

    /// The stop's bound (`[service] shutdown_timeout_s`), for the watchdog.
    pub fn set_bound(&self, bound: Duration) {
        *self.bound.lock().unwrap_or_else(|p| p.into_inner()) = bound;
    }

    /// A stop began (for any reason): arms the watchdog, if not armed yet.
    pub fn stopping(&self) {
        let bound = *self.bound.lock().unwrap_or_else(|p| p.into_inner());
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        if watchdog.is_none() {
            *watchdog = Some(std::time::Instant::now() + bound + WATCHDOG_MARGIN);
            self.rearm.notify_one();
        }
    }

    /// Cancelled by the first SIGINT / SIGTERM.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Resolves on the first SIGINT / SIGTERM (at once if one already came).
    pub async fn first(&self) {
        self.token.cancelled().await
    }

    /// The first signal received (`SIGINT` or `SIGTERM`), if any.
    pub fn received(&self) -> Option<&'static str> {
        *self.received.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A second signal names the tasks of `tasks` still running in `service_shutdown_forced`.
    pub fn watch(&self, tasks: &Tasks) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tasks.clone());
    }
}

fn libc_number(kind: tokio::signal::unix::SignalKind) -> i32 {
    kind.as_raw_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_are_listed_by_name_while_they_run() {
        let tasks = Tasks::new();
        let cancel = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let a = tasks.spawn("pipeline linear", async move {
            let _ = rx.await;
        });
        let b = tasks.spawn_until_cancelled(
            "backfill linear BTCUSDT",
            cancel.clone(),
            std::future::pending::<()>(),
        );
        let c = tasks.spawn_until_cancelled(
            "backfill linear BTCUSDT",
            cancel.clone(),
            std::future::pending::<()>(),
        );
        let guard = tasks.register("store_writer");
        assert_eq!(
            tasks.running(),
            vec![
                "backfill linear BTCUSDT (x2)".to_string(),
                "pipeline linear".into(),
                "store_writer".into()
            ]
        );
        cancel.cancel();
        assert_eq!(b.await.expect("joins"), None, "ended by the token");
        assert_eq!(c.await.expect("joins"), None);
        tx.send(()).expect("send");
        a.await.expect("joins");
        assert_eq!(tasks.running(), vec!["store_writer".to_string()]);
        assert!(!tasks.is_idle());
        let idle = tokio::spawn({
            let tasks = tasks.clone();
            async move { tasks.idle().await }
        });
        drop(guard);
        tokio::time::timeout(Duration::from_secs(5), idle)
            .await
            .expect("idle once the last one ended")
            .expect("joins");
    }

    #[tokio::test]
    async fn an_aborted_task_is_no_longer_listed() {
        let tasks = Tasks::new();
        let t = tasks.spawn("refetch", std::future::pending::<()>());
        assert_eq!(tasks.running(), vec!["refetch".to_string()]);
        t.abort();
        let _ = t.await;
        assert!(tasks.is_idle());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_that_never_ends_is_abandoned_and_named() {
        let tasks = Tasks::new();
        let _stuck = tasks.spawn("never_ends", std::future::pending::<()>());
        let quick = tasks.spawn("quick", async {});
        quick.await.expect("joins");
        let r = bounded(Duration::from_secs(3), &tasks, std::future::pending::<()>()).await;
        assert_eq!(
            r,
            Err(Incomplete {
                tasks: vec!["never_ends".into()],
                timeout_s: 3.0
            })
        );
        let ok = bounded(Duration::from_secs(3), &tasks, async { 7 }).await;
        assert_eq!(ok, Ok(7));
    }

    #[test]
    fn the_timeout_falls_back_to_the_default_when_invalid() {
        assert_eq!(timeout_of(3.0), Duration::from_secs(3));
        assert_eq!(timeout_of(0.0), Duration::from_secs(10));
        assert_eq!(timeout_of(f64::NAN), Duration::from_secs(10));
    }
}
