//! Recorder tests: routing, periods, drop counting, write failures.

use super::*;
use crate::record::config::Compress;
use flate2::read::MultiGzDecoder;
use std::io::Read;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn read_gz(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    let mut s = String::new();
    MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut s)
        .expect("valid gzip");
    s
}

const T0: u64 = 1_764_403_200_000_000_000; // 2025-11-29T08:00:00Z

#[test]
fn topics_name_streams_and_receive_times_name_periods() {
    assert_eq!(
        stream_of(r#"{"topic":"orderbook.50.BTCUSDT","type":"delta"}"#),
        "BTCUSDT"
    );
    assert_eq!(stream_of(r#"{"topic":"publicTrade.ETHUSDT"}"#), "ETHUSDT");
    assert_eq!(stream_of(r#"{"op":"pong","success":true}"#), "_control");
    assert_eq!(stream_of(r#"{"topic":"x../../etc"}"#), "_other");
    assert_eq!(period_of(T0, Rotate::Hour), "20251129T08");
    assert_eq!(period_of(T0, Rotate::Day), "20251129");
    assert_eq!(
        period_of(T0 + 3_600_000_000_000, Rotate::Hour),
        "20251129T09"
    );
}

#[test]
fn frames_go_to_files_per_category_symbol_and_period() {
    let dir = temp_dir("route");
    let rec = Recorder::start(RecordSection {
        dir: dir.clone(),
        flush_interval_ms: 3_600_000,
        ..RecordSection::default()
    })
    .expect("starts");
    let linear = rec.tap(Category::Linear);
    let spot = rec.tap(Category::Spot);
    let a = r#"{"topic":"publicTrade.BTCUSDT","data":[]}"#;
    let b = r#"{"topic":"orderbook.1.BTCUSDT","type":"snapshot"}"#;
    let c = r#"{"topic":"publicTrade.ETHUSDT","data":[]}"#;
    linear.offer(T0, a);
    linear.offer(T0 + 1, b);
    spot.offer(T0 + 2, c);
    linear.offer(T0 + 3_600_000_000_000, a); // the next hour: a new file
    let stats = rec.stats();
    rec.stop();
    let btc = dir.join("linear/BTCUSDT");
    assert_eq!(
        read_gz(&btc.join("BTCUSDT-20251129T08-000.gz")),
        format!("{T0} {a}\n{} {b}\n", T0 + 1)
    );
    assert_eq!(
        read_gz(&btc.join("BTCUSDT-20251129T09-000.gz")),
        format!("{} {a}\n", T0 + 3_600_000_000_000)
    );
    assert_eq!(
        read_gz(&dir.join("spot/ETHUSDT/ETHUSDT-20251129T08-000.gz")),
        format!("{} {c}\n", T0 + 2)
    );
    let s = stats.status();
    assert_eq!((s.frames, s.segments, s.dropped, s.lost), (4, 3, 0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let (tx, _rx) = sync_channel(1);
    let stats = Arc::new(RecordStats::default());
    let sink = CategorySink {
        tx,
        category: Category::Linear,
        stats: stats.clone(),
    };
    sink.offer(1, "{}");
    sink.offer(2, "{}"); // nobody reads: must return at once
    sink.offer(3, "{}");
    assert_eq!(stats.status().dropped, 2);
}

#[test]
fn a_failing_disk_is_counted_and_other_streams_go_on() {
    let dir = temp_dir("fail");
    std::fs::create_dir_all(&dir).expect("dir");
    // `linear` is a file: nothing can be created under it.
    std::fs::write(dir.join("linear"), b"not a directory").expect("file");
    let rec = Recorder::start(RecordSection {
        dir: dir.clone(),
        flush_interval_ms: 3_600_000,
        compress: Compress::None,
        ..RecordSection::default()
    })
    .expect("starts");
    rec.tap(Category::Linear)
        .offer(T0, r#"{"topic":"publicTrade.BTCUSDT"}"#);
    rec.tap(Category::Spot)
        .offer(T0, r#"{"topic":"publicTrade.BTCUSDT"}"#);
    let stats = rec.stats();
    rec.stop();
    let s = stats.status();
    assert_eq!((s.frames, s.lost, s.write_errors), (1, 1, 1));
    assert!(s.last_error.is_some());
    let spot = std::fs::read_to_string(dir.join("spot/BTCUSDT/BTCUSDT-20251129T08-000.txt"))
        .expect("spot recorded");
    assert_eq!(
        spot,
        format!("{T0} {{\"topic\":\"publicTrade.BTCUSDT\"}}\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
