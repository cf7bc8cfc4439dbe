//! Tests of the SQLite store: WAL durability, kill -9, upsert rules, retention, resume.
use super::*;
use crate::normalized::TradeEvent;
use crate::protocol::rest::Candle;
use rust_decimal::Decimal;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "hftc-store-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test decimal")
}

fn candle(start_ms: u64, close: &str, source: CandleSource, confirmed: bool) -> StoredCandle {
    StoredCandle {
        symbol: "BTCUSDT".into(),
        category: Category::Linear,
        interval: "1".into(),
        start_ms,
        open: d("100.10"),
        high: d("101"),
        low: d("99.5"),
        close: d(close),
        volume: d("0.020"),
        turnover: d("2.002"),
        source,
        confirmed,
    }
}

fn trade(id: &str, ts_ms: u64) -> StoredTrade {
    StoredTrade {
        symbol: "BTCUSDT".into(),
        category: Category::Linear,
        id: id.into(),
        price: d("115440.70"),
        qty: d("0.001"),
        side: Side::Sell,
        ts_ms,
        seq: Some(ts_ms * 10),
        recovered: false,
    }
}

#[test]
fn opens_in_wal_with_full_sync_and_reopens() {
    let dir = TempDir::new("open");
    let data = dir.0.join("nested/data");
    let s = Store::open(&data).unwrap();
    assert_eq!(s.journal_mode().unwrap(), "wal");
    assert_eq!(s.synchronous().unwrap(), 2);
    assert_eq!(s.path(), data.join(DB_FILE));
    assert_eq!(s.integrity_check().unwrap(), "ok");
    drop(s);
    Store::open(&data).unwrap();
}

#[test]
fn unwritable_data_dir_fails_fast_naming_the_path() {
    let dir = TempDir::new("bad");
    let file = dir.0.join("a-file");
    fs::write(&file, b"x").unwrap();
    // Parent is a regular file: cannot be created, even by root.
    let under = file.join("data");
    let e = Store::open(&under).unwrap_err();
    assert!(matches!(e, StoreError::DataDir { .. }), "{e:?}");
    assert!(e.to_string().contains(&under.display().to_string()), "{e}");
    // The dir itself is a regular file.
    let e = Store::open(&file).unwrap_err();
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    // The database path is a directory.
    let data = dir.0.join("data");
    fs::create_dir_all(data.join(DB_FILE)).unwrap();
    let e = Store::open(&data).unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains(DB_FILE), "{e}");
}

#[test]
fn candle_upserts_are_idempotent_and_follow_precedence() {
    let dir = TempDir::new("candles");
    let mut s = Store::open(&dir.0).unwrap();
    let open = candle(60_000, "100.5", CandleSource::Live, false);
    assert_eq!(s.upsert_candles(std::slice::from_ref(&open)).unwrap(), 1);
    assert_eq!(
        s.upsert_candles(std::slice::from_ref(&open)).unwrap(),
        0,
        "same candle: no change"
    );
    // A live update of the open candle replaces it.
    let newer = candle(60_000, "100.7", CandleSource::Live, false);
    assert_eq!(s.upsert_candles(std::slice::from_ref(&newer)).unwrap(), 1);
    let got = s
        .latest_candle("BTCUSDT", Category::Linear, "1", false)
        .unwrap();
    assert_eq!(got, Some(newer.clone()));
    // Exact text survives: "0.020" keeps its scale.
    assert_eq!(got.map(|c| c.volume.to_string()), Some("0.020".to_string()));
    // Confirmed REST replaces live; then neither an unconfirmed nor a live confirmed one does.
    let rest = candle(60_000, "100.6", CandleSource::Backfill, true);
    assert_eq!(s.upsert_candles(std::slice::from_ref(&rest)).unwrap(), 1);
    assert_eq!(s.upsert_candles(&[newer]).unwrap(), 0);
    assert_eq!(
        s.upsert_candles(&[candle(60_000, "1", CandleSource::Live, true)])
            .unwrap(),
        0
    );
    let all = s
        .candles_range("BTCUSDT", Category::Linear, "1", 0, 120_000)
        .unwrap();
    assert_eq!(all, vec![rest.clone()]);
    // A closed live candle is not reopened by a stale open update, nor a REST one by REST's
    // open row.
    s.upsert_candles(&[candle(180_000, "5", CandleSource::Live, true)])
        .unwrap();
    let stale = candle(180_000, "4", CandleSource::Live, false);
    assert_eq!(s.upsert_candles(&[stale]).unwrap(), 0);
    let stale = candle(60_000, "4", CandleSource::Backfill, false);
    assert_eq!(s.upsert_candles(&[stale]).unwrap(), 0);
    // A confirmed live candle is replaced by REST's confirmed one.
    s.upsert_candles(&[candle(120_000, "5", CandleSource::Live, true)])
        .unwrap();
    let fix = candle(120_000, "6", CandleSource::Backfill, true);
    assert_eq!(s.upsert_candles(std::slice::from_ref(&fix)).unwrap(), 1);
    let fixed = s
        .candles_range("BTCUSDT", Category::Linear, "1", 120_000, 180_000)
        .unwrap();
    assert_eq!(fixed, vec![fix]);
}

#[test]
fn candle_queries_are_ranged_ascending_and_scoped() {
    let dir = TempDir::new("range");
    let mut s = Store::open(&dir.0).unwrap();
    let mut cs: Vec<_> = (0..5)
        .rev()
        .map(|i| candle(i * 60_000, "1", CandleSource::Backfill, true))
        .collect();
    let mut other = candle(60_000, "9", CandleSource::Backfill, true);
    other.category = Category::Spot;
    cs.push(other);
    let mut open = candle(300_000, "2", CandleSource::Live, false);
    open.interval = "1".into();
    cs.push(open.clone());
    s.upsert_candles(&cs).unwrap();
    let got = s
        .candles_range("BTCUSDT", Category::Linear, "1", 60_000, 240_000)
        .unwrap();
    let starts: Vec<u64> = got.iter().map(|c| c.start_ms).collect();
    assert_eq!(starts, vec![60_000, 120_000, 180_000]);
    assert_eq!(
        s.latest_candle("BTCUSDT", Category::Linear, "1", false)
            .unwrap(),
        Some(open)
    );
    let last = s
        .latest_candle("BTCUSDT", Category::Linear, "1", true)
        .unwrap();
    assert_eq!(last.map(|c| c.start_ms), Some(240_000));
    assert_eq!(
        s.latest_candle("BTCUSDT", Category::Linear, "5", false)
            .unwrap(),
        None
    );
    assert_eq!(
        s.candles_range("BTCUSDT", Category::Spot, "1", 0, 1 << 40)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn chunks_are_stored_atomically_with_their_candles() {
    let dir = TempDir::new("chunks");
    let mut s = Store::open(&dir.0).unwrap();
    assert!(s.chunks_done().unwrap().is_empty());
    let cs = vec![
        candle(0, "1", CandleSource::Backfill, true),
        candle(60_000, "1", CandleSource::Backfill, true),
    ];
    assert_eq!(s.store_chunk("linear:BTCUSDT:1:0-120000", &cs).unwrap(), 2);
    assert_eq!(s.store_chunk("linear:BTCUSDT:1:0-120000", &cs).unwrap(), 0);
    let done = s.chunks_done().unwrap();
    assert_eq!(done.len(), 1);
    assert!(done.contains("linear:BTCUSDT:1:0-120000"));
    drop(s);
    let s = Store::open(&dir.0).unwrap();
    assert_eq!(s.chunks_done().unwrap(), done);
    assert_eq!(
        s.candles_range("BTCUSDT", Category::Linear, "1", 0, 1 << 40)
            .unwrap(),
        cs
    );
}

#[test]
fn read_only_connections_read_what_the_writer_committed_and_can_write_nothing() {
    let dir = TempDir::new("readonly");
    let mut w = Store::open(&dir.0).unwrap();
    let cs = vec![candle(0, "1", CandleSource::Backfill, true)];
    w.upsert_candles(&cs).unwrap();
    let mut r = Store::open_read_only(w.path()).unwrap();
    let got = r
        .candles_range("BTCUSDT", Category::Linear, "1", 0, 60_000)
        .unwrap();
    assert_eq!(got, cs);
    // SQLite refuses every write on this connection.
    let e = r
        .upsert_candles(&[candle(60_000, "2", CandleSource::Backfill, true)])
        .expect_err("a read-only connection must not write");
    assert!(e.to_string().contains("readonly"), "{e}");
    // A missing database is an error, never a new empty file.
    let missing = dir.0.join("nothing-here.sqlite3");
    assert!(Store::open_read_only(&missing).is_err());
    assert!(!missing.exists());
}

#[test]
fn trades_are_deduplicated_and_queried_since_in_order() {
    let dir = TempDir::new("trades");
    let mut s = Store::open(&dir.0).unwrap();
    let ts = [trade("c", 3_000), trade("a", 1_000), trade("b", 2_000)];
    assert_eq!(s.insert_trades(&ts).unwrap(), 3);
    let mut again = trade("a", 1_000);
    again.recovered = true;
    assert_eq!(s.insert_trades(&[again, trade("d", 4_000)]).unwrap(), 1);
    let mut spot = trade("a", 1_000);
    spot.category = Category::Spot;
    assert_eq!(
        s.insert_trades(&[spot]).unwrap(),
        1,
        "ids are per symbol and category"
    );
    let got = s
        .trades_since("BTCUSDT", Category::Linear, 2_000, 10)
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec!["b", "c", "d"]);
    assert_eq!(got[0], trade("b", 2_000));
    assert_eq!(got[0].price.to_string(), "115440.70");
    assert_eq!(
        s.trades_since("BTCUSDT", Category::Linear, 0, 2)
            .unwrap()
            .len(),
        2
    );
    assert!(!s.trades_since("BTCUSDT", Category::Linear, 0, 1).unwrap()[0].recovered);
}

#[test]
fn retention_by_age_and_by_count() {
    let dir = TempDir::new("retention");
    let mut s = Store::open(&dir.0).unwrap();
    let hour = 3_600_000;
    let ts: Vec<_> = (0..10).map(|i| trade(&format!("t{i}"), i * hour)).collect();
    s.insert_trades(&ts).unwrap();
    let mut eth = trade("e1", 0);
    eth.symbol = "ETHUSDT".into();
    s.insert_trades(&[eth]).unwrap();
    // Keep 4 hours at t = 9h: trades at 5h..9h stay (ETH's at 0h goes).
    assert_eq!(s.prune_trades(Retention::hours(4), 9 * hour).unwrap(), 6);
    let left = s.trades_since("BTCUSDT", Category::Linear, 0, 100).unwrap();
    assert_eq!(left.first().map(|t| t.ts_ms), Some(5 * hour));
    let keep = Retention {
        max_age_ms: None,
        keep_last: Some(2),
    };
    assert_eq!(s.prune_trades(keep, 9 * hour).unwrap(), 3);
    let left: Vec<String> = s
        .trades_since("BTCUSDT", Category::Linear, 0, 100)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, vec!["t8", "t9"]);
    assert_eq!(s.prune_trades(Retention::default(), 9 * hour).unwrap(), 0);
}

#[test]
fn feed_status_history_newest_first() {
    let dir = TempDir::new("status");
    let mut s = Store::open(&dir.0).unwrap();
    for (ts, st) in [(1, "up"), (2, "down"), (3, "up")] {
        s.record_status(&StatusRecord {
            ts_ms: ts,
            symbol: "BTCUSDT".into(),
            category: Category::Linear,
            status: st.into(),
            detail: format!("at {ts}"),
        })
        .unwrap();
    }
    let h = s.status_history("BTCUSDT", Category::Linear, 2).unwrap();
    let got: Vec<(u64, &str)> = h.iter().map(|r| (r.ts_ms, r.status.as_str())).collect();
    assert_eq!(got, vec![(3, "up"), (2, "down")]);
    assert!(s
        .status_history("BTCUSDT", Category::Spot, 9)
        .unwrap()
        .is_empty());
}

#[test]
fn conversions_from_rest_built_and_events() {
    let rest = Candle {
        start_ms: 60_000,
        open: d("1"),
        high: d("2"),
        low: d("0.5"),
        close: d("1.5"),
        volume: d("10"),
        turnover: d("15"),
    };
    let c = StoredCandle::from_rest("BTCUSDT", Category::Inverse, "1", &rest, true);
    assert_eq!(
        (c.source, c.confirmed, c.close),
        (CandleSource::Backfill, true, d("1.5"))
    );
    let ev = TradeEvent {
        symbol: "BTCUSDT".into(),
        id: "x".into(),
        price: d("1.0"),
        qty: d("2"),
        side: Side::Buy,
        ts_ms: 5,
        seq: None,
        block: false,
        category: None,
        recv_ns: None,
        recovered: true,
    };
    let t = StoredTrade::from_event(&ev, Category::Spot);
    assert_eq!(
        (t.category, t.recovered, t.seq),
        (Category::Spot, true, None)
    );
}

const CHILD_ENV: &str = "HFT_CONNECTOR_STORE_KILL9_DIR";

/// Child half of `kill_9_loses_nothing_reported_stored`: ignored in a normal run (it is no test
/// of its own), run by the parent with `--ignored`; writes forever, printing each id once its
/// transaction committed.
#[test]
#[ignore = "the child process of kill_9_loses_nothing_reported_stored; the parent runs it"]
fn kill9_child_writer() {
    let dir = std::env::var_os(CHILD_ENV).expect("run by kill_9_loses_nothing_reported_stored");
    let mut s = Store::open(PathBuf::from(dir)).expect("child open");
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000u64 {
        let t = trade(&format!("t{i}"), i);
        let c = candle(i * 60_000, "1", CandleSource::Live, i % 2 == 0);
        s.insert_trades(&[t]).expect("child insert");
        s.upsert_candles(&[c]).expect("child upsert");
        // A closed pipe (parent gone) ends the child.
        if writeln!(out, "STORED {i}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn kill_9_loses_nothing_reported_stored() {
    let dir = TempDir::new("kill9");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "store::tests::kill9_child_writer", "--nocapture"])
        .arg("--ignored")
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut reported = Vec::new();
    let parse = |line: &str| {
        line.strip_prefix("STORED ")
            .and_then(|n| n.parse::<u64>().ok())
    };
    while reported.len() < 300 {
        match lines.next() {
            Some(Ok(line)) => reported.extend(parse(&line)),
            _ => break,
        }
    }
    assert_eq!(reported.len(), 300, "child stopped early");
    child.kill().expect("kill -9"); // SIGKILL on Unix
    child.wait().expect("reap");
    // Lines already in the pipe were reported too.
    for line in lines.map_while(Result::ok) {
        reported.extend(parse(&line));
    }
    let s = Store::open(&dir.0).unwrap();
    assert_eq!(s.integrity_check().unwrap(), "ok");
    let stored: HashSet<String> = s
        .trades_since("BTCUSDT", Category::Linear, 0, u64::MAX >> 2)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    for i in &reported {
        assert!(
            stored.contains(&format!("t{i}")),
            "trade t{i} was reported stored but lost"
        );
    }
    let last = reported.iter().max().copied().unwrap_or(0);
    let candles = s
        .candles_range("BTCUSDT", Category::Linear, "1", 0, (last + 1) * 60_000)
        .unwrap();
    assert_eq!(
        candles.len() as u64,
        last + 1,
        "every reported candle is there"
    );
}
