//! Every stop completes (issue 28): `hft-connector run` (the real binary) gets SIGTERM while the
//! exchange misbehaves, in both isolation modes, and must end with a clean, bounded stop: exit
//! status 0, `service_stopping` then `service_stopped`, no `service_shutdown_incomplete` (which a
//! stop still running at `--shutdown-timeout-s 3` would log before exiting 1), no worker process
//! left (not even a zombie), and a store that opens cleanly with what was acknowledged before
//! the signal. The faults: REST answering 403 or hanging while candles are re-fetched after a
//! reconnect; a backfill chunk waiting out a 403 ban or retrying against an exchange that went
//! away; the REST trade gap-fill waiting on an exchange that stopped answering, and a reconnect
//! into an exchange that accepts connections and never answers; a SIGSTOPped worker; NATS
//! unreachable (nothing listening, or a port that accepts and never speaks); the record directory
//! gone unwritable; the SQLite writer busy with a large backfill. Then the bound itself: a stop
//! that cannot complete (the store locked by another process) logs `service_shutdown_incomplete`
//! naming what was left and exits 1, and a second signal exits at once.
//!
//! Every wait is for a log line or a simulator counter; the only time limits are hang guards.

mod nats_common;
mod stop_common;

use std::collections::HashMap;
use std::time::Duration;

use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};
use nix::sys::signal::Signal;
use stop_common::*;

const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];

async fn sim(seed: u64, history_days: u32) -> SimHandle {
    Simulator::start(SimConfig {
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        categories: vec![Category::Linear],
        rate: 100.0,
        history_days,
        ..SimConfig::for_tests(seed)
    })
    .await
    .expect("simulator starts")
}

/// Every REST market call from now on answers 403 "access too frequent".
fn rest_403() -> FaultRequest {
    FaultRequest::new(FaultKind::RestError)
        .count(1_000_000)
        .status(403)
}

/// Every REST market call from now on hangs (an hour) unanswered.
fn rest_hangs() -> FaultRequest {
    FaultRequest::new(FaultKind::RestError)
        .count(1_000_000)
        .seconds(3_600.0)
}

/// A backfill that takes a while: small chunks within a small request budget.
fn slow_backfill(cmd: &mut std::process::Command) {
    cmd.args(["--backfill-days", "1"])
        .env("HFT_CONNECTOR_BACKFILL_CHUNK_LIMIT", "20")
        .env("HFT_CONNECTOR_BACKFILL_CONCURRENCY", "4")
        .env("HFT_CONNECTOR_BACKFILL_REQUESTS_PER_WINDOW", "8")
        .env("HFT_CONNECTOR_BACKFILL_WINDOW_S", "1");
}

/// Starts `run`, waits until every symbol is connected.
async fn started(name: &str, cmd: std::process::Command) -> Proc {
    let p = Proc::spawn(name, cmd);
    p.wait_count("bybit_connector_connected", SYMBOLS.len())
        .await;
    p
}

/// The chunks each symbol's backfill reported stored before the stop began, by `done`.
fn acknowledged_before_stop(p: &Proc) -> HashMap<String, u64> {
    let mut done = HashMap::new();
    for v in p.lines() {
        if v["event"] == "service_stopping" {
            break;
        }
        if v["event"] == "backfill_progress" {
            let (Some(s), Some(d)) = (v["symbol"].as_str(), v["done"].as_u64()) else {
                continue;
            };
            let e = done.entry(s.to_string()).or_insert(0);
            *e = (*e).max(d);
        }
    }
    done
}

/// Every chunk acknowledged before the stop is in the store (recorded as done, except each
/// symbol's newest, which holds the open minute).
fn assert_chunks_stored(p: &Proc, data: &std::path::Path) {
    let store = assert_store_clean(data);
    let stored = store.chunks_done().expect("chunks");
    for (symbol, done) in acknowledged_before_stop(p) {
        let n = stored
            .iter()
            .filter(|id| id.split(':').nth(1) == Some(symbol.as_str()))
            .count() as u64;
        // The newest chunk holds the open minute: its candles are stored, but it is not
        // recorded as done (it is fetched again on the next start).
        assert!(
            n + 1 >= done,
            "{symbol}: {done} chunks acknowledged before the signal, {n} recorded as stored"
        );
    }
}

/// (a) REST answers 403 while the service re-fetches candles after a reconnect (and a backfill
/// is in flight): the re-fetch and the backfill wait out a 600 s ban when the signal comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_candles_are_refetched_against_rest_answering_403() {
    for isolation in ISOLATIONS {
        let sim = sim(1, 2).await;
        let data = tmp(&format!("refetch-403-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        slow_backfill(&mut cmd);
        let mut p = started(&format!("refetch 403 {isolation}"), cmd).await;
        p.wait_for("a stored chunk", |v| {
            v["event"] == "backfill_progress" && v["done"].as_u64() > Some(0)
        })
        .await;
        sim.inject(rest_403());
        sim.inject(FaultRequest::new(FaultKind::Close));
        p.wait_count("bybit_connector_connected", 2 * SYMBOLS.len())
            .await;
        // Banned for the default 600 s by the re-fetch (or the backfill) meeting the 403.
        let ban = p.wait_event("backfill_rate_limited").await;
        assert_eq!(ban["wait_ms"], 600_000, "{ban}");
        let status = p.stop().await;
        p.assert_clean_stop(status);
        assert_chunks_stored(&p, &data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// (a) REST accepts and never answers while the service re-fetches candles after a reconnect:
/// the re-fetch's request is in flight when the signal comes (dropped, not awaited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_candles_are_refetched_against_rest_that_hangs() {
    for isolation in ISOLATIONS {
        let sim = sim(2, 2).await;
        let data = tmp(&format!("refetch-hang-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        cmd.args(["--backfill-days", "0"]);
        let mut p = started(&format!("refetch hang {isolation}"), cmd).await;
        sim.inject(rest_hangs());
        sim.inject(FaultRequest::new(FaultKind::Close));
        p.wait_count("bybit_connector_connected", 2 * SYMBOLS.len())
            .await;
        until_rest_held(&sim, "/v5/market/kline").await;
        let status = p.stop().await;
        p.assert_clean_stop(status);
        assert_store_clean(&data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// (b) A backfill chunk waits out a 403 ban: the signal comes during the 600 s wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_a_backfill_waits_out_a_403_ban() {
    for isolation in ISOLATIONS {
        let sim = sim(3, 2).await;
        let data = tmp(&format!("ban-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        slow_backfill(&mut cmd);
        let mut p = started(&format!("ban {isolation}"), cmd).await;
        p.wait_for("a stored chunk", |v| {
            v["event"] == "backfill_progress" && v["done"].as_u64() > Some(0)
        })
        .await;
        sim.inject(rest_403());
        let ban = p.wait_event("backfill_rate_limited").await;
        assert_eq!(ban["wait_ms"], 600_000, "{ban}");
        let status = p.stop().await;
        p.assert_clean_stop(status);
        assert_chunks_stored(&p, &data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// (b) The exchange went away mid-backfill: chunks retry with backoff when the signal comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_a_backfill_retries_against_an_exchange_that_went_away() {
    for isolation in ISOLATIONS {
        let sim = sim(4, 2).await;
        let data = tmp(&format!("gone-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        slow_backfill(&mut cmd);
        let mut p = started(&format!("gone {isolation}"), cmd).await;
        p.wait_for("a stored chunk", |v| {
            v["event"] == "backfill_progress" && v["done"].as_u64() > Some(0)
        })
        .await;
        sim.shutdown().await;
        p.wait_event("backfill_retry").await;
        let status = p.stop().await;
        p.assert_clean_stop(status);
        assert_chunks_stored(&p, &data);
        std::fs::remove_dir_all(&data).ok();
    }
}

/// (c) The REST trade gap-fill after a reconnect waits on an exchange that stopped answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_the_trade_gap_fill_waits_on_rest_that_stopped_answering() {
    for isolation in ISOLATIONS {
        let sim = sim(5, 2).await;
        let data = tmp(&format!("gapfill-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        cmd.args(["--backfill-days", "0"]);
        let mut p = started(&format!("gap-fill {isolation}"), cmd).await;
        sim.inject(rest_hangs());
        sim.inject(FaultRequest::new(FaultKind::Close));
        until_rest_held(&sim, "/v5/market/recent-trade").await;
        let status = p.stop().await;
        p.assert_clean_stop(status);
        assert_store_clean(&data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// (c) A reconnect into an exchange that accepts connections and never answers (`blackhole`):
/// the WebSocket handshake (and REST) hang when the signal comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_reconnecting_to_an_exchange_that_accepts_and_never_answers() {
    for isolation in ISOLATIONS {
        let sim = sim(6, 2).await;
        let data = tmp(&format!("blackhole-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        cmd.args(["--backfill-days", "0"])
            .env("HFT_CONNECTOR_RECONNECT_CONNECT_TIMEOUT_S", "60");
        let mut p = started(&format!("blackhole {isolation}"), cmd).await;
        sim.inject(FaultRequest::new(FaultKind::Blackhole).seconds(3_600.0));
        sim.inject(FaultRequest::new(FaultKind::Close));
        until_connection_held(&sim).await;
        let status = p.stop().await;
        p.assert_clean_stop(status);
        assert_store_clean(&data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// (d) The worker is SIGSTOPped (not yet replaced as hung) when the signal comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_the_worker_is_sigstopped() {
    let sim = sim(7, 2).await;
    let data = tmp("sigstop");
    let mut cmd = run_cmd(&sim, "process", &data, &SYMBOLS);
    cmd.args(["--backfill-days", "0"]);
    let mut p = started("sigstop", cmd).await;
    let workers = p.worker_pids();
    assert_eq!(workers.len(), 1, "{}", p.tail());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0] as i32),
        Signal::SIGSTOP,
    )
    .expect("SIGSTOP");
    let status = p.stop().await;
    p.assert_clean_stop(status);
    assert_store_clean(&data);
    sim.shutdown().await;
    std::fs::remove_dir_all(&data).ok();
}

/// (e) NATS is unreachable: nothing listens at its URL, or something accepts and never speaks.
/// What the sink still held is reported (`nats_sink_unflushed`) within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_nats_is_unreachable() {
    // A port nothing listens on, and one that accepts connections and never answers.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    for (nats, what) in [(closed, "nothing listening"), (silent_addr, "silent")] {
        for isolation in ISOLATIONS {
            let sim = sim(8, 2).await;
            let data = tmp(&format!("nats-{}-{isolation}", nats.port()));
            let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
            cmd.args(["--backfill-days", "0"])
                .args(["--nats-url", &format!("nats://{nats}")]);
            let mut p = started(&format!("nats {what} {isolation}"), cmd).await;
            p.wait_event("nats_sink_started").await;
            let status = p.stop().await;
            p.assert_clean_stop(status);
            let unflushed = p.events("nats_sink_unflushed");
            assert_eq!(unflushed.len(), 1, "{}", p.tail());
            assert!(
                unflushed[0]["buffered"].as_u64().unwrap_or(0)
                    + unflushed[0]["retry"].as_u64().unwrap_or(0)
                    > 0,
                "what could not be published is reported: {}",
                unflushed[0]
            );
            assert_eq!(p.events("nats_sink_stopped").len(), 1, "{}", p.tail());
            assert_store_clean(&data);
            sim.shutdown().await;
            std::fs::remove_dir_all(&data).ok();
        }
    }
    held.abort();
}

/// (e) NATS went away mid-run with publishes in flight: the server is SIGSTOPped (its socket
/// stays open, nothing answers), the signal comes; the sink reports what it could not flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_nats_stopped_answering_with_publishes_in_flight() {
    let Some(mut nats) = nats_common::NatsServer::start("stop-in-flight") else {
        return;
    };
    for isolation in ISOLATIONS {
        let sim = sim(14, 2).await;
        let data = tmp(&format!("nats-frozen-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        cmd.args(["--backfill-days", "0", "--nats-url", &nats.url()])
            .args(["--nats-stream", "STOP"]);
        let mut p = started(&format!("nats frozen {isolation}"), cmd).await;
        p.wait_event("nats_stream_ready").await;
        let pid = nix::unistd::Pid::from_raw(nats.pid().expect("running") as i32);
        nix::sys::signal::kill(pid, Signal::SIGSTOP).expect("SIGSTOP nats-server");
        // Events keep coming: publishes pile up unacknowledged (seen in /api/status).
        let url = p.wait_event("http_listening").await["url"]
            .as_str()
            .expect("url")
            .to_string();
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let s: serde_json::Value = reqwest::get(format!("{url}api/status"))
                .await
                .expect("status")
                .json()
                .await
                .expect("json");
            let n = &s["sinks"]["nats"];
            if n["in_flight"].as_u64() >= Some(10) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = p.stop().await;
        nix::sys::signal::kill(pid, Signal::SIGCONT).expect("SIGCONT nats-server");
        p.assert_clean_stop(status);
        let unflushed = p.events("nats_sink_unflushed");
        assert_eq!(unflushed.len(), 1, "{}", p.tail());
        let left = ["in_flight", "retry", "buffered"]
            .iter()
            .map(|k| unflushed[0][*k].as_u64().unwrap_or(0))
            .sum::<u64>();
        assert!(left > 0, "reported: {}", unflushed[0]);
        assert_eq!(p.events("nats_sink_stopped").len(), 1, "{}", p.tail());
        assert_store_clean(&data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
    nats.stop();
}

/// (f) The record directory became unwritable (replaced by a file) before the first frame: every
/// segment fails to open when the signal comes; the recorder still stops and reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_the_record_directory_is_unwritable() {
    for isolation in ISOLATIONS {
        let sim = sim(9, 2).await;
        let data = tmp(&format!("record-{isolation}"));
        let record = data.join("record");
        // The exchange refuses connections at first, so that the directory goes before a frame.
        sim.inject(FaultRequest::new(FaultKind::Refuse).seconds(2.0));
        let mut cmd = run_cmd(&sim, isolation, &data.join("store"), &SYMBOLS);
        cmd.args(["--backfill-days", "0"])
            .arg("--record-dir")
            .arg(&record);
        let mut p = Proc::spawn(&format!("record {isolation}"), cmd);
        p.wait_event("record_started").await;
        std::fs::remove_dir_all(&record).expect("remove the record dir");
        std::fs::write(&record, b"not a directory").expect("a file in its place");
        p.wait_event("record_write_failed").await;
        p.wait_count("bybit_connector_connected", SYMBOLS.len())
            .await;
        let status = p.stop().await;
        p.assert_clean_stop(status);
        let stopped = p.events("record_stopped");
        assert_eq!(stopped.len(), 1, "{}", p.tail());
        assert!(stopped[0]["lost"].as_u64() > Some(0), "{}", stopped[0]);
        assert_store_clean(&data.join("store"));
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// (g) The SQLite writer is busy with a large backfill (30 days of 1-minute candles, chunks of
/// 1000, eight at a time) when the signal comes: what it acknowledged is stored, what nobody
/// awaits any more is skipped, and a WAL checkpoint is attempted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_the_store_writer_is_busy_with_a_large_backfill() {
    for isolation in ISOLATIONS {
        let sim = sim(10, 30).await;
        let data = tmp(&format!("busy-writer-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        cmd.args(["--backfill-days", "30"])
            .env("HFT_CONNECTOR_BACKFILL_CONCURRENCY", "8");
        let mut p = started(&format!("busy writer {isolation}"), cmd).await;
        p.wait_for("ten stored chunks", |v| {
            v["event"] == "backfill_progress" && v["done"].as_u64() >= Some(10)
        })
        .await;
        let status = p.stop().await;
        p.assert_clean_stop(status);
        let closed = p.events("store_closed");
        assert_eq!(closed.len(), 1, "{}", p.tail());
        assert_eq!(closed[0]["closed_by"], "close", "{}", closed[0]);
        assert!(
            closed[0].get("checkpoint_busy").is_some()
                || closed[0].get("checkpoint_error").is_some(),
            "a checkpoint was attempted: {}",
            closed[0]
        );
        assert!(
            p.events("backfill_done").len() < SYMBOLS.len(),
            "the backfill was still running"
        );
        assert_chunks_stored(&p, &data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// The bound: another process holds the store's write lock, so the writer cannot write what it
/// holds; the stop gives up after `--shutdown-timeout-s`, logs `service_shutdown_incomplete`
/// once naming `store_writer`, exits 1, and leaves no worker behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_cannot_complete_is_abandoned_at_the_bound_naming_what_was_left() {
    for isolation in ISOLATIONS {
        let sim = sim(11, 2).await;
        let data = tmp(&format!("locked-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        cmd.args(["--backfill-days", "0"]);
        let mut p = started(&format!("locked {isolation}"), cmd).await;
        let lock = rusqlite::Connection::open(data.join("hft-connector.sqlite3")).expect("open");
        lock.busy_timeout(Duration::from_secs(10)).expect("busy");
        lock.execute_batch("BEGIN EXCLUSIVE")
            .expect("the write lock");
        // The writer is stuck behind the lock (each write waits 5 s for it, then fails).
        p.wait_event("store_write_failed").await;
        let status = p.stop().await;
        assert_eq!(status.code(), Some(1), "{}", p.tail());
        let incomplete = p.events("service_shutdown_incomplete");
        assert_eq!(incomplete.len(), 1, "logged once: {}", p.tail());
        let tasks = incomplete[0]["tasks"].as_str().unwrap_or_default();
        assert!(tasks.contains("store_writer"), "{}", incomplete[0]);
        assert_eq!(incomplete[0]["timeout_s"], TIMEOUT_S);
        assert!(p.events("service_stopped").is_empty(), "{}", p.tail());
        assert_gone(&p.worker_pids());
        p.report_stop();
        lock.execute_batch("ROLLBACK").expect("release");
        drop(lock);
        assert_store_clean(&data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// A second SIGTERM exits at once (128 + 15), naming what was still running, workers killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    for isolation in ISOLATIONS {
        let sim = sim(12, 2).await;
        let data = tmp(&format!("second-{isolation}"));
        let mut cmd = run_cmd(&sim, isolation, &data, &SYMBOLS);
        // A long bound: only the second signal can end this stop early.
        cmd.args(["--backfill-days", "0", "--shutdown-timeout-s", "120"]);
        let mut p = started(&format!("second signal {isolation}"), cmd).await;
        let lock = rusqlite::Connection::open(data.join("hft-connector.sqlite3")).expect("open");
        lock.busy_timeout(Duration::from_secs(10)).expect("busy");
        lock.execute_batch("BEGIN EXCLUSIVE")
            .expect("the write lock");
        p.wait_event("store_write_failed").await;
        p.signal(Signal::SIGTERM);
        p.wait_event("service_stopping").await;
        p.signal(Signal::SIGTERM);
        // A hang guard far below the 120 s bound.
        let status = p.exit(Duration::from_secs(30)).await;
        assert_eq!(status.code(), Some(128 + 15), "{}", p.tail());
        let forced = p.events("service_shutdown_forced");
        assert_eq!(forced.len(), 1, "{}", p.tail());
        assert_eq!(forced[0]["signal"], "SIGTERM");
        assert!(
            forced[0]["tasks"]
                .as_str()
                .unwrap_or_default()
                .contains("store_writer"),
            "{}",
            forced[0]
        );
        assert_gone(&p.worker_pids());
        lock.execute_batch("ROLLBACK").expect("release");
        drop(lock);
        assert_store_clean(&data);
        sim.shutdown().await;
        std::fs::remove_dir_all(&data).ok();
    }
}

/// A signal while the service is still starting (checking its symbols against REST that hangs)
/// stops it at once, cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_starting_against_rest_that_hangs() {
    let sim = sim(13, 2).await;
    sim.inject(rest_hangs());
    let data = tmp("starting");
    let mut cmd = run_cmd(&sim, "process", &data, &SYMBOLS);
    cmd.args(["--backfill-days", "0"]);
    let mut p = Proc::spawn("starting", cmd);
    until_rest_held(&sim, "/v5/market/instruments-info").await;
    let status = p.stop().await;
    p.assert_clean_stop(status);
    sim.shutdown().await;
    std::fs::remove_dir_all(&data).ok();
}
