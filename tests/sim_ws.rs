//! The simulator's WebSocket protocol, checked with a plain client and the project's own codec:
//! ack/pong/refusal shapes per category, trade and book frame shapes, `u` contiguity, books rebuilt
//! from snapshot + deltas equal to the true book, level-1 repeats.

mod sim_common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hft_connector::book::{OrderBook, Outcome};
use hft_connector::normalized::{pairs, Pair};
use hft_connector::protocol::ws::{decode, BookKind, Frame};
use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, TrueBook};
use rust_decimal::Decimal;
use sim_common::{get_json, paused, start, Client};

fn ack_of(text: &str) -> hft_connector::protocol::ws::Ack {
    match decode(text) {
        Ok(Frame::Ack(a)) => a,
        other => panic!("not an ack: {other:?} from {text}"),
    }
}

#[tokio::test]
async fn acks_and_pongs_have_each_categorys_exact_shape() {
    let sim = paused(1).await;
    for cat in Category::ALL {
        let mut c = Client::connect(&sim.ws_url(cat)).await;
        // With a req_id: echoed in every category.
        c.send(r#"{"req_id":"r1","op":"subscribe","args":["publicTrade.BTCUSDT"]}"#)
            .await;
        let t = c.text().await;
        let ok_msg = if cat == Category::Spot {
            "subscribe"
        } else {
            ""
        };
        assert!(
            t.starts_with(&format!(
                r#"{{"success":true,"ret_msg":"{ok_msg}","conn_id":""#
            )),
            "{cat}: {t}"
        );
        assert!(
            t.ends_with(r#","req_id":"r1","op":"subscribe"}"#),
            "{cat}: {t}"
        );
        // Without a req_id: spot leaves it out, futures send "".
        c.send(r#"{"op":"subscribe","args":["publicTrade.ETHUSDT"]}"#)
            .await;
        let t = c.text().await;
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        match cat {
            Category::Spot => assert!(v.get("req_id").is_none(), "{t}"),
            _ => assert_eq!(v["req_id"], "", "{t}"),
        }
        let ack = ack_of(&t);
        assert!(ack.success);
        // Pongs: {"success":true,"ret_msg":"pong","conn_id":..,"req_id":..,"op":"ping"}.
        c.send(r#"{"req_id":"p1","op":"ping"}"#).await;
        let t = c.text().await;
        assert!(
            t.starts_with(r#"{"success":true,"ret_msg":"pong","conn_id":""#),
            "{t}"
        );
        assert!(t.ends_with(r#","req_id":"p1","op":"ping"}"#), "{t}");
        assert!(matches!(decode(&t), Ok(Frame::Pong(p)) if p.req_id.as_deref() == Some("p1")));
        c.send(r#"{"op":"ping"}"#).await;
        let v: serde_json::Value = serde_json::from_str(&c.text().await).unwrap();
        match cat {
            Category::Spot => assert!(v.get("req_id").is_none()),
            _ => assert_eq!(v["req_id"], ""),
        }
        // Unsubscribe is acknowledged in the same shape.
        c.send(r#"{"req_id":"u1","op":"unsubscribe","args":["publicTrade.ETHUSDT"]}"#)
            .await;
        let a = ack_of(&c.text().await);
        assert!(a.success && a.req_id.as_deref() == Some("u1"));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn refusals_name_the_topic_and_keep_the_socket_open() {
    let sim = paused(2).await;
    let mut c = Client::connect(&sim.ws_url(Category::Linear)).await;
    for (topic, why) in [
        ("orderbook.50.NOPEUSDT", "handler not found"),
        ("orderbook.500.BTCUSDT", "handler not found"),
        ("publicTrade.btcusdt", "handler not found"),
        ("tickers.BTCUSDT", "handler not found"),
    ] {
        let ack = c.subscribe("e1", &[topic]).await;
        assert_eq!(ack["success"], false);
        assert_eq!(ack["ret_msg"], format!("error:{why},topic:{topic}"));
        assert_eq!(ack["req_id"], "e1");
        assert_eq!(ack_of(&ack.to_string()).refused_topic(), Some(topic));
    }
    let ack = c.subscribe("e5", &["orderbook.1.ETHUSDT"]).await;
    assert_eq!(ack["success"], true);
    let _snapshot = c.text().await;
    let ack = c.subscribe("e6", &["orderbook.1.ETHUSDT"]).await;
    assert_eq!(
        ack["ret_msg"],
        "error:already subscribed,topic:orderbook.1.ETHUSDT"
    );
    c.send(r#"{"op":"nope","req_id":"x"}"#).await;
    let t = c.text().await;
    let a = ack_of(&t);
    assert!(!a.success && a.ret_msg == "error:invalid op", "{t}");
    c.send("hello").await;
    let t = c.text().await;
    let a = ack_of(&t);
    assert!(
        !a.success && a.ret_msg.starts_with("Failed to decode incoming data"),
        "{t}"
    );
    c.send(r#"{"op":"ping","req_id":"still"}"#).await;
    assert!(
        c.text().await.contains(r#""ret_msg":"pong""#),
        "socket stays open"
    );

    // Spot refuses a request with more than 10 args as a whole: nothing is subscribed.
    let mut s = Client::connect(&sim.ws_url(Category::Spot)).await;
    let mut args = vec!["orderbook.1.BTCUSDT", "orderbook.50.BTCUSDT"];
    args.extend(["publicTrade.BTCUSDT"; 9]);
    let ack = s.subscribe("big", &args).await;
    assert_eq!(ack["success"], false);
    assert_eq!(ack["ret_msg"], "args size >10");
    assert!(ack.to_string().contains("args size >10"));
    sim.step(200);
    assert!(
        s.drain(Duration::from_millis(300)).await.is_empty(),
        "a refused request delivers nothing"
    );
    sim.shutdown().await;
}

/// Text frames until one satisfies `done` (included), within a hang guard.
async fn read_until(c: &mut Client, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    loop {
        let text = c.text().await;
        let last = done(&text);
        out.push(text);
        if last {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the awaited frame never came"
        );
    }
}

/// A book built by applying deltas without any truncation, to prove the window rule itself.
#[derive(Default)]
struct RawBook {
    bids: BTreeMap<Decimal, Decimal>,
    asks: BTreeMap<Decimal, Decimal>,
}

impl RawBook {
    fn apply(&mut self, kind: BookKind, bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)]) {
        if kind == BookKind::Snapshot {
            self.bids.clear();
            self.asks.clear();
        }
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for &(p, q) in levels {
                if q.is_zero() {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
    }
    fn as_true(&self) -> (Vec<Pair>, Vec<Pair>) {
        (
            self.bids.iter().rev().map(|(p, q)| (*p, *q)).collect(),
            self.asks.iter().map(|(p, q)| (*p, *q)).collect(),
        )
    }
}

fn fixed_decimals(text: &str, decimals: usize) -> bool {
    text == "0"
        || text
            .split_once('.')
            .is_some_and(|(_, f)| f.len() == decimals)
}

#[tokio::test]
async fn deltas_are_contiguous_and_rebuild_exactly_the_true_book() {
    let sim = paused(3).await;
    for cat in [Category::Linear, Category::Spot, Category::Inverse] {
        let mut c = Client::connect(&sim.ws_url(cat)).await;
        let topics = [
            "orderbook.1.BTCUSDT",
            "orderbook.50.BTCUSDT",
            "orderbook.200.BTCUSDT",
            "orderbook.1000.BTCUSDT",
        ];
        assert_eq!(c.subscribe("b", &topics).await["success"], true);
        for _ in 0..4 {
            sim.step(1000);
        }
        // The market is paused: read until every depth reached its true book's `u` (the frames
        // themselves, however slowly a loaded machine delivers them).
        let mut want: HashMap<u16, u64> = HashMap::new();
        for depth in [1u16, 50, 200, 1000] {
            want.insert(depth, sim.book(cat, "BTCUSDT", depth).expect("true book").u);
        }
        let mut frames = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !want.is_empty() {
            let text = c.text().await;
            if let Ok(Frame::Book(b)) = decode(&text) {
                if want.get(&b.depth) == Some(&b.u) {
                    want.remove(&b.depth);
                }
            }
            frames.push(text);
            assert!(
                std::time::Instant::now() < deadline,
                "{cat}: still waiting for {want:?}"
            );
        }
        let mut books: HashMap<u16, OrderBook> = HashMap::new();
        let mut raw: HashMap<u16, RawBook> = HashMap::new();
        let mut deltas = HashMap::<u16, usize>::new();
        // BTC prices carry two decimals in every category here (ticks 0.10, 0.01, 0.50).
        let price_decimals = 2;
        for text in &frames {
            let Ok(Frame::Book(b)) = decode(text) else {
                panic!("unexpected frame {text}");
            };
            // Key order: spot (all depths) and futures level 1 put `ts` before `type`.
            let ts_first = cat == Category::Spot || b.depth == 1;
            assert_eq!(
                text.find("\"ts\"") < text.find("\"type\""),
                ts_first,
                "{text}"
            );
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            for side in ["b", "a"] {
                for l in v["data"][side].as_array().unwrap() {
                    assert!(
                        fixed_decimals(l[0].as_str().unwrap(), price_decimals),
                        "{text}"
                    );
                }
            }
            let book = books
                .entry(b.depth)
                .or_insert_with(|| OrderBook::new("BTCUSDT", b.depth));
            let prior = book.last_u();
            let outcome = book.apply(&b);
            match outcome {
                Outcome::Snapshot if b.depth == 1 => {
                    // Level 1 is snapshot-only; its `u` still advances by one per change.
                    assert!(prior.is_none() || Some(b.u) == prior.map(|u| u + 1));
                }
                Outcome::Repeat if b.depth == 1 => {}
                Outcome::Snapshot => assert!(prior.is_none(), "one snapshot, on subscribe"),
                Outcome::Delta => {
                    assert_eq!(Some(b.u), prior.map(|u| u + 1));
                    *deltas.entry(b.depth).or_default() += 1;
                }
                other => panic!("depth {}: {other:?} at u {}", b.depth, b.u),
            }
            if b.depth == 1 {
                assert_eq!(b.kind, BookKind::Snapshot, "level 1 is snapshot-only");
            }
            let r = raw.entry(b.depth).or_default();
            r.apply(b.kind, &pairs(&b.bids), &pairs(&b.asks));
            let n = usize::from(b.depth);
            assert!(
                r.bids.len() <= n && r.asks.len() <= n,
                "levels leaving the window are sent as 0"
            );
        }
        for depth in [1u16, 50, 200, 1000] {
            assert!(
                depth == 1 || deltas.get(&depth).copied().unwrap_or(0) > 20,
                "{cat} {depth}"
            );
            let truth: TrueBook = sim.book(cat, "BTCUSDT", depth).expect("true book");
            let book = &books[&depth];
            assert_eq!(book.last_u(), Some(truth.u), "{cat} depth {depth}");
            assert_eq!(pairs(book.bids()), truth.bids, "{cat} depth {depth} bids");
            assert_eq!(pairs(book.asks()), truth.asks, "{cat} depth {depth} asks");
            assert_eq!(
                raw[&depth].as_true(),
                (truth.bids.clone(), truth.asks.clone())
            );
            assert_eq!(truth.bids.len(), usize::from(depth));
            // GET /sim/book says the same.
            let url = format!(
                "{}/sim/book?symbol=BTCUSDT&category={cat}&depth={depth}",
                sim.rest_url()
            );
            let http: TrueBook = serde_json::from_value(get_json(&url).await).unwrap();
            assert_eq!(http, truth);
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn level1_repeats_an_unchanged_snapshot_with_the_same_u() {
    let sim = start(SimConfig {
        start_paused: true,
        level1_repeat: Duration::from_millis(200),
        ..SimConfig::for_tests(4)
    })
    .await;
    let mut c = Client::connect(&sim.ws_url(Category::Linear)).await;
    c.subscribe("l1", &["orderbook.1.BTCUSDT"]).await;
    let first = c.text().await;
    let second = c.text().await;
    let third = c.text().await;
    let (Ok(Frame::Book(a)), Ok(Frame::Book(b)), Ok(Frame::Book(r))) =
        (decode(&first), decode(&second), decode(&third))
    else {
        panic!("three book frames expected: {first} / {second} / {third}");
    };
    assert_eq!((a.u, b.u, r.u), (a.u, a.u, a.u), "same u");
    assert_eq!(
        (a.bids.clone(), a.asks.clone()),
        (b.bids.clone(), b.asks.clone())
    );
    // Two repeats are level1_repeat apart on the exchange's clock (the frames' ts), however
    // late this loaded machine reads them.
    assert!(
        r.ts_ms - b.ts_ms >= 200,
        "repeats {} ms apart, expected at least 200",
        r.ts_ms - b.ts_ms
    );
    let mut book = OrderBook::new("BTCUSDT", 1);
    assert_eq!(book.apply(&a), Outcome::Snapshot);
    assert_eq!(book.apply(&b), Outcome::Repeat);
    sim.shutdown().await;
}

#[tokio::test]
async fn trades_have_each_categorys_shape_and_sweeps_share_one_seq() {
    let sim = paused(5).await;
    let mut lin = Client::connect(&sim.ws_url(Category::Linear)).await;
    let mut spot = Client::connect(&sim.ws_url(Category::Spot)).await;
    sim.step(300);
    // No trade replay on subscribe.
    lin.subscribe("t", &["publicTrade.BTCUSDT", "orderbook.50.BTCUSDT"])
        .await;
    spot.subscribe("t", &["publicTrade.BTCUSDT"]).await;
    let snap = lin.text().await;
    assert!(snap.contains("\"snapshot\""));
    assert!(
        lin.drain(Duration::from_millis(200)).await.is_empty(),
        "no replay"
    );
    assert!(
        spot.drain(Duration::from_millis(200)).await.is_empty(),
        "no replay"
    );
    sim.step(4000);
    // The market is paused: read until the last frames of the step arrived (the linear book's
    // true `u`, the spot journal's last trade), however slowly a loaded machine delivers them.
    let lin_u = sim
        .book(Category::Linear, "BTCUSDT", 50)
        .expect("true book")
        .u;
    let lin_frames = read_until(
        &mut lin,
        |t| matches!(decode(t), Ok(Frame::Book(b)) if b.u == lin_u),
    )
    .await;
    let last_spot = sim
        .journal_query(&hft_connector::sim::JournalQuery {
            symbol: Some("BTCUSDT"),
            kind: Some("trade"),
            category: Some("spot"),
            ..Default::default()
        })
        .into_iter()
        .rev()
        .find_map(|e| match e {
            hft_connector::normalized::Event::Trade(t) => Some(t.id),
            _ => None,
        })
        .expect("spot traded");
    let spot_frames = read_until(&mut spot, |t| t.contains(&format!("\"{last_spot}\""))).await;
    let mut multi = 0;
    let mut checked_book = false;
    for (n, text) in lin_frames.iter().enumerate() {
        let Ok(Frame::Trades(t)) = decode(text) else {
            continue;
        };
        assert!(text.starts_with(r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":"#));
        for tr in &t.trades {
            assert!(tr.tick_direction.is_some(), "futures carry L");
            assert_eq!(tr.id.len(), 36, "uuid-like id {}", tr.id);
            assert_eq!(tr.id.matches('-').count(), 4);
            assert_eq!(tr.price.scale(), 2, "109378.90-style price");
            assert_eq!(tr.qty.scale(), 3);
        }
        let seq = t.trades[0].seq;
        assert!(t
            .trades
            .iter()
            .all(|x| x.seq == seq && x.ts_ms == t.trades[0].ts_ms));
        if t.trades.len() > 1 {
            multi += 1;
        }
        // The book delta of the same step carries the same seq, and cts equals the trade time.
        if let Some(Ok(Frame::Book(b))) = lin_frames.get(n + 1).map(|f| decode(f)) {
            assert_eq!(b.seq, seq);
            assert_eq!(b.cts_ms, Some(t.trades[0].ts_ms));
            checked_book = true;
        }
    }
    assert!(multi > 0, "some sweeps fill several levels");
    assert!(checked_book);
    let mut spot_ids = Vec::new();
    for text in &spot_frames {
        let Ok(Frame::Trades(t)) = decode(text) else {
            panic!("{text}");
        };
        assert!(
            text.starts_with(r#"{"topic":"publicTrade.BTCUSDT","ts":"#),
            "{text}"
        );
        for tr in &t.trades {
            assert!(tr.tick_direction.is_none(), "spot has no L");
            assert!(tr.id.bytes().all(|b| b.is_ascii_digit()));
            spot_ids.push(tr.id.parse::<u64>().unwrap());
        }
    }
    assert!(!spot_ids.is_empty());
    assert!(spot_ids.windows(2).all(|w| w[1] > w[0]), "spot ids ascend");
    sim.shutdown().await;
}
