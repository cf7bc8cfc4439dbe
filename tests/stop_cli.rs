//! Every stop completes, for every long-running command (issue 28): `stream`, `simulate`,
//! `soak`, `tail` and `demo` get SIGTERM while something they wait for does not answer, and
//! end within their bound (`--shutdown-timeout-s 3`), leaving no child process behind. Where the
//! stop cannot complete (`stream` writing to a reader that stopped reading), the bound ends it:
//! `service_shutdown_incomplete` naming what was left (`stdout`), exit status 1.

mod stop_common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::process::{ChildStdout, Stdio};
use std::time::Duration;

use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};
use nix::sys::signal::Signal;
use stop_common::*;
use tokio::time::Instant;

async fn sim(seed: u64) -> SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        categories: vec![Category::Linear],
        rate: 200.0,
        ..SimConfig::for_tests(seed)
    })
    .await
    .expect("simulator starts")
}

fn stream_cmd(sim: &SimHandle, isolation: &str) -> std::process::Command {
    let mut c = bin();
    c.arg("stream")
        .args(["--ws-url", &format!("ws://{}/v5/public", sim.addr())])
        .args(["--rest-url", &sim.rest_url()])
        .args(["--symbols", "BTCUSDT,ETHUSDT", "--category", "linear"])
        .args(["--isolation", isolation])
        .args(["--shutdown-timeout-s", &TIMEOUT_S.to_string()]);
    c
}

/// Reads (and drops) everything `out` gives, on a thread of its own.
fn drain(out: ChildStdout) {
    std::thread::spawn(move || {
        let mut out = out;
        let mut buf = [0u8; 65536];
        while matches!(out.read(&mut buf), Ok(n) if n > 0) {}
    });
}

/// Bytes waiting in the pipe behind `out`, and the pipe's capacity.
fn pipe_fill(out: &ChildStdout) -> (usize, usize) {
    let fd = out.as_raw_fd();
    let mut queued: nix::libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which outlives the call.
    let r = unsafe { nix::libc::ioctl(fd, nix::libc::FIONREAD, &mut queued) };
    assert_eq!(r, 0, "FIONREAD");
    // SAFETY: F_GETPIPE_SZ takes no argument and only reads the descriptor's pipe.
    let size = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ");
    (queued as usize, size as usize)
}

/// Whether a thread of `pid` sleeps in the kernel writing to a full pipe.
fn blocked_in_pipe_write(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).any(|t| {
        std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains("pipe_write"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_stops_within_its_bound_while_the_gap_fill_waits_on_rest_that_hangs() {
    for isolation in ISOLATIONS {
        let sim = sim(41).await;
        let mut cmd = stream_cmd(&sim, isolation);
        cmd.stdout(Stdio::piped());
        let mut p = Proc::spawn(&format!("stream {isolation}"), cmd);
        drain(p.child.stdout.take().expect("stdout"));
        p.wait_count("bybit_connector_connected", 2).await;
        sim.inject(
            FaultRequest::new(FaultKind::RestError)
                .count(1_000_000)
                .seconds(3_600.0),
        );
        sim.inject(FaultRequest::new(FaultKind::Close));
        until_rest_held(&sim, "/v5/market/recent-trade").await;
        let status = p.stop().await;
        assert_eq!(status.code(), Some(0), "{}", p.tail());
        assert_eq!(p.events("stream_stopping").len(), 1, "{}", p.tail());
        assert_eq!(p.events("stream_stopped").len(), 1, "{}", p.tail());
        assert!(p.events("service_shutdown_incomplete").is_empty());
        assert_gone(&p.worker_pids());
        p.report_stop();
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_to_a_reader_that_stopped_reading_is_ended_by_the_bound() {
    for isolation in ISOLATIONS {
        let sim = sim(42).await;
        let mut cmd = stream_cmd(&sim, isolation);
        cmd.stdout(Stdio::piped());
        let mut p = Proc::spawn(&format!("stalled stdout {isolation}"), cmd);
        // Never read: once the pipe is full the printer blocks in its write.
        let out = p.child.stdout.take().expect("stdout");
        let deadline = Instant::now() + GUARD;
        while !blocked_in_pipe_write(p.pid()) {
            let (queued, size) = pipe_fill(&out);
            assert!(
                Instant::now() < deadline,
                "no thread blocked writing the pipe ({queued} of {size} bytes queued): {}",
                p.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = p.stop().await;
        assert_eq!(status.code(), Some(1), "{}", p.tail());
        let incomplete = p.events("service_shutdown_incomplete");
        assert_eq!(incomplete.len(), 1, "logged once: {}", p.tail());
        assert!(
            incomplete[0]["tasks"]
                .as_str()
                .unwrap_or_default()
                .contains("stdout"),
            "{}",
            incomplete[0]
        );
        assert_gone(&p.worker_pids());
        p.report_stop();
        drop(out);
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_stops_within_its_bound_with_requests_and_connections_held() {
    let mut cmd = bin();
    cmd.args([
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--symbols",
        "BTCUSDT",
    ])
    .args(["--categories", "linear", "--log-format", "json"])
    .args(["--shutdown-timeout-s", &TIMEOUT_S.to_string()])
    .stdout(Stdio::piped());
    let mut p = Proc::spawn("simulate", cmd);
    let mut out = BufReader::new(p.child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    let addr = first
        .strip_prefix("simulator listening on ")
        .and_then(|r| r.split_whitespace().next())
        .expect("the address")
        .to_string();
    drain(out.into_inner());
    // A client streaming (never reading), a REST call hanging, a new connection blackholed.
    let (_ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v5/public/linear"))
        .await
        .expect("connects");
    let control = reqwest::Client::new();
    let fault = |f: FaultRequest| {
        let control = control.clone();
        let url = format!("http://{addr}/sim/fault");
        async move {
            control
                .post(url)
                .json(&f)
                .send()
                .await
                .expect("fault")
                .error_for_status()
                .expect("applied");
        }
    };
    let stats = || {
        let control = control.clone();
        let url = format!("http://{addr}/sim/stats");
        async move {
            control
                .get(url)
                .send()
                .await
                .expect("stats")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    fault(FaultRequest::new(FaultKind::RestError).seconds(3_600.0)).await;
    let _hung = tokio::spawn(reqwest::get(format!("http://{addr}/v5/market/time")));
    let deadline = Instant::now() + GUARD;
    loop {
        let s = stats().await;
        if s["rest_held"]["/v5/market/time"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fault(FaultRequest::new(FaultKind::Blackhole).seconds(3_600.0)).await;
    let _held = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("accepted");
    let mut probe = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("accepted");
    tokio::io::AsyncWriteExt::write_all(&mut probe, b"GET /v5/market/time HTTP/1.1\r\n\r\n")
        .await
        .expect("sent");
    let deadline = Instant::now() + GUARD;
    loop {
        let s = stats().await;
        if s["connections_held"].as_u64() >= Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = p.stop().await;
    assert_eq!(status.code(), Some(0), "{}", p.tail());
    assert_eq!(p.events("simulator_stopping").len(), 1, "{}", p.tail());
    assert_eq!(p.events("simulator_stopped").len(), 1, "{}", p.tail());
    p.report_stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_stops_within_its_bound_and_takes_its_simulator_and_workers_with_it() {
    let dir = tmp("soak");
    let mut cmd = bin();
    cmd.args(["soak", "--seconds", "600", "--fault-every", "2"])
        .args(["--isolation", "process", "--seed", "5"])
        .args(["--shutdown-timeout-s", &TIMEOUT_S.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped());
    let mut p = Proc::spawn("soak", cmd);
    drain(p.child.stdout.take().expect("stdout"));
    let log = dir.join("soak.log");
    let read_log = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    // Faults under way: the simulator child and a worker are running.
    let deadline = Instant::now() + GUARD;
    while !read_log().iter().any(|v| v["event"] == "soak_fault") {
        assert!(!p.exited(), "soak exited: {:?}", p.lines());
        assert!(Instant::now() < deadline, "no fault injected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let children = children(p.pid());
    assert!(
        children.len() >= 2,
        "the simulator and a worker: {children:?}"
    );
    let status = p.stop().await;
    assert_eq!(status.code(), Some(1), "no verdict: {:?}", p.lines());
    assert!(
        p.lines().iter().any(|l| l
            .as_str()
            .is_some_and(|l| l.contains("interrupted by SIGTERM"))),
        "{:?}",
        p.lines()
    );
    let log = read_log();
    assert!(log.iter().any(|v| v["event"] == "soak_stopping"));
    assert!(log.iter().any(|v| v["event"] == "service_stopped"));
    assert!(!log
        .iter()
        .any(|v| v["event"] == "service_shutdown_incomplete"));
    let workers: Vec<u32> = log
        .iter()
        .filter(|v| v["event"] == "bybit_connector_subprocess_started")
        .filter_map(|v| v["pid"].as_u64().map(|p| p as u32))
        .collect();
    assert_gone(&children);
    assert_gone(&workers);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_stops_at_once_while_connecting_to_a_server_that_never_answers() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
            let _ = accepted_tx.send(());
        }
    });
    let mut cmd = bin();
    cmd.args([
        "tail",
        "--nats",
        &format!("nats://{addr}"),
        "--subject",
        "md.>",
    ])
    .env(
        "HFT_CONNECTOR_SERVICE_SHUTDOWN_TIMEOUT_S",
        TIMEOUT_S.to_string(),
    );
    let mut p = Proc::spawn("tail", cmd);
    tokio::time::timeout(GUARD, accepted.recv())
        .await
        .expect("tail connects");
    let status = p.stop().await;
    assert_eq!(status.code(), Some(0), "{}", p.tail());
    assert_eq!(p.events("tail_done").len(), 1, "{}", p.tail());
    p.report_stop();
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stops_within_its_bound_while_rest_hangs() {
    let dir = tmp("demo");
    let mut cmd = bin();
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--fault-every", "1000"])
        .args(["--shutdown-timeout-s", &TIMEOUT_S.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped());
    let mut p = Proc::spawn("demo", cmd);
    let out = p.child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut sim_addr = None;
    let deadline = Instant::now() + GUARD;
    while sim_addr.is_none() || !lines.iter().any(|l: &String| l.contains("dashboard:")) {
        assert!(Instant::now() < deadline, "{lines:?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(rest) = l.trim().strip_prefix("simulator:") {
                sim_addr = rest
                    .trim()
                    .strip_prefix("ws://")
                    .and_then(|r| r.split('/').next())
                    .map(str::to_string);
            }
            lines.push(l);
        }
    }
    let addr = sim_addr.expect("the simulator's address");
    // Every feed connected (their workers are running), then REST hangs and the feeds reconnect.
    let status_url = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("dashboard:").map(str::trim))
        .expect("dashboard")
        .to_string();
    let deadline = Instant::now() + GUARD;
    loop {
        let s: serde_json::Value = reqwest::get(format!("{status_url}api/status"))
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        let feeds = s["feeds"].as_array().cloned().unwrap_or_default();
        if !feeds.is_empty() && feeds.iter().all(|f| f["status"] == "connected") {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let control = reqwest::Client::new();
    for f in [
        FaultRequest::new(FaultKind::RestError)
            .count(1_000_000)
            .seconds(3_600.0),
        FaultRequest::new(FaultKind::Close),
    ] {
        control
            .post(format!("http://{addr}/sim/fault"))
            .json(&f)
            .send()
            .await
            .expect("fault")
            .error_for_status()
            .expect("applied");
    }
    let deadline = Instant::now() + GUARD;
    loop {
        let s: serde_json::Value = control
            .get(format!("http://{addr}/sim/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        if s["rest_held"].as_object().is_some_and(|m| !m.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let children = children(p.pid());
    assert!(!children.is_empty(), "the workers");
    p.signal(Signal::SIGTERM);
    let status = p.exit(stop_guard(TIMEOUT_S)).await;
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    assert_eq!(status.code(), Some(0), "{lines:?}");
    assert!(lines.iter().any(|l| l == "stopped cleanly"), "{lines:?}");
    assert_gone(&children);
    std::fs::remove_dir_all(&dir).ok();
}
