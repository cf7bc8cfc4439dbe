//! The simulator's REST endpoints, checked with reqwest and decoded with the project's REST codec:
//! kline (newest first, limits, start/end, open candle, agreement with the trade tape), recent
//! trades, the order book's `u`, instruments pagination, server time, errors and the IP limit.

mod sim_common;

use std::collections::BTreeMap;
use std::time::Duration;

use hft_connector::protocol::rest::{
    decode, InstrumentsResult, KlineResult, OrderbookResult, RecentTradeResult, ServerTime,
};
use hft_connector::protocol::{Category, RestError};
use hft_connector::sim::SimConfig;
use rust_decimal::Decimal;
use sim_common::{paused, start};

async fn body(url: &str) -> String {
    let r = reqwest::get(url).await.expect("GET");
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.expect("body")
}

fn api_error<T: std::fmt::Debug>(r: Result<T, RestError>) -> (i64, String) {
    match r {
        Err(RestError::Api { code, message }) => (code, message),
        other => panic!("expected a retCode error, got {other:?}"),
    }
}

#[tokio::test]
async fn kline_is_newest_first_with_limits_ranges_and_errors() {
    let sim = paused(11).await;
    let base = format!("{}/v5/market/kline", sim.rest_url());
    let before = hft_connector::sim::server::wall_ms() / 60_000 * 60_000;
    let k = |q: &str| format!("{base}?{q}");
    let r = decode::<KlineResult>(&body(&k("category=linear&symbol=BTCUSDT&interval=1")).await)
        .unwrap()
        .result;
    assert_eq!(r.list.len(), 200, "default limit");
    assert!(
        r.list
            .windows(2)
            .all(|w| w[0].start_ms == w[1].start_ms + 60_000),
        "newest first, contiguous"
    );
    let after = hft_connector::sim::server::wall_ms() / 60_000 * 60_000;
    assert!(
        r.list[0].start_ms == before || r.list[0].start_ms == after,
        "the open candle is included"
    );
    let r = decode::<KlineResult>(&body(&k("symbol=BTCUSDT&interval=1&limit=5000")).await)
        .unwrap()
        .result;
    assert_eq!(
        r.list.len(),
        1000,
        "limit is capped at 1000; category defaults to linear"
    );
    assert_eq!(r.category, "linear");
    let end = r.list[10].start_ms;
    let start = r.list[20].start_ms;
    let q = format!("category=spot&symbol=ETHUSDT&interval=1&start={start}&end={end}");
    let r = decode::<KlineResult>(&body(&k(&q)).await).unwrap().result;
    assert_eq!(r.list.len(), 11);
    assert_eq!((r.list[0].start_ms, r.list[10].start_ms), (end, start));
    let q = format!("category=inverse&symbol=BTCUSDT&interval=5&start={start}&end={end}&limit=1");
    let r = decode::<KlineResult>(&body(&k(&q)).await).unwrap().result;
    assert_eq!(r.list.len(), 1, "limit applies within a range");
    // Two days of history: three daily candles at most (the first may be partial).
    let r = decode::<KlineResult>(&body(&k("category=linear&symbol=BTCUSDT&interval=D")).await)
        .unwrap()
        .result;
    assert!((2..=3).contains(&r.list.len()), "{}", r.list.len());
    for c in &r.list {
        assert!(c.low <= c.open && c.open <= c.high && c.low <= c.close && c.close <= c.high);
    }
    for (q, msg) in [
        (
            "category=linear&symbol=NOPEUSDT&interval=1",
            "The requested symbol is invalid.",
        ),
        (
            "category=linear&symbol=btcusdt&interval=1",
            "The requested symbol is invalid.",
        ),
        (
            "category=linear&symbol=BTCUSDT&interval=7",
            "params error: interval invalid",
        ),
        (
            "category=option&symbol=BTCUSDT&interval=1",
            "Illegal category",
        ),
        (
            "category=linear&symbol=BTCUSDT&interval=1&limit=0",
            "params error: limit must be at least 1",
        ),
        (
            "category=linear&symbol=BTCUSDT&interval=1&start=x",
            "params error: start invalid",
        ),
        (
            "category=linear&interval=1",
            "params error: symbol is required",
        ),
    ] {
        let (code, m) = api_error(decode::<KlineResult>(&body(&k(q)).await));
        assert_eq!((code, m.as_str()), (10001, msg), "{q}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn candles_agree_with_the_trade_tape() {
    let sim = start(SimConfig {
        start_paused: true,
        history_days: 0,
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        ..SimConfig::for_tests(12)
    })
    .await;
    sim.step(2000);
    let url = format!(
        "{}/v5/market/recent-trade?category=linear&symbol=BTCUSDT&limit=1000",
        sim.rest_url()
    );
    let trades = decode::<RecentTradeResult>(&body(&url).await)
        .unwrap()
        .result
        .list;
    assert!(trades.len() > 50 && trades.len() < 1000, "{}", trades.len());
    // Per minute: open, high, low, close and volume of the tape.
    let mut by_minute: BTreeMap<u64, (Decimal, Decimal, Decimal, Decimal, Decimal)> =
        BTreeMap::new();
    for t in trades.iter().rev() {
        let e = by_minute.entry(t.ts_ms / 60_000 * 60_000).or_insert((
            t.price,
            t.price,
            t.price,
            t.price,
            Decimal::ZERO,
        ));
        e.1 = e.1.max(t.price);
        e.2 = e.2.min(t.price);
        e.3 = t.price;
        e.4 += t.qty;
    }
    let url = format!(
        "{}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=1&limit=10",
        sim.rest_url()
    );
    let candles = decode::<KlineResult>(&body(&url).await)
        .unwrap()
        .result
        .list;
    for c in &candles {
        if let Some(&(o, h, l, cl, v)) = by_minute.get(&c.start_ms) {
            assert_eq!((c.open, c.high, c.low, c.close, c.volume), (o, h, l, cl, v));
        }
    }
    assert!(candles.iter().any(|c| by_minute.contains_key(&c.start_ms)));
    sim.shutdown().await;
}

#[tokio::test]
async fn recent_trades_are_the_tape_within_each_categorys_limit() {
    let sim = paused(13).await;
    sim.step(6000);
    let rt = |cat: &str, extra: &str| {
        format!(
            "{}/v5/market/recent-trade?category={cat}&symbol=BTCUSDT{extra}",
            sim.rest_url()
        )
    };
    let spot = decode::<RecentTradeResult>(&body(&rt("spot", "&limit=1000")).await)
        .unwrap()
        .result;
    assert_eq!(spot.list.len(), 60, "spot returns at most 60");
    let lin = decode::<RecentTradeResult>(&body(&rt("linear", "&limit=5")).await)
        .unwrap()
        .result;
    assert_eq!(lin.list.len(), 5);
    assert!(
        lin.list
            .windows(2)
            .all(|w| (w[0].ts_ms, w[0].seq) >= (w[1].ts_ms, w[1].seq)),
        "newest first"
    );
    // The same trades the journal (and so the WebSocket) published.
    let journal = sim.journal(Some("BTCUSDT"), Some("trade"), None);
    let linear_ids: Vec<String> = journal
        .iter()
        .filter_map(|e| match e {
            hft_connector::normalized::Event::Trade(t)
                if t.category.as_deref() == Some("linear") =>
            {
                Some(t.id.clone())
            }
            _ => None,
        })
        .collect();
    let newest: Vec<String> = linear_ids.iter().rev().take(5).cloned().collect();
    assert_eq!(
        lin.list.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        newest
    );
    let (code, _) = api_error(decode::<RecentTradeResult>(
        &body(&rt("linear", "&limit=0")).await,
    ));
    assert_eq!(code, 10001);
    let (code, _) = api_error(decode::<RecentTradeResult>(
        &body(&format!(
            "{}/v5/market/recent-trade?category=linear",
            sim.rest_url()
        ))
        .await,
    ));
    assert_eq!(code, 10001);
    sim.shutdown().await;
}

#[tokio::test]
async fn orderbook_snapshot_carries_the_1000_level_u() {
    let sim = paused(14).await;
    sim.step(500);
    let url = format!(
        "{}/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=200",
        sim.rest_url()
    );
    let ob = decode::<OrderbookResult>(&body(&url).await).unwrap().result;
    let truth = sim.book(Category::Linear, "BTCUSDT", 1000).unwrap();
    assert_eq!(ob.u, truth.u);
    assert_eq!(ob.bids.len(), 200);
    assert_eq!(
        hft_connector::normalized::pairs(&ob.bids),
        truth.bids[..200].to_vec()
    );
    assert_eq!(
        hft_connector::normalized::pairs(&ob.asks),
        truth.asks[..200].to_vec()
    );
    let url = format!(
        "{}/v5/market/orderbook?category=spot&symbol=BTCUSDT",
        sim.rest_url()
    );
    let ob = decode::<OrderbookResult>(&body(&url).await).unwrap().result;
    assert_eq!(
        (ob.bids.len(), ob.asks.len()),
        (1, 1),
        "spot default limit is 1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn instruments_paginate_with_a_cursor_and_time_answers() {
    let sim = start(SimConfig {
        start_paused: true,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
        ..SimConfig::for_tests(15)
    })
    .await;
    let mut cursor = String::new();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let r = reqwest::Client::new()
            .get(format!("{}/v5/market/instruments-info", sim.rest_url()))
            .query(&[
                ("category", "linear"),
                ("limit", "2"),
                ("cursor", cursor.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let page = decode::<InstrumentsResult>(&r).unwrap().result;
        assert!(page.list.len() <= 2);
        seen.extend(page.list.iter().map(|i| i.symbol.clone()));
        if page.next_page_cursor.is_empty() {
            break;
        }
        cursor = page.next_page_cursor;
    }
    assert_eq!(seen, vec!["BTCUSDT", "ETHUSDT", "SOLUSDT"]);
    let spot = body(&format!(
        "{}/v5/market/instruments-info?category=spot&limit=1",
        sim.rest_url()
    ))
    .await;
    let spot = decode::<InstrumentsResult>(&spot).unwrap().result;
    assert_eq!(spot.list.len(), 3, "spot ignores limit");
    assert_eq!(
        spot.list[0].lot_size_filter.step(),
        Some(Decimal::new(1, 6))
    );
    assert_eq!(spot.list[0].price_filter.tick_size, Decimal::new(1, 2));
    let t = decode::<ServerTime>(&body(&format!("{}/v5/market/time", sim.rest_url())).await)
        .unwrap()
        .result;
    let now = hft_connector::sim::server::wall_ms() / 1000;
    assert!(t.seconds.abs_diff(now) <= 2);
    assert_eq!(t.nanos / 1_000_000_000, t.seconds);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_ip_limit_answers_403_and_bans_for_the_configured_time() {
    let sim = start(SimConfig {
        start_paused: true,
        rate_limit: 5,
        rate_window: Duration::from_secs(5),
        rate_ban: Duration::from_millis(1500),
        ..SimConfig::for_tests(16)
    })
    .await;
    let url = format!("{}/v5/market/time", sim.rest_url());
    for _ in 0..5 {
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    }
    let banned_at = std::time::Instant::now();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "access too frequent");
    // Refused until the ban ends (asking meanwhile does not extend it), then served again; the
    // ban is never shorter than configured (a lower bound: load only makes it look longer).
    let deadline = banned_at + Duration::from_secs(60);
    let mut refused = 1;
    loop {
        let status = reqwest::get(&url).await.unwrap().status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 403, "still banned");
        refused += 1;
        assert!(std::time::Instant::now() < deadline, "the ban never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        banned_at.elapsed() >= Duration::from_millis(1500),
        "ban lifted after {:?}",
        banned_at.elapsed()
    );
    assert!(refused >= 2, "asked again while banned");
    assert!(sim.stats().rest_rate_limited >= 2);
    // The control routes are not rate limited.
    let stats = reqwest::get(format!("{}/sim/stats", sim.rest_url()))
        .await
        .unwrap();
    assert_eq!(stats.status(), 200);
    sim.shutdown().await;
}
