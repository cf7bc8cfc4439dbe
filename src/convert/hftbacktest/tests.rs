//! Row-building tests against hftbacktest's documented example lines.

use super::*;
use crate::convert::order::{correct_event_order, correct_local_timestamp, validate_event_order};

const SNAP: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1758841134603,"data":{"s":"BTCUSDT","b":[["109378.80","1.273"],["109378.70","0.5"]],"a":[["109378.90","6.278"]],"u":1,"seq":1},"cts":1}"#;
const DELTA: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1758841134700,"data":{"s":"BTCUSDT","b":[["109378.80","0"]],"a":[["109379.00","0.076"]],"u":2,"seq":2},"cts":1}"#;
const TRADE: &str = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1758841135824,"data":[{"T":1758841135823,"s":"BTCUSDT","S":"Sell","v":"0.020","p":"109378.90","L":"ZeroPlusTick","i":"x","BT":false}]}"#;

fn ev(ev: u64, exch_ms: i64, local: i64, px: f64, qty: f64) -> Event {
    Event {
        ev,
        exch_ts: exch_ms * 1_000_000,
        local_ts: local,
        px,
        qty,
        ..Event::default()
    }
}

#[test]
fn snapshots_clear_each_side_then_insert_deltas_and_trades_follow() {
    let mut b = EventBuilder::default();
    let mut out = Vec::new();
    b.push(Some(10), SNAP, &mut out).expect("snapshot");
    b.push(Some(11), DELTA, &mut out).expect("delta");
    b.push(Some(12), TRADE, &mut out).expect("trade");
    b.push(Some(13), r#"{"op":"pong","success":true}"#, &mut out)
        .expect("pong");
    b.push(
        Some(14),
        &SNAP.replace("orderbook.50", "orderbook.1"),
        &mut out,
    )
    .expect("other depth");
    let t = 1_758_841_134_603;
    assert_eq!(
        out,
        vec![
            ev(DEPTH_CLEAR_EVENT | BUY_EVENT, t, 10, 109378.70, 0.0),
            ev(DEPTH_SNAPSHOT_EVENT | BUY_EVENT, t, 10, 109378.80, 1.273),
            ev(DEPTH_SNAPSHOT_EVENT | BUY_EVENT, t, 10, 109378.70, 0.5),
            ev(DEPTH_CLEAR_EVENT | SELL_EVENT, t, 10, 109378.90, 0.0),
            ev(DEPTH_SNAPSHOT_EVENT | SELL_EVENT, t, 10, 109378.90, 6.278),
            ev(
                DEPTH_EVENT | BUY_EVENT,
                1_758_841_134_700,
                11,
                109378.80,
                0.0
            ),
            ev(
                DEPTH_EVENT | SELL_EVENT,
                1_758_841_134_700,
                11,
                109379.00,
                0.076
            ),
            ev(
                TRADE_EVENT | SELL_EVENT,
                1_758_841_135_823,
                12,
                109378.90,
                0.020
            ),
        ]
    );
    assert_eq!(b.skipped, 2);
    assert_eq!(b.depth, Some(50));
}

#[test]
fn archive_lines_take_the_exchange_time_plus_the_feed_latency() {
    let mut b = EventBuilder::new(None, None, 5);
    let mut out = Vec::new();
    b.push(None, DELTA, &mut out).expect("delta");
    assert_eq!(out[0].local_ts, 1_758_841_134_700_000_005);
}

#[test]
fn a_second_symbol_is_refused_unless_one_is_chosen() {
    let mut out = Vec::new();
    let eth = TRADE.replace("publicTrade.BTCUSDT", "publicTrade.ETHUSDT");
    let mut b = EventBuilder::default();
    b.push(Some(1), TRADE, &mut out).expect("btc");
    let e = b.push(Some(2), &eth, &mut out).expect_err("mixed");
    assert!(e.to_string().contains("--symbol"), "{e}");
    let mut b = EventBuilder::new(None, Some("ETHUSDT".into()), 0);
    out.clear();
    b.push(Some(1), TRADE, &mut out).expect("skipped");
    b.push(Some(2), &eth, &mut out).expect("eth");
    assert_eq!(out.len(), 1);
    assert!(b.push(Some(3), "{not json", &mut out).is_err());
}

#[test]
fn ordering_splits_rows_whose_exchange_order_differs_from_arrival() {
    // Row b left the exchange before row a but arrived after it.
    let a = ev(DEPTH_EVENT | BUY_EVENT, 2, 100, 1.0, 1.0);
    let b = ev(TRADE_EVENT | SELL_EVENT, 1, 200, 2.0, 1.0);
    let mut rows = vec![
        Event {
            exch_ts: 2_000_000,
            local_ts: 2_000_100,
            ..a
        },
        Event {
            exch_ts: 1_000_000,
            local_ts: 2_000_200,
            ..b
        },
    ];
    correct_local_timestamp(&mut rows, 0); // no negative latency: unchanged
    assert_eq!(rows[0].local_ts, 2_000_100);
    let mut out = Vec::new();
    let n = correct_event_order(&rows, |e| out.push(e));
    assert_eq!(n, 3);
    assert_eq!(out[0].ev, b.ev | EXCH_EVENT);
    assert_eq!(out[1].ev, a.ev | EXCH_EVENT | LOCAL_EVENT);
    assert_eq!(out[2].ev, b.ev | LOCAL_EVENT);
    assert!(validate_event_order(&out).is_ok());
    // A negative latency moves every local time later by it.
    let mut rows = vec![Event {
        exch_ts: 10,
        local_ts: 7,
        ..a
    }];
    correct_local_timestamp(&mut rows, 2);
    assert_eq!(rows[0].local_ts, 12);
}
