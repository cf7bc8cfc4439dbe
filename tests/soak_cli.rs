//! `hft-connector soak`: a short run in each isolation mode prints one JSON line with the full
//! account (trades, lost, duplicated, books, faults by kind, RSS, descriptors, zombies) and exits 0
//! only when nothing was lost or duplicated and every book matched; bad flags fail fast.

use std::process::Command;

fn soak(args: &[&str]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "hftc-soak-test-{}-{}",
        std::process::id(),
        args.join("_").replace(['-', '.'], "")
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .arg("soak")
        .args(args)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .expect("run hft-connector soak");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_run(isolation: &str) -> serde_json::Value {
    check_run_with(isolation, &[])
}

fn check_run_with(isolation: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--seconds",
        "8",
        "--fault-every",
        "2",
        "--isolation",
        isolation,
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = soak(&args);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one JSON line on stdout: {stdout}\n{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("the line is JSON");
    for key in [
        "trades_in_journal",
        "lost",
        "unrecoverable",
        "duplicated",
        "book_mismatches",
        "faults",
        "rss_kb",
        "open_fds",
        "zombies",
    ] {
        assert!(v.get(key).is_some(), "{key} in {v}");
    }
    assert!(
        v["trades_in_journal"].as_u64().unwrap_or(0) > 0,
        "trades flowed: {v}"
    );
    assert!(
        v["faults_total"].as_u64().unwrap_or(0) >= 2,
        "faults were injected: {v}"
    );
    assert!(
        v["book_checks"].as_u64().unwrap_or(0) >= 2,
        "books were compared: {v}"
    );
    assert!(
        v["rss_kb"]["start"].as_u64().unwrap_or(0) > 0
            && v["open_fds"]["end"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    assert_eq!(v["isolation"], isolation);
    assert_eq!(
        (
            v["lost"].as_u64(),
            v["duplicated"].as_u64(),
            v["book_mismatches"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["zombies"], 0, "{v}");
    assert!(ok, "exit 0 when the account is clean: {v}\n{stderr}");
    v
}

#[test]
fn soak_in_process_accounts_for_every_trade() {
    let v = check_run("in-process");
    assert_eq!(v["busy_poll_us"], 0, "sleeping by default: {v}");
}

#[test]
fn soak_worker_process_accounts_for_every_trade() {
    check_run("process");
}

#[test]
fn soak_of_a_busy_polling_worker_accounts_for_every_trade() {
    let v = check_run_with("process", &["--busy-poll-us", "1000"]);
    assert_eq!(v["busy_poll_us"], 1000, "{v}");
}

#[test]
fn soak_refuses_bad_flags() {
    let (ok, _, stderr) = soak(&["--seconds", "0"]);
    assert!(!ok && stderr.contains("--seconds"), "{stderr}");
    let (ok, _, stderr) = soak(&["--fault-every", "0.5"]);
    assert!(!ok && stderr.contains("--fault-every"), "{stderr}");
}
