//! The state-changing routes end to end, in the `run` service against the simulator: the token
//! guard (403 without a configured token, 401 for a missing or wrong one), 404 for a category the
//! service does not run; with the right token `POST /api/feeds/{category}/reconnect` answers 202
//! and the feed really reconnects (a second connection, in both isolation modes; in process
//! isolation the same worker) with zero lost and zero duplicated trades against the simulator's
//! journal, and `POST /api/feeds/{category}/resync` rebuilds the books from fresh snapshots on the
//! same connection (409 when not connected). Every wait is for the state itself (the status API,
//! the recent events, the journal's last trade), with a generous overall guard.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use hft_connector::cli::run::{routes, Isolation, RunArgs};
use hft_connector::config::ServiceConfig;
use hft_connector::normalized::Event;
use hft_connector::protocol::Category;
use hft_connector::service::runner::{start, Running};
use hft_connector::service::state::RECENT_TRADES;
use hft_connector::service::FeedKey;
use hft_connector::sim::{JournalQuery, SimConfig, SimHandle, Simulator};
use hft_connector::source::FeedSource;
use hft_connector::worker::WorkerOptions;
use serde_json::Value;
use tokio::time::Instant;

const TOKEN: &str = "s3cret-test-token";
/// A hang guard only: every wait ends as soon as what it waits for happened.
const GUARD: Duration = Duration::from_secs(90);

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-actions-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn sim(seed: u64) -> SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 60.0,
        ..SimConfig::for_tests(seed)
    })
    .await
    .expect("simulator starts")
}

fn config(sim: &SimHandle, name: &str, token: Option<&str>) -> ServiceConfig {
    let args = RunArgs {
        symbols: Some(vec!["BTCUSDT".into()]),
        category: Some(vec!["linear".into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(tmp(name)),
        listen: Some("127.0.0.1:0".into()),
        token: token.map(String::from),
        ..RunArgs::default()
    };
    let mut cfg = ServiceConfig::load(&args.overrides(), Vec::new()).expect("valid config");
    cfg.backfill.enabled = false;
    cfg.reconnect.initial_delay_s = 0.05;
    cfg.reconnect.max_delay_s = 0.5;
    cfg
}

async fn run(cfg: ServiceConfig, isolation: Isolation) -> Running {
    // A hang threshold no loaded machine reaches by accident: the worker is told, never replaced.
    let opts = WorkerOptions {
        hung_after_s: Some(30.0),
        ..WorkerOptions::with_program(env!("CARGO_BIN_EXE_hft-connector"))
    };
    start(
        cfg,
        move |f| FeedSource::spawn_with(f, isolation, opts.clone()).map_err(|e| e.to_string()),
        routes,
    )
    .await
    .expect("service starts")
}

async fn post(r: &Running, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("http://{}{path}", r.addr));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("the service answers");
    let status = resp.status().as_u16();
    let www = resp.headers().get("www-authenticate").cloned();
    let mut body: Value = resp.json().await.expect("a JSON answer");
    if let Some(w) = www {
        body["www_authenticate"] = Value::String(w.to_str().unwrap_or("").into());
    }
    (status, body)
}

async fn get(r: &Running, path: &str) -> Value {
    reqwest::get(format!("http://{}{path}", r.addr))
        .await
        .expect("the service answers")
        .json()
        .await
        .expect("JSON")
}

/// Waits until `pred` holds for `GET path`; returns that answer.
async fn wait_api(r: &Running, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + GUARD;
    loop {
        let v = get(r, path).await;
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn feed_status(v: &Value) -> &Value {
    &v["feeds"][0]
}

async fn until_connected(r: &Running) -> Value {
    wait_api(r, "/api/status", "the feed connected with data", |v| {
        let f = feed_status(v);
        f["status"] == "connected" && f["messages"].as_u64().unwrap_or(0) > 0
    })
    .await
}

async fn stop(r: Running, sim: SimHandle) {
    r.stop();
    r.wait().await.expect("clean stop");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_every_action_is_forbidden() {
    let sim = sim(31).await;
    let r = run(config(&sim, "no-token", None), Isolation::InProcess).await;
    until_connected(&r).await;
    for auth in [None, Some("Bearer anything-at-all")] {
        let (status, body) = post(&r, "/api/feeds/linear/reconnect", auth).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["code"], "forbidden", "{body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains("--token"),
            "the answer says how to enable it: {body}"
        );
    }
    // Nothing was reconnected: the recent events hold no request.
    let events = get(&r, "/api/events/recent").await;
    assert!(
        !events.to_string().contains("reconnect_requested"),
        "{events}"
    );
    stop(r, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_401_and_an_unknown_category_404() {
    let sim = sim(32).await;
    let r = run(
        config(&sim, "wrong-token", Some(TOKEN)),
        Isolation::InProcess,
    )
    .await;
    until_connected(&r).await;
    let wrong = [
        None,
        Some("Bearer s3cret-test-toke".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
    ];
    for auth in &wrong {
        let (status, body) = post(&r, "/api/feeds/linear/reconnect", auth.as_deref()).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body["code"], "unauthorized", "{body}");
        assert!(
            body["www_authenticate"]
                .as_str()
                .unwrap_or("")
                .starts_with("Bearer"),
            "{body}"
        );
    }
    let bearer = format!("Bearer {TOKEN}");
    for (path, says) in [
        (
            "/api/feeds/futures/reconnect",
            "unknown category \"futures\"",
        ),
        ("/api/feeds/spot/reconnect", "no spot feed"),
    ] {
        let (status, body) = post(&r, path, Some(&bearer)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["code"], "unknown_feed", "{body}");
        let error = body["error"].as_str().unwrap_or("");
        assert!(error.contains(says) && error.contains("linear"), "{body}");
    }
    // None of it touched the feed.
    let status = get(&r, "/api/status").await;
    assert_eq!(feed_status(&status)["reconnects"], 0, "{status}");
    stop(r, sim).await;
}

/// The right token: 202 naming what was done, then a second connection and a complete tape.
async fn reconnects_for_real(isolation: Isolation, seed: u64) {
    let sim = sim(seed).await;
    let name = format!("reconnect-{isolation}");
    let r = run(config(&sim, &name, Some(TOKEN)), isolation).await;
    let before = until_connected(&r).await;
    let pid_before = feed_status(&before)["pid"].clone();
    wait_api(
        &r,
        "/api/trades/BTCUSDT",
        "trades before the reconnect",
        |v| v["count"].as_u64().unwrap_or(0) > 0,
    )
    .await;

    let (status, body) = post(
        &r,
        "/api/feeds/Linear/reconnect?reason=operator%20test",
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["category"], "linear", "{body}");
    assert_eq!(body["action"], "reconnect", "{body}");
    assert_eq!(body["isolation"], isolation.as_str(), "{body}");
    assert_eq!(body["status_before"], "connected", "{body}");
    assert_eq!(body["reason"], "operator test", "{body}");
    assert!(
        body["requested_by"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0.1:"),
        "{body}"
    );
    // In either isolation the feed's session (in the service) acts on the request; in process
    // isolation the worker carrying the connection is named.
    assert_eq!(body["done"], "feed_told", "{body}");
    if isolation == Isolation::Process {
        assert_eq!(body["pid"], pid_before, "{body}");
    }

    // The connection really ended for that reason and a second one went live.
    let events = wait_api(&r, "/api/events/recent", "a second connection", |v| {
        v.to_string().contains("connection 2")
    })
    .await;
    let text = events.to_string();
    assert!(
        text.contains("bybit_connector_reconnect_requested"),
        "{text}"
    );
    assert!(text.contains("connector_disconnected"), "{text}");
    // The connection's end carries who asked and why (in either isolation).
    assert!(
        text.contains("reconnect requested: HTTP request from 127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("operator test"), "{text}");
    let after = wait_api(&r, "/api/status", "connected again", |v| {
        let f = feed_status(v);
        f["status"] == "connected" && f["reconnects"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    if isolation == Isolation::Process {
        // The worker was told, not replaced.
        assert_eq!(feed_status(&after)["pid"], pid_before, "{after}");
        assert_eq!(feed_status(&after)["worker_restarts"], 0, "{after}");
    }

    // Trades keep flowing after the reconnect; then the market stops and the service must have
    // every journal trade exactly once.
    let requested_ms = hft_connector::feed::health::unix_ms();
    let journal = |since: u64| -> Vec<String> {
        sim.journal_query(&JournalQuery {
            symbol: Some("BTCUSDT"),
            kind: Some("trade"),
            category: Some("linear"),
            since_ms: Some(since),
            ..Default::default()
        })
        .into_iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(t.id),
            _ => None,
        })
        .collect()
    };
    let deadline = Instant::now() + GUARD;
    while journal(requested_ms + 1).is_empty() {
        assert!(Instant::now() < deadline, "no trade after the reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.pause_market();
    let key = FeedKey {
        category: Category::Linear,
        symbol: "BTCUSDT".into(),
    };
    let last = journal(0).last().cloned().expect("the journal has trades");
    let deadline = Instant::now() + GUARD;
    while !r
        .state
        .trades(&key, None, RECENT_TRADES)
        .iter()
        .any(|t| t.id == last)
    {
        assert!(
            Instant::now() < deadline,
            "the journal's last trade {last} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = r.state.trades(&key, None, RECENT_TRADES);
    assert!(
        got.len() < RECENT_TRADES,
        "the whole tape is still in memory"
    );
    let first_ts = got.first().map(|t| t.ts_ms).expect("trades");
    assert!(
        first_ts < requested_ms,
        "trades from before the reconnect are held"
    );
    let mut ids = HashSet::new();
    for t in &got {
        assert!(ids.insert(t.id.clone()), "duplicate trade {}", t.id);
    }
    let expected: Vec<String> = journal(first_ts + 1);
    let lost: Vec<&String> = expected.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} trades lost across the reconnect: {:?}",
        lost.len(),
        expected.len(),
        &lost[..lost.len().min(5)]
    );
    stop(r, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_reconnects_the_in_process_feed() {
    reconnects_for_real(Isolation::InProcess, 33).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_reconnects_through_the_worker() {
    reconnects_for_real(Isolation::Process, 34).await;
}

/// `POST /api/feeds/{category}/resync`: 202, every book rebuilt from a fresh snapshot on the same
/// connection (no reconnect), the request in the recent events.
async fn resyncs_for_real(isolation: Isolation, seed: u64) {
    let sim = sim(seed).await;
    let name = format!("resync-{isolation}");
    let r = run(config(&sim, &name, Some(TOKEN)), isolation).await;
    let before = until_connected(&r).await;
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = post(&r, "/api/feeds/linear/resync", Some(&bearer)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["action"], "resync", "{body}");
    assert_eq!(body["isolation"], isolation.as_str(), "{body}");
    assert_eq!(body["done"], "feed_told", "{body}");
    let events = wait_api(&r, "/api/events/recent", "the requested resync", |v| {
        v.to_string().contains("orderbook.50: Requested")
    })
    .await;
    assert!(
        events
            .to_string()
            .contains("bybit_connector_resync_requested"),
        "{events}"
    );
    // A fresh snapshot rebuilt the book: it is synced again at the true book's `u` once the
    // market stops, and the connection never dropped.
    sim.pause_market();
    let truth = sim
        .book(Category::Linear, "BTCUSDT", 50)
        .expect("true book");
    let book = wait_api(
        &r,
        "/api/book/BTCUSDT?top=50",
        "the book at the true u",
        |v| v["synced"] == true && v["u"] == truth.u,
    )
    .await;
    assert_eq!(
        book["bids"].as_array().map(Vec::len),
        Some(truth.bids.len())
    );
    let after = get(&r, "/api/status").await;
    assert_eq!(
        feed_status(&after)["reconnects"],
        feed_status(&before)["reconnects"],
        "no reconnect: {after}"
    );
    stop(r, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resyncing_a_feed_that_is_not_connected_is_a_409() {
    let sim = sim(37).await;
    let mut cfg = config(&sim, "resync-down", Some(TOKEN));
    // The exchange's WebSocket is unreachable (REST still answers the symbol check).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    cfg.feed.ws_url = format!("ws://127.0.0.1:{port}/v5/public");
    let r = run(cfg, Isolation::InProcess).await;
    wait_api(&r, "/api/status", "the feed down", |v| {
        feed_status(v)["status"] == "down"
    })
    .await;
    let (status, body) = post(
        &r,
        "/api/feeds/linear/resync",
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "not_connected", "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("down"),
        "{body}"
    );
    stop(r, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_resyncs_the_in_process_books() {
    resyncs_for_real(Isolation::InProcess, 35).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_resyncs_the_books_through_the_worker() {
    resyncs_for_real(Isolation::Process, 36).await;
}

#[test]
fn a_non_loopback_listen_without_a_token_fails_fast_naming_the_fix() {
    let data = tmp("listen");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["run", "--listen", "0.0.0.0:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(&data)
        // Nothing listens there: the check must come before any connection.
        .args([
            "--ws-url",
            "ws://127.0.0.1:9/v5/public",
            "--rest-url",
            "http://127.0.0.1:9",
        ])
        .env_remove("HFT_CONNECTOR_TOKEN")
        .env_remove("HFT_CONNECTOR_HTTP_TOKEN")
        .env_remove("HFT_CONNECTOR_HTTP_LISTEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = std::time::Instant::now() + GUARD;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("a service listening on 0.0.0.0 without a token started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success(), "{stderr}");
    for names in [
        "http.listen",
        "0.0.0.0:0",
        "http.token",
        "HFT_CONNECTOR_HTTP_TOKEN",
        "--token",
    ] {
        assert!(stderr.contains(names), "the error names {names}: {stderr}");
    }
    assert!(!stderr.contains("http_listening"), "{stderr}");
}
