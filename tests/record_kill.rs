//! `compress = "zstd"` recordings survive `kill -9`: a `run` service recording the simulator's
//! feed with one zstd frame per flush is killed with SIGKILL mid-recording, and every file it
//! left decodes whole (the zstd crate, and our converter, which reports no cut file) with at
//! least the frames `/api/status` counted as written. A file cut inside a frame converts up to
//! its last complete frame and says so. (scripts/hftbacktest.sh does the same with `zstd -dc`.)

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, Simulator};

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p, ext));
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn decode(bytes: &[u8]) -> std::io::Result<String> {
    let mut text = String::new();
    zstd::stream::read::Decoder::new(bytes)?.read_to_string(&mut text)?;
    Ok(text)
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn convert(inputs: &[PathBuf], out: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["convert", "--to", "jsonl"])
        .args(inputs)
        .arg("-o")
        .arg(out)
        .output()
        .expect("runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_recording_killed_with_sigkill_reads_up_to_its_last_flush() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 500.0,
        ..SimConfig::for_tests(14)
    })
    .await
    .expect("simulator");
    let work = tempfile::tempdir().expect("dir");
    let record = work.path().join("record");
    let cfg = work.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sinks.record]\ndir = \"{}\"\nflush_interval_ms = 20\ncompress = \"zstd\"\n",
            record.display()
        ),
    )
    .expect("config");
    let log = work.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["run", "--config"])
        .arg(&cfg)
        .args([
            "--isolation",
            "in-process",
            "--symbols",
            "BTCUSDT",
            "--category",
            "linear",
        ])
        .args(["--ws-url", &format!("ws://{}/v5/public", sim.addr())])
        .args(["--rest-url", &sim.rest_url()])
        .arg("--data-dir")
        .arg(work.path().join("data"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--backfill-days",
            "0",
            "--log-format",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run starts");
    let addr_re = regex::Regex::new(r#""event":"http_listening"[^\n]*"addr":"([0-9.:]+)"|"addr":"([0-9.:]+)"[^\n]*"event":"http_listening""#)
        .expect("regex");
    let api = wait_for("the service's address", || {
        let text = std::fs::read_to_string(&log).ok()?;
        let c = addr_re.captures(&text)?;
        Some(format!(
            "http://{}/api/status",
            c.get(1).or(c.get(2))?.as_str()
        ))
    })
    .await;
    let client = reqwest::Client::new();
    let mut frames = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while frames <= 300 {
        assert!(
            Instant::now() < deadline,
            "the recorder wrote {frames} frames"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(r) = client.get(&api).send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                frames = v["record"]["frames"].as_u64().unwrap_or(0);
            }
        }
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().expect("reaped");

    let zst = files(&record, "zst");
    assert!(!zst.is_empty(), "no .zst files");
    assert!(files(&record, "gz").is_empty());
    let mut lines = 0u64;
    for f in &zst {
        let text = decode(&std::fs::read(f).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for l in text.lines() {
            let (ns, json) = l.split_once(' ').expect("<ns> <json>");
            ns.parse::<u64>().expect("ns");
            assert!(json.starts_with('{'), "{l}");
            lines += 1;
        }
    }
    assert!(
        lines >= frames,
        "{lines} lines decoded, {frames} frames counted as written"
    );
    let (ok, err) = convert(&zst, &work.path().join("all.jsonl"));
    assert!(ok && !err.contains("ends inside"), "{err}");

    // A file cut inside its last frame (a kill in the middle of a write): read up to there.
    let longest = zst
        .iter()
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .expect("a file");
    let bytes = std::fs::read(longest).expect("read");
    let cut = work.path().join("cut.zst");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).expect("write");
    assert!(decode(&bytes[..bytes.len() - 5]).is_err());
    let (ok, err) = convert(&[cut], &work.path().join("cut.jsonl"));
    assert!(
        ok && err.contains("ends inside a compressed block"),
        "{err}"
    );
}
