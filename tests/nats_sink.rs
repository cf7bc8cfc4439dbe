//! The NATS sink inside the `run` service against the simulator and a real `nats-server`: a NATS
//! restart mid-stream loses nothing and stores nothing twice (checked trade by trade against the
//! simulator's journal), and a NATS that is down or gone never blocks the feed (what cannot be
//! buffered is dropped and counted). `stream --nats-url` publishes what it prints.

mod nats_common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hft_connector::cli::nats_args::NatsArgs;
use hft_connector::cli::run::{routes, Isolation, RunArgs};
use hft_connector::config::ServiceConfig;
use hft_connector::feed::Feed;
use hft_connector::normalized::{Event, TradeEvent};
use hft_connector::protocol::Category;
use hft_connector::service::runner::{start, Running};
use hft_connector::service::FeedKey;
use hft_connector::sim::{JournalQuery, SimConfig, SimHandle, Simulator};
use nats_common::{read_until, NatsServer, Stored};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-nats-svc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn sim(seed: u64) -> SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 200.0,
        journal_capacity: 1_000_000,
        ..SimConfig::for_tests(seed)
    })
    .await
    .expect("simulator starts")
}

fn config(sim: &SimHandle, name: &str, nats: NatsArgs) -> ServiceConfig {
    let args = RunArgs {
        symbols: Some(vec!["BTCUSDT".into()]),
        category: Some(vec!["linear".into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(tmp(name)),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(Isolation::InProcess),
        backfill_days: Some(0.0),
        nats,
        ..RunArgs::default()
    };
    ServiceConfig::load(&args.overrides(), Vec::new()).expect("valid config")
}

async fn run(cfg: ServiceConfig) -> Running {
    start(cfg, |f| Feed::spawn(f).map_err(|e| e.to_string()), routes)
        .await
        .expect("service starts")
}

fn key() -> FeedKey {
    FeedKey {
        category: Category::Linear,
        symbol: "BTCUSDT".into(),
    }
}

/// Polls `f` until it holds (the event itself), failing after `timeout` with `what`.
async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn messages(r: &Running) -> u64 {
    r.state.status(&key()).map_or(0, |s| s.messages)
}

/// The simulator's trades, in order.
pub fn journal_trades(sim: &SimHandle) -> Vec<TradeEvent> {
    sim.journal_query(&JournalQuery {
        symbol: Some("BTCUSDT"),
        kind: Some("trade"),
        category: Some("linear"),
        ..JournalQuery::default()
    })
    .into_iter()
    .filter_map(|e| match e {
        Event::Trade(t) => Some(t),
        _ => None,
    })
    .collect()
}

/// Every journal trade from the first one stored onwards is in the stream exactly once, with the
/// same price, size, side and time; the stream holds nothing else. Returns how many were compared.
pub fn assert_exactly_once(journal: &[TradeEvent], stored: &[Stored]) -> usize {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in stored {
        *count
            .entry(s.json["id"].as_str().expect("trade id"))
            .or_default() += 1;
    }
    let dupes: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "trades stored more than once: {dupes:?}");
    let first = stored.first().expect("trades in the stream");
    let first_id = first.json["id"].as_str().expect("id");
    let start = journal
        .iter()
        .position(|t| t.id == first_id)
        .unwrap_or_else(|| panic!("the first stored trade {first_id} is not in the journal"));
    let expected = &journal[start..];
    let by_id: HashMap<&str, &Stored> = stored
        .iter()
        .map(|s| (s.json["id"].as_str().unwrap_or_default(), s))
        .collect();
    let missing: Vec<&str> = expected
        .iter()
        .filter(|t| !by_id.contains_key(t.id.as_str()))
        .map(|t| t.id.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} journal trades missing from the stream, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        stored.len(),
        expected.len(),
        "the stream holds trades the journal does not"
    );
    for t in expected {
        let s = &by_id[t.id.as_str()];
        assert_eq!(s.json["price"], t.price.to_string(), "price of {}", t.id);
        assert_eq!(s.json["qty"], t.qty.to_string(), "qty of {}", t.id);
        assert_eq!(s.json["ts_ms"], t.ts_ms, "time of {}", t.id);
        assert_eq!(
            s.json["side"],
            serde_json::to_value(t.side).expect("side"),
            "side of {}",
            t.id
        );
        assert_eq!(
            s.msg_id.as_deref(),
            Some(format!("linear.BTCUSDT.trade.{}", t.id).as_str())
        );
    }
    expected.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_nats_never_blocks_the_feed_and_drops_are_counted() {
    let sim = sim(31).await;
    // Nothing listens on this port: the sink retries, its small buffer overflows.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let cfg = config(
        &sim,
        "unreachable",
        NatsArgs {
            url: Some(format!("nats://127.0.0.1:{port}")),
            buffer: Some(16),
            ..NatsArgs::default()
        },
    );
    let r = run(cfg).await;
    let sink = r.state.nats().expect("sink configured").clone();
    wait_for(
        "500 market events through the service",
        Duration::from_secs(60),
        || messages(&r) >= 500,
    )
    .await;
    let st = sink.status();
    assert!(st.dropped > 0, "{st:?}");
    assert_eq!(st.published, 0);
    assert_ne!(st.state, "connected");
    assert!(st.buffered <= 16, "{st:?}");
    assert_eq!(r.state.status(&key()).expect("status").status, "connected");
    // The operator sees it: /api/status, /metrics and the dashboard's pill.
    let base = format!("http://{}", r.addr);
    let status: serde_json::Value = reqwest::get(format!("{base}/api/status"))
        .await
        .expect("GET /api/status")
        .json()
        .await
        .expect("JSON");
    let n = &status["sinks"]["nats"];
    assert!(n["dropped"].as_u64().unwrap_or(0) > 0, "{n}");
    assert_eq!(n["stream"], "MARKET_DATA");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("hft_connector_nats_connected{stream=\"MARKET_DATA\"} 0\n"));
    assert!(metrics.contains("hft_connector_nats_dropped_total{stream=\"MARKET_DATA\"} "));
    let html = reqwest::get(format!("{base}/"))
        .await
        .expect("GET /")
        .text()
        .await
        .expect("html");
    assert!(html.contains("/assets/sinks.js") && html.contains("id=\"nats\""));
    let js = reqwest::get(format!("{base}/assets/sinks.js"))
        .await
        .expect("GET js");
    assert_eq!(js.status(), 200);
    assert!(js
        .text()
        .await
        .expect("js")
        .contains("body.sinks && body.sinks.nats"));
    r.stop();
    r.wait().await.expect("clean stop");
    sim.shutdown().await;
    tmp("unreachable"); // removes the data dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_loses_no_trade_and_stores_none_twice() {
    let Some(mut nats) = NatsServer::start("restart") else {
        return;
    };
    let sim = sim(32).await;
    let cfg = config(
        &sim,
        "restart",
        NatsArgs {
            url: Some(nats.url()),
            stream: Some("RESTART".into()),
            ..NatsArgs::default()
        },
    );
    let r = run(cfg).await;
    let sink = r.state.nats().expect("sink configured").clone();
    let subject = "md.bybit.linear.BTCUSDT.trade";
    read_until(
        &nats.url(),
        "RESTART",
        subject,
        Duration::from_secs(60),
        |m| m.len() >= 20,
    )
    .await;

    nats.stop();
    wait_for("the sink to notice", Duration::from_secs(60), || {
        sink.status().state == "disconnected"
    })
    .await;
    // The feed goes on while NATS is down.
    let before = messages(&r);
    wait_for(
        "300 more market events with NATS down",
        Duration::from_secs(60),
        || messages(&r) >= before + 300,
    )
    .await;
    assert_eq!(r.state.status(&key()).expect("status").status, "connected");

    nats.restart();
    wait_for("the sink to reconnect", Duration::from_secs(60), || {
        sink.status().state == "connected"
    })
    .await;
    // Some trades after the restart, then the market stops and the stream must catch up.
    let journal_len = journal_trades(&sim).len();
    wait_for("20 more journal trades", Duration::from_secs(60), || {
        journal_trades(&sim).len() >= journal_len + 20
    })
    .await;
    sim.pause_market();
    let journal = journal_trades(&sim);
    let last = journal.last().expect("trades").id.clone();
    let stored = read_until(
        &nats.url(),
        "RESTART",
        subject,
        Duration::from_secs(120),
        |m| m.iter().any(|s| s.json["id"] == last.as_str()),
    )
    .await;
    let n = assert_exactly_once(&journal, &stored);
    let st = sink.status();
    assert!(n > 40, "compared {n} trades");
    assert_eq!(st.dropped, 0, "{st:?}");
    assert!(st.reconnects >= 1, "{st:?}");
    r.stop();
    r.wait().await.expect("clean stop");
    sim.shutdown().await;
    tmp("restart"); // removes the data dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_publishes_what_it_prints() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let Some(nats) = NatsServer::start("stream") else {
        return;
    };
    let sim = sim(33).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["stream", "--isolation", "in-process", "--market-only"])
        .args(["--ws-url", &format!("ws://{}/v5/public", sim.addr())])
        .args(["--rest-url", &sim.rest_url()])
        .args(["--symbols", "BTCUSDT", "--category", "linear"])
        .args(["--nats-url", &nats.url(), "--nats-stream", "PIPE"])
        .args(["--nats-subject-prefix", "pipe.md", "--nats-books", "top"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("stream starts");
    let stdout = child.stdout.take().expect("stdout");
    let printed = tokio::task::spawn_blocking(move || {
        let mut ids = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
            assert!(
                v["type"] == "trade" || v["type"] == "book",
                "market only: {v}"
            );
            if v["type"] == "trade" {
                ids.push(v["id"].as_str().expect("id").to_string());
                if ids.len() == 30 {
                    break;
                }
            }
        }
        ids
    })
    .await
    .expect("reader");
    assert_eq!(printed.len(), 30);
    let stored = read_until(
        &nats.url(),
        "PIPE",
        "pipe.md.bybit.linear.BTCUSDT.trade",
        Duration::from_secs(60),
        |m| {
            printed
                .iter()
                .all(|id| m.iter().any(|s| s.json["id"] == id.as_str()))
        },
    )
    .await;
    assert!(stored.iter().all(|s| s.json["category"] == "linear"));
    let books = read_until(
        &nats.url(),
        "PIPE",
        "pipe.md.bybit.linear.BTCUSDT.book",
        Duration::from_secs(60),
        |m| !m.is_empty(),
    )
    .await;
    assert_eq!(books[0].json["type"], "book_top", "--nats-books top");
    assert!(books[0].json["best_bid"].is_array());
    let _ = child.kill();
    let _ = child.wait();
    sim.shutdown().await;
}
