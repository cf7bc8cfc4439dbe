//! The `run` service against the simulator: chunked, resumable backfill within the REST budget
//! (with REST faults and a restart mid-way), live candles stitched to REST, missed minutes
//! re-fetched, and bad input failing fast with a clear error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hft_connector::cli::run::{routes, Isolation, RunArgs};
use hft_connector::config::ServiceConfig;
use hft_connector::feed::Feed;
use hft_connector::protocol::rest::{self, KlineResult};
use hft_connector::protocol::Category;
use hft_connector::service::runner::{start, Running, ServiceError};
use hft_connector::service::FeedKey;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};
use hft_connector::store::{CandleSource, Store, StoredCandle};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-svc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 100.0,
        history_days: 1,
        ..SimConfig::for_tests(11)
    })
    .await
    .unwrap()
}

fn config(sim: &SimHandle, data: &Path, days: f64) -> ServiceConfig {
    let args = RunArgs {
        symbols: Some(vec!["BTCUSDT".into()]),
        category: Some(vec!["linear".into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(data.to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(Isolation::InProcess),
        backfill_days: Some(days),
        ..RunArgs::default()
    };
    let mut cfg = ServiceConfig::load(&args.overrides(), Vec::new()).unwrap();
    cfg.backfill.chunk_limit = 100;
    cfg.backfill.concurrency = 2;
    cfg.backfill.ban_s = 0.5;
    cfg
}

async fn run(cfg: ServiceConfig) -> Result<Running, ServiceError> {
    start(cfg, |f| Feed::spawn(f).map_err(|e| e.to_string()), routes).await
}

fn key() -> FeedKey {
    FeedKey {
        category: Category::Linear,
        symbol: "BTCUSDT".into(),
    }
}

/// A hang guard only: every wait ends as soon as what it waits for happened.
const GUARD: Duration = Duration::from_secs(90);

async fn until_backfilled(r: &Running, _timeout: Duration) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let s = r.state.status(&key()).unwrap();
        if s.backfill.state == "done" {
            return (s.backfill.done, s.backfill.total);
        }
        assert!(s.backfill.state != "failed", "{s:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "backfill not done: {:?}",
            s.backfill
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop(r: Running) {
    r.stop();
    r.wait().await.unwrap();
}

/// REST's candles for [from, to), ascending.
async fn rest_candles(
    sim: &SimHandle,
    from: u64,
    to: u64,
) -> Vec<hft_connector::protocol::rest::Candle> {
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + 1000 * 60_000).min(to);
        let body = reqwest::get(format!(
            "{}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=1&start={start}&end={}&limit=1000",
            sim.rest_url(),
            end - 1
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let mut page = rest::decode::<KlineResult>(&body).unwrap().result.list;
        page.reverse();
        out.extend(page);
        start = end;
    }
    out
}

fn stored(data: &Path, from: u64, to: u64) -> Vec<StoredCandle> {
    Store::open(data)
        .unwrap()
        .candles_range("BTCUSDT", Category::Linear, "1", from, to)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_survives_rest_faults_and_matches_rest_exactly() {
    let sim = sim().await;
    let data = tmp("faults");
    // The first REST calls fail: 500s, a 429, then a 403 ban (short in this config).
    sim.inject(FaultRequest::new(FaultKind::RestError).count(3).status(500));
    let r = run(config(&sim, &data, 0.5)).await.unwrap();
    sim.inject(FaultRequest::new(FaultKind::RestError).count(1).status(429));
    sim.inject(FaultRequest::new(FaultKind::RestError).count(1).status(403));
    let (done, total) = until_backfilled(&r, Duration::from_secs(30)).await;
    assert_eq!(done, total);
    assert!(
        (7..=9).contains(&total),
        "12 hours of minutes in chunks of 100: {total}"
    );
    stop(r).await;

    // Every closed minute of the range equals REST's candle exactly.
    let now = hft_connector::feed::health::unix_ms();
    let from = (now - 43_200_000) / 60_000 * 60_000 + 60_000;
    let to = now / 60_000 * 60_000 - 60_000;
    let ours = stored(&data, from, to);
    let theirs = rest_candles(&sim, from, to).await;
    assert_eq!(ours.len(), theirs.len(), "every minute stored once");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(
            (a.start_ms, a.open, a.high, a.low, a.close, a.volume, a.turnover),
            (b.start_ms, b.open, b.high, b.low, b.close, b.volume, b.turnover)
        );
        assert!(a.confirmed);
    }
    let store = Store::open(&data).unwrap();
    assert!(
        store.chunks_done().unwrap().len() as u64 >= total - 1,
        "closed chunks are recorded for resume"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_backfill_resumes_without_refetching() {
    let sim = sim().await;
    let data = tmp("resume");
    let mut cfg = config(&sim, &data, 1.0);
    // A slow budget: 2 requests per 200 ms, so the service can be stopped mid-way.
    cfg.backfill.requests_per_window = 2;
    cfg.backfill.window_s = 0.2;
    let r = run(cfg.clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + GUARD;
    let (done_before, total) = loop {
        let s = r.state.status(&key()).unwrap();
        if s.backfill.done >= 4 {
            break (s.backfill.done, s.backfill.total);
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(done_before < total, "stopped before the end");
    stop(r).await;
    let recorded = Store::open(&data).unwrap().chunks_done().unwrap().len() as u64;
    assert!(recorded >= done_before - 1);

    let requests_before = sim.stats().rest_requests;
    cfg.backfill.requests_per_window = 600;
    cfg.backfill.window_s = 5.0;
    let r = run(cfg).await.unwrap();
    let deadline = tokio::time::Instant::now() + GUARD;
    let first = loop {
        let b = r.state.status(&key()).unwrap().backfill;
        if b.total > 0 {
            break b;
        }
        assert!(tokio::time::Instant::now() < deadline, "no backfill plan");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        first.done >= recorded,
        "progress resumes at the stored chunks: {first:?}"
    );
    let (done, total2) = until_backfilled(&r, Duration::from_secs(30)).await;
    assert_eq!((done, total2), (total2, total2));
    stop(r).await;
    let requests = sim.stats().rest_requests - requests_before;
    // The remaining chunks, plus the symbol check, the stitch fetch and the trade gap-fill.
    assert!(
        requests <= total2 - recorded + 6,
        "{requests} requests for {} remaining chunks: stored chunks were refetched",
        total2 - recorded
    );
    let now = hft_connector::feed::health::unix_ms();
    let from = (now - 86_400_000) / 60_000 * 60_000 + 120_000;
    let to = now / 60_000 * 60_000 - 60_000;
    let candles = stored(&data, from, to);
    assert_eq!(
        candles.len() as u64,
        (to - from) / 60_000,
        "no hole after the restart"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_candle_is_stitched_to_rest_and_missed_minutes_are_refetched() {
    let sim = sim().await;
    let data = tmp("stitch");
    // History ends 30 minutes ago: the service must re-fetch the minutes since.
    let now = hft_connector::feed::health::unix_ms();
    let old = now / 60_000 * 60_000 - 30 * 60_000;
    let seed = rest_candles(&sim, old, old + 60_000).await;
    {
        let mut store = Store::open(&data).unwrap();
        let c = StoredCandle::from_rest("BTCUSDT", Category::Linear, "1", &seed[0], true);
        store.upsert_candles(&[c]).unwrap();
    }
    let mut cfg = config(&sim, &data, 0.0);
    cfg.store.candle_intervals = vec!["1".into(), "5".into()];
    let r = run(cfg).await.unwrap();
    // Live trades reach the service (and its open candles), then the market stops.
    let deadline = tokio::time::Instant::now() + GUARD;
    while r.state.trades(&key(), None, 10).len() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "no live trades");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.pause_market();
    // The newest candle is the one of the last trade (the market is paused).
    let last = match sim.journal(Some("BTCUSDT"), Some("trade"), None).last() {
        Some(hft_connector::normalized::Event::Trade(t)) => t.clone(),
        other => panic!("no trade journaled: {other:?}"),
    };
    let last_trade = last.ts_ms;
    let open_start = last_trade / 60_000 * 60_000;
    let theirs = rest_candles(&sim, old, open_start + 60_000).await;
    let five = last_trade / 300_000 * 300_000;
    let body = reqwest::get(format!(
        "{}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=5&start={five}&end={}&limit=1",
        sim.rest_url(),
        five + 299_999
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let theirs5 = rest::decode::<KlineResult>(&body).unwrap().result.list;
    let stored5 = || {
        Store::open(&data)
            .unwrap()
            .candles_range("BTCUSDT", Category::Linear, "5", five, five + 300_000)
            .unwrap()
    };
    // Wait for the store to hold what the service computed from it: every re-fetched minute, and
    // the open 1- and 5-minute candles as of the last trade, each stitched to REST's (the state
    // itself; the guard only stops a hang).
    let expected_closed = (open_start - old) / 60_000;
    let deadline = tokio::time::Instant::now() + GUARD;
    let ours = loop {
        let delivered = r
            .state
            .trades(&key(), None, hft_connector::service::state::RECENT_TRADES)
            .iter()
            .any(|t| t.id == last.id);
        let ours = stored(&data, old, open_start + 60_000);
        let closed = ours.iter().filter(|c| c.start_ms < open_start).count() as u64;
        let open = ours.iter().find(|c| c.start_ms == open_start);
        let rest_open = theirs.iter().find(|c| c.start_ms == open_start);
        let open_caught_up = match (open, rest_open) {
            (Some(o), Some(t)) => o.close == t.close && o.volume == t.volume,
            _ => false,
        };
        let five_caught_up = match (stored5().first(), theirs5.first()) {
            (Some(o), Some(t)) => o.close == t.close && o.volume == t.volume,
            _ => false,
        };
        if delivered && closed == expected_closed && open_caught_up && five_caught_up {
            break ours;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never caught up: last trade delivered {delivered}, {closed} of \
             {expected_closed} closed minutes, open candle {open:?} vs REST {rest_open:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop(r).await;
    let closed: Vec<_> = ours.iter().filter(|c| c.start_ms < open_start).collect();
    assert_eq!(
        closed.len() as u64,
        (open_start - old) / 60_000,
        "every minute since the stored history was re-fetched"
    );
    assert!(closed.len() >= 30);
    let open = ours
        .iter()
        .find(|c| c.start_ms == open_start)
        .expect("the open candle is stored");
    let rest_open = theirs.iter().find(|c| c.start_ms == open_start).unwrap();
    assert_eq!(open.source, CandleSource::Live);
    assert_eq!(
        (open.open, open.high, open.low, open.close, open.volume),
        (
            rest_open.open,
            rest_open.high,
            rest_open.low,
            rest_open.close,
            rest_open.volume
        ),
        "REST before the join point plus live trades after it make exactly REST's candle"
    );
    // The same for the 5-minute candle built alongside.
    let ours5 = stored5();
    let (a, b) = (&ours5[0], &theirs5[0]);
    assert_eq!(
        (a.start_ms, a.open, a.high, a.low, a.close, a.volume),
        (b.start_ms, b.open, b.high, b.low, b.close, b.volume),
        "the live 5-minute candle equals REST's"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_symbol_and_unwritable_data_dir_fail_fast() {
    let sim = sim().await;
    let data = tmp("bad");
    let mut cfg = config(&sim, &data, 0.0);
    cfg.feed.symbols = vec!["NOPEUSDT".into()];
    let e = run(cfg).await.err().expect("unknown symbol refused");
    assert!(e.to_string().contains("NOPEUSDT"), "{e}");

    let file = tmp("file");
    std::fs::write(&file, b"not a dir").unwrap();
    let e = run(config(&sim, &file.join("data"), 0.0))
        .await
        .err()
        .expect("unusable data dir");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_outage_means_retries_and_status_down() {
    // Nothing listens on these ports: every connection attempt fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let data = tmp("outage");
    let args = RunArgs {
        symbols: Some(vec!["BTCUSDT".into()]),
        category: Some(vec!["linear".into()]),
        ws_url: Some(format!("ws://127.0.0.1:{port}/v5/public")),
        rest_url: Some(format!("http://127.0.0.1:{port}")),
        data_dir: Some(data),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(Isolation::InProcess),
        backfill_days: Some(0.1),
        ..RunArgs::default()
    };
    let mut cfg = ServiceConfig::load(&args.overrides(), Vec::new()).unwrap();
    cfg.reconnect.initial_delay_s = 0.05;
    cfg.reconnect.max_delay_s = 0.2;
    let r = run(cfg)
        .await
        .expect("an unreachable exchange does not stop the service");
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let s = r.state.status(&key()).unwrap();
        if s.status == "down" && s.error_count >= 3 {
            assert_eq!(
                s.backfill.state, "pending",
                "backfill waits until REST can confirm the symbol"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(r).await;
}
