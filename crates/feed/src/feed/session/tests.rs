//! The session's transitions, driven by hand: no socket, no runtime, no sleeping; time is a value.

use std::cell::Cell;
use std::time::Duration;

use rust_decimal::Decimal;

use super::*;
use crate::feed::event::ResyncReason;
use crate::protocol::rest::RestTrade;
use crate::protocol::ws::Side;

pub(super) const BTC: &str = "BTCUSDT";
pub(super) const ETH: &str = "ETHUSDT";

pub(super) fn config(symbols: &[&str], trades: bool) -> SessionConfig {
    SessionConfig {
        category: Category::Linear,
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        depth: 50,
        trades,
        ping_every_ms: 20_000,
        pong_timeout_ms: 10_000,
        subscribe_timeout_ms: 10_000,
        check_every_ms: 5_000,
        stale: StaleRule {
            stale_after: Duration::from_secs(60),
            grace: Duration::from_secs(30),
        },
    }
}

/// A moment `ms` after start (the wall clock is 1.7e12 ms ahead of the monotonic one).
pub(super) fn at(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        unix_ns: (1_700_000_000_000 + ms) * 1_000_000,
    }
}

pub(super) fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// The JSON of every `Send`.
pub(super) fn sent(actions: &[Action]) -> Vec<serde_json::Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(t) => Some(serde_json::from_str(t).expect("requests are JSON")),
            _ => None,
        })
        .collect()
}

pub(super) fn emitted(actions: &[Action]) -> Vec<FeedEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn ack(req_id: &str, success: bool, ret_msg: &str) -> String {
    format!(
        r#"{{"success":{success},"ret_msg":"{ret_msg}","conn_id":"c1","req_id":"{req_id}","op":"subscribe"}}"#
    )
}

pub(super) fn book(symbol: &str, kind: &str, u: u64, bid: &str) -> String {
    format!(
        r#"{{"topic":"orderbook.50.{symbol}","type":"{kind}","ts":{u},"data":{{"s":"{symbol}","b":[["{bid}","1"]],"a":[["101","1"]],"u":{u},"seq":{u}}},"cts":{u}}}"#
    )
}

pub(super) fn trade(symbol: &str, id: &str, ts: u64) -> String {
    format!(
        r#"{{"topic":"publicTrade.{symbol}","type":"snapshot","ts":{ts},"data":[{{"T":{ts},"s":"{symbol}","S":"Buy","v":"1","p":"100","L":"PlusTick","i":"{id}","BT":false,"seq":{ts}}}]}}"#
    )
}

pub(super) fn rest(id: &str, ts: u64) -> RestTrade {
    RestTrade {
        id: id.into(),
        symbol: BTC.into(),
        price: Decimal::from(100),
        qty: Decimal::ONE,
        side: Side::Buy,
        ts_ms: ts,
        block: false,
        rpi: false,
        seq: Some(ts),
    }
}

/// Ids of emitted trades, with whether each was recovered from REST.
pub(super) fn trades_of(actions: &[Action]) -> Vec<(String, bool)> {
    emitted(actions)
        .into_iter()
        .filter_map(|e| match e {
            FeedEvent::Trade(t) => Some((t.id, t.recovered)),
            _ => None,
        })
        .collect()
}

pub(super) fn never_asked(_: &[String]) -> (String, Option<u64>) {
    panic!("staleness judged when no check was due")
}

/// Connects (connection `number`) at `t` and confirms every subscription at `t + 5`.
pub(super) fn live(s: &mut Session, books: &Books, number: u64, t: u64) -> Vec<Action> {
    s.connected(at(t), number, books);
    let subs = sent(&drain(s));
    for sub in &subs {
        let id = sub["req_id"].as_str().expect("a req_id");
        s.on_text(&ack(id, true, ""), at(t + 5), books);
    }
    drain(s)
}

#[test]
fn subscribes_then_goes_live_only_when_every_ack_is_verified() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC, ETH], true));
    s.connected(at(0), 1, &books);
    let actions = drain(&mut s);
    assert_eq!(actions[0], Action::SetState(ConnState::Subscribing));
    let subs = sent(&actions);
    assert_eq!(subs.len(), 1, "four topics fit one linear request");
    assert_eq!(subs[0]["op"], "subscribe");
    assert_eq!(
        subs[0]["args"],
        serde_json::json!([
            "publicTrade.BTCUSDT",
            "orderbook.50.BTCUSDT",
            "publicTrade.ETHUSDT",
            "orderbook.50.ETHUSDT"
        ])
    );
    // Data and an unrelated ack before the confirmation do not make it live.
    s.on_text(&ack("someone-else", true, ""), at(1), &books);
    s.on_text(&trade(BTC, "t1", 1), at(2), &books);
    assert!(!s.is_live());
    assert!(!drain(&mut s).contains(&Action::Live));
    let id = subs[0]["req_id"].as_str().unwrap_or_default().to_string();
    s.on_text(&ack(&id, true, ""), at(3), &books);
    let actions = drain(&mut s);
    assert!(s.is_live());
    assert_eq!(actions[0], Action::Live);
    assert_eq!(actions[1], Action::SetState(ConnState::Live));
    assert_eq!(
        emitted(&actions)[0],
        FeedEvent::Connected {
            category: "linear".into(),
            symbols: vec![BTC.into(), ETH.into()],
            connection: 1,
        }
    );
    // First connection: nothing to gap-fill, the trade held back while subscribing flows.
    assert_eq!(trades_of(&actions), vec![("t1".to_string(), false)]);
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::FetchRecentTrades { .. })));
}

#[test]
fn a_refused_topic_is_down_and_ends_the_connection() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC], true));
    s.connected(at(0), 1, &books);
    let id = sent(&drain(&mut s))[0]["req_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let msg = "error:handler not found,topic:orderbook.50.BTCUSDT";
    s.on_text(&ack(&id, false, msg), at(1), &books);
    let actions = drain(&mut s);
    assert_eq!(
        actions,
        vec![
            Action::CountError,
            Action::SetState(ConnState::Refused),
            Action::Emit(FeedEvent::SubscriptionRefused {
                topic: "orderbook.50.BTCUSDT".into(),
                ret_msg: msg.into(),
            }),
            Action::Close(DisconnectReason::SubscribeRefused(format!(
                "orderbook.50.BTCUSDT: {msg}"
            ))),
        ]
    );
    assert_eq!(
        ConnState::Refused.status(),
        "down",
        "operators see it as down"
    );
    assert!(!s.is_live());
    assert_eq!(s.next_deadline(), None, "an ended connection has no timers");
    s.on_text(&trade(BTC, "t1", 1), at(2), &books);
    assert!(drain(&mut s).is_empty(), "nothing happens after the end");
}

#[test]
fn missing_acks_time_out() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC], true));
    s.connected(at(0), 1, &books);
    drain(&mut s);
    assert_eq!(s.next_deadline(), Some(5_000), "the first stale check");
    s.on_timer(at(5_000), never_asked);
    assert!(
        drain(&mut s).is_empty(),
        "not judged stale before going live"
    );
    assert_eq!(s.next_deadline(), Some(10_000));
    s.on_timer(at(10_000), never_asked);
    assert_eq!(
        drain(&mut s),
        vec![Action::Close(DisconnectReason::SubscribeTimeout)]
    );
}

#[test]
fn an_unanswered_ping_times_out_and_a_pong_clears_it() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC], false));
    live(&mut s, &books, 1, 0);
    let fresh = |_: &[String]| (BTC.to_string(), Some(19_000));
    s.on_timer(at(20_000), fresh);
    let pings = sent(&drain(&mut s));
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0]["op"], "ping");
    assert_eq!(s.next_deadline(), Some(25_000));
    // Answered: the next ping's deadline is the only pong deadline.
    s.on_text(
        r#"{"success":true,"ret_msg":"pong","conn_id":"c1","req_id":"x","op":"ping"}"#,
        at(21_000),
        &books,
    );
    s.on_timer(at(30_000), |_| (BTC.to_string(), Some(29_000)));
    assert!(drain(&mut s).is_empty(), "answered in time");
    s.on_timer(at(40_000), |_| (BTC.to_string(), Some(39_000)));
    assert_eq!(sent(&drain(&mut s)).len(), 1, "the next ping");
    assert_eq!(s.next_deadline(), Some(45_000));
    s.on_timer(at(49_999), |_| (BTC.to_string(), Some(49_000)));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.next_deadline(), Some(50_000), "the pong deadline");
    s.on_timer(at(50_000), never_asked);
    assert_eq!(
        drain(&mut s),
        vec![Action::Close(DisconnectReason::PongTimeout)]
    );
}

#[test]
fn stale_is_judged_per_symbol_after_the_grace_period() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC, ETH], false));
    live(&mut s, &books, 1, 0); // live at 5 ms
    let asked = Cell::new(0);
    // Within the grace period nothing is stale, even with no data at all.
    s.on_timer(at(25_000), |_| {
        asked.set(asked.get() + 1);
        (ETH.to_string(), None)
    });
    assert!(
        drain(&mut s).iter().all(|a| matches!(a, Action::Send(_))),
        "only a ping"
    );
    s.on_text(
        r#"{"success":true,"ret_msg":"pong","conn_id":"c1","req_id":"x","op":"ping"}"#,
        at(26_000),
        &books,
    );
    drain(&mut s);
    // BTCUSDT flows, ETHUSDT went quiet at 4 s: 56 s idle at 60 s, stale at the next check.
    s.on_timer(at(60_000), |syms| {
        asked.set(asked.get() + 1);
        assert_eq!(syms, [BTC.to_string(), ETH.to_string()]);
        (ETH.to_string(), Some(4_000))
    });
    assert!(!drain(&mut s).iter().any(|a| matches!(a, Action::Close(_))));
    s.on_timer(at(65_005), |_| {
        asked.set(asked.get() + 1);
        (ETH.to_string(), Some(4_000))
    });
    assert_eq!(asked.get(), 3, "asked once per due check");
    let actions = drain(&mut s);
    let stale = FeedEvent::Stale {
        seconds_since_last_event: 61.005,
        stale_threshold: 60.0,
        symbol: ETH.into(),
    };
    assert_eq!(
        actions,
        vec![
            Action::CountStale(ETH.into()),
            Action::SetState(ConnState::Stale),
            Action::Emit(stale),
            Action::Close(DisconnectReason::Stale),
        ]
    );
}

#[test]
fn a_gap_resubscribes_the_topic_once_and_publishes_nothing_until_a_snapshot() {
    let books = Books::default();
    let mut s = Session::new(config(&[ETH], false));
    live(&mut s, &books, 1, 0);
    s.on_text(&book(ETH, "snapshot", 10, "100"), at(10), &books);
    s.on_text(&book(ETH, "delta", 11, "99"), at(11), &books);
    let data = emitted(&drain(&mut s));
    assert!(
        matches!(&data[..], [FeedEvent::Book(a), FeedEvent::Book(b)] if a.u == 10 && b.u == 11)
    );
    s.on_text(&book(ETH, "delta", 13, "98"), at(12), &books);
    let actions = drain(&mut s);
    assert_eq!(
        emitted(&actions),
        vec![FeedEvent::Resync {
            symbol: ETH.into(),
            depth: 50,
            reason: ResyncReason::Gap,
        }]
    );
    let requests = sent(&actions);
    let ops: Vec<&str> = requests.iter().filter_map(|r| r["op"].as_str()).collect();
    assert_eq!(ops, ["unsubscribe", "subscribe"]);
    assert_eq!(
        requests[1]["args"],
        serde_json::json!(["orderbook.50.ETHUSDT"])
    );
    // Deltas while resyncing are dropped and do not resubscribe again.
    s.on_text(&book(ETH, "delta", 14, "98"), at(13), &books);
    assert_eq!(drain(&mut s), vec![Action::MarketEvent(ETH.into())]);
    let sub_id = requests[1]["req_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    s.on_text(&ack(&sub_id, true, ""), at(14), &books);
    assert!(
        emitted(&drain(&mut s)).is_empty(),
        "a resubscription is not a new connection"
    );
    s.on_text(&book(ETH, "snapshot", 30, "100"), at(15), &books);
    let data = emitted(&drain(&mut s));
    assert!(matches!(&data[..], [FeedEvent::Book(b)] if b.u == 30));
    let synced = books.read().map(|b| b[ETH].is_synced()).unwrap_or(false);
    assert!(synced);
}

#[test]
fn a_restart_snapshot_replaces_the_book_without_resubscribing() {
    let books = Books::default();
    let mut s = Session::new(config(&[ETH], false));
    live(&mut s, &books, 1, 0);
    s.on_text(&book(ETH, "snapshot", 20, "100"), at(10), &books);
    drain(&mut s);
    s.on_text(&book(ETH, "snapshot", 1, "99"), at(11), &books);
    let actions = drain(&mut s);
    assert!(sent(&actions).is_empty());
    let events = emitted(&actions);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        FeedEvent::Resync {
            symbol: ETH.into(),
            depth: 50,
            reason: ResyncReason::Restart
        }
    );
    assert!(
        matches!(&events[1], FeedEvent::Book(b) if b.u == 1 && b.category.as_deref() == Some("linear"))
    );
}

#[test]
fn a_crossed_book_is_resynced_and_never_published() {
    let books = Books::default();
    let mut s = Session::new(config(&[ETH], false));
    live(&mut s, &books, 1, 0);
    s.on_text(&book(ETH, "snapshot", 10, "100"), at(10), &books);
    drain(&mut s);
    s.on_text(&book(ETH, "delta", 11, "101"), at(11), &books);
    let actions = drain(&mut s);
    assert_eq!(
        emitted(&actions),
        vec![FeedEvent::Resync {
            symbol: ETH.into(),
            depth: 50,
            reason: ResyncReason::Crossed
        }]
    );
    assert_eq!(sent(&actions).len(), 2, "unsubscribe, subscribe");
}

#[test]
fn a_new_connection_invalidates_every_book() {
    let books = Books::default();
    let mut s = Session::new(config(&[ETH], false));
    live(&mut s, &books, 1, 0);
    s.on_text(&book(ETH, "snapshot", 10, "100"), at(10), &books);
    s.connected(at(20), 2, &books);
    let synced = books.read().map(|b| b[ETH].is_synced()).unwrap_or(true);
    assert!(!synced, "deltas wait for the new connection's snapshot");
}

#[test]
fn malformed_frames_are_counted_reported_and_skipped() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC], true));
    live(&mut s, &books, 1, 0);
    s.on_text("{not json", at(10), &books);
    s.on_binary(3, at(11));
    let actions = drain(&mut s);
    assert_eq!(
        actions.iter().filter(|a| **a == Action::CountError).count(),
        2
    );
    let errors: Vec<String> = emitted(&actions)
        .into_iter()
        .filter_map(|e| match e {
            FeedEvent::Malformed { error } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(errors[1].contains("binary frame of 3 bytes"), "{errors:?}");
    s.on_text(&trade(BTC, "a", 100), at(12), &books);
    assert_eq!(trades_of(&drain(&mut s)).len(), 1, "processing went on");
}

#[test]
fn the_session_touches_no_io_clock_or_runtime() {
    let sources = [
        ("mod.rs", include_str!("mod.rs")),
        ("books.rs", include_str!("books.rs")),
        ("trades.rs", include_str!("trades.rs")),
    ];
    for (file, src) in sources {
        for io in [
            "tokio",
            "futures",
            "tungstenite",
            "reqwest",
            "std::net",
            "std::fs",
            "SystemTime",
            "Instant",
            "async fn",
            ".await",
        ] {
            assert!(!src.contains(io), "session/{file} uses {io}");
        }
    }
}
