//! The terminal experience of `run`, driven in a pseudo-terminal and read back through a terminal
//! emulator (vt100): human lines with colour on a terminal (none with `NO_COLOR`), JSON when asked
//! or when piped (unchanged, per-chunk `backfill_progress` included), and backfill bars that stay
//! below the log lines and are never torn by one, on every screen seen, not only the last.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, LazyLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use regex::Regex;

use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};

mod pty_common;

use pty_common::{Term, BIN, CLEARED};

const ROWS: u16 = 200;
const COLS: u16 = 220;

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("hftc-term-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    Scratch(d)
}

fn start_sim(rt: &tokio::runtime::Runtime) -> SimHandle {
    rt.block_on(Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        categories: vec![Category::Linear],
        rate: 50.0,
        history_days: 1,
        ..SimConfig::for_tests(17)
    }))
    .expect("simulator starts")
}

/// `run` against the simulator: no backfill unless `days` > 0.
fn run_args(sim: &SimHandle, data: &std::path::Path, days: f64) -> Vec<String> {
    [
        "run",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--category",
        "linear",
        "--ws-url",
        &format!("ws://{}/v5/public", sim.addr()),
        "--rest-url",
        &sim.rest_url(),
        "--listen",
        "127.0.0.1:0",
        "--backfill-days",
        &days.to_string(),
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([data.display().to_string()])
    .collect()
}

/// A human log line: `08:43:12.345Z  INFO event key=value ...`.
static LOG_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\d\d:\d\d:\d\d\.\d{3}Z +(TRACE|DEBUG|INFO|WARN|ERROR) (\[worker \d+\] )?[a-z_]+( |$)",
    )
    .expect("regex")
});

/// A whole backfill bar row.
static BAR_ROW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^linear (BTC|ETH)USDT +\[[=> ]{30}\] \d+/\d+ chunks +\d+\.\d/s ETA \S+$")
        .expect("regex")
});

fn log_line() -> &'static Regex {
    &LOG_LINE
}

/// What one screen shows: the rows that are log lines and the rows that are bars.
struct Seen {
    log_rows: Vec<usize>,
    bar_rows: Vec<usize>,
}

/// Checks that no row is a torn bar and that every bar is below every log line.
fn check_screen(screen: &vt100::Screen) -> Seen {
    let (log, bar) = (log_line(), &*BAR_ROW);
    let mut seen = Seen {
        log_rows: Vec::new(),
        bar_rows: Vec::new(),
    };
    for (i, row) in screen.rows(0, COLS).enumerate() {
        let row = row.trim_end();
        let looks_like_bar =
            row.contains(" chunks") || row.contains("[=") || row.contains("/s ETA");
        if log.is_match(row) {
            assert!(!looks_like_bar, "a log line with a bar in it: {row:?}");
            seen.log_rows.push(i);
        } else if looks_like_bar {
            assert!(
                bar.is_match(row),
                "a torn bar: {row:?}\n{}",
                screen.contents()
            );
            seen.bar_rows.push(i);
        }
    }
    if let (Some(last_log), Some(first_bar)) = (seen.log_rows.last(), seen.bar_rows.first()) {
        assert!(
            first_bar > last_log,
            "a bar above a log line:\n{}",
            screen.contents()
        );
    }
    seen
}

#[test]
fn backfill_bars_stay_below_the_log_lines_and_are_never_torn() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = start_sim(&rt);
    let data = tmp("bars");
    let mut term = Term::spawn(
        &run_args(&sim, &data, 0.5),
        &[
            // 12 hours in chunks of 60 minutes: 13 per symbol, slow enough to watch.
            ("HFT_CONNECTOR_BACKFILL_CHUNK_LIMIT", "60"),
            ("HFT_CONNECTOR_BACKFILL_REQUESTS_PER_WINDOW", "4"),
            ("HFT_CONNECTOR_BACKFILL_WINDOW_S", "1"),
        ],
        ROWS,
        COLS,
    );
    let mut injected = false;
    let mut lines_while_bars = None::<usize>;
    let mut printed_above_live_bars = false;
    let mut each = |screen: &vt100::Screen| {
        let seen = check_screen(screen);
        if seen.bar_rows.is_empty() {
            return;
        }
        // Log lines printed while the bars are live (the REST errors below make some).
        match lines_while_bars {
            None => lines_while_bars = Some(seen.log_rows.len()),
            Some(n) if seen.log_rows.len() > n => printed_above_live_bars = true,
            Some(_) => {}
        }
        if !injected {
            injected = true;
            sim.inject(FaultRequest::new(FaultKind::RestError).count(3).status(500));
        }
    };
    term.until(
        "a backfill_done line per symbol",
        Duration::from_secs(90),
        &mut each,
        |s, _| s.contents().matches("backfill_done").count() == 2,
    );
    term.until(
        "the bars cleared",
        Duration::from_secs(60),
        &mut each,
        |s, _| !s.contents().contains(" chunks "),
    );
    let code = term.interrupt(&mut each);
    assert!(injected, "bars were shown");
    assert!(
        printed_above_live_bars,
        "log lines were printed while bars were live:\n{}",
        term.parser.screen().contents()
    );
    assert_eq!(code, 0, "Ctrl-C stops cleanly");
    let lines = term.lines();
    let log = log_line();
    for l in &lines {
        assert!(log.is_match(l), "not a human log line: {l:?}");
    }
    let counts = Regex::new(r" done=(\d+) total=(\d+) ").expect("regex");
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let done: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("backfill_done") && l.contains(&format!("symbol={sym}")))
            .collect();
        assert_eq!(done.len(), 1, "one done line for {sym}: {lines:#?}");
        let c = counts.captures(done[0]).expect("done and total");
        assert_eq!(&c[1], &c[2], "every chunk: {}", done[0]);
        assert!(c[2].parse::<u32>().is_ok_and(|n| n >= 12), "{}", done[0]);
    }
    assert!(
        !lines.iter().any(|l| l.contains("backfill_progress")),
        "per-chunk progress is for the JSON log only"
    );
    assert!(
        lines.iter().any(|l| l.contains(" WARN backfill_retry ")),
        "the REST errors were retried (and shown): {lines:#?}"
    );
    rt.block_on(sim.shutdown());
}

#[test]
fn ctrl_c_during_the_backfill_leaves_no_bar_behind() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = start_sim(&rt);
    let data = tmp("bars-stop");
    let mut args = run_args(&sim, &data, 0.5);
    args.extend(["--isolation".into(), "in-process".into()]);
    // One request a second: the backfill is still running when Ctrl-C comes.
    let env = [
        ("HFT_CONNECTOR_BACKFILL_CHUNK_LIMIT", "60"),
        ("HFT_CONNECTOR_BACKFILL_REQUESTS_PER_WINDOW", "1"),
        ("HFT_CONNECTOR_BACKFILL_WINDOW_S", "1"),
    ];
    let mut term = Term::spawn(&args, &env, ROWS, COLS);
    term.until(
        "both bars",
        Duration::from_secs(30),
        |s| {
            check_screen(s);
        },
        |s, _| check_screen(s).bar_rows.len() == 2,
    );
    assert_eq!(
        term.interrupt(|s| {
            check_screen(s);
        }),
        0
    );
    let seen = check_screen(term.parser.screen());
    assert!(
        seen.bar_rows.is_empty(),
        "{}",
        term.parser.screen().contents()
    );
    let lines = term.lines();
    for l in &lines {
        assert!(log_line().is_match(l), "not a human log line: {l:?}");
    }
    assert!(
        lines.iter().any(|l| l.contains("service_stopping")),
        "{lines:#?}"
    );
    rt.block_on(sim.shutdown());
}

/// The level's cell on the first row showing `event`.
fn level_colour(screen: &vt100::Screen, event: &str) -> vt100::Color {
    let (row, text) = screen
        .rows(0, COLS)
        .enumerate()
        .find(|(_, r)| r.contains(event))
        .expect("the event's row");
    let col = text.find("INFO").expect("an INFO line") as u16;
    screen.cell(row as u16, col).expect("a cell").fgcolor()
}

#[test]
fn auto_on_a_terminal_is_human_and_coloured_unless_no_color() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = start_sim(&rt);
    for no_color in [false, true] {
        let data = tmp(&format!("auto-{no_color}"));
        let mut args = run_args(&sim, &data, 0.0);
        args.extend(["--isolation".into(), "in-process".into()]);
        let env: &[(&str, &str)] = if no_color { &[("NO_COLOR", "1")] } else { &[] };
        let mut term = Term::spawn(&args, env, ROWS, COLS);
        term.until(
            "both symbols connected",
            Duration::from_secs(30),
            |_| {},
            |s, _| s.contents().matches("bybit_connector_connected").count() == 2,
        );
        let colour = level_colour(term.parser.screen(), "http_listening");
        assert_eq!(term.interrupt(|_| {}), 0);
        let log = log_line();
        for l in term.lines() {
            assert!(log.is_match(&l), "not a human log line: {l:?}");
        }
        let connected = term
            .lines()
            .into_iter()
            .find(|l| l.contains("bybit_connector_connected"))
            .expect("connected line");
        assert!(connected.contains("symbol=") && connected.contains("category=linear"));
        if no_color {
            assert_eq!(colour, vt100::Color::Default, "NO_COLOR: no colour");
        } else {
            assert_eq!(colour, vt100::Color::Idx(2), "INFO is green");
        }
    }
    rt.block_on(sim.shutdown());
}

#[test]
fn json_on_a_terminal_from_the_flag_or_the_config_file() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = start_sim(&rt);
    let data = tmp("json-tty");
    let config = data.join("hft.toml");
    std::fs::write(&config, "[log]\nformat = \"json\"\n").expect("config file");
    let base = run_args(&sim, &data, 0.0);
    let by_flag = [&base[..], &["--log-format".into(), "json".into()]].concat();
    let by_file = [
        &base[..],
        &["--config".into(), config.display().to_string()],
    ]
    .concat();
    // The flag beats the environment.
    for (args, env) in [
        (by_flag, vec![("HFT_CONNECTOR_LOG_FORMAT", "pretty")]),
        (by_file, vec![]),
    ] {
        let mut args = args;
        args.extend(["--isolation".into(), "in-process".into()]);
        let mut term = Term::spawn(&args, &env, ROWS, COLS);
        term.until(
            "connected",
            Duration::from_secs(30),
            |_| {},
            |s, _| s.contents().contains("bybit_connector_connected"),
        );
        assert_eq!(term.interrupt(|_| {}), 0);
        for l in term.lines() {
            assert!(
                l.starts_with("{\"timestamp\":\""),
                "{args:?}: not JSON: {l:?}"
            );
        }
    }
    rt.block_on(sim.shutdown());
}

/// Runs `run` with stderr piped until `until` shows up, then SIGINT: every stderr line.
fn piped(args: &[String], env: &[(&str, &str)], until: &str) -> Vec<String> {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    for k in CLEARED {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run starts");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.iter().any(|l: &String| l.contains(until)) {
        assert!(Instant::now() < deadline, "{until} not seen: {lines:#?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("signal");
    let status = child.wait().expect("exit");
    lines.extend(rx.iter());
    assert!(status.success(), "{status:?}: {lines:#?}");
    lines
}

#[test]
fn piped_auto_is_the_json_log_unchanged_and_pretty_has_no_colour() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = start_sim(&rt);
    let data = tmp("piped");
    let mut args = run_args(&sim, &data, 0.1);
    args.extend(["--isolation".into(), "in-process".into()]);
    let chunked = [("HFT_CONNECTOR_BACKFILL_CHUNK_LIMIT", "60")];
    let lines = piped(&args, &chunked, "\"event\":\"backfill_done\"");
    let shape = Regex::new(r#"^\{"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z","level":"[A-Z]+","event":"[a-z_]+"[,}]"#)
        .expect("regex");
    for l in &lines {
        assert!(shape.is_match(l), "not the JSON log line shape: {l:?}");
        assert!(!l.contains('\x1b'), "no escape codes when piped: {l:?}");
    }
    let progress: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.contains("\"event\":\"backfill_progress\""))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(
        progress.len() >= 2 * 3,
        "per-chunk progress for both symbols: {progress:?}"
    );
    for p in &progress {
        for field in ["symbol", "category", "done", "total"] {
            assert!(p.get(field).is_some(), "{field} in {p}");
        }
    }

    // `pretty` from the environment, piped: human lines, no colour, no per-chunk lines.
    let data = tmp("piped-pretty");
    let mut args = run_args(&sim, &data, 0.1);
    args.extend(["--isolation".into(), "in-process".into()]);
    let env = [chunked[0], ("HFT_CONNECTOR_LOG_FORMAT", "pretty")];
    let lines = piped(&args, &env, "backfill_done");
    let log = log_line();
    for l in &lines {
        assert!(log.is_match(l) && !l.contains('\x1b'), "{l:?}");
    }
    assert!(!lines.iter().any(|l| l.contains("backfill_progress")));
    rt.block_on(sim.shutdown());
}

#[test]
fn a_bad_log_format_fails_fast_naming_the_key() {
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("HFT_CONNECTOR_LOG_FORMAT", "xml")
        .env_remove("RUST_LOG")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log.format") && err.contains("\"xml\"") && err.contains("auto, json, pretty"),
        "{err}"
    );
}

#[test]
fn simulate_takes_the_log_format_from_the_flag_or_the_environment() {
    let args: Vec<String> = [
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    let lines = piped(&args, &[], "simulator_listening");
    let line = lines
        .iter()
        .find(|l| l.contains("simulator_listening"))
        .expect("listening line");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(v["event"], "simulator_listening");
    assert!(v["addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(lines
        .iter()
        .any(|l| l.contains("\"event\":\"simulator_stopping\"")));

    let lines = piped(
        &args[..3],
        &[("HFT_CONNECTOR_LOG_FORMAT", "pretty")],
        "simulator_listening",
    );
    let line = lines
        .iter()
        .find(|l| l.contains("simulator_listening"))
        .expect("listening line");
    assert!(log_line().is_match(line), "{line:?}");
}
