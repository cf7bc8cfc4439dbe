//! A slow consumer: the feed's bounded queue fills, the feed waits instead of dropping, and once the
//! consumer reads again every trade arrives exactly once (against the simulator's journal). The
//! same with a consumer taking whole batches (`next_batch`), in both isolation modes: a batch
//! never holds more than the queue's bound, and the bound still counts what the consumer took.

use std::collections::HashSet;
use std::time::Duration;

use hft_connector::feed::{Feed, FeedConfig, FeedEvent, FeedHandle};
use hft_connector::normalized::{Event, TradeEvent};
use hft_connector::protocol::Category;
use hft_connector::sim::{JournalQuery, SimConfig, SimHandle, Simulator};
use hft_connector::source::{FeedSource, Isolation};
use hft_connector::worker::WorkerOptions;

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

/// Like [`market_and_feed`], as a [`FeedSource`] in `isolation`.
async fn market_and_source(
    seed: u64,
    queue: usize,
    isolation: Isolation,
) -> (SimHandle, FeedSource) {
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
    let opts = WorkerOptions {
        // Only a worker that really hangs is replaced, however loaded the machine.
        hung_after_s: Some(30.0),
        ..WorkerOptions::with_program(env!("CARGO_BIN_EXE_hft-connector"))
    };
    let source = FeedSource::spawn_with(cfg, isolation, opts).unwrap();
    (sim, source)
}

/// Takes the next batch (or, `batches` false, the next event) and keeps its trades; every batch
/// at most `bound` events.
async fn take(
    source: &mut FeedSource,
    batches: bool,
    bound: usize,
    batch: &mut Vec<FeedEvent>,
    trades: &mut Vec<TradeEvent>,
) {
    batch.clear();
    let n = if batches {
        tokio::time::timeout(GUARD, source.next_batch(batch))
            .await
            .expect("a batch within the guard")
    } else {
        match tokio::time::timeout(GUARD, source.next())
            .await
            .expect("an event within the guard")
        {
            Some(ev) => {
                batch.push(ev);
                1
            }
            None => 0,
        }
    };
    assert!(n > 0, "the feed ended");
    assert_eq!(n, batch.len(), "the count is what was appended");
    assert!(n <= bound, "a batch of {n} events from a queue of {bound}");
    trades.extend(batch.drain(..).filter_map(|ev| match ev {
        FeedEvent::Trade(t) => Some(*t),
        _ => None,
    }));
}

/// The queue fills to its bound while nobody reads, then the consumer (batches or single events)
/// gets every trade of the journal exactly once. `#[tokio::test]` runs it on the `block_on`
/// thread, as `#[tokio::main]` runs the README's loop: the feed's task wakes it once per burst.
async fn full_queue_then_every_trade_once(isolation: Isolation, batches: bool, seed: u64) {
    const QUEUE: usize = 8;
    let (sim, mut source) = market_and_source(seed, QUEUE, isolation).await;
    let (mut batch, mut trades) = (Vec::new(), Vec::new());
    while trades.is_empty() {
        take(&mut source, batches, QUEUE, &mut batch, &mut trades).await;
    }
    // Stop reading: the queue fills up to its bound (the events a batch took count until handed
    // out) and the feed waits there.
    let deadline = tokio::time::Instant::now() + GUARD;
    while source.health().queue_size < QUEUE as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        source.health().queue_size,
        QUEUE as u64,
        "the queue is full and bounded"
    );
    while trades.len() < 40 {
        take(&mut source, batches, QUEUE, &mut batch, &mut trades).await;
    }
    sim.pause_market();
    let journal = sim.journal_query(&JournalQuery {
        symbol: Some("BTCUSDT"),
        kind: Some("trade"),
        category: Some("linear"),
        ..Default::default()
    });
    let last = journal
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Trade(t) => Some(t.id.clone()),
            _ => None,
        })
        .expect("the market traded");
    while !trades.iter().any(|t| t.id == last) {
        take(&mut source, batches, QUEUE, &mut batch, &mut trades).await;
    }
    let mut seen = HashSet::new();
    for t in &trades {
        assert!(seen.insert(t.id.clone()), "duplicate {}", t.id);
    }
    let first = trades[0].ts_ms;
    let missing = journal
        .iter()
        .filter(|e| matches!(e, Event::Trade(t) if t.ts_ms > first && !seen.contains(&t.id)))
        .count();
    assert_eq!(
        missing, 0,
        "{missing} trades lost ({isolation}, batches {batches})"
    );
    let _ = tokio::time::timeout(GUARD, source.shutdown()).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_consumer_in_process_waits_and_loses_nothing() {
    full_queue_then_every_trade_once(Isolation::InProcess, true, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_consumer_in_process_isolation_waits_and_loses_nothing() {
    full_queue_then_every_trade_once(Isolation::Process, true, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_event_consumer_in_process_isolation_waits_and_loses_nothing() {
    full_queue_then_every_trade_once(Isolation::Process, false, 13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_in_process_isolation_does_not_wait_for_a_consumer_that_stopped_reading() {
    let (sim, source) = market_and_source(16, 4, Isolation::Process).await;
    let deadline = tokio::time::Instant::now() + GUARD;
    while source.health().queue_size < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = source.pid().expect("a worker runs");
    tokio::time::timeout(GUARD, source.shutdown())
        .await
        .expect("shutdown returned while the queue was full");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the worker {pid} is gone"
    );
    sim.shutdown().await;
}
