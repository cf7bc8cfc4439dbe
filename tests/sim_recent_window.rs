//! The simulator's `recent-trade` window is full from the first second, like Bybit's (1000 trades
//! for linear and inverse, 60 for spot), ids and sequence numbers below the live ones, and the
//! candles of those minutes agree with those trades.

mod sim_common;

use std::collections::BTreeMap;

use hft_connector::protocol::rest::{decode, KlineResult, RecentTradeResult};
use hft_connector::protocol::Category;
use hft_connector::sim::SimConfig;
use rust_decimal::Decimal;
use sim_common::start;

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> T {
    let text = reqwest::get(url)
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    decode::<T>(&text).expect("a Bybit envelope").result
}

#[tokio::test]
async fn a_full_window_before_any_live_trade() {
    let sim = start(SimConfig {
        start_paused: true,
        history_days: 1,
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear, Category::Spot],
        ..SimConfig::for_tests(31)
    })
    .await;
    let url = |cat: &str| {
        format!(
            "{}/v5/market/recent-trade?category={cat}&symbol=BTCUSDT&limit=1000",
            sim.rest_url()
        )
    };
    let linear: RecentTradeResult = get(&url("linear")).await;
    assert_eq!(linear.list.len(), 1000, "a full window at once");
    let spot: RecentTradeResult = get(&url("spot")).await;
    assert_eq!(spot.list.len(), 60);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        linear.list.iter().all(|t| t.ts_ms < now_ms),
        "all before the first live trade"
    );
    assert!(
        linear
            .list
            .windows(2)
            .all(|w| (w[0].ts_ms, w[0].seq) > (w[1].ts_ms, w[1].seq)),
        "newest first, distinct sequence numbers"
    );

    // Live trades come after, with higher sequence numbers, and push the oldest out.
    sim.step(300);
    let after: RecentTradeResult = get(&url("linear")).await;
    assert_eq!(after.list.len(), 1000);
    let newest_seeded = &linear.list[0];
    let live: Vec<_> = after
        .list
        .iter()
        .take_while(|t| t.id != newest_seeded.id)
        .collect();
    assert!(!live.is_empty(), "live trades on top");
    assert!(live
        .iter()
        .all(|t| t.seq > newest_seeded.seq && t.ts_ms >= newest_seeded.ts_ms));

    // The candles of the seeded minutes are built from exactly these trades.
    let mut by_minute: BTreeMap<u64, (Decimal, Decimal, Decimal, Decimal, Decimal)> =
        BTreeMap::new();
    for t in linear.list.iter().rev() {
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
    let candles: KlineResult = get(&format!(
        "{}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=1&limit=20",
        sim.rest_url()
    ))
    .await;
    let mut compared = 0;
    // The oldest seeded minute may hold only part of its trades in the window.
    let oldest = by_minute.keys().next().copied();
    for c in &candles.list {
        if Some(c.start_ms) == oldest {
            continue;
        }
        if let Some(&(o, h, l, cl, v)) = by_minute.get(&c.start_ms) {
            assert_eq!((c.open, c.high, c.low, c.close, c.volume), (o, h, l, cl, v));
            compared += 1;
        }
    }
    assert!(compared >= 5, "{compared} minutes compared");
    sim.shutdown().await;
}
