//! `hft-connector status` against running services in each feed state (Connected, Disconnected,
//! Down), against no service and against something that is not a service: the table, `--json`,
//! and the exit codes scripts and health checks rely on. States are reached by injecting faults in
//! the simulator and awaited by polling the status API. `--watch` on a terminal is read back
//! through a terminal emulator (vt100).

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use hft_connector::cli::run::{routes, Isolation, RunArgs};
use hft_connector::cli::status::{
    EXIT_BAD_ANSWER, EXIT_CONNECTED, EXIT_NOT_CONNECTED, EXIT_NO_SERVICE,
};
use hft_connector::config::ServiceConfig;
use hft_connector::feed::Feed;
use hft_connector::protocol::Category;
use hft_connector::service::runner::{start, Running};
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};

mod pty_common;

use pty_common::Term;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-status-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Removes the data directories of these services.
fn cleanup(names: &[&str]) {
    for n in names {
        let _ = std::fs::remove_dir_all(tmp(n));
    }
}

/// A service for one category; a dropped connection waits a long time before reconnecting, so
/// the state a fault causes stays put while `status` looks at it.
async fn service(sim: &SimHandle, category: &str, name: &str) -> Running {
    let args = RunArgs {
        symbols: Some(vec!["BTCUSDT".into()]),
        category: Some(vec![category.into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(tmp(name)),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(Isolation::InProcess),
        backfill_days: Some(0.0),
        ..RunArgs::default()
    };
    let mut cfg = ServiceConfig::load(&args.overrides(), Vec::new()).expect("config");
    cfg.reconnect.initial_delay_s = 120.0;
    cfg.reconnect.max_delay_s = 120.0;
    start(cfg, |f| Feed::spawn(f).map_err(|e| e.to_string()), routes)
        .await
        .expect("service starts")
}

fn url(r: &Running) -> String {
    format!("http://{}", r.addr)
}

/// Polls `/api/status` until the feed reports `want`.
async fn until_status(url: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body: serde_json::Value = reqwest::get(format!("{url}/api/status"))
            .await
            .expect("status API")
            .json()
            .await
            .expect("JSON");
        let status = body["feeds"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {want}, last {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `hft-connector status ARGS` (stdout is a pipe: no colour).
async fn status(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hft-connector"))
            .arg("status")
            .args(&args)
            .env_remove("NO_COLOR")
            .output()
            .expect("status runs")
    })
    .await
    .expect("joined")
}

fn code(o: &Output) -> u8 {
    o.status.code().expect("exited") as u8
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The table row of BTCUSDT, split into cells.
fn row(o: &Output) -> Vec<String> {
    let out = stdout(o);
    let header: Vec<&str> = out
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(header[..3], ["SYMBOL", "CATEGORY", "STATUS"], "{out}");
    out.lines()
        .find(|l| l.starts_with("BTCUSDT"))
        .unwrap_or_else(|| panic!("a BTCUSDT row: {out}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_each_state_with_its_exit_code() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear, Category::Spot],
        rate: 50.0,
        history_days: 1,
        ..SimConfig::for_tests(3)
    })
    .await
    .expect("simulator");
    // Spot subscriptions are refused from the start: that service's feed is down.
    sim.inject(
        FaultRequest::new(FaultKind::RejectSubscribe)
            .category(Category::Spot)
            .seconds(600.0),
    );
    let linear = service(&sim, "linear", "linear").await;
    let spot = service(&sim, "spot", "spot").await;

    // Connected: exit 0, the table and the JSON say so.
    until_status(&url(&linear), "connected").await;
    let o = status(&["--url", &url(&linear)]).await;
    assert_eq!(code(&o), EXIT_CONNECTED, "{}", stdout(&o));
    let cells = row(&o);
    assert_eq!(cells[1..3], ["linear", "connected"], "{cells:?}");
    assert!(stdout(&o).contains("1 feed: 1 connected"), "{}", stdout(&o));
    assert!(!stdout(&o).contains('\x1b'), "no colour into a pipe");
    let o = status(&["--url", &url(&linear), "--json"]).await;
    assert_eq!(code(&o), EXIT_CONNECTED);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("--json is JSON");
    assert_eq!(json["feeds"][0]["status"], "connected");
    assert_eq!(json["healthy"], true);

    // Down: every subscription refused.
    until_status(&url(&spot), "down").await;
    let o = status(&["--url", &url(&spot)]).await;
    assert_eq!(code(&o), EXIT_NOT_CONNECTED, "{}", stdout(&o));
    assert_eq!(row(&o)[1..3], ["spot", "down"]);
    assert!(stdout(&o).contains("1 down"), "{}", stdout(&o));

    // Disconnected: the connection is closed and the next attempt is far away.
    sim.inject(FaultRequest::new(FaultKind::Close).category(Category::Linear));
    until_status(&url(&linear), "disconnected").await;
    let o = status(&["--url", &url(&linear)]).await;
    assert_eq!(code(&o), EXIT_NOT_CONNECTED, "{}", stdout(&o));
    let cells = row(&o);
    assert_eq!(cells[1..3], ["linear", "disconnected"], "{cells:?}");
    let o = status(&["--url", &url(&linear), "--json"]).await;
    assert_eq!(code(&o), EXIT_NOT_CONNECTED);

    // No service: a distinct code and a clear message.
    let gone = url(&linear);
    linear.stop();
    linear.wait().await.expect("stops");
    let o = status(&["--url", &gone]).await;
    assert_eq!(code(&o), EXIT_NO_SERVICE);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("no service answers at {gone}")),
        "{err}"
    );
    assert!(o.stdout.is_empty());

    // Something that is not a service (the simulator has no /api/status).
    let o = status(&["--url", &sim.rest_url()]).await;
    assert_eq!(
        code(&o),
        EXIT_BAD_ANSWER,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("HTTP 404"));

    spot.stop();
    spot.wait().await.expect("stops");
    sim.shutdown().await;
    cleanup(&["linear", "spot"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_refreshes_until_interrupted_and_keeps_the_last_code() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 50.0,
        history_days: 1,
        ..SimConfig::for_tests(4)
    })
    .await
    .expect("simulator");
    let linear = service(&sim, "linear", "watch").await;
    until_status(&url(&linear), "connected").await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args([
            "status",
            "--watch",
            "--json",
            "--interval",
            "0.1",
            "--url",
            &url(&linear),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("status --watch runs");
    let out = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(out));
    // Three refreshes, each one JSON line.
    for _ in 0..3 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a refresh")
            .expect("read")
            .expect("a line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        assert_eq!(v["feeds"][0]["status"], "connected");
    }
    let pid = child.id().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal");
    let status = child.wait().await.expect("exits");
    assert_eq!(status.code(), Some(EXIT_CONNECTED as i32));
    linear.stop();
    linear.wait().await.expect("stops");
    sim.shutdown().await;
    cleanup(&["watch"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_a_terminal_redraws_one_table_in_place() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 50.0,
        history_days: 1,
        ..SimConfig::for_tests(5)
    })
    .await
    .expect("simulator");
    let linear = service(&sim, "linear", "watch-tty").await;
    until_status(&url(&linear), "connected").await;
    let u = url(&linear);
    let mut term = tokio::task::spawn_blocking(move || {
        let args = ["status", "--watch", "--interval", "0.1", "--url", &u].map(String::from);
        let mut term = Term::spawn(&args, &[], 30, 160);
        term.until(
            "a few refreshes of a connected feed",
            Duration::from_secs(30),
            |_| {},
            |s, homes| homes >= 4 && s.contents().contains("1 feed: 1 connected"),
        );
        term
    })
    .await
    .expect("joined");
    let screen = term.parser.screen().clone();
    let contents = screen.contents();
    assert_eq!(
        contents.matches("SYMBOL").count(),
        1,
        "one table, redrawn in place:\n{contents}"
    );
    let (row, text) = screen
        .rows(0, 160)
        .enumerate()
        .find(|(_, r)| r.starts_with("BTCUSDT"))
        .expect("the feed's row");
    let col = text.find("connected").expect("its status") as u16;
    assert_eq!(
        screen.cell(row as u16, col).expect("cell").fgcolor(),
        vt100::Color::Idx(2),
        "connected is green on a terminal"
    );

    // The service goes away: the table gives way to the message, and the code is 3.
    linear.stop();
    linear.wait().await.expect("stops");
    let code = tokio::task::spawn_blocking(move || {
        let seen = term.homes;
        term.until(
            "the no-service message in place of the table",
            Duration::from_secs(30),
            |_| {},
            |s, homes| {
                homes >= seen + 2
                    && s.contents().contains("no service answers")
                    && !s.contents().contains("SYMBOL")
            },
        );
        term.interrupt(|_| {})
    })
    .await
    .expect("joined");
    assert_eq!(code, EXIT_NO_SERVICE as u32, "the last refresh's code");
    sim.shutdown().await;
    cleanup(&["watch-tty"]);
}
