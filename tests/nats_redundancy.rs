//! Redundant publishers: two `hft-connector run` processes publish the same symbol from one
//! simulator into one JetStream stream; one is killed (SIGKILL) mid-run. The stream must hold every
//! journal trade exactly once (compared trade by trade), the survivor must carry on, `tail` must
//! read it back from a sequence, and the Python consumer example (nats-py) must rebuild the true top
//! of book from it.

mod nats_common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hft_connector::normalized::{Event, TradeEvent};
use hft_connector::protocol::Category;
use hft_connector::sim::{JournalQuery, SimConfig, SimHandle, Simulator};
use nats_common::{read_until, NatsServer, Stored};
use rust_decimal::Decimal;

const STREAM: &str = "REDUNDANT";
const SUBJECT: &str = "md.bybit.linear.BTCUSDT.trade";

struct Publisher {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    http: String,
    _data: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Publisher {
    fn start(name: &str, sim: &SimHandle, nats: &str) -> Publisher {
        let data =
            std::env::temp_dir().join(format!("hftc-redundant-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
            .args(["run", "--isolation", "in-process"])
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
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--backfill-days", "0"])
            .args(["--nats-url", nats, "--nats-stream", STREAM])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut p = Publisher {
            child,
            lines,
            http: String::new(),
            _data: tempdir::Dir(data),
        };
        let listening = p.wait_log("http_listening");
        p.http = listening["url"]
            .as_str()
            .expect("url")
            .trim_end_matches('/')
            .to_string();
        p
    }

    /// Waits for a log line with this event name (the event itself, not a delay).
    fn wait_log(&mut self, event: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["event"] == event => return v,
                Ok(_) => continue,
                Err(e) => panic!("no {event} log line: {e}"),
            }
        }
    }

    async fn nats_status(&self) -> serde_json::Value {
        let v: serde_json::Value = reqwest::get(format!("{}/api/status", self.http))
            .await
            .expect("GET /api/status")
            .json()
            .await
            .expect("JSON");
        v["sinks"]["nats"].clone()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn journal_trades(sim: &SimHandle) -> Vec<TradeEvent> {
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

fn assert_same_trade(t: &TradeEvent, s: &serde_json::Value) {
    assert_eq!(s["id"], t.id.as_str());
    assert_eq!(s["price"], t.price.to_string(), "price of {}", t.id);
    assert_eq!(s["qty"], t.qty.to_string(), "qty of {}", t.id);
    assert_eq!(s["ts_ms"], t.ts_ms, "time of {}", t.id);
    assert_eq!(
        s["side"],
        serde_json::to_value(t.side).expect("side"),
        "side of {}",
        t.id
    );
}

async fn wait_journal(sim: &SimHandle, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while journal_trades(sim).len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the simulator made fewer than {n} trades"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn python_has_nats() -> bool {
    Command::new("python3")
        .args(["-c", "import nats"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_publishers_one_killed_every_trade_exactly_once() {
    let Some(nats) = NatsServer::start("redundancy") else {
        return;
    };
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 200.0,
        journal_capacity: 1_000_000,
        start_paused: true,
        ..SimConfig::for_tests(41)
    })
    .await
    .expect("simulator starts");
    let mut a = Publisher::start("a", &sim, &nats.url());
    let mut b = Publisher::start("b", &sim, &nats.url());
    for p in [&mut a, &mut b] {
        p.wait_log("bybit_connector_connected");
        p.wait_log("nats_stream_ready");
    }
    sim.resume_market();

    // Both publish; then A dies without a word.
    read_until(
        &nats.url(),
        STREAM,
        SUBJECT,
        Duration::from_secs(120),
        |m| m.len() >= 100,
    )
    .await;
    let a_status = a.nats_status().await;
    let a_sent =
        a_status["published"].as_u64().unwrap_or(0) + a_status["duplicates"].as_u64().unwrap_or(0);
    assert!(a_sent > 0, "A was publishing: {a_status}");
    a.child.kill().expect("SIGKILL A");
    a.child.wait().expect("A is gone");
    let at_kill = journal_trades(&sim).len();
    wait_journal(&sim, at_kill + 200).await;
    sim.pause_market();

    let journal = journal_trades(&sim);
    let last = journal.last().expect("trades").id.clone();
    let stored: Vec<Stored> = read_until(
        &nats.url(),
        STREAM,
        SUBJECT,
        Duration::from_secs(120),
        |m| m.iter().any(|s| s.json["id"] == last.as_str()),
    )
    .await;
    // Every journal trade, from the very first (the market started after both were connected),
    // exactly once, in the stream.
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in &stored {
        *count.entry(s.json["id"].as_str().expect("id")).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let by_id: HashMap<&str, &Stored> = stored
        .iter()
        .map(|s| (s.json["id"].as_str().unwrap_or_default(), s))
        .collect();
    let missing: Vec<&str> = journal
        .iter()
        .filter(|t| !by_id.contains_key(t.id.as_str()))
        .map(|t| t.id.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} journal trades missing: {:?}",
        missing.len(),
        journal.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        stored.len(),
        journal.len(),
        "the stream holds trades the journal does not"
    );
    for t in &journal {
        assert_same_trade(t, &by_id[t.id.as_str()].json);
    }
    // The survivor stored everything after the kill itself.
    let b_status = b.nats_status().await;
    let after_kill = (journal.len() - at_kill) as u64;
    assert!(
        b_status["published"].as_u64().unwrap_or(0) >= after_kill,
        "{b_status} vs {after_kill} trades after the kill"
    );
    assert_eq!(b_status["state"], "connected");
    assert_eq!(b_status["dropped"], 0);

    // `tail` reads the same trades back, from the start and resuming from a sequence.
    let tail = |from: u64, count: usize| {
        let out = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
            .args(["tail", "--nats", &nats.url(), "--subject", SUBJECT])
            .args([
                "--from-seq",
                &from.to_string(),
                "--count",
                &count.to_string(),
            ])
            .stderr(Stdio::null())
            .output()
            .expect("tail runs");
        assert!(out.status.success(), "tail failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
            .collect::<Vec<_>>()
    };
    let all = tail(1, stored.len());
    assert_eq!(all.len(), stored.len());
    for (line, s) in all.iter().zip(&stored) {
        assert_eq!(line, &s.json);
    }
    let resumed = tail(stored[10].seq, 5);
    assert_eq!(resumed.len(), 5);
    assert_eq!(resumed[0]["id"], stored[10].json["id"]);
    assert_eq!(resumed[4]["id"], stored[14].json["id"]);

    // The Python consumer example reads trades and books and keeps the true top of book.
    if !python_has_nats() {
        let must = std::env::var_os("HFT_CONNECTOR_REQUIRE_NATS").is_some();
        assert!(!must, "nats-py is not installed: run scripts/nats-deps.sh");
        eprintln!("\n!!!!! SKIPPED the Python consumer check: nats-py is not installed (scripts/nats-deps.sh installs it) !!!!!\n");
        return;
    }
    let truth = sim
        .book(Category::Linear, "BTCUSDT", 50)
        .expect("true book");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/python/nats_top_of_book.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            "--url",
            &nats.url(),
            "--stream",
            STREAM,
            "--symbol",
            "BTCUSDT",
        ])
        .args(["--until-trade", &last, "--until-u", &truth.u.to_string()])
        .args(["--timeout", "120", "--quiet"])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "consumer failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary JSON");
    assert_eq!(summary["unique_trades"], journal.len(), "{summary}");
    assert_eq!(summary["duplicates"], 0, "{summary}");
    assert_eq!(summary["book_u"], truth.u, "{summary}");
    let level = |v: &serde_json::Value| -> (Decimal, Decimal) {
        (
            v[0].as_str().and_then(|s| s.parse().ok()).expect("price"),
            v[1].as_str().and_then(|s| s.parse().ok()).expect("size"),
        )
    };
    assert_eq!(
        Some(level(&summary["best_bid"])),
        truth.bids.first().copied(),
        "{summary}"
    );
    assert_eq!(
        Some(level(&summary["best_ask"])),
        truth.asks.first().copied(),
        "{summary}"
    );
    eprintln!(
        "redundancy: {} journal trades exactly once ({} after A was killed); python consumer: {summary}",
        journal.len(),
        after_kill
    );
    drop(b);
    sim.shutdown().await;
}
