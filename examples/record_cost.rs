//! The recorder's cost on the live path: what a connection does per frame when `[sinks.record]`
//! is on (copy the text and queue it without waiting: `RawTap::offer`), measured against the
//! frame's decode in the same run (the baseline every frame pays anyway), with a real recorder
//! writing gzip members behind the queue.
//!
//! ```text
//! cargo run --release --example record_cost -- [frames per round]   # default 200000, 7 rounds
//! ```

use std::hint::black_box;
use std::time::Instant;

use hft_connector::protocol::ws::decode;
use hft_connector::protocol::Category;
use hft_connector::record::{RecordSection, Recorder};

/// A real `orderbook.50` delta (linear BTCUSDT, 2 bid + 5 ask levels) from testdata/bybit.
const FRAME: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1758845431663,"data":{"s":"BTCUSDT","b":[["109147.80","1.687"],["109144.10","0.027"]],"a":[["109148.00","0"],["109154.30","0.076"],["109156.40","0"],["109165.30","0.003"],["109165.40","0.007"]],"u":21111423,"seq":457538796406},"cts":1758845431662}"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("hftc-record-cost-{}", std::process::id()));
    let rec = Recorder::start(RecordSection {
        dir: dir.clone(),
        queue_capacity: 1 << 20,
        ..RecordSection::default()
    })?;
    let tap = rec.tap(Category::Linear);
    let (mut base, mut with) = (Vec::new(), Vec::new());
    let mut ns = 1_764_403_200_000_000_000u64;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..n {
            black_box(decode(black_box(FRAME)).is_ok());
        }
        base.push(t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            ns += 1;
            black_box(decode(black_box(FRAME)).is_ok());
            tap.offer(ns, FRAME);
        }
        with.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let stats = rec.stats();
    rec.stop();
    let s = stats.status();
    let (b, w) = (median(base), median(with));
    println!("decode only (baseline):   {b:.0} ns/frame");
    println!("decode + record offer:    {w:.0} ns/frame");
    println!(
        "recorder cost:            {:.0} ns/frame ({:.2}x the decode)",
        w - b,
        (w - b) / b
    );
    println!(
        "written: {} frames, {} dropped, {} text bytes -> {} gzip bytes ({:.1}x smaller)",
        s.frames,
        s.dropped,
        s.text_bytes,
        s.file_bytes,
        s.text_bytes as f64 / s.file_bytes.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
