//! The raw recorder on a live feed in both isolation modes: every publicTrade frame the simulator
//! sent is in the recording once, as `<recv ns> <json>` lines in one gzip member per flush, under
//! `{dir}/{category}/{symbol}/`, with acks and pongs under `_control`; a restart opens a new
//! segment instead of overwriting. (The kill -9 and hftbacktest checks run from
//! scripts/hftbacktest.sh.)

mod feed_common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use feed_common::*;
use flate2::read::MultiGzDecoder;
use hft_connector::cli::run::Isolation;
use hft_connector::normalized::Event;
use hft_connector::protocol::Category;
use hft_connector::record::{RecordSection, Recorder, Rotate};
use hft_connector::sim::{SimHandle, Simulator};
use hft_connector::source::FeedSource;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn lines(path: &Path) -> Vec<(u64, String)> {
    read_lines(path, true)
}

/// `strict`: every byte must be valid gzip (a finished recording). Otherwise what decodes so far
/// (a file being written: it may be empty, or a member may be in flight).
fn read_lines(path: &Path, strict: bool) -> Vec<(u64, String)> {
    let bytes = std::fs::read(path).expect("read");
    let mut raw = Vec::new();
    let r = MultiGzDecoder::new(&bytes[..]).read_to_end(&mut raw);
    if strict {
        r.expect("every flushed member is valid gzip");
    }
    let mut text = String::from_utf8_lossy(&raw).into_owned();
    if !strict {
        let keep = text.rfind('\n').map_or(0, |i| i + 1);
        text.truncate(keep);
    }
    text.lines()
        .map(|l| {
            let (ns, json) = l.split_once(' ').expect("<ns> <json>");
            (ns.parse().expect("ns"), json.to_string())
        })
        .collect()
}

/// Trade ids in the recorded publicTrade frames of `dir`, in file order.
fn recorded_trades(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for f in files(&dir.join("linear").join(SYMBOL)) {
        for (_, json) in read_lines(&f, false) {
            let v: serde_json::Value = serde_json::from_str(&json).expect("json");
            if v["topic"] == format!("publicTrade.{SYMBOL}") {
                for t in v["data"].as_array().expect("trades") {
                    ids.push(t["i"].as_str().expect("id").to_string());
                }
            }
        }
    }
    ids
}

fn journal_trades(sim: &SimHandle) -> Vec<String> {
    sim.journal(Some(SYMBOL), Some("trade"), None)
        .into_iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(t.id),
            _ => None,
        })
        .collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a recording feed until this run recorded a trade and then the simulator's latest trade
/// as of that moment; returns that trade's id.
async fn record_once(sim: &SimHandle, section: &RecordSection, isolation: Isolation) -> String {
    let before = recorded_trades(&section.dir).len();
    let rec = Recorder::start(section.clone()).expect("recorder");
    let mut cfg = feed_config(sim, Category::Linear);
    cfg.raw_tap = Some(rec.tap(Category::Linear));
    let mut feed = FeedSource::spawn_with(cfg, isolation, worker_options()).expect("feed");
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                ev = feed.next() => if ev.is_none() { break },
            }
        }
        feed.shutdown().await;
    });
    wait_until("a trade recorded by this run", || {
        recorded_trades(&section.dir).len() > before
    })
    .await;
    let target = journal_trades(sim).last().cloned().expect("a trade");
    wait_until("the latest trade recorded", || {
        recorded_trades(&section.dir).contains(&target)
    })
    .await;
    let stats = rec.stats();
    let _ = stop.send(());
    drain.await.expect("feed stops");
    tokio::task::spawn_blocking(move || rec.stop())
        .await
        .expect("recorder stops");
    let s = stats.status();
    assert!(s.frames > 0, "{s:?}");
    assert_eq!((s.dropped, s.lost, s.write_errors), (0, 0, 0), "{s:?}");
    target
}

async fn records_every_frame(isolation: Isolation) {
    let dir =
        std::env::temp_dir().join(format!("hftc-record-{}-{isolation:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let section = RecordSection {
        dir: dir.clone(),
        flush_interval_ms: 20,
        rotate: Rotate::Day,
        ..RecordSection::default()
    };
    let sim = Simulator::start(sim_config(Category::Linear))
        .await
        .expect("simulator");
    record_once(&sim, &section, isolation).await;
    let first_run = files(&dir.join("linear").join(SYMBOL));
    assert_eq!(first_run.len(), 1, "{first_run:?}");
    let first_bytes = std::fs::read(&first_run[0]).expect("read");
    let target = record_once(&sim, &section, isolation).await;

    let segs = files(&dir.join("linear").join(SYMBOL));
    let names: Vec<String> = segs
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 2, "a restart opens a new segment: {names:?}");
    assert!(
        names[0].ends_with("-000.gz") && names[1].ends_with("-001.gz"),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read(&segs[0]).expect("read"),
        first_bytes,
        "never overwritten"
    );
    assert!(
        files(&dir.join("linear").join("_control"))
            .iter()
            .flat_map(|f| lines(f))
            .any(|(_, j)| j.contains("\"op\":\"subscribe\"")),
        "acks are recorded under _control"
    );
    // The second run's trades are the journal's slice from its first trade to the target: none
    // lost, none repeated, in order.
    let second: Vec<String> = lines(&segs[1])
        .into_iter()
        .filter_map(|(_, j)| serde_json::from_str::<serde_json::Value>(&j).ok())
        .filter(|v| v["topic"] == format!("publicTrade.{SYMBOL}"))
        .flat_map(|v| {
            v["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t["i"].as_str().map(str::to_string))
        })
        .collect();
    let journal = journal_trades(&sim);
    let start = journal
        .iter()
        .position(|id| id == &second[0])
        .expect("recorded trades are the simulator's");
    let end = journal.iter().position(|id| id == &target).expect("target");
    let recorded: Vec<&String> = second.iter().take(end - start + 1).collect();
    let expected: Vec<&String> = journal[start..=end].iter().collect();
    assert_eq!(recorded, expected, "no trade lost or repeated");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_feeds_record_every_frame() {
    records_every_frame(Isolation::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_forward_every_frame_to_the_recorder() {
    records_every_frame(Isolation::Process).await;
}
