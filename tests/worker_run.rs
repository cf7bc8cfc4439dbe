//! The supervisor process itself dying: `hft-connector run --isolation process` against a simulator.
//! SIGTERM to the service stops its workers (no child left); SIGKILL to the service leaves the
//! workers to notice on their own (stdin EOF) and exit: never an orphan.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, Simulator};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `(ppid, pgid, state)` of `pid` from /proc, `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(u32, u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.first()?.chars().next()?,
    ))
}

/// Live (non-zombie) processes whose parent is `ppid` or whose group is `pgid`.
fn related(ppid: u32, pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            proc_stat(p).is_some_and(|(pp, pg, st)| st != 'Z' && (pp == ppid || pg == pgid))
        })
        .collect()
}

fn running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(_, _, st)| st != 'Z')
}

struct Service {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    _data: std::path::PathBuf,
}

/// Starts `run` and waits until its worker reports a live connection; returns the worker's pid.
fn start_service(port: u16) -> (Service, u32) {
    let data = std::env::temp_dir().join(format!("hft-worker-run-{}-{port}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["run", "--isolation", "process"])
        .args(["--ws-url", &format!("ws://127.0.0.1:{port}/v5/public")])
        .args(["--rest-url", &format!("http://127.0.0.1:{port}")])
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
    let mut svc = Service {
        child,
        lines,
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(v) = svc.lines.recv_timeout(Duration::from_millis(200)) {
            if v["event"] == "bybit_connector_subprocess_connected" {
                let pid = v["pid"].as_u64().expect("pid") as u32;
                return (svc, pid);
            }
        }
        if let Ok(Some(st)) = svc.child.try_wait() {
            panic!("run exited early: {st}");
        }
    }
    let _ = svc.child.kill();
    panic!("no bybit_connector_subprocess_connected from run within 90 s");
}

async fn sim() -> hft_connector::sim::SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 100.0,
        ..SimConfig::for_tests(3)
    })
    .await
    .expect("simulator")
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st;
        }
        assert!(Instant::now() < deadline, "run did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_service_stops_every_worker() {
    let sim = sim().await;
    let port = sim.addr().port();
    let (mut svc, worker) = tokio::task::spawn_blocking(move || start_service(port))
        .await
        .expect("start");
    let run_pid = svc.child.id();
    assert_eq!(
        proc_stat(worker).map(|s| s.0),
        Some(run_pid),
        "the worker is run's child"
    );
    assert_eq!(
        proc_stat(worker).map(|s| s.1),
        Some(worker),
        "in its own process group"
    );
    kill(Pid::from_raw(run_pid as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut svc.child, Duration::from_secs(60));
    assert!(status.success(), "run exits cleanly on SIGTERM: {status}");
    assert!(!running(worker), "worker {worker} stopped");
    assert!(
        related(run_pid, worker).is_empty(),
        "no child or group member left"
    );
    // Every line run wrote, to the end of its stderr (the reader ends at EOF).
    let mut terminated = false;
    while let Ok(v) = svc.lines.recv_timeout(Duration::from_secs(60)) {
        terminated |= v["event"] == "bybit_connector_subprocess_terminated" && v["pid"] == worker;
    }
    assert!(terminated, "bybit_connector_subprocess_terminated logged");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_to_the_service_makes_workers_exit_by_themselves() {
    let sim = sim().await;
    let port = sim.addr().port();
    let (mut svc, worker) = tokio::task::spawn_blocking(move || start_service(port))
        .await
        .expect("start");
    let run_pid = svc.child.id();
    kill(Pid::from_raw(run_pid as i32), Signal::SIGKILL).expect("SIGKILL");
    let _ = wait_exit(&mut svc.child, Duration::from_secs(60));
    // Nobody signals the worker: it sees stdin EOF (or EPIPE on stdout) and exits on its own
    // (the guard only turns an orphan into a failure).
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(worker) {
        assert!(
            Instant::now() < deadline,
            "worker {worker} still running 60 s after its supervisor was killed: an orphan"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(related(run_pid, worker).is_empty(), "no group member left");
    sim.shutdown().await;
}
