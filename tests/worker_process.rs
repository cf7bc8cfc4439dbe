//! Worker-process failures against the simulator: kill -9 of the worker, a worker panic and a hung
//! (SIGSTOPped) worker. Each asserts the failure is noticed within its bound and logged, the old
//! process is gone (reaped, no zombie), a new worker takes over, and the delivered stream stays
//! exact: zero lost and zero duplicated trades against the journal, final book equal to the true
//! book. Also the feed hook that makes this possible: `Feed::spawn_resuming` gap-fills a tape that
//! another feed delivered.

mod feed_common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use feed_common::{default_isolation, feed_config, sim_config, worker_options, Rig, SYMBOL};
use hft_connector::cli::run::Isolation;
use hft_connector::feed::{DisconnectReason, Feed, FeedEvent};
use hft_connector::protocol::Category;
use hft_connector::sim::Simulator;
use hft_connector::worker::child::PANIC_AFTER_ENV;
use hft_connector::worker::WorkerOptions;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::time::Instant;

/// Every JSON log line of this test binary (all tests; filter by pid).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines with `event` whose `pid` is `pid`.
fn logged(event: &str, pid: u32) -> Vec<Value> {
    let buf = logs();
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).to_string();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == event && v["pid"] == pid)
        .collect()
}

/// A hang guard only: every wait ends as soon as what it waits for happened.
const GUARD: Duration = Duration::from_secs(60);

async fn wait_logged(event: &str, pid: u32) -> Vec<Value> {
    let deadline = Instant::now() + GUARD;
    loop {
        let found = logged(event, pid);
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "no {event} logged for pid {pid}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn proc_gone(pid: u32) -> bool {
    // Reaped processes vanish from /proc; a zombie would still be listed (state Z).
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn started_rig(
    opts: hft_connector::worker::WorkerOptions,
    tweak: impl FnOnce(&mut hft_connector::feed::FeedConfig),
) -> Rig {
    logs();
    let sim = Simulator::start(sim_config(Category::Linear))
        .await
        .expect("simulator starts");
    let mut cfg = feed_config(&sim, Category::Linear);
    tweak(&mut cfg);
    let rig = Rig::with_isolation(sim, cfg, Category::Linear, Isolation::Process, opts).await;
    rig.until_flowing().await;
    rig
}

/// After a worker was replaced: the new one connects, data flows, nothing lost or doubled.
async fn assert_replaced_and_exact(rig: &Rig, from: usize, old_pid: u32) {
    let (i, _) = rig
        .wait_for(from, GUARD, "new worker connected", |e| {
            matches!(e, FeedEvent::Connected { .. })
        })
        .await;
    rig.until_data_after(i, GUARD).await;
    let new_pid = rig.monitor().pid().expect("a new worker");
    assert_ne!(new_pid, old_pid);
    assert!(proc_gone(old_pid), "old worker {old_pid} reaped");
    assert_eq!(rig.monitor().worker_restarts(), 1);
    wait_logged("bybit_connector_subprocess_connected", new_pid).await;
    // Live trades from the new worker, then the market stops and the tape is compared.
    rig.wait_for(
        i,
        GUARD,
        "a live trade from the new worker",
        |e| matches!(e, FeedEvent::Trade(t) if !t.recovered),
    )
    .await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.until_health("the new worker alive, the restart counted", |h| {
        h.process_alive && h.reconnects >= 1 && h.error_count >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_is_noticed_at_once_and_the_worker_replaced_without_loss() {
    // A restart delay of 1 to 2 s (jittered backoff) makes sure trades happen with no worker.
    let rig = started_rig(worker_options(), |c| {
        c.reconnect.initial_delay_s = 2.0;
        c.reconnect.max_delay_s = 2.0;
    })
    .await;
    let pid = rig.monitor().pid().expect("worker pid");
    let mark = rig.len();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill -9");
    // Noticed as a death (the exit is awaited), not as silence by the hang detector.
    let (i, _) = rig
        .wait_for(mark, GUARD, "worker death", |e| {
            matches!(e, FeedEvent::Disconnected { reason: DisconnectReason::Error(m) } if m.contains("died"))
        })
        .await;
    assert!(
        logged("bybit_connector_subprocess_stale", pid).is_empty(),
        "the death was awaited, not found by the hang detector"
    );
    assert!(!rig.shared.health.snapshot().process_alive || rig.monitor().pid() != Some(pid));
    let exited = wait_logged("bybit_connector_subprocess_exited", pid).await;
    assert_eq!(exited[0]["signal"], "SIGKILL", "{exited:?}");
    assert!(exited[0].get("exit_code").is_none());
    let died = wait_logged("bybit_connector_process_died", pid).await;
    assert_eq!(died[0]["signal"], "SIGKILL");
    assert_replaced_and_exact(&rig, i, pid).await;
    // The outage was filled from REST by the new worker (its first connection resumed the tape).
    assert!(
        rig.count(|e| matches!(e, FeedEvent::Trade(t) if t.recovered)) > 0,
        "trades missed while no worker ran were recovered"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_panic_is_captured_from_stderr_and_the_worker_replaced() {
    let mut opts = worker_options();
    opts.env
        .push((PANIC_AFTER_ENV.to_string(), "100".to_string()));
    let rig = started_rig(opts, |_| {}).await;
    let pid = rig.monitor().pid().expect("worker pid");
    let (i, _) = rig
        .wait_for(0, GUARD, "worker death", |e| {
            matches!(e, FeedEvent::Disconnected { reason: DisconnectReason::Error(m) } if m.contains("died"))
        })
        .await;
    let exited = wait_logged("bybit_connector_subprocess_exited", pid).await;
    assert_eq!(exited[0]["exit_code"], 101, "a Rust panic exits with 101");
    // The panic message is not a JSON log line, yet it is not lost.
    let stderr = wait_logged("bybit_connector_subprocess_stderr", pid).await;
    let lines: Vec<&str> = stderr.iter().filter_map(|v| v["line"].as_str()).collect();
    assert!(
        lines.iter().any(|l| l.contains("panicked"))
            && lines.iter().any(|l| l.contains(PANIC_AFTER_ENV)),
        "panic message captured: {lines:?}"
    );
    let panic_log = wait_logged("bybit_connector_subprocess_stderr", pid).await;
    assert!(
        panic_log
            .iter()
            .any(|v| v["worker_event"] == "bybit_connector_worker_panic" && v["level"] == "ERROR"),
        "the worker's panic hook logs a structured error line too"
    );
    assert_replaced_and_exact(&rig, i, pid).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_is_caught_by_the_stale_detector_and_replaced() {
    // A hang threshold of its own (the shared options' is far longer).
    let opts = WorkerOptions {
        hung_after_s: Some(2.0),
        ..worker_options()
    };
    let rig = started_rig(opts, |_| {}).await;
    let pid = rig.monitor().pid().expect("worker pid");
    let mark = rig.len();
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).expect("SIGSTOP");
    let (i, _) = rig
        .wait_for(mark, GUARD, "hung worker replaced", |e| {
            matches!(e, FeedEvent::Disconnected { reason: DisconnectReason::Error(m) } if m.contains("unresponsive"))
        })
        .await;
    assert!(proc_gone(pid), "the hung worker is gone, not left stopped");
    // Judged by the rule, never early: hang threshold 2 s; then SIGKILL at once.
    let stale = wait_logged("bybit_connector_subprocess_stale", pid).await;
    assert!(stale[0]["seconds_since_last_frame"].as_f64().unwrap_or(0.0) >= 2.0);
    assert_eq!(stale[0]["stale_threshold"].as_f64(), Some(2.0), "{stale:?}");
    let terminated = wait_logged("bybit_connector_subprocess_terminated", pid).await;
    assert_eq!(terminated[0]["reason"], "unresponsive");
    assert_eq!(terminated[0]["signal_sent"], "SIGKILL");
    assert!(rig.shared.health.snapshot().stale_detections >= 1);
    assert_replaced_and_exact(&rig, i, pid).await;
    rig.stop().await;
}

/// `Rig::start` (what the shared fault cases use) runs a worker process in `worker_*` targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_fault_cases_run_in_a_worker_process() {
    assert_eq!(default_isolation(), Isolation::Process);
    let rig = Rig::start(Category::Linear).await;
    rig.until_flowing().await;
    let pid = rig.monitor().pid().expect("a worker pid");
    assert_ne!(pid, std::process::id());
    assert!(!proc_gone(pid));
    assert!(rig.shared.health.snapshot().process_alive);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_worker_and_leaves_no_process() {
    let rig = started_rig(worker_options(), |_| {}).await;
    let pid = rig.monitor().pid().expect("worker pid");
    let monitor = rig.monitor().clone();
    rig.stop().await;
    assert!(proc_gone(pid), "worker {pid} gone after shutdown");
    assert!(!monitor.health().process_alive);
    let t = wait_logged("bybit_connector_subprocess_terminated", pid).await;
    assert_eq!(t[0]["signal_sent"], "SIGTERM");
    assert_eq!(t[0]["exit_code"], 0, "the worker exits cleanly on SIGTERM");
}

/// The feed hook: a second feed told where the first one's tape ends gap-fills from REST, so the
/// two tapes together miss nothing (without the hook the second would start a fresh tape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_resuming_continues_another_feeds_tape() {
    let sim = Simulator::start(sim_config(Category::Linear))
        .await
        .expect("simulator starts");
    let cfg = feed_config(&sim, Category::Linear);
    let mut tape = Vec::new();
    let mut a = Feed::spawn(cfg.clone()).expect("feed");
    while tape.len() < 20 {
        match tokio::time::timeout(GUARD, a.next()).await {
            Ok(Some(FeedEvent::Trade(t))) => tape.push(t),
            Ok(Some(_)) => {}
            other => panic!("feed A ended: {other:?}"),
        }
    }
    a.shutdown().await;
    let last = tape.iter().map(|t| t.ts_ms).max().unwrap_or(0);
    let a_ids: std::collections::HashSet<String> = tape.iter().map(|t| t.id.clone()).collect();
    let journal_trades = |since: u64| -> Vec<String> {
        sim.journal_query(&hft_connector::sim::JournalQuery {
            symbol: Some(SYMBOL),
            kind: Some("trade"),
            category: Some("linear"),
            since_ms: Some(since),
            ..Default::default()
        })
        .into_iter()
        .filter_map(|e| match e {
            hft_connector::normalized::Event::Trade(t) => Some(t.id),
            _ => None,
        })
        .collect()
    };
    // Trades happen with no feed (waited for in the journal, not slept for).
    let deadline = Instant::now() + GUARD;
    while journal_trades(last + 1).len() < 3 {
        assert!(Instant::now() < deadline, "no trades while no feed ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let covered = HashMap::from([(SYMBOL.to_string(), last)]);
    let mut b = Feed::spawn_resuming(cfg, covered).expect("feed");
    let mut from_b: Vec<hft_connector::normalized::TradeEvent> = Vec::new();
    while from_b.iter().filter(|t| !t.recovered).count() < 5 {
        from_b.push(next_trade(&mut b).await.expect("feed B delivers trades"));
    }
    // Stop the market and read until the journal's last trade arrived.
    sim.pause_market();
    let last_id = journal_trades(0).last().cloned().expect("journal trades");
    while !from_b.iter().any(|t| t.id == last_id) {
        from_b.push(
            next_trade(&mut b)
                .await
                .expect("the journal's last trade arrives"),
        );
    }
    b.shutdown().await;
    let recovered = from_b.iter().filter(|t| t.recovered).count();
    assert!(recovered > 0, "the outage was gap-filled from REST");
    for t in &from_b {
        assert!(t.ts_ms >= last, "nothing from before the covered point");
        assert!(
            !a_ids.contains(&t.id) || t.ts_ms == last,
            "only same-millisecond trades may repeat (the consumer de-duplicates by id)"
        );
    }
    let mut ids = a_ids.clone();
    ids.extend(from_b.iter().map(|t| t.id.clone()));
    let first_ts = tape[0].ts_ms;
    let missing: Vec<String> = sim
        .journal_query(&hft_connector::sim::JournalQuery {
            symbol: Some(SYMBOL),
            kind: Some("trade"),
            category: Some("linear"),
            ..Default::default()
        })
        .into_iter()
        .filter_map(|e| match e {
            hft_connector::normalized::Event::Trade(t) if t.ts_ms > first_ts => Some(t.id),
            _ => None,
        })
        .filter(|id| !ids.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} trades lost: {missing:?}",
        missing.len()
    );
    sim.shutdown().await;
}

/// The next trade of `b`, within the hang guard.
async fn next_trade(
    b: &mut hft_connector::feed::FeedHandle,
) -> Result<hft_connector::normalized::TradeEvent, tokio::time::error::Elapsed> {
    tokio::time::timeout(GUARD, async {
        loop {
            match b.next().await {
                Some(FeedEvent::Trade(t)) => return *t,
                Some(_) => {}
                None => panic!("feed B ended"),
            }
        }
    })
    .await
}

/// A worker whose supervisor vanished (its pipes closed, as when the supervisor is SIGKILLed)
/// exits by itself, cleanly: never an orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_exits_by_itself_when_its_supervisor_goes_away() {
    use hft_connector::worker::pipe::{put_down, take_up, Down, Up};
    use std::io::Read;
    let sim = Simulator::start(sim_config(Category::Linear))
        .await
        .expect("simulator starts");
    let cfg = hft_connector::worker::WorkerConfig {
        heartbeat_s: 0.05,
        ..Default::default()
    };
    let json = serde_json::to_string(&cfg).expect("json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["worker", "--config-json", &json])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut cmd = bytes::BytesMut::new();
    put_down(
        &mut cmd,
        &Down::Connect {
            timeout_ms: 10_000,
            url: feed_config(&sim, Category::Linear).ws_endpoint(),
        },
    );
    stdin.write_all(&cmd).expect("command written");
    // Frames flow: its hello, then the connection it was asked for, then heartbeats.
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = bytes::BytesMut::new();
    let mut got = Vec::new();
    while !got.contains(&Up::Heartbeat) {
        let mut chunk = [0u8; 256];
        let n = out.read(&mut chunk).expect("frames flow");
        assert!(n > 0, "stdout closed early: {got:?}");
        buf.extend_from_slice(&chunk[..n]);
        while let Some(up) = take_up(&mut buf).expect("pipe protocol") {
            got.push(up);
        }
    }
    assert!(matches!(got[0], Up::Hello { .. }), "{got:?}");
    assert_eq!(got[1], Up::Connected, "{got:?}");
    let gone = Instant::now();
    drop(stdin);
    drop(out);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(gone.elapsed() < GUARD, "worker outlived its supervisor");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.success(), "clean exit: {status}");
    sim.shutdown().await;
}
