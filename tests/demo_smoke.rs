//! `hft-connector demo` end to end: it serves the dashboard, every feed connects, faults are
//! injected on schedule, and Ctrl-C (SIGINT) stops everything, workers included, with exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Processes whose parent is `pid` (from /proc/*/stat; any thread of `pid` may have spawned them).
fn children(pid: u32) -> Vec<u32> {
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

#[test]
fn demo_runs_the_fault_tour_and_stops_cleanly_on_ctrl_c() {
    let data = std::env::temp_dir().join(format!("hftc-demo-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["demo", "--listen", "127.0.0.1:0", "--fault-every", "1.5"])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut url = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    // The dashboard URL, then every feed connected, then two faults.
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(u) = l.trim().strip_prefix("dashboard:") {
                url = Some(u.trim().to_string());
            }
            lines.push(l);
        }
        if lines.iter().filter(|l| l.starts_with("[fault")).count() >= 2 {
            break;
        }
    }
    let url = url.expect("dashboard URL printed");
    let status: serde_json::Value = reqwest::blocking::get(format!("{url}api/status"))
        .and_then(|r| r.json())
        .expect("status API answers");
    assert_eq!(
        status["feeds"].as_array().map(Vec::len),
        Some(4),
        "2 symbols x 2 categories"
    );
    assert!(
        lines.iter().filter(|l| l.starts_with("[fault")).count() >= 2,
        "{lines:?}"
    );
    let html = reqwest::blocking::get(&url)
        .and_then(|r| r.text())
        .expect("dashboard");
    assert!(html.contains("hft-connector"));
    let workers = children(child.id());
    assert!(
        !workers.is_empty(),
        "process isolation: workers are the demo's children"
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The demo's last lines, however late the reader passes them on (it ends at EOF).
    while !lines.iter().any(|l| l == "stopped cleanly") {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    assert!(status.success(), "exit status {status}");
    assert!(lines.iter().any(|l| l == "stopped cleanly"), "{lines:?}");
    for w in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{w}")).exists(),
            "worker {w} left behind"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}
