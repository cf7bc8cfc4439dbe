//! Ctrl-C at any moment is a clean stop: a SIGINT that arrives while `run` is still starting
//! (opening the store, binding, checking symbols, starting feeds) is acted on once it has started,
//! with exit code 0, instead of killing the process with the default action.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, Simulator};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_starting_stops_cleanly() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        ..SimConfig::for_tests(3)
    })
    .await
    .expect("simulator starts");
    let data = std::env::temp_dir().join(format!("hft-run-signal-{}", std::process::id()));
    let (ws, rest) = (format!("ws://{}/v5/public", sim.addr()), sim.rest_url());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
            .args([
                "run",
                "--ws-url",
                &ws,
                "--rest-url",
                &rest,
                "--listen",
                "127.0.0.1:0",
            ])
            .args([
                "--isolation",
                "in-process",
                "--backfill-days",
                "0",
                "--log-format",
                "json",
            ])
            .arg("--data-dir")
            .arg(&data)
            .stderr(Stdio::piped())
            .spawn()
            .expect("run starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        // The first line it logs: from here on it is starting, not yet started.
        let first = lines.next().expect("a log line").expect("utf-8");
        assert!(first.contains("\"service_starting\""), "{first}");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("signal");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().expect("exit status");
        std::fs::remove_dir_all(&data).ok();
        (status, rest)
    })
    .await
    .expect("joined");
    let (status, log) = status;
    assert_eq!(status.code(), Some(0), "a clean stop, not a kill: {log:?}");
    assert!(
        log.iter().any(|l| l.contains("\"service_stopping\"")),
        "{log:?}"
    );
    sim.shutdown().await;
}
