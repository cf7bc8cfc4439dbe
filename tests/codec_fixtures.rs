//! Table-driven decoding tests on real Bybit frames (testdata/bybit, copied from real captures).

use hft_connector::protocol::rest::{
    self, InstrumentsResult, KlineResult, OrderbookResult, RecentTradeResult, ServerTime,
};
use hft_connector::protocol::ws::{decode, decode_line, AckOp, BookKind, Frame, Side};
use hft_connector::protocol::RestError;
use rust_decimal::Decimal;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/testdata/bybit/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn lines(name: &str) -> Vec<String> {
    fixture(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn linear_capture_with_receive_times() {
    let l = lines("linear-capture.txt");
    let ob1 = decode_line(&l[0]).unwrap();
    assert_eq!(ob1.recv_ns, Some(1758841137168651303));
    let Frame::Book(b) = ob1.frame else {
        panic!("{ob1:?}")
    };
    assert_eq!(
        (b.symbol, b.depth, b.kind),
        ("BTCUSDT", 1, BookKind::Snapshot)
    );
    assert_eq!(
        (b.u, b.seq, b.ts_ms, b.cts_ms),
        (
            14869255,
            Some(457514742271),
            1758841134603,
            Some(1758841134598)
        )
    );
    assert_eq!(b.bids[0].price.to_string(), "109378.80");
    assert_eq!(b.asks[0].qty.to_string(), "6.278");

    let tr = decode_line(&l[1]).unwrap();
    let Frame::Trades(t) = tr.frame else { panic!() };
    assert_eq!(t.ts_ms, 1758841135824);
    let x = &t.trades[0];
    assert_eq!(x.id, "2a74ac78-691c-5b54-9dbe-5aafe8364627");
    assert_eq!(
        (x.side, x.ts_ms, x.seq, x.block, x.rpi),
        (Side::Buy, 1758841135823, Some(457514743450), false, false)
    );
    assert_eq!(x.price.to_string(), "109378.90", "trailing zero kept");
    assert_eq!(x.qty.to_string(), "0.020");
    assert_eq!(x.tick_direction.as_deref(), Some("ZeroPlusTick"));

    let delta = decode_line(&l[2]).unwrap();
    let Frame::Book(b) = delta.frame else {
        panic!()
    };
    assert_eq!((b.kind, b.u, b.depth), (BookKind::Delta, 21111423, 50));
    assert_eq!(b.bids.len(), 2);
    assert_eq!(b.asks.len(), 5);
    assert!(b.asks[0].qty.is_zero());
}

#[test]
fn spot_frames_with_ts_before_type_and_numeric_ids() {
    let l = lines("spot-frames.jsonl");
    let Frame::Trades(t) = decode(&l[0]).unwrap() else {
        panic!()
    };
    assert_eq!(t.trades[0].id, "2290000000923750370");
    assert_eq!(t.trades[0].tick_direction, None, "spot has no L");
    assert_eq!(t.trades[0].price, d("115440.7"));
    let Frame::Trades(t) = decode(&l[1]).unwrap() else {
        panic!()
    };
    assert_eq!(t.trades[0].seq, None, "older spot trades carry no seq");
    assert_eq!(t.trades[0].side, Side::Sell);
    let Frame::Book(b) = decode(&l[2]).unwrap() else {
        panic!()
    };
    assert_eq!(
        (b.kind, b.u, b.cts_ms),
        (BookKind::Delta, 2876701, Some(1731035685342))
    );
}

#[test]
fn every_ack_and_pong_shape() {
    let l = lines("acks-and-pongs.jsonl");
    struct Case {
        line: usize,
        op: Option<AckOp>,
        success: bool,
        req_id: Option<&'static str>,
        refused_topic: Option<&'static str>,
    }
    let acks = [
        Case {
            line: 0,
            op: Some(AckOp::Subscribe),
            success: true,
            req_id: None,
            refused_topic: None,
        },
        Case {
            line: 1,
            op: Some(AckOp::Subscribe),
            success: true,
            req_id: Some(""),
            refused_topic: None,
        },
        Case {
            line: 2,
            op: Some(AckOp::Unsubscribe),
            success: true,
            req_id: Some("3"),
            refused_topic: None,
        },
        Case {
            line: 3,
            op: Some(AckOp::Subscribe),
            success: false,
            req_id: None,
            refused_topic: None,
        },
        Case {
            line: 4,
            op: Some(AckOp::Subscribe),
            success: false,
            req_id: Some("e1"),
            refused_topic: Some("orderbook.50.NOPEUSDT"),
        },
        Case {
            line: 5,
            op: Some(AckOp::Subscribe),
            success: false,
            req_id: Some("e6"),
            refused_topic: Some("orderbook.1.ETHUSDT"),
        },
        Case {
            line: 11,
            op: Some(AckOp::Command),
            success: true,
            req_id: None,
            refused_topic: None,
        },
    ];
    for c in acks {
        let Frame::Ack(a) = decode(&l[c.line]).unwrap() else {
            panic!("line {} is not an ack", c.line)
        };
        assert_eq!(Some(a.op.clone()), c.op, "line {}", c.line);
        assert_eq!(a.success, c.success, "line {}", c.line);
        assert_eq!(a.req_id.as_deref(), c.req_id, "line {}", c.line);
        assert_eq!(a.refused_topic(), c.refused_topic, "line {}", c.line);
    }
    let Frame::Ack(a) = decode(&l[3]).unwrap() else {
        panic!()
    };
    assert_eq!(a.ret_msg, "args size >10", "JSON escape decoded");
    let Frame::Ack(a) = decode(&l[11]).unwrap() else {
        panic!()
    };
    assert_eq!(
        a.success_topics,
        vec!["orderbook.100.BTC-6JAN23-18000-C".to_string()]
    );

    for (line, req_id, server_ms) in [
        (6, Some("b26704da-f5af-44c2-bdf7-935d6739e1a0"), None),
        (7, Some("ping-pp"), None),
        (8, None, None),
        (9, None, Some(1672916271846)),
        (10, None, Some(1753340040127)),
    ] {
        let Frame::Pong(p) = decode(&l[line]).unwrap() else {
            panic!("line {line} is not a pong")
        };
        assert_eq!(p.req_id.as_deref(), req_id, "line {line}");
        assert_eq!(p.server_ms, server_ms, "line {line}");
    }
}

#[test]
fn docs_examples_trade_delta_kline() {
    let l = lines("docs-examples.jsonl");
    let Frame::Trades(t) = decode(&l[0]).unwrap() else {
        panic!()
    };
    assert_eq!(t.trades[0].price.to_string(), "16578.50");
    let Frame::Book(b) = decode(&l[1]).unwrap() else {
        panic!()
    };
    assert_eq!((b.bids.len(), b.asks.len(), b.u), (5, 7, 177400507));
    let Frame::Kline(k) = decode(&l[2]).unwrap() else {
        panic!()
    };
    assert_eq!(
        (k.symbol, k.interval, k.ts_ms),
        ("BTCUSDT", "5", 1672324988882)
    );
    assert_eq!(k.bars[0].close, d("16677"));
    assert!(!k.bars[0].confirm);
}

#[test]
fn key_order_does_not_matter() {
    // Same frame, `data` before `topic` and `type` last: decoded through the deferred path.
    let a = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1.5","2"]],"a":[],"u":7,"seq":9},"cts":2}"#;
    let b = r#"{"data":{"u":7,"a":[],"seq":9,"b":[["1.5","2"]],"s":"BTCUSDT"},"cts":2,"ts":1,"topic":"orderbook.50.BTCUSDT","type":"delta"}"#;
    assert_eq!(decode(a).unwrap(), decode(b).unwrap());
    let t1 = r#"{"topic":"publicTrade.X1","ts":5,"type":"snapshot","data":[{"i":"1","T":4,"p":"1.0","v":"2","S":"Sell","s":"X1","BT":false}]}"#;
    let t2 = r#"{"type":"snapshot","data":[{"s":"X1","S":"Sell","v":"2","p":"1.0","T":4,"i":"1","BT":false}],"ts":5,"topic":"publicTrade.X1"}"#;
    assert_eq!(decode(t1).unwrap(), decode(t2).unwrap());
}

#[test]
fn unknown_topics_and_ops_are_values_not_errors() {
    for raw in [
        r#"{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT"}}"#,
        r#"{"topic":"liquidation.GALAUSDT","ts":1,"type":"snapshot","data":{}}"#,
        r#"{"hello":"world"}"#,
        r#"{"op":"auth","args":[]}"#,
    ] {
        assert_eq!(decode(raw).unwrap(), Frame::Unknown(raw), "{raw}");
    }
    // A refusal of an invalid op is an ack with that op.
    let Frame::Ack(a) =
        decode(r#"{"success":false,"ret_msg":"error:invalid op","conn_id":"c","op":"nope"}"#)
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.op, AckOp::Other("nope".into()));
}

#[test]
fn malformed_input_is_an_error_carrying_the_payload() {
    let cases = [
        "hello",
        "{",
        "",
        "[1,2]",
        r#"{"topic":"publicTrade.BTCUSDT","ts":1,"type":"snapshot","data":[{"i":"1","T":4,"p":"1e5","v":"2","S":"Buy","s":"BTCUSDT"}]}"#,
        r#"{"topic":"publicTrade.BTCUSDT","ts":1,"type":"snapshot","data":[{"i":"1","T":4,"p":"abc","v":"2","S":"Buy","s":"BTCUSDT"}]}"#,
        r#"{"topic":"publicTrade.BTCUSDT","ts":1,"type":"snapshot","data":[{"i":"1","T":4,"p":"1","v":"2","S":"Up","s":"BTCUSDT"}]}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","ts":1,"type":"delta","data":{"s":"BTCUSDT","b":[["1"]],"a":[],"u":1}}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","ts":1,"type":"weird","data":{"s":"BTCUSDT","b":[],"a":[],"u":1}}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","ts":1,"type":"delta","data":{"s":"ETHUSDT","b":[],"a":[],"u":1}}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","ts":1,"type":"delta"}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"s":"BTCUSDT","b":[],"a":[],"u":1}}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","ts":1,"type":"delta","data":{"s":"BTCUSDT","b":[["1","-2"]],"a":[],"u":1}}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","ts":1,"type":"delta","data":{"s":"BTCUSDT","b":[["99999999999999999999999999999999","1"]],"a":[],"u":1}}"#,
        r#"{"success":true} trailing"#,
    ];
    for raw in cases {
        let e = decode(raw).expect_err(raw);
        assert!(raw.starts_with(&e.payload), "payload kept for {raw}: {e}");
        assert!(e.to_string().contains("malformed frame"), "{e}");
    }
    let long = format!(
        r#"{{"topic":"orderbook.50.BTCUSDT","ts":1,"type":"delta","data":{}"#,
        "x".repeat(5000)
    );
    let e = decode(&long).unwrap_err();
    assert!(e.truncated && e.payload.len() <= 512);
}

#[test]
fn rest_envelopes_and_results() {
    let k: KlineResult = rest::decode(&fixture("rest-kline-linear.json"))
        .unwrap()
        .result;
    assert_eq!(k.list.len(), 3);
    assert_eq!(k.list[0].start_ms, 1694649600000, "newest first as sent");
    assert_eq!(k.list[0].turnover.to_string(), "293656450.7204");

    let i = rest::decode::<InstrumentsResult>(&fixture("rest-instruments-linear.json")).unwrap();
    assert_eq!(i.time_ms, Some(1700000000000));
    let btc = &i.result.list[0];
    assert_eq!(btc.price_filter.tick_size.to_string(), "0.10");
    assert_eq!(btc.lot_size_filter.step(), Some(d("0.001")));
    assert_eq!(i.result.next_page_cursor, "");

    let docs = lines("docs-examples.jsonl");
    let inv: KlineResult = rest::decode(&docs[3]).unwrap().result;
    assert_eq!((inv.category.as_str(), inv.list.len()), ("inverse", 3));
    let rt: RecentTradeResult = rest::decode(&docs[4]).unwrap().result;
    let t = &rt.list[0];
    assert_eq!(
        (t.id.as_str(), t.ts_ms, t.seq, t.rpi, t.side),
        (
            "2100000000007764263",
            1672052955758,
            Some(123456),
            true,
            Side::Buy
        )
    );
    let ob: OrderbookResult = rest::decode(&docs[5]).unwrap().result;
    assert_eq!((ob.u, ob.bids[0].price), (230704, d("65485.47")));
    let tm: ServerTime = rest::decode(&docs[6]).unwrap().result;
    assert_eq!((tm.seconds, tm.nanos), (1688639403, 1688639403423213947));
    match rest::decode::<KlineResult>(&docs[7]) {
        Err(RestError::Api { code, message }) => {
            assert_eq!(
                (code, message.as_str()),
                (10001, "The requested symbol is invalid.")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        rest::decode::<KlineResult>("<html>"),
        Err(RestError::Malformed(_))
    ));
    assert!(matches!(
        rest::decode::<KlineResult>(r#"{"retCode":0,"retMsg":"OK","result":{"list":[["1","2"]]}}"#),
        Err(RestError::Malformed(_))
    ));
}
