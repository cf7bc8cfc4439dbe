//! A live feed wired to a simulator, with every event recorded with its arrival time, and the
//! checks the fault tests share: zero lost and zero duplicated trades against the simulator's
//! journal, and a final book equal to the simulator's true book.
//!
//! The same cases run in both isolation modes: [`Rig::start`] runs the feed in-process, except in
//! test targets named `worker_*` (which include `feed_faults.rs`'s cases), where it runs in a
//! supervised worker process; [`Rig::start_with`] picks the mode explicitly.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hft_connector::cli::run::Isolation;
use hft_connector::feed::{FeedConfig, FeedEvent, HealthSnapshot};
use hft_connector::normalized::{Event, TradeEvent};
use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, SimHandle, Simulator};
use hft_connector::source::{FeedSource, SourceMonitor};
use hft_connector::worker::WorkerOptions;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub const SYMBOL: &str = "BTCUSDT";
pub const DEPTH: u16 = 50;

/// Stale threshold used by the fault tests (s); every other timer scales with it.
pub const STALE_S: f64 = 1.0;

/// The isolation [`Rig::start`] uses: process mode in `worker_*` test targets.
pub fn default_isolation() -> Isolation {
    if env!("CARGO_CRATE_NAME").starts_with("worker_") {
        Isolation::Process
    } else {
        Isolation::InProcess
    }
}

/// Worker options for tests: the crate's binary as the worker executable, and a hang threshold
/// (30 s) no loaded machine reaches by accident, so only a test that hangs a worker on purpose
/// (and sets its own threshold) sees a worker replaced as hung.
pub fn worker_options() -> WorkerOptions {
    WorkerOptions {
        hung_after_s: Some(30.0),
        ..WorkerOptions::with_program(env!("CARGO_BIN_EXE_hft-connector"))
    }
}

/// Read access to the feed's state in either mode (`rig.shared.health.snapshot()`).
pub struct RigShared {
    pub health: RigHealth,
}

pub struct RigHealth(pub SourceMonitor);

impl RigHealth {
    pub fn snapshot(&self) -> HealthSnapshot {
        self.0.health()
    }
}

pub struct Rig {
    pub sim: SimHandle,
    pub shared: RigShared,
    pub isolation: Isolation,
    pub events: Arc<Mutex<Vec<(Instant, FeedEvent)>>>,
    pub category: Category,
    stop: Option<oneshot::Sender<()>>,
    collector: Option<tokio::task::JoinHandle<()>>,
}

pub fn sim_config(category: Category) -> SimConfig {
    SimConfig {
        symbols: vec![SYMBOL.to_string()],
        categories: vec![category],
        rate: 150.0,
        ..SimConfig::for_tests(7)
    }
}

pub fn feed_config(sim: &SimHandle, category: Category) -> FeedConfig {
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        category,
        &[SYMBOL],
    )
    .with_fast_timers(STALE_S);
    cfg.feed.depth = DEPTH;
    cfg
}

impl Rig {
    pub async fn start(category: Category) -> Rig {
        Rig::start_with(category, default_isolation()).await
    }

    pub async fn start_with(category: Category, isolation: Isolation) -> Rig {
        let sim = Simulator::start(sim_config(category))
            .await
            .expect("simulator starts");
        let cfg = feed_config(&sim, category);
        Rig::with_isolation(sim, cfg, category, isolation, worker_options()).await
    }

    pub async fn with(sim: SimHandle, cfg: FeedConfig, category: Category) -> Rig {
        Rig::with_isolation(sim, cfg, category, default_isolation(), worker_options()).await
    }

    pub async fn with_isolation(
        sim: SimHandle,
        cfg: FeedConfig,
        category: Category,
        isolation: Isolation,
        opts: WorkerOptions,
    ) -> Rig {
        let mut feed = FeedSource::spawn_with(cfg, isolation, opts).expect("valid config");
        let monitor = feed.monitor();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let (stop, mut stopped) = oneshot::channel();
        let collector = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    ev = feed.next() => match ev {
                        Some(ev) => sink.lock().unwrap().push((Instant::now(), ev)),
                        None => break,
                    },
                }
            }
            feed.shutdown().await;
        });
        Rig {
            sim,
            shared: RigShared {
                health: RigHealth(monitor),
            },
            isolation,
            events,
            category,
            stop: Some(stop),
            collector: Some(collector),
        }
    }

    pub fn count(&self, pred: impl Fn(&FeedEvent) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| pred(e))
            .count()
    }

    /// Waits until an event after index `from` matches; returns its index and arrival time.
    pub async fn wait_for(
        &self,
        from: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&FeedEvent) -> bool,
    ) -> (usize, Instant) {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let ev = self.events.lock().unwrap();
                if let Some((i, (t, _))) =
                    ev.iter().enumerate().skip(from).find(|(_, (_, e))| pred(e))
                {
                    return (i, *t);
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; events: {:?}",
                self.summary()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub fn summary(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| !e.is_market())
            .map(|(_, e)| format!("{e:?}"))
            .collect()
    }

    /// Waits until the feed is live with trades and books flowing.
    pub async fn until_flowing(&self) -> usize {
        self.wait_for(0, Duration::from_secs(60), "connected", |e| {
            matches!(e, FeedEvent::Connected { .. })
        })
        .await;
        let (i, _) = self
            .wait_for(0, Duration::from_secs(60), "a trade", |e| {
                matches!(e, FeedEvent::Trade(_))
            })
            .await;
        self.wait_for(0, Duration::from_secs(60), "a book", |e| {
            matches!(e, FeedEvent::Book(_))
        })
        .await;
        i
    }

    /// Waits for data after `from` (the feed flows again).
    pub async fn until_data_after(&self, from: usize, timeout: Duration) -> Instant {
        self.wait_for(from, timeout, "market data", |e| e.is_market())
            .await
            .1
    }

    /// Waits for a live (not recovered) trade after `from`: the tape goes on.
    pub async fn until_live_trade_after(&self, from: usize) -> usize {
        self.wait_for(
            from,
            Duration::from_secs(60),
            "a live trade",
            |e| matches!(e, FeedEvent::Trade(t) if !t.recovered),
        )
        .await
        .0
    }

    /// Waits until the feed's health satisfies `pred` (in process isolation the worker's counters
    /// arrive with its periodic health report, so they lag its events); returns that snapshot.
    pub async fn until_health(
        &self,
        what: &str,
        pred: impl Fn(&HealthSnapshot) -> bool,
    ) -> HealthSnapshot {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let h = self.monitor().health();
            if pred(&h) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "health never showed {what}: {h:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn trades(&self) -> Vec<TradeEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                FeedEvent::Trade(t) if t.symbol == SYMBOL => Some((**t).clone()),
                _ => None,
            })
            .collect()
    }

    /// Pauses the market, then waits for the feed to catch up with the ground truth: the
    /// journal's last trade delivered and the book at the true book's `u` (the events themselves,
    /// never a quiet period; the guard only stops a hang).
    pub async fn quiesce(&self) {
        self.sim.pause_market();
        let last_trade = self
            .sim
            .journal_query(&hft_connector::sim::JournalQuery {
                symbol: Some(SYMBOL),
                kind: Some("trade"),
                category: Some(self.category.as_str()),
                ..Default::default()
            })
            .into_iter()
            .rev()
            .find_map(|e| match e {
                Event::Trade(t) => Some(t.id),
                _ => None,
            });
        let true_u = self.sim.book(self.category, SYMBOL, DEPTH).map(|b| b.u);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let has_trade = last_trade
                .as_ref()
                .is_none_or(|id| self.trades().iter().any(|t| &t.id == id));
            let book_u = self
                .monitor()
                .book(SYMBOL)
                .filter(|b| b.is_synced())
                .and_then(|b| b.last_u());
            if has_trade && (true_u.is_none() || book_u == true_u) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the feed never caught up with the paused market: last journal trade {last_trade:?} \
                 delivered: {has_trade}; book u {book_u:?}, true u {true_u:?}; events: {:?}",
                self.summary()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every journaled trade after the first one received arrived exactly once, in order.
    pub fn assert_tape_complete(&self) {
        let got = self.trades();
        assert!(!got.is_empty(), "no trades received");
        let mut ids = HashSet::new();
        for t in &got {
            assert!(ids.insert(t.id.clone()), "duplicate trade {}", t.id);
        }
        let first_ts = got[0].ts_ms;
        let journal: Vec<TradeEvent> = self
            .sim
            .journal_query(&hft_connector::sim::JournalQuery {
                symbol: Some(SYMBOL),
                kind: Some("trade"),
                category: Some(self.category.as_str()),
                ..Default::default()
            })
            .into_iter()
            .filter_map(|e| match e {
                Event::Trade(t) if t.ts_ms > first_ts => Some(t),
                _ => None,
            })
            .collect();
        assert!(!journal.is_empty(), "the journal has trades");
        let missing: Vec<&str> = journal
            .iter()
            .filter(|t| !ids.contains(&t.id))
            .map(|t| t.id.as_str())
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} trades lost: {:?}",
            missing.len(),
            journal.len(),
            &missing[..missing.len().min(5)]
        );
        let journal_ids: HashSet<&str> = journal.iter().map(|t| t.id.as_str()).collect();
        let received_after: Vec<&TradeEvent> = got.iter().filter(|t| t.ts_ms > first_ts).collect();
        for t in &received_after {
            assert!(
                journal_ids.contains(t.id.as_str()),
                "trade {} not in the journal",
                t.id
            );
        }
        assert!(
            got.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms),
            "trades arrive in time order"
        );
    }

    /// The feed's book equals the simulator's true book, level for level, at the same `u`.
    pub fn assert_book_matches(&self) {
        let truth = self
            .sim
            .book(self.category, SYMBOL, DEPTH)
            .expect("true book");
        let book = self.shared.health.0.book(SYMBOL).expect("feed has a book");
        assert!(book.is_synced(), "book is synced");
        assert_eq!(book.last_u(), Some(truth.u), "same update id");
        let ours: Vec<_> = book.bids().iter().map(|l| (l.price, l.qty)).collect();
        assert_eq!(ours, truth.bids, "bids");
        let ours: Vec<_> = book.asks().iter().map(|l| (l.price, l.qty)).collect();
        assert_eq!(ours, truth.asks, "asks");
    }

    /// The feed's state (pid, restarts, books, health) in either mode.
    pub fn monitor(&self) -> &SourceMonitor {
        &self.shared.health.0
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(c) = self.collector.take() {
            let _ = c.await;
        }
        self.sim.shutdown().await;
    }
}
