//! `feed-only --isolation process` against the simulator: the program hosts its own worker (a
//! child process that is the feed-only binary itself, started through `hft_feed::worker::main`),
//! prints trades and books, and on Ctrl-C (SIGINT) stops with its worker gone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hft_sim::{SimConfig, Simulator};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Children of `pid` (from /proc/*/stat), with their executable.
fn children(pid: u32) -> Vec<(u32, std::path::PathBuf)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_string();
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    Some(f.get(1)?.parse::<u32>().ok()? == pid && f.first()? != &"Z")
                })
                .unwrap_or(false)
        })
        .filter_map(|p| Some((p, std::fs::read_link(format!("/proc/{p}/exe")).ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_only_hosts_its_own_worker_and_prints_trades_and_books() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        rate: 200.0,
        ..SimConfig::for_tests(5)
    })
    .await
    .expect("simulator starts");
    let bin = env!("CARGO_BIN_EXE_feed-only");
    let mut child = Command::new(bin)
        .args(["--isolation", "process"])
        .arg(format!("ws://{}/v5/public", sim.addr()))
        .arg(sim.rest_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("feed-only starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut trades, mut books) = (0, 0);
    let guard = Instant::now() + Duration::from_secs(90);
    while trades < 3 || books < 3 {
        let left = guard.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("trades {trades}, books {books} before the guard"));
        trades += usize::from(line.starts_with("trade "));
        books += usize::from(line.starts_with("book "));
    }
    // Its worker is its own child and the same executable.
    let me = std::fs::canonicalize(bin).expect("binary path");
    let workers = children(child.id());
    assert!(
        workers
            .iter()
            .any(|(_, exe)| std::fs::canonicalize(exe).ok().as_ref() == Some(&me)),
        "the worker is feed-only itself: {workers:?}"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("joins")
        .expect("waits");
    assert!(status.success(), "{status}");
    for (pid, _) in workers {
        let gone = || !std::path::Path::new(&format!("/proc/{pid}")).exists();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !gone() {
            assert!(Instant::now() < deadline, "worker {pid} outlived feed-only");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sim.shutdown().await;
}
