//! Every stop completes, for a library user too (issue 28): `FeedSource::shutdown` (the
//! in-process `Feed` and the worker-process feed) returns promptly whatever the feed is doing:
//! connecting to an exchange that accepts connections and never answers, waiting on a REST
//! gap-fill the exchange never answers, delivering to a consumer that stopped reading, or with
//! its worker SIGSTOPped. Every worker it started is gone afterwards (reaped, no zombie).
//!
//! The exchange's own timeouts are set far beyond the hang guard (120 s), so a shutdown that
//! waited for any of them would fail the guard.

mod stop_common;

use std::time::Duration;

use hft_connector::feed::FeedConfig;
use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};
use hft_connector::source::{FeedSource, Isolation};
use hft_connector::worker::WorkerOptions;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use stop_common::{assert_gone, until_connection_held, until_rest_held};
use tokio::time::Instant;

/// A hang guard: far below the 120 s the exchange's timeouts would take.
const SHUTDOWN_GUARD: Duration = Duration::from_secs(20);

const BOTH: [Isolation; 2] = [Isolation::InProcess, Isolation::Process];

async fn sim(seed: u64) -> SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 150.0,
        ..SimConfig::for_tests(seed)
    })
    .await
    .expect("simulator starts")
}

fn config(sim: &SimHandle) -> FeedConfig {
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        Category::Linear,
        &["BTCUSDT"],
    )
    .with_fast_timers(30.0);
    // Connecting and REST requests would wait this long.
    cfg.reconnect.connect_timeout_s = 120.0;
    cfg
}

fn options() -> WorkerOptions {
    WorkerOptions {
        hung_after_s: Some(60.0),
        term_grace_s: 1.0,
        ..WorkerOptions::with_program(env!("CARGO_BIN_EXE_hft-connector"))
    }
}

/// Shuts `feed` down within the guard; the workers it ran are gone afterwards.
async fn shutdown(feed: FeedSource, what: &str, workers: &[u32]) {
    tokio::time::timeout(SHUTDOWN_GUARD, feed.shutdown())
        .await
        .unwrap_or_else(|_| panic!("{what}: the shutdown hung"));
    assert_gone(workers);
}

/// Waits until the feed reports a worker pid (process isolation; none in-process).
async fn worker_pid(feed: &FeedSource) -> Vec<u32> {
    if feed.isolation() == Isolation::InProcess {
        return Vec::new();
    }
    let deadline = Instant::now() + stop_common::GUARD;
    loop {
        if let Some(pid) = feed.pid() {
            return vec![pid];
        }
        assert!(Instant::now() < deadline, "no worker started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads events until the feed is connected.
async fn until_connected(feed: &mut FeedSource) {
    let deadline = Instant::now() + stop_common::GUARD;
    while !feed.is_connected() {
        assert!(Instant::now() < deadline, "never connected");
        let _ = tokio::time::timeout(Duration::from_millis(50), feed.next()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_connecting_to_an_exchange_that_accepts_and_never_answers() {
    for isolation in BOTH {
        let sim = sim(21).await;
        sim.inject(FaultRequest::new(FaultKind::Blackhole).seconds(3_600.0));
        let feed = FeedSource::spawn_with(config(&sim), isolation, options()).expect("spawns");
        let workers = worker_pid(&feed).await;
        until_connection_held(&sim).await;
        shutdown(feed, &format!("connecting, {isolation}"), &workers).await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_trade_gap_fill_waits_on_rest_that_never_answers() {
    for isolation in BOTH {
        let sim = sim(22).await;
        let mut feed = FeedSource::spawn_with(config(&sim), isolation, options()).expect("spawns");
        until_connected(&mut feed).await;
        let workers = worker_pid(&feed).await;
        sim.inject(
            FaultRequest::new(FaultKind::RestError)
                .count(1_000_000)
                .seconds(3_600.0),
        );
        sim.inject(FaultRequest::new(FaultKind::Close));
        // Keep consuming while the reconnect's gap-fill hangs.
        let deadline = Instant::now() + stop_common::GUARD;
        loop {
            let s = stop_common::sim_stats(&sim).await;
            if s["rest_held"]["/v5/market/recent-trade"]
                .as_u64()
                .unwrap_or(0)
                > 0
            {
                break;
            }
            assert!(Instant::now() < deadline, "no gap-fill held: {s}");
            let _ = tokio::time::timeout(Duration::from_millis(20), feed.next()).await;
        }
        shutdown(feed, &format!("gap-fill, {isolation}"), &workers).await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_consumer_stopped_reading() {
    for isolation in BOTH {
        let sim = sim(23).await;
        let mut cfg = config(&sim);
        cfg.feed.queue_capacity = 16;
        let mut feed = FeedSource::spawn_with(cfg, isolation, options()).expect("spawns");
        until_connected(&mut feed).await;
        let workers = worker_pid(&feed).await;
        // No more reading: the queue fills and the feed waits for the consumer.
        let deadline = Instant::now() + stop_common::GUARD;
        while feed.health().queue_size < 16 {
            assert!(Instant::now() < deadline, "the queue never filled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown(feed, &format!("full queue, {isolation}"), &workers).await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_worker_is_sigstopped() {
    let sim = sim(24).await;
    let mut feed =
        FeedSource::spawn_with(config(&sim), Isolation::Process, options()).expect("spawns");
    until_connected(&mut feed).await;
    let workers = worker_pid(&feed).await;
    kill(Pid::from_raw(workers[0] as i32), Signal::SIGSTOP).expect("SIGSTOP");
    shutdown(feed, "SIGSTOPped worker", &workers).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_a_reconnect_waits_for_rest_after_a_close() {
    // The REST candle-free path of a library feed: the exchange closes, its REST hangs, and the
    // feed is stopped while the reconnect's gap-fill is held (both lines of an A/B pair).
    for isolation in BOTH {
        let sim = sim(25).await;
        let mut cfg = config(&sim);
        cfg.feed.lines = 2;
        let mut feed = FeedSource::spawn_with(cfg, isolation, options()).expect("spawns");
        until_connected(&mut feed).await;
        sim.inject(
            FaultRequest::new(FaultKind::RestError)
                .count(1_000_000)
                .seconds(3_600.0),
        );
        sim.inject(FaultRequest::new(FaultKind::Close));
        until_rest_held(&sim, "/v5/market/recent-trade").await;
        let workers: Vec<u32> = feed.lines().iter().filter_map(|l| l.pid).collect();
        shutdown(feed, &format!("A/B lines, {isolation}"), &workers).await;
        sim.shutdown().await;
    }
}
