//! The stop tests' harness: a `hft-connector` command as a child process with its JSON log read
//! line by line, signals, the wait for its exit (a hang guard, never a wall-clock assertion: a
//! stop that completed within its bound exits 0 without `service_shutdown_incomplete`), and the
//! checks every stop shares: no worker left behind (not even a zombie), the store opens cleanly.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hft_connector::sim::SimHandle;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::time::Instant;

/// `--shutdown-timeout-s` of the stop tests.
pub const TIMEOUT_S: f64 = 3.0;

/// A hang guard only: every wait ends as soon as what it waits for happened.
pub const GUARD: Duration = Duration::from_secs(90);

/// How long past its bound a stop may run before the test calls it a hang: the bound, the
/// watchdog's margin and a generous allowance for a loaded machine. Exceeding it fails the test
/// (and kills the process); staying within it proves nothing by itself: the exit status and the
/// log do.
pub fn stop_guard(timeout_s: f64) -> Duration {
    Duration::from_secs_f64(timeout_s) + Duration::from_secs(20)
}

/// A fresh temporary directory.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-stop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hft-connector"));
    c.env("RUST_LOG", "info");
    c
}

/// `hft-connector run` against `sim` with the stop tests' settings (JSON log, a 3 s bound, an
/// ephemeral HTTP port), in `isolation`, storing under `data`.
pub fn run_cmd(sim: &SimHandle, isolation: &str, data: &Path, symbols: &[&str]) -> Command {
    let mut c = bin();
    c.arg("run")
        .args(["--ws-url", &format!("ws://{}/v5/public", sim.addr())])
        .args(["--rest-url", &sim.rest_url()])
        .args(["--listen", "127.0.0.1:0", "--category", "linear"])
        .args(["--symbols", &symbols.join(",")])
        .args(["--isolation", isolation, "--log-format", "json"])
        .arg("--data-dir")
        .arg(data)
        // The bound, from the environment (a test may override it with the flag).
        .env(
            "HFT_CONNECTOR_SERVICE_SHUTDOWN_TIMEOUT_S",
            TIMEOUT_S.to_string(),
        )
        // Faults are noticed in about a second.
        .env("HFT_CONNECTOR_HEALTH_CHECK_INTERVAL_S", "0.25")
        .env("HFT_CONNECTOR_HEALTH_STALE_AFTER_S", "3")
        .env("HFT_CONNECTOR_HEALTH_GRACE_S", "1.5")
        .env("HFT_CONNECTOR_HEARTBEAT_PING_INTERVAL_S", "1")
        .env("HFT_CONNECTOR_HEARTBEAT_PONG_TIMEOUT_S", "1")
        .env("HFT_CONNECTOR_RECONNECT_INITIAL_DELAY_S", "0.1")
        .env("HFT_CONNECTOR_RECONNECT_MAX_DELAY_S", "1");
    c
}

/// A running command and its log.
pub struct Proc {
    pub child: Child,
    log: Arc<Mutex<Vec<Value>>>,
    name: String,
}

impl Proc {
    /// Starts `cmd` with stderr read as JSON lines (stdout discarded unless `cmd` set it).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the command starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().unwrap().push(v);
            }
        });
        Proc {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }

    /// The lines named `event`.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// The log, for failure messages (the last 60 lines).
    pub fn tail(&self) -> String {
        let lines = self.lines();
        let from = lines.len().saturating_sub(60);
        lines[from..]
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the process has exited (a zombie not yet waited for).
    pub fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .ok()
            .and_then(|s| s.get(s.rfind(')')? + 2..)?.chars().next())
            .is_none_or(|state| state == 'Z' || state == 'X')
    }

    /// Waits until a line satisfies `pred` (hang guard [`GUARD`]).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(v) = self.lines().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                !self.exited(),
                "{}: exited while waiting for {what}; log:\n{}",
                self.name,
                self.tail()
            );
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what}; log:\n{}",
                self.name,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `event` was logged.
    pub async fn wait_event(&self, event: &str) -> Value {
        self.wait_for(event, |v| v["event"] == event).await
    }

    /// Waits until `event` was logged `n` times.
    pub async fn wait_count(&self, event: &str, n: usize) {
        let deadline = Instant::now() + GUARD;
        while self.events(event).len() < n {
            assert!(
                !self.exited(),
                "{}: exited while waiting for {n} x {event}; log:\n{}",
                self.name,
                self.tail()
            );
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {n} x {event}; log:\n{}",
                self.name,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).expect("signal");
    }

    /// Waits for the exit, at most `guard` (then kills it and fails); returns the status.
    pub async fn exit(&mut self, guard: Duration) -> ExitStatus {
        let deadline = Instant::now() + guard;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader thread gets the last lines once the pipe closes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return status;
            }
            if Instant::now() >= deadline {
                let workers = self.worker_pids();
                let _ = self.child.kill();
                let _ = self.child.wait();
                for p in workers {
                    let _ = nix::sys::signal::killpg(Pid::from_raw(p as i32), Signal::SIGKILL);
                }
                panic!(
                    "{}: still running {guard:?} after the stop began (a hang); log:\n{}",
                    self.name,
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit (hang guard [`stop_guard`]).
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.exit(stop_guard(TIMEOUT_S)).await
    }

    /// The worker processes the service started (from `bybit_connector_subprocess_started`).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.events("bybit_connector_subprocess_started")
            .iter()
            .filter_map(|v| v["pid"].as_u64())
            .map(|p| p as u32)
            .collect()
    }

    /// Milliseconds from the first line named `from` to the first named `to` (log timestamps).
    pub fn ms_between(&self, from: &str, to: &str) -> Option<f64> {
        let at = |event: &str| {
            let v = self.events(event).into_iter().next()?;
            let t = v["timestamp"].as_str()?.to_string();
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
        };
        Some((at(to)? - at(from)?).as_seconds_f64() * 1000.0)
    }

    /// Prints how long the stop took (signal to `service_stopped`), for RELIABILITY.md.
    pub fn report_stop(&self) {
        for end in [
            "service_stopped",
            "stream_stopped",
            "simulator_stopped",
            "service_shutdown_incomplete",
            "tail_done",
        ] {
            if let Some(ms) = self.ms_between("shutdown_signal", end) {
                eprintln!("STOP {}: {ms:.0} ms to {end}", self.name);
                return;
            }
        }
    }

    /// A clean, bounded stop: exit status 0, `service_stopping` and `service_stopped` logged,
    /// no `service_shutdown_incomplete`, no worker left, and the process reaped.
    pub fn assert_clean_stop(&self, status: ExitStatus) {
        assert_eq!(
            status.code(),
            Some(0),
            "{}: a clean stop; log:\n{}",
            self.name,
            self.tail()
        );
        assert!(
            self.events("service_shutdown_incomplete").is_empty(),
            "{}: {}",
            self.name,
            self.tail()
        );
        assert_eq!(
            self.events("service_stopping").len(),
            1,
            "{}: {}",
            self.name,
            self.tail()
        );
        assert_eq!(
            self.events("service_stopped").len(),
            1,
            "{}: {}",
            self.name,
            self.tail()
        );
        assert_gone(&self.worker_pids());
        self.report_stop();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether process `pid` exists (a zombie counts: it is not reaped).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Asserts every one of `pids` is gone: exited and reaped, no zombie.
pub fn assert_gone(pids: &[u32]) {
    for &pid in pids {
        assert!(
            !exists(pid),
            "process {pid} is still there: {}",
            std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default()
        );
    }
}

/// Processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// The store under `data` opens, passes SQLite's integrity check, and is in WAL mode.
pub fn assert_store_clean(data: &Path) -> hft_connector::store::Store {
    let store = hft_connector::store::Store::open(data).expect("the store opens after the stop");
    assert_eq!(store.integrity_check().expect("integrity check"), "ok");
    assert_eq!(store.journal_mode().expect("journal mode"), "wal");
    store
}

/// The simulator's counters.
pub async fn sim_stats(sim: &SimHandle) -> Value {
    reqwest::get(format!("{}/sim/stats", sim.rest_url()))
        .await
        .expect("sim stats")
        .json()
        .await
        .expect("json")
}

/// Waits until the simulator holds a REST request to `path` unanswered.
pub async fn until_rest_held(sim: &SimHandle, path: &str) {
    let deadline = Instant::now() + GUARD;
    loop {
        let s = sim_stats(sim).await;
        if s["rest_held"][path].as_u64().unwrap_or(0) > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {path} request held by the simulator: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the simulator holds a new connection unanswered (`blackhole`).
pub async fn until_connection_held(sim: &SimHandle) {
    let deadline = Instant::now() + GUARD;
    loop {
        let s = sim_stats(sim).await;
        if s["connections_held"].as_u64().unwrap_or(0) > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no connection held by the simulator: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both isolation modes, by their flag value.
pub const ISOLATIONS: [&str; 2] = ["in-process", "process"];
