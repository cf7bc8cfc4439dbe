//! The operator contract in both isolation modes: the `run` service (the real binary, its real
//! log on stderr) against the simulator goes through one scripted fault tour (silence, stall,
//! TCP reset, the exchange gone for a few seconds then back on the same port, `refuse` then `close`
//! sent over the simulator's control API during the refusal (the reconnect meets it), and in process
//! isolation worker kill -9 and worker SIGSTOP, then a clean shutdown), and the log must carry the
//! same top-level contract events, in the same order, with the same fields and levels, each
//! occurrence exactly once, in `--isolation in-process` and in the default `--isolation process`.
//! Every wait is for a log line, never a sleep.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};
use hft_connector::worker::forward::is_forwarded;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::time::Instant;

/// The events whose sequence the tour compares (the seed's contract about the connection).
const SEQUENCED: [&str; 5] = [
    "bybit_connector_connected",
    "connector_disconnected",
    "connector_connection_error",
    "bybit_connector_stale_connection_detected",
    "bybit_connector_pong_timeout",
];

const STALE_S: f64 = 2.0;

/// One contract event as compared across modes: name, level, field names (without `pid`,
/// `timestamp` and per-mode values).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    event: String,
    level: String,
    fields: Vec<String>,
}

fn seen(v: &Value) -> Seen {
    let mut fields: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    fields.retain(|k| !matches!(k.as_str(), "timestamp" | "pid"));
    fields.sort();
    Seen {
        event: v["event"].as_str().unwrap_or("").to_string(),
        level: v["level"].as_str().unwrap_or("").to_string(),
        fields,
    }
}

/// The running service and its log.
struct Service {
    child: Child,
    log: Arc<Mutex<Vec<Value>>>,
    process: bool,
}

impl Service {
    fn start(config: &Path, process: bool) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--isolation")
            .arg(if process { "process" } else { "in-process" })
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the service starts");
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
        Service {
            child,
            log,
            process,
        }
    }

    fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn lines(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the lines logged since `from`; returns the matching line.
    async fn wait(&self, from: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = self.lines().iter().skip(from).find(|v| pred(v)) {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({}); log since: {:#?}",
                if self.process {
                    "process"
                } else {
                    "in-process"
                },
                self.contract_since(from)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_event(&self, from: usize, event: &str) -> Value {
        self.wait(from, event, |v| v["event"] == event).await
    }

    /// Waits until `n` lines named `event` were logged since `from`.
    async fn wait_count(&self, from: usize, event: &str, n: usize) {
        self.wait(from, &format!("{n} x {event}"), |_| {
            self.lines()
                .iter()
                .skip(from)
                .filter(|v| v["event"] == event)
                .count()
                >= n
        })
        .await;
    }

    /// The sequenced contract events logged in `from..to`.
    fn contract(&self, from: usize, to: usize) -> Vec<Value> {
        self.lines()[from..to]
            .iter()
            .filter(|v| SEQUENCED.iter().any(|e| v["event"] == *e))
            .cloned()
            .collect()
    }

    fn contract_since(&self, from: usize) -> Vec<Value> {
        self.contract(from, self.len())
    }

    /// The pid of the worker that logged the last `bybit_connector_connected`.
    fn worker_pid(&self) -> i32 {
        let lines = self.lines();
        let v = lines
            .iter()
            .rev()
            .find(|v| v["event"] == "bybit_connector_connected")
            .expect("a connection");
        v["pid"].as_i64().expect("process mode logs the worker pid") as i32
    }
}

fn sim_config(listen: SocketAddr) -> SimConfig {
    SimConfig {
        listen,
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 100.0,
        ..SimConfig::for_tests(17)
    }
}

fn write_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("config.toml");
    let text = format!(
        r#"[feed]
ws_url = "ws://{addr}/v5/public"
rest_url = "http://{addr}"
symbols = ["BTCUSDT"]
depth = 50
[health]
check_interval_s = 0.1
stale_after_s = {STALE_S}
grace_s = 0.5
log_interval_s = 0.1
[heartbeat]
ping_interval_s = 0.2
pong_timeout_s = 0.3
[reconnect]
initial_delay_s = 0.05
max_delay_s = 0.3
connect_timeout_s = 1
[backfill]
enabled = false
[store]
data_dir = "{data}"
[http]
listen = "127.0.0.1:0"
"#,
        addr = sim.addr(),
        data = dir.join("data").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One step of the tour: its name and the contract events it logged, consecutive repeats of
/// `connector_connection_error` collapsed (how many attempts fail depends on timing).
type Step = (&'static str, Vec<Value>);

fn collapse(events: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in events {
        let repeat = out.last().is_some_and(|last| {
            last["event"] == "connector_connection_error" && v["event"] == last["event"]
        });
        if !repeat {
            out.push(v);
        }
    }
    out
}

/// Runs the tour in one mode; returns each step's contract events and one health check line.
async fn tour(process: bool) -> (Vec<Step>, Value) {
    let dir = std::env::temp_dir().join(format!(
        "hftc-tour-{}-{}",
        if process { "process" } else { "inproc" },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sim = Simulator::start(sim_config(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .expect("simulator starts");
    let addr = sim.addr();
    let config = write_config(&dir, &sim);
    let mut svc = Service::start(&config, process);
    let mut steps: Vec<Step> = Vec::new();
    let connected = |v: &Value| v["event"] == "bybit_connector_connected";

    svc.wait(0, "the first connection", connected).await;
    let health = svc.wait_event(0, "bybit_connector_health_check").await;
    steps.push(("start", svc.contract_since(0)));

    // Market data stops on the connection, pongs go on: stale detection.
    let mark = svc.len();
    sim.inject(FaultRequest::new(FaultKind::Silence).seconds(60.0));
    svc.wait(mark, "reconnect after silence", connected).await;
    steps.push(("silence", svc.contract_since(mark)));

    // Nothing at all on the connection: pong timeout.
    let mark = svc.len();
    sim.inject(FaultRequest::new(FaultKind::Stall).seconds(60.0));
    svc.wait(mark, "reconnect after stall", connected).await;
    steps.push(("stall", svc.contract_since(mark)));

    // TCP reset, no close frame.
    let mark = svc.len();
    sim.inject(FaultRequest::new(FaultKind::Reset));
    svc.wait(mark, "reconnect after reset", connected).await;
    steps.push(("reset", svc.contract_since(mark)));

    // The exchange process is gone (connection refused) until two attempts failed, then back on
    // the same port.
    let mark = svc.len();
    sim.shutdown().await;
    svc.wait_count(mark, "connector_connection_error", 2).await;
    sim = Simulator::start(sim_config(addr))
        .await
        .expect("the simulator restarts on the same port");
    svc.wait(mark, "reconnect after the exchange is back", connected)
        .await;
    steps.push(("exchange_gone", svc.contract_since(mark)));

    // Faults combined through the simulator's control API, as a script would: `refuse` (long),
    // then `close` over HTTP while it lasts, so the reconnect meets the refusal; `refuse` for
    // 0 s ends it once two attempts failed. Each control request is answered during the refusal.
    let mark = svc.len();
    let control = |body: &'static str| {
        let url = format!("{}/sim/fault", sim.rest_url());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .expect("the control API answers during refuse");
            assert!(r.status().is_success(), "{body}: {}", r.status());
        }
    };
    control(r#"{"kind":"refuse","seconds":120}"#).await;
    control(r#"{"kind":"close"}"#).await;
    assert!(sim.refusing(), "the close landed inside the refusal");
    svc.wait_count(mark, "connector_connection_error", 2).await;
    assert!(sim.refusing());
    control(r#"{"kind":"refuse","seconds":0}"#).await;
    svc.wait(mark, "reconnect after the refusal", connected)
        .await;
    steps.push(("refuse_close", svc.contract_since(mark)));

    if process {
        // Worker kill -9: the supervisor closes the connection the worker could not.
        let mark = svc.len();
        let pid = svc.worker_pid();
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9 the worker");
        svc.wait(mark, "a new worker's connection", connected).await;
        steps.push(("worker_kill", svc.contract_since(mark)));
        let died = svc.wait_event(mark, "bybit_connector_process_died").await;
        assert_eq!(died["pid"], pid);

        // Worker SIGSTOP: while it is hung the health check says so; then it is replaced.
        let mark = svc.len();
        let pid = svc.worker_pid();
        kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP the worker");
        let hung = svc
            .wait(mark, "a health check with process_alive false", |v| {
                v["event"] == "bybit_connector_health_check" && v["process_alive"] == false
            })
            .await;
        assert_eq!(hung["feed"], "linear:BTCUSDT");
        svc.wait(mark, "a new worker's connection", connected).await;
        steps.push(("worker_stop", svc.contract_since(mark)));
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        svc.wait(mark, "a healthy health check again", |v| {
            v["event"] == "bybit_connector_health_check"
                && v["process_alive"] == true
                && v["status"] == "connected"
        })
        .await;
    }

    // A clean shutdown: the connection closes with a warning, nothing is an ERROR.
    let mark = svc.len();
    kill(Pid::from_raw(svc.child.id() as i32), Signal::SIGTERM).expect("SIGTERM the service");
    svc.wait_event(mark, "service_stopped").await;
    let status = tokio::task::spawn_blocking(move || {
        let status = svc.child.wait();
        (status, svc)
    })
    .await
    .unwrap();
    let (status, svc) = status;
    assert!(status.expect("the service exits").success());
    let end = svc.len();
    let errors: Vec<Value> = svc.lines()[mark..end]
        .iter()
        .filter(|v| v["level"] == "ERROR")
        .cloned()
        .collect();
    assert!(
        errors.is_empty(),
        "a clean shutdown logs no ERROR: {errors:#?}"
    );
    steps.push(("shutdown", svc.contract(mark, end)));

    // Each occurrence once: no contract event is also counted inside a wrapped stderr line.
    for v in svc.lines() {
        if v["event"] == "bybit_connector_subprocess_stderr" {
            let inner = v["worker_event"].as_str().unwrap_or("");
            assert!(!is_forwarded(inner), "wrapped copy of {inner}: {v}");
        }
        if process && SEQUENCED.iter().any(|e| v["event"] == *e) {
            assert!(v["pid"].is_u64(), "process mode names the worker: {v}");
        }
        assert!(v.is_object(), "every log line is JSON: {v}");
    }
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let steps = steps
        .into_iter()
        .map(|(name, events)| (name, collapse(events)))
        .collect();
    (steps, health)
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|v| v["event"].as_str().unwrap_or(""))
        .collect()
}

fn check_values(step: &str, events: &[Value]) {
    for v in events {
        match v["event"].as_str().unwrap_or("") {
            "bybit_connector_connected" => {
                assert_eq!(
                    (&v["symbol"], &v["category"], &v["level"]),
                    (
                        &Value::from("BTCUSDT"),
                        &Value::from("linear"),
                        &Value::from("INFO")
                    ),
                    "{step}: {v}"
                );
                assert!(v["connection"].is_u64(), "{step}: {v}");
            }
            "connector_disconnected" => {
                assert_eq!(
                    (&v["connector"], &v["level"]),
                    (&Value::from("hft"), &Value::from("WARN")),
                    "{step}: {v}"
                );
                assert!(v["reason"].is_string(), "{step}: {v}");
            }
            "connector_connection_error" => {
                assert_eq!(v["level"], "ERROR", "{step}: {v}");
                assert!(
                    v["attempt"].is_u64() && v["retry_delay"].is_f64(),
                    "{step}: {v}"
                );
                assert!(v["error"].is_string(), "{step}: {v}");
            }
            "bybit_connector_stale_connection_detected" => {
                assert_eq!(
                    (&v["symbol"], &v["level"]),
                    (&Value::from("BTCUSDT"), &Value::from("WARN")),
                    "{step}: {v}"
                );
                assert_eq!(v["stale_threshold"], STALE_S, "{step}: {v}");
                assert!(
                    v["seconds_since_last_event"].as_f64().unwrap_or(0.0) >= STALE_S,
                    "{step}: {v}"
                );
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_tour_logs_the_same_contract_in_both_isolation_modes() {
    let (inproc, inproc_health) = tour(false).await;
    let (process, process_health) = tour(true).await;

    let expected: [(&str, &[&str]); 7] = [
        ("start", &["bybit_connector_connected"]),
        (
            "silence",
            &[
                "bybit_connector_stale_connection_detected",
                "connector_disconnected",
                "bybit_connector_connected",
            ],
        ),
        (
            "stall",
            &[
                "bybit_connector_pong_timeout",
                "connector_disconnected",
                "bybit_connector_connected",
            ],
        ),
        (
            "reset",
            &["connector_disconnected", "bybit_connector_connected"],
        ),
        (
            "exchange_gone",
            &[
                "connector_disconnected",
                "connector_connection_error",
                "bybit_connector_connected",
            ],
        ),
        (
            "refuse_close",
            &[
                "connector_disconnected",
                "connector_connection_error",
                "bybit_connector_connected",
            ],
        ),
        ("shutdown", &["connector_disconnected"]),
    ];
    for (mode, steps) in [("in-process", &inproc), ("process", &process)] {
        for (name, want) in expected {
            let (_, got) = steps
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{mode}: step {name} ran"));
            assert_eq!(names(got), want, "{mode}: step {name}: {got:#?}");
            check_values(name, got);
        }
    }
    // The same sequence with the same fields and levels in both modes.
    for (name, _) in expected {
        let a: Vec<Seen> = inproc
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .iter()
            .map(seen)
            .collect();
        let b: Vec<Seen> = process
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .iter()
            .map(seen)
            .collect();
        assert_eq!(
            a, b,
            "step {name}: the same events and fields in both modes"
        );
    }
    assert_eq!(
        seen(&inproc_health),
        seen(&process_health),
        "the health check has the same fields in both modes"
    );
    assert!(process_health["pid"].is_u64(), "{process_health}");
    // Process-only faults: the connection ends exactly once and a new worker connects.
    for name in ["worker_kill", "worker_stop"] {
        let (_, got) = process
            .iter()
            .find(|(n, _)| *n == name)
            .expect("process step ran");
        assert_eq!(
            names(got),
            ["connector_disconnected", "bybit_connector_connected"],
            "{name}: {got:#?}"
        );
        check_values(name, got);
    }
}
