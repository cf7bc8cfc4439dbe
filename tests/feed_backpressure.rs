//! A slow consumer: the feed's bounded queue fills, the feed waits instead of dropping, and once the
//! consumer reads again every trade arrives exactly once (against the simulator's journal).

use std::collections::HashSet;
use std::time::Duration;

use hft_connector::feed::{Feed, FeedConfig, FeedEvent, FeedHandle};
use hft_connector::normalized::Event;
use hft_connector::protocol::Category;
use hft_connector::sim::{JournalQuery, SimConfig, SimHandle, Simulator};

/// A hang guard only: every wait ends as soon as what it waits for happened.
const GUARD: Duration = Duration::from_secs(60);

/// A simulated BTCUSDT market (seed `seed`) and a feed on it whose consumer queue holds `queue`.
async fn market_and_feed(seed: u64, queue: usize) -> (SimHandle, FeedHandle) {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 300.0,
        ..SimConfig::for_tests(seed)
    })
    .await
    .unwrap();
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        Category::Linear,
        &["BTCUSDT"],
    )
    .with_fast_timers(5.0);
    cfg.feed.queue_capacity = queue;
    let feed = Feed::spawn(cfg).unwrap();
    (sim, feed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_the_feed_wait_not_drop() {
    let (sim, mut feed) = market_and_feed(9, 8).await;
    let mut trades = Vec::new();
    // Until data flows.
    while trades.is_empty() {
        if let Some(FeedEvent::Trade(t)) = feed.next().await {
            trades.push(t);
        }
    }
    // Stop reading: the queue fills up to its bound and the feed waits there.
    let deadline = tokio::time::Instant::now() + GUARD;
    while feed.health().queue_size < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(feed.health().queue_size, 8, "the queue is full and bounded");
    // Read again (trades the feed held back while it waited, then new ones), then stop the
    // market and drain.
    while trades.len() < 40 {
        match tokio::time::timeout(GUARD, feed.next()).await {
            Ok(Some(FeedEvent::Trade(t))) => trades.push(t),
            Ok(Some(_)) => {}
            other => panic!("the feed ended: {other:?}"),
        }
    }
    sim.pause_market();
    // Drain until the journal's last trade arrived (the guard only turns a hang into a failure).
    let last = sim
        .journal_query(&JournalQuery {
            symbol: Some("BTCUSDT"),
            kind: Some("trade"),
            category: Some("linear"),
            ..Default::default()
        })
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Trade(t) => Some(t.id.clone()),
            _ => None,
        })
        .expect("the market traded");
    while !trades.iter().any(|t| t.id == last) {
        match tokio::time::timeout(GUARD, feed.next()).await {
            Ok(Some(FeedEvent::Trade(t))) => trades.push(t),
            Ok(Some(_)) => {}
            other => panic!("the feed ended before the last trade: {other:?}"),
        }
    }
    let mut seen = HashSet::new();
    for t in &trades {
        assert!(seen.insert(t.id.clone()), "duplicate {}", t.id);
    }
    let first = trades[0].ts_ms;
    let journal = sim.journal_query(&JournalQuery {
        symbol: Some("BTCUSDT"),
        kind: Some("trade"),
        category: Some("linear"),
        ..Default::default()
    });
    let missing: Vec<_> = journal
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) if t.ts_ms > first && !seen.contains(&t.id) => Some(t.id.clone()),
            _ => None,
        })
        .collect();
    assert!(missing.is_empty(), "{} trades lost", missing.len());
    assert!(trades.len() > 20);
    feed.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_consumer_that_stopped_reading() {
    let (sim, feed) = market_and_feed(10, 4).await;
    // Nobody reads: wait until the feed is blocked on the full queue.
    let deadline = tokio::time::Instant::now() + GUARD;
    while feed.health().queue_size < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The guard only turns a hang into a failure; the shutdown itself is immediate.
    tokio::time::timeout(GUARD, feed.shutdown())
        .await
        .expect("shutdown returned while the queue was full");
    sim.shutdown().await;
}
