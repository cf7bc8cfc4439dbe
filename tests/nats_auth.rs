//! NATS credentials: `run` publishes to a `nats-server` that requires a user and password (given
//! by the environment) and to one that requires a token (given by the flag); a wrong password is
//! refused, and a password inside a URL is refused at start. The secrets never appear anywhere an
//! operator looks, even at `RUST_LOG=debug`: the whole stderr log (JSON lines and anything else),
//! `/api/status` and `/metrics`.

mod nats_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, SimHandle, Simulator};
use nats_common::NatsServer;
use tokio::time::Instant;

const PASSWORD: &str = "pw-Secr3t-7f1c";
const TOKEN: &str = "tok-Secr3t-9a2e";
const WRONG: &str = "pw-Wr0ng-31d5";

/// A hang guard only.
const GUARD: Duration = Duration::from_secs(60);

struct Run {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    data: std::path::PathBuf,
}

impl Run {
    fn start(name: &str, sim: &SimHandle, args: &[&str], env: &[(&str, &str)]) -> Run {
        let data = std::env::temp_dir().join(format!("hftc-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
            .args(["run", "--isolation", "in-process"])
            .args(["--ws-url", &format!("ws://{}/v5/public", sim.addr())])
            .args(["--rest-url", &sim.rest_url()])
            .args(["--symbols", "BTCUSDT", "--category", "linear"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--backfill-days", "0"])
            .args(["--log-format", "json", "--nats-stream", "AUTH"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Run { child, log, data }
    }

    async fn wait(&self, what: &str) -> serde_json::Value {
        let deadline = Instant::now() + GUARD;
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["event"] == what);
            if let Some(v) = found {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no {what}; log: {:#?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything an operator sees: the log, `/api/status` and `/metrics`.
    async fn everything(&self) -> String {
        let url = self.wait("http_listening").await["url"]
            .as_str()
            .expect("url")
            .trim_end_matches('/')
            .to_string();
        let mut all = self.log.lock().unwrap().join("\n");
        for path in ["/api/status", "/metrics"] {
            let body = reqwest::get(format!("{url}{path}"))
                .await
                .expect(path)
                .text()
                .await
                .expect("body");
            all.push('\n');
            all.push_str(&body);
        }
        all
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        log
    }
}

impl Drop for Run {
    /// Also when a check failed: no service outlives the test.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn assert_no_secret(text: &str) {
    for secret in [PASSWORD, TOKEN, WRONG] {
        assert!(
            !text.contains(secret),
            "a secret was shown: {secret} in\n{text}"
        );
    }
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 50.0,
        ..SimConfig::for_tests(47)
    })
    .await
    .expect("simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_token_and_url_credentials_work_and_are_never_shown() {
    let Some(userpass) = NatsServer::start_with("auth-user", &["--user", "md", "--pass", PASSWORD])
    else {
        return;
    };
    let Some(token) = NatsServer::start_with("auth-token", &["--auth", TOKEN]) else {
        return;
    };
    let sim = sim().await;

    // user/password from the environment (as the systemd unit gives them).
    let r = Run::start(
        "env",
        &sim,
        &["--nats-url", &userpass.url()],
        &[
            ("HFT_CONNECTOR_SINKS_NATS_USER", "md"),
            ("HFT_CONNECTOR_SINKS_NATS_PASSWORD", PASSWORD),
        ],
    );
    let started = r.wait("nats_sink_started").await;
    assert_eq!(started["auth"], "user_password");
    // The default timers' worst case (153.2 s) is longer than the default window (120 s).
    let short = r.wait("nats_dedup_window_short").await;
    assert_eq!(short["level"], "WARN");
    assert_eq!(short["dedup_window_s"], 120.0);
    assert!(
        (short["worst_case_s"].as_f64().unwrap_or(0.0) - 153.2).abs() < 1e-9,
        "{short}"
    );
    r.wait("nats_stream_ready").await;
    let seen = r.everything().await;
    assert_no_secret(&seen);
    assert_no_secret(&r.stop());

    // A token from the flag.
    let r = Run::start(
        "token",
        &sim,
        &["--nats-url", &token.url(), "--nats-token", TOKEN],
        &[],
    );
    assert_eq!(r.wait("nats_sink_started").await["auth"], "token");
    r.wait("nats_stream_ready").await;
    assert_no_secret(&r.everything().await);
    assert_no_secret(&r.stop());

    // A password inside a URL is refused at start (the NATS client logs server addresses whole at
    // debug level), by an error that names the key and does not quote it.
    let inline = format!("nats://md:{PASSWORD}@127.0.0.1:{}", userpass.port);
    let out = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["run", "--nats-urls", &inline])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sinks.nats.urls") && err.contains("user/password"),
        "{err}"
    );
    assert_no_secret(&err);
    assert_no_secret(&String::from_utf8_lossy(&out.stdout));

    // A wrong password is refused (and reported), and not shown either.
    let r = Run::start(
        "wrong",
        &sim,
        &[
            "--nats-url",
            &userpass.url(),
            "--nats-user",
            "md",
            "--nats-password",
            WRONG,
        ],
        &[],
    );
    let refused = r.wait("nats_client_event").await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("authorization"),
        "{refused}"
    );
    assert_no_secret(&r.everything().await);
    assert_no_secret(&r.stop());
    sim.shutdown().await;
}
