//! Starting and stopping the simulator: the shared state, the HTTP/WebSocket server on one port, the
//! market clock, and [`SimHandle`], the in-process control surface (same powers as `/sim/*`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::SimConfig;
use super::core::Core;
use super::fault::{self, FaultReport, FaultRequest, GlobalFaults};
use super::hub::Conn;
use super::journal::{Journal, JournalQuery};
use super::ladder::TrueBook;
use super::listener::{PeerAddr, SimListener};
use super::ratelimit::IpLimiter;
use super::stats::{SimStats, Stats};
use super::{control, rest, ws};
use crate::normalized::Event;
use crate::protocol::Category;

/// Wall-clock time in ms since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// State shared by the server tasks, the market clock and the handle.
#[derive(Debug)]
pub struct Shared {
    /// Settings.
    pub cfg: SimConfig,
    core: Mutex<Core>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    sockets: Mutex<HashMap<SocketAddr, Arc<AtomicBool>>>,
    global: Mutex<GlobalFaults>,
    /// REST IP limit.
    pub limiter: Mutex<IpLimiter>,
    /// Counters.
    pub stats: Stats,
    epoch: Instant,
    /// Market paused (`pause_market`).
    pub paused: AtomicBool,
    /// Stops everything.
    pub cancel: CancellationToken,
    next_conn: AtomicU64,
}

impl Shared {
    /// Milliseconds since the simulator started (monotonic; fault windows use it).
    pub fn mono_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The exchange state (a poisoned lock is taken over: the state stays consistent per step).
    pub fn lock_core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open connections.
    pub fn conns(&self) -> Vec<Arc<Conn>> {
        let g = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        g.values().cloned().collect()
    }

    pub(crate) fn add_conn(&self, c: &Arc<Conn>) {
        let mut g = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(c.id, Arc::clone(c));
    }

    pub(crate) fn remove_conn(&self, id: u64) {
        let mut g = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(&id);
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn register_socket(&self, addr: SocketAddr, flag: Arc<AtomicBool>) {
        let mut g = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(addr, flag);
    }

    pub(crate) fn unregister_socket(&self, addr: &SocketAddr) {
        let mut g = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(addr);
    }

    pub(crate) fn reset_flag(&self, addr: &SocketAddr) -> Arc<AtomicBool> {
        let g = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        g.get(addr).cloned().unwrap_or_default()
    }

    /// Runs `f` on the global fault state.
    pub fn with_global<R>(&self, f: impl FnOnce(&mut GlobalFaults) -> R) -> R {
        let mut g = self.global.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Whether new connections are refused now.
    pub fn refusing(&self) -> bool {
        let now = self.mono_ms();
        self.with_global(|g| now < g.refuse_until)
    }

    /// How long the `blackhole` fault still lasts (`None`: not in force).
    pub fn blackhole_left(&self) -> Option<Duration> {
        let now = self.mono_ms();
        let until = self.with_global(|g| g.blackhole_until);
        (now < until).then(|| Duration::from_millis(until - now))
    }

    /// Holds the caller (a connection, a REST request) while the `blackhole` fault lasts, or until
    /// the simulator stops; counted in `rest_held` / `connections_held` meanwhile.
    pub async fn hold_while_blackholed(&self) {
        // Re-checked often: a new `blackhole` (e.g. `seconds: 0`) can end it early.
        while let Some(left) = self.blackhole_left() {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(left.min(Duration::from_millis(100))) => {}
            }
        }
    }
}

/// The simulator: [`Simulator::start`] binds and runs it.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` and starts serving WebSocket, REST and `/sim/*` on it.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        config.validate().map_err(anyhow::Error::msg)?;
        let journal = Journal::new(config.journal_capacity, config.journal.as_deref())
            .with_context(|| format!("cannot open journal {:?}", config.journal))?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let core = Core::new(&config, wall_ms(), journal);
        let shared = Arc::new(Shared {
            limiter: Mutex::new(IpLimiter::new(
                config.rate_limit,
                config.rate_window,
                config.rate_ban,
            )),
            paused: AtomicBool::new(config.start_paused),
            cfg: config,
            core: Mutex::new(core),
            conns: Mutex::new(HashMap::new()),
            sockets: Mutex::new(HashMap::new()),
            global: Mutex::new(GlobalFaults::default()),
            stats: Stats::default(),
            epoch: Instant::now(),
            cancel: CancellationToken::new(),
            next_conn: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .merge(ws::routes())
            .merge(rest::routes(Arc::clone(&shared)))
            .merge(control::routes())
            .with_state(Arc::clone(&shared));
        let make = app.into_make_service_with_connect_info::<PeerAddr>();
        let cancel = shared.cancel.clone();
        let listener = SimListener::new(listener, Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, make)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
        });
        let clock = tokio::spawn(super::clock::run(Arc::clone(&shared)));
        Ok(SimHandle {
            addr,
            shared,
            tasks: Mutex::new(vec![server, clock]),
        })
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl SimHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://{addr}/v5/public/{category}`.
    pub fn ws_url(&self, category: Category) -> String {
        format!("ws://{}/v5/public/{}", self.addr, category.as_str())
    }

    /// `http://{addr}` (REST base URL and `/sim/*`).
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects a fault (same as `POST /sim/fault`).
    pub fn inject(&self, fault: FaultRequest) -> FaultReport {
        fault::apply(&self.shared, &fault)
    }

    /// Journaled events (same as `GET /sim/journal`): `kind` is `trade` or `book`.
    pub fn journal(
        &self,
        symbol: Option<&str>,
        kind: Option<&str>,
        since_ms: Option<u64>,
    ) -> Vec<Event> {
        self.journal_query(&JournalQuery {
            symbol,
            kind,
            since_ms,
            ..JournalQuery::default()
        })
    }

    /// Journaled events with every filter (category, depth too).
    pub fn journal_query(&self, q: &JournalQuery<'_>) -> Vec<Event> {
        self.shared.lock_core().journal.query(q)
    }

    /// The true book of `symbol` in `category` at `depth` (1, 50, 200 or 1000) with its topic's `u`.
    pub fn book(&self, category: Category, symbol: &str, depth: u16) -> Option<TrueBook> {
        let core = self.shared.lock_core();
        let id = core.find(category, symbol)?;
        super::core::DEPTHS
            .contains(&depth)
            .then(|| core.true_book(id, depth))
    }

    /// The counters (same as `GET /sim/stats`).
    pub fn stats(&self) -> SimStats {
        self.shared.stats.snapshot()
    }

    /// Stops the market clock (level-1 repeats and kline pushes go on).
    pub fn pause_market(&self) {
        self.shared.paused.store(true, Ordering::Release);
    }

    /// Restarts the market clock.
    pub fn resume_market(&self) {
        self.shared.paused.store(false, Ordering::Release);
    }

    /// Runs `n` market steps now (works while paused); returns the frames produced.
    pub fn step(&self, n: usize) -> u64 {
        super::clock::steps(&self.shared, n)
    }

    /// Closes every connection, stops the market and frees the port.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(3), &mut t)
                .await
                .is_err()
            {
                t.abort();
                let _ = t.await;
            }
        }
        self.shared.lock_core().journal.close();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        // A handle dropped without `shutdown` still stops the simulator's tasks.
        self.shared.cancel.cancel();
    }
}
