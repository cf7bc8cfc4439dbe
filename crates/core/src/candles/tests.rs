//! Tests of candle aggregation, REST stitching and missing-interval planning.
use super::*;
use crate::protocol::Side;
use std::str::FromStr;

const MIN: u64 = 60_000;
const T0: u64 = 1_700_000_040_000; // a minute boundary

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test decimal")
}

fn trade(id: &str, ts_ms: u64, price: &str, qty: &str) -> TradeEvent {
    TradeEvent {
        symbol: "BTCUSDT".into(),
        id: id.into(),
        price: d(price),
        qty: d(qty),
        side: Side::Buy,
        ts_ms,
        seq: None,
        block: false,
        category: None,
        recv_ns: None,
        recovered: false,
    }
}

fn rest(start_ms: u64, o: &str, h: &str, l: &str, c: &str, v: &str, t: &str) -> Candle {
    Candle {
        start_ms,
        open: d(o),
        high: d(h),
        low: d(l),
        close: d(c),
        volume: d(v),
        turnover: d(t),
    }
}

fn agg() -> CandleAggregator {
    CandleAggregator::with_grace("BTCUSDT", "1", 1_000).expect("interval")
}

#[test]
fn intervals_parse_and_align() {
    const { assert!(T0 % MIN == 0) };
    let m5 = Interval::parse("5").unwrap();
    assert_eq!(m5.ms(), 300_000);
    assert_eq!(m5.start_of(600_001), 600_000);
    let day = Interval::parse("D").unwrap();
    assert_eq!(day.start_of(86_400_000 * 3 + 5), 86_400_000 * 3);
    // 2023-09-11 00:00 UTC was a Monday; so is every weekly start.
    let week = Interval::parse("W").unwrap();
    assert_eq!(
        week.start_of(1_694_390_400_000 + 3 * 86_400_000),
        1_694_390_400_000
    );
    assert!(week.is_boundary(1_694_390_400_000));
    assert!(!week.is_boundary(1_694_390_400_000 - 86_400_000));
    assert_eq!(Interval::parse("M"), Err(CandleError::Interval("M".into())));
    assert!(Interval::parse("7").is_err());
    assert!(CandleAggregator::new("BTCUSDT", "M").is_err());
}

#[test]
fn builds_exact_ohlcv_and_turnover() {
    let mut a = agg();
    for (i, (p, q)) in [
        ("100.1", "0.3"),
        ("100.5", "0.001"),
        ("99.9", "2"),
        ("100.2", "0.1"),
    ]
    .iter()
    .enumerate()
    {
        let r = a.push(&trade(&format!("t{i}"), T0 + i as u64 * 1000, p, q));
        assert_eq!(r.ingest, Ingest::Applied);
        assert!(r.closed.is_empty());
    }
    let c = a.current().unwrap();
    assert_eq!(
        (c.open, c.high, c.low, c.close),
        (d("100.1"), d("100.5"), d("99.9"), d("100.2"))
    );
    assert_eq!(c.volume, d("2.401"));
    // 30.03 + 0.1005 + 199.8 + 10.02, exactly
    assert_eq!(c.turnover, d("239.9505"));
    assert_eq!(c.trade_count, 4);
    assert_eq!(c.start_ms, T0);
    assert_eq!(c.end_ms, T0 + MIN - 1);
    assert!(!c.confirmed);
    let k = c.to_kline_event(T0 + 3000);
    assert_eq!(
        (k.start, k.end, k.confirm, k.ts_ms),
        (T0, T0 + MIN - 1, false, T0 + 3000)
    );
}

#[test]
fn closes_after_grace_and_rejects_late_trades() {
    let mut a = agg();
    a.push(&trade("a", T0 + 10, "1", "1"));
    // Next bucket, but still within the 1 s grace of the first: nothing closes.
    let r = a.push(&trade("b", T0 + MIN + 500, "2", "1"));
    assert!(r.closed.is_empty());
    assert_eq!(a.open_candles().len(), 2);
    // An out-of-order trade for the first bucket is still accepted.
    assert_eq!(
        a.push(&trade("c", T0 + 20, "3", "1")).ingest,
        Ingest::Applied
    );
    let r = a.push(&trade("d", T0 + MIN + 1_000, "2", "1"));
    assert_eq!(r.closed.len(), 1);
    let c = &r.closed[0];
    assert!(c.confirmed);
    assert_eq!(
        (c.start_ms, c.open, c.close, c.high, c.trade_count),
        (T0, d("1"), d("3"), d("3"), 2)
    );
    assert_eq!(a.push(&trade("e", T0 + 30, "9", "1")).ingest, Ingest::Late);
    assert_eq!(a.stats().late, 1);
    // A quiet market still closes by time; empty buckets yield nothing.
    let closed = a.close_due(T0 + 5 * MIN);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].start_ms, T0 + MIN);
    assert!(a.current().is_none());
    // Time never goes backwards.
    assert!(a.close_due(T0).is_empty());
    assert_eq!(
        a.push(&trade("f", T0 + 2 * MIN, "1", "1")).ingest,
        Ingest::Late
    );
}

#[test]
fn out_of_order_trades_give_event_order_open_and_close() {
    let mut a = agg();
    a.push(&trade("2", T0 + 2000, "20", "1"));
    a.push(&trade("3", T0 + 3000, "30", "1"));
    a.push(&trade("1", T0 + 1000, "10", "1"));
    let mut same_ts_late_seq = trade("4", T0 + 3000, "35", "1");
    same_ts_late_seq.seq = Some(9);
    a.push(&same_ts_late_seq);
    let c = a.current().unwrap();
    assert_eq!(
        (c.open, c.close, c.low, c.high),
        (d("10"), d("35"), d("10"), d("35"))
    );
    assert_eq!(c.last_trade_ms, Some(T0 + 3000));
}

#[test]
fn duplicate_ids_are_counted_once() {
    let mut a = agg();
    a.push(&trade("x", T0 + 1, "10", "1"));
    let mut again = trade("x", T0 + 1, "10", "1");
    again.recovered = true;
    assert_eq!(a.push(&again).ingest, Ingest::Duplicate);
    a.push(&trade("y", T0 + 2, "10", "2"));
    let c = a.current().unwrap();
    assert_eq!((c.volume, c.trade_count), (d("3"), 2));
    assert_eq!(a.stats().duplicate, 1);
    assert_eq!(
        a.push(&TradeEvent {
            symbol: "ETHUSDT".into(),
            ..trade("z", T0 + 3, "1", "1")
        })
        .ingest,
        Ingest::OtherSymbol
    );
}

#[test]
fn dedupe_memory_is_bounded_and_freed_on_close() {
    let mut a = CandleAggregator::with_grace("BTCUSDT", "D", 0)
        .unwrap()
        .with_dedupe_capacity(3);
    let day = 86_400_000 * 19_700;
    for i in 0..5 {
        a.push(&trade(&format!("t{i}"), day + i, "1", "1"));
    }
    assert_eq!(a.seen.order.len(), 3);
    // The newest ids are still recognised, the evicted oldest are not.
    assert_eq!(
        a.push(&trade("t4", day + 4, "1", "1")).ingest,
        Ingest::Duplicate
    );
    assert_eq!(a.push(&trade("t0", day, "1", "1")).ingest, Ingest::Applied);
    a.close_due(day + 86_400_000);
    assert!(a.seen.set.is_empty() && a.seen.order.is_empty());
}

#[test]
fn overflow_is_refused_not_panicking() {
    let mut a = agg();
    assert_eq!(a.push(&trade("a", T0, "1", "1")).ingest, Ingest::Applied);
    let huge = Decimal::MAX;
    let t = TradeEvent {
        price: huge,
        qty: d("2"),
        ..trade("b", T0 + 1, "1", "1")
    };
    assert_eq!(a.push(&t).ingest, Ingest::Overflow);
    assert_eq!(a.current().unwrap().volume, d("1"));
}

#[test]
fn reconcile_takes_rest_up_to_its_answer_time_then_extends_with_live() {
    let mut a = agg();
    // Subscribed first: live trades from T0+10s; REST answered at T0+20s.
    a.push(&trade("l1", T0 + 10_000, "101", "1")); // covered by REST
    a.push(&trade("l2", T0 + 20_000, "90", "1")); // at the join point: covered
    a.push(&trade("l3", T0 + 25_000, "120", "2")); // after: extends
    let r = a
        .reconcile_open(
            &rest(T0, "100", "105", "95", "101", "10", "1000"),
            T0 + 20_000,
        )
        .unwrap();
    assert_eq!((r.kept_live, r.dropped_covered, r.hole), (1, 2, None));
    let c = r.candle;
    assert_eq!(
        (c.open, c.high, c.low, c.close),
        (d("100"), d("120"), d("95"), d("120"))
    );
    assert_eq!((c.volume, c.turnover), (d("12"), d("1240")));
    assert_eq!(c.rest_as_of_ms, Some(T0 + 20_000));
    assert_eq!(c.trade_count, 1);
    // Late live trades at or before the join point are already in REST's numbers.
    assert_eq!(
        a.push(&trade("l0", T0 + 15_000, "1", "5")).ingest,
        Ingest::CoveredByRest
    );
    // A REST-recovered copy of a live trade is still a duplicate.
    assert_eq!(
        a.push(&trade("l3", T0 + 25_000, "120", "2")).ingest,
        Ingest::Duplicate
    );
    assert_eq!(
        a.push(&trade("l4", T0 + 30_000, "80", "1")).ingest,
        Ingest::Applied
    );
    let c = a.current().unwrap();
    assert_eq!(
        (c.open, c.low, c.close, c.volume),
        (d("100"), d("80"), d("80"), d("13"))
    );
    // Closing yields the stitched candle, confirmed.
    let closed = a.close_due(T0 + MIN + 1_000);
    assert_eq!(closed.len(), 1);
    assert!(closed[0].confirmed);
    assert_eq!(closed[0].turnover, d("1320"));
    // Buckets opened after reconciling do not keep trades.
    assert!(!a.awaiting_rest());
}

#[test]
fn reconcile_reports_a_hole_when_rest_predates_live() {
    let mut a = agg();
    a.push(&trade("l1", T0 + 40_000, "50", "1"));
    let r = a
        .reconcile_open(&rest(T0, "49", "49", "48", "48", "3", "145"), T0 + 30_000)
        .unwrap();
    assert_eq!(r.hole, Some((T0 + 30_000, T0 + 40_000)));
    assert_eq!(
        (r.candle.volume, r.candle.close, r.candle.high),
        (d("4"), d("50"), d("50"))
    );
}

#[test]
fn reconcile_of_an_unseen_bucket_is_rest_then_live() {
    let mut a = agg();
    let r = a
        .reconcile_open(&rest(T0, "7", "8", "6", "7.5", "1", "7.5"), T0 + 5_000)
        .unwrap();
    assert_eq!((r.kept_live, r.candle.trade_count), (0, 0));
    assert_eq!(
        a.push(&trade("x", T0 + 6_000, "9", "1")).ingest,
        Ingest::Applied
    );
    let c = a.current().unwrap();
    assert_eq!(
        (c.open, c.high, c.close, c.volume),
        (d("7"), d("9"), d("9"), d("2"))
    );
}

#[test]
fn reconcile_refuses_bad_input_and_unretained_splits() {
    let mut a = agg();
    assert!(matches!(
        a.reconcile_open(&rest(T0 + 1, "1", "1", "1", "1", "1", "1"), T0 + 2),
        Err(CandleError::Misaligned { .. })
    ));
    assert!(matches!(
        a.reconcile_open(&rest(T0, "1", "1", "1", "1", "1", "1"), T0 - 1),
        Err(CandleError::AnswerBeforeStart { .. })
    ));
    a.push(&trade("a", T0 + 1_000, "1", "1"));
    a.reconcile_open(&rest(T0, "1", "1", "1", "1", "1", "1"), T0 + 2_000)
        .unwrap();
    // Next bucket opened while not awaiting REST: only sums are kept.
    a.push(&trade("b", T0 + MIN + 1_000, "2", "1"));
    assert_eq!(
        a.reconcile_open(
            &rest(T0 + MIN, "2", "2", "2", "2", "1", "2"),
            T0 + MIN + 5_000
        ),
        Err(CandleError::NotRetained { start_ms: T0 + MIN })
    );
    // ...which is fine when all of them are after the join point.
    let r = a
        .reconcile_open(
            &rest(T0 + MIN, "3", "3", "1", "3", "1", "3"),
            T0 + MIN + 500,
        )
        .unwrap();
    assert_eq!(
        (r.candle.open, r.candle.volume, r.candle.low),
        (d("3"), d("2"), d("1"))
    );
    a.close_due(T0 + 3 * MIN);
    assert_eq!(
        a.reconcile_open(
            &rest(T0 + MIN, "3", "3", "1", "3", "1", "3"),
            T0 + MIN + 500
        ),
        Err(CandleError::AlreadyClosed { start_ms: T0 + MIN })
    );
}

#[test]
fn interruption_makes_new_buckets_retain_trades_again() {
    let mut a = agg();
    a.reconcile_open(&rest(T0, "1", "1", "1", "1", "1", "1"), T0)
        .unwrap();
    a.interrupted();
    assert!(a.awaiting_rest());
    a.push(&trade("a", T0 + MIN + 1_000, "5", "1"));
    a.push(&trade("b", T0 + MIN + 9_000, "6", "1"));
    let r = a
        .reconcile_open(
            &rest(T0 + MIN, "4", "5", "4", "5", "7", "30"),
            T0 + MIN + 2_000,
        )
        .unwrap();
    assert_eq!((r.kept_live, r.dropped_covered), (1, 1));
    assert_eq!((r.candle.volume, r.candle.close), (d("8"), d("6")));
}

#[test]
fn missing_intervals_after_an_outage() {
    let m1 = Interval::parse("1").unwrap();
    // History ends with the candle at T0; now is 3.5 minutes later: T0+1m and T0+2m are closed
    // and missing, T0+3m is open.
    let s = missing_intervals(&m1, T0, T0 + 3 * MIN + 30_000).unwrap();
    assert_eq!((s.from_ms, s.to_ms, s.count()), (T0 + MIN, T0 + 3 * MIN, 2));
    assert_eq!(s.starts().collect::<Vec<_>>(), vec![T0 + MIN, T0 + 2 * MIN]);
    assert_eq!(missing_intervals(&m1, T0, T0 + MIN + 5), None);
    assert_eq!(missing_intervals(&m1, T0, T0), None);
    let m5 = Interval::parse("5").unwrap();
    let s = missing_intervals(&m5, 0, 90 * 86_400_000).unwrap();
    assert_eq!(s.count(), 90 * 288 - 1);
}
