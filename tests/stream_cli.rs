//! `hft-connector stream` against the simulator: normalized events as JSON lines on stdout, trades
//! identical to the simulator's journal, lifecycle events tagged with the category; it stops
//! by itself when its reader goes away. Bad flags of `stream` and `tail` fail fast.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hft_connector::normalized::Event;
use hft_connector::protocol::Category;
use hft_connector::sim::{JournalQuery, SimConfig, Simulator};

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "stream did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_prints_the_feed_as_json_lines() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 200.0,
        journal_capacity: 1_000_000,
        ..SimConfig::for_tests(51)
    })
    .await
    .expect("simulator starts");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["stream", "--isolation", "in-process"])
        .args(["--ws-url", &format!("ws://{}/v5/public", sim.addr())])
        .args(["--rest-url", &sim.rest_url()])
        .args([
            "--symbols",
            "BTCUSDT",
            "--category",
            "linear",
            "--depth",
            "50",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("stream starts");
    let stdout = child.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut out = Vec::new();
        let mut trades = 0;
        let mut line = String::new();
        while trades < 50 {
            line.clear();
            if reader.read_line(&mut line).expect("read") == 0 {
                break;
            }
            let v: serde_json::Value = serde_json::from_str(line.trim()).expect("a JSON line");
            if v["type"] == "trade" {
                trades += 1;
            }
            out.push(v);
        }
        (out, reader)
    });
    let (lines, reader) = tokio::time::timeout(Duration::from_secs(120), lines)
        .await
        .expect("50 trades in time")
        .expect("reader");
    let connected = lines
        .iter()
        .find(|v| v["type"] == "connected")
        .expect("a connected line");
    assert_eq!(connected["category"], "linear");
    let book = lines
        .iter()
        .find(|v| v["type"] == "book")
        .expect("book lines");
    assert_eq!(book["category"], "linear");
    assert_eq!(
        book["kind"], "snapshot",
        "the first book event is the snapshot"
    );
    let journal: Vec<_> = sim
        .journal_query(&JournalQuery {
            symbol: Some("BTCUSDT"),
            kind: Some("trade"),
            ..JournalQuery::default()
        })
        .into_iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(t),
            _ => None,
        })
        .collect();
    let trades: Vec<_> = lines.iter().filter(|v| v["type"] == "trade").collect();
    assert_eq!(trades.len(), 50);
    let first = journal
        .iter()
        .position(|t| trades[0]["id"] == t.id.as_str())
        .expect("the first trade is in the journal");
    for (line, t) in trades.iter().zip(&journal[first..]) {
        assert_eq!(line["id"], t.id.as_str(), "in journal order, none missing");
        assert_eq!(line["price"], t.price.to_string());
        assert_eq!(line["qty"], t.qty.to_string());
        assert_eq!(line["category"], "linear");
    }
    // The reader goes away (like `| head`): stream ends by itself, successfully.
    drop(reader);
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status:?}");
    sim.shutdown().await;
}

#[test]
fn stream_rejects_bad_flags_naming_the_field() {
    let out = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["stream", "--depth", "500"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("feed.depth"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["stream", "--nats-url", "http://127.0.0.1:1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sinks.nats.url"));
}

#[test]
fn tail_fails_fast_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let out = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["tail", "--nats", &format!("nats://127.0.0.1:{port}")])
        .args(["--subject", "md.>", "--count", "1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["tail", "--nats", "nats://127.0.0.1:1", "--subject", "md.>"])
        .args(["--since", "yesterday"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}
