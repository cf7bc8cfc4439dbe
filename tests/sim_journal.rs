//! The simulator's ground truth and stream lifecycle: the journal (memory, HTTP and file) against
//! the frames sent, determinism from the seed, kline pushes, and the idle-connection timeout.

mod sim_common;

use std::time::{Duration, Instant};

use hft_connector::normalized::Event;
use hft_connector::protocol::ws::{decode, Frame};
use hft_connector::protocol::Category;
use hft_connector::sim::{JournalQuery, SimConfig};
use sim_common::{get_json, paused, start, Client, Read};

#[tokio::test]
async fn the_journal_holds_exactly_what_was_published() {
    let sim = paused(6).await;
    let since = hft_connector::sim::server::wall_ms();
    let mut c = Client::connect(&sim.ws_url(Category::Linear)).await;
    c.subscribe("j", &["publicTrade.BTCUSDT", "orderbook.50.BTCUSDT"])
        .await;
    let _snapshot = c.text().await;
    sim.step(3000);
    let frames = c.drain(Duration::from_millis(500)).await;
    let mut ids = Vec::new();
    let mut us = Vec::new();
    for f in &frames {
        match decode(f) {
            Ok(Frame::Trades(t)) => ids.extend(t.trades.iter().map(|x| x.id.to_string())),
            Ok(Frame::Book(b)) => us.push(b.u),
            other => panic!("{other:?}"),
        }
    }
    let q = JournalQuery {
        symbol: Some("BTCUSDT"),
        kind: Some("trade"),
        category: Some("linear"),
        since_ms: Some(since),
        depth: None,
    };
    let journal_ids: Vec<String> = sim
        .journal_query(&q)
        .into_iter()
        .map(|e| match e {
            Event::Trade(t) => t.id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(!ids.is_empty());
    assert_eq!(journal_ids, ids);
    let book_us: Vec<u64> = sim
        .journal_query(&JournalQuery {
            kind: Some("book"),
            depth: Some(50),
            ..q.clone()
        })
        .into_iter()
        .map(|e| match e {
            Event::Book(b) => b.u,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(book_us, us);
    // The HTTP journal is the same data in the normalized schema.
    let url = format!(
        "{}/sim/journal?symbol=BTCUSDT&type=trade&category=linear&since_ms={since}",
        sim.rest_url()
    );
    let http: Vec<Event> = serde_json::from_value(get_json(&url).await).unwrap();
    assert_eq!(http.len(), ids.len());
    assert!(
        matches!(&http[0], Event::Trade(t) if t.id == ids[0] && t.category.as_deref() == Some("linear"))
    );
    // `journal()` (symbol/kind/since) agrees too.
    let all = sim.journal(Some("BTCUSDT"), Some("trade"), Some(since));
    assert!(all.len() >= ids.len());
    sim.shutdown().await;
}

#[tokio::test]
async fn kline_topic_pushes_the_open_candle() {
    let sim = start(SimConfig {
        rate: 300.0,
        ..SimConfig::for_tests(7)
    })
    .await;
    let mut c = Client::connect(&sim.ws_url(Category::Linear)).await;
    c.subscribe("k", &["kline.1.BTCUSDT"]).await;
    let text = c
        .until(Duration::from_secs(3), |t| t.contains("kline.1.BTCUSDT"))
        .await
        .expect("a kline frame");
    let Ok(Frame::Kline(k)) = decode(&text) else {
        panic!("{text}");
    };
    let bar = k.bars.last().unwrap();
    assert!(!bar.confirm);
    assert_eq!(bar.end, bar.start + 59_999);
    let rest = get_json(&format!(
        "{}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=1&limit=2",
        sim.rest_url()
    ))
    .await;
    let newest = rest["result"]["list"][0][0]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(newest >= bar.start);
    sim.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_but_pinging_ones_live() {
    let sim = start(SimConfig {
        start_paused: true,
        idle_timeout: Duration::from_millis(2000),
        ..SimConfig::for_tests(8)
    })
    .await;
    let mut idle = Client::connect(&sim.ws_url(Category::Linear)).await;
    let mut alive = Client::connect(&sim.ws_url(Category::Linear)).await;
    // Ping one every 100 ms (well inside the idle timeout) until the other is closed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        alive.send(r#"{"op":"ping"}"#).await;
        assert!(matches!(
            alive.read(Duration::from_secs(60)).await,
            Read::Text(_)
        ));
        match idle.read(Duration::from_millis(100)).await {
            Read::Dropped(_) | Read::Closed(_) => break,
            Read::Timeout => {}
            other => panic!("unexpected on the idle connection: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the idle connection was never closed"
        );
    }
    alive.send(r#"{"op":"ping"}"#).await;
    assert!(matches!(
        alive.read(Duration::from_secs(60)).await,
        Read::Text(_)
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_market_and_the_journal_file_gets_every_event() {
    let path = std::env::temp_dir().join(format!("sim-journal-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let a = start(SimConfig {
        start_paused: true,
        journal: Some(path.clone()),
        ..SimConfig::for_tests(99)
    })
    .await;
    let b = paused(99).await;
    let c = paused(100).await;
    for sim in [&a, &b, &c] {
        sim.step(1500);
    }
    let tape = |sim: &hft_connector::sim::SimHandle| -> Vec<(String, String, String)> {
        sim.journal(None, Some("trade"), None)
            .into_iter()
            .filter_map(|e| match e {
                Event::Trade(t) => Some((t.id, t.price.to_string(), t.qty.to_string())),
                _ => None,
            })
            .collect()
    };
    assert!(!tape(&a).is_empty());
    assert_eq!(tape(&a), tape(&b), "same seed, same trades");
    assert_ne!(tape(&a), tape(&c), "another seed, another market");
    let in_memory = a.journal(None, None, None).len();
    a.shutdown().await;
    let text = std::fs::read_to_string(&path).expect("journal file");
    let events: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a normalized event per line"))
        .collect();
    assert_eq!(events.len(), in_memory);
    let _ = std::fs::remove_file(&path);
    b.shutdown().await;
    c.shutdown().await;
}
