//! The normalizer (`decode`) and the live feed's session see the same book frames and must report
//! them the same way, event for event: gaps, `u == 1` restarts, crossed books, level-1 repeats, stale
//! and early deltas, mid-stream snapshots, and real Bybit frames. Once through the session directly,
//! once through a running feed over a loopback WebSocket.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hft_core::normalized::{BookEvent, Event};
use hft_core::normalizer::Normalizer;
use hft_core::protocol::ws::{decode, Received};
use hft_feed::feed::health::StaleRule;
use hft_feed::feed::session::{Action, Books, Now, Session, SessionConfig};
use hft_feed::feed::{Feed, FeedConfig, FeedEvent, ResyncReason};
use hft_feed::protocol::Category;
use tokio_tungstenite::tungstenite::Message;

/// What a consumer learns about a book, in either output.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// Publishable book data.
    Book(Box<BookEvent>),
    /// The book is being resynchronised, and why.
    Resync {
        symbol: String,
        depth: u16,
        reason: ResyncReason,
    },
}

fn recv_ns(i: usize) -> u64 {
    1_700_000_000_000_000_000 + i as u64 * 1_000
}

/// Per frame: what the normalizer reports, and the dropped updates (which the feed only logs).
fn normalizer_view(category: &str, frames: &[String]) -> (Vec<Vec<Seen>>, Vec<Vec<Event>>) {
    let mut n = Normalizer::new(None).with_category(category);
    let mut seen = Vec::new();
    let mut dropped = Vec::new();
    for (i, text) in frames.iter().enumerate() {
        let frame = decode(text).expect("test frames decode");
        let mut out = Vec::new();
        n.push(
            &Received {
                recv_ns: Some(recv_ns(i)),
                frame,
            },
            &mut out,
        );
        let (mut s, mut d) = (Vec::new(), Vec::new());
        for ev in out {
            let resync = |symbol: &str, depth, reason| Seen::Resync {
                symbol: symbol.to_string(),
                depth,
                reason,
            };
            match ev {
                Event::Book(b) => s.push(Seen::Book(Box::new(b))),
                Event::BookGap(g) => s.push(resync(&g.symbol, g.depth, ResyncReason::Gap)),
                Event::BookReset(r) => s.push(resync(&r.symbol, r.depth, ResyncReason::Restart)),
                Event::BookCrossed(c) => s.push(resync(&c.symbol, c.depth, ResyncReason::Crossed)),
                Event::BookStale(_) | Event::BookAwaitingSnapshot(_) => d.push(ev),
                other => panic!("unexpected normalized event {other:?}"),
            }
        }
        seen.push(s);
        dropped.push(d);
    }
    (seen, dropped)
}

/// Per frame: what the live feed's session emits, once its connection is live.
fn feed_view(category: Category, symbol: &str, depth: u16, frames: &[String]) -> Vec<Vec<Seen>> {
    let mut s = Session::new(SessionConfig {
        category,
        symbols: vec![symbol.to_string()],
        depth,
        trades: false,
        ping_every_ms: 20_000,
        pong_timeout_ms: 10_000,
        subscribe_timeout_ms: 10_000,
        check_every_ms: 5_000,
        stale: StaleRule {
            stale_after: Duration::from_secs(60),
            grace: Duration::from_secs(30),
        },
    });
    let books = Books::default();
    let now = |i: usize| Now {
        mono_ms: i as u64,
        unix_ns: recv_ns(i),
    };
    s.connected(now(0), 1, &books);
    let mut ids = Vec::new();
    while let Some(a) = s.poll_action() {
        if let Action::Send(text) = a {
            let v: serde_json::Value = serde_json::from_str(&text).expect("JSON request");
            ids.push(v["req_id"].as_str().unwrap_or_default().to_string());
        }
    }
    for id in ids {
        let ack = format!(
            r#"{{"success":true,"ret_msg":"","conn_id":"c","req_id":"{id}","op":"subscribe"}}"#
        );
        s.on_text(&ack, now(0), &books);
    }
    while s.poll_action().is_some() {}
    assert!(s.is_live());
    frames
        .iter()
        .enumerate()
        .map(|(i, text)| {
            s.on_text(text, now(i), &books);
            std::iter::from_fn(|| s.poll_action())
                .filter_map(|a| match a {
                    Action::Emit(FeedEvent::Book(b)) => Some(Seen::Book(b)),
                    Action::Emit(FeedEvent::Resync {
                        symbol,
                        depth,
                        reason,
                    }) => Some(Seen::Resync {
                        symbol,
                        depth,
                        reason,
                    }),
                    Action::Emit(other) => panic!("unexpected feed event {other:?}"),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

fn book(topic_depth: u16, symbol: &str, kind: &str, u: u64, bids: &str, asks: &str) -> String {
    format!(
        r#"{{"topic":"orderbook.{topic_depth}.{symbol}","type":"{kind}","ts":{u},"data":{{"s":"{symbol}","b":{bids},"a":{asks},"u":{u},"seq":{u}}},"cts":{u}}}"#
    )
}

/// Both views agree on every frame; returns the agreed view and the normalizer's dropped updates.
fn agree(
    category: Category,
    symbol: &str,
    depth: u16,
    frames: &[String],
) -> (Vec<Vec<Seen>>, Vec<Vec<Event>>) {
    let (normalized, dropped) = normalizer_view(category.as_str(), frames);
    let live = feed_view(category, symbol, depth, frames);
    for (i, (n, f)) in normalized.iter().zip(&live).enumerate() {
        assert_eq!(n, f, "frame {i} ({}) is reported differently", frames[i]);
    }
    assert_eq!(normalized.len(), live.len());
    (normalized, dropped)
}

fn kinds(view: &[Vec<Seen>]) -> Vec<Vec<String>> {
    view.iter()
        .map(|evs| {
            evs.iter()
                .map(|e| match e {
                    Seen::Book(b) => format!("book u={}", b.u),
                    Seen::Resync { reason, .. } => format!("resync {reason:?}"),
                })
                .collect()
        })
        .collect()
}

/// ETHUSDT at depth 50: every book situation, in one stream.
fn scenario() -> Vec<String> {
    let b = |kind: &str, u: u64, bids: &str| book(50, "ETHUSDT", kind, u, bids, r#"[["101","1"]]"#);
    let one = r#"[["100","1"]]"#;
    vec![
        b("delta", 5, "[]"),                    // before any snapshot: dropped
        b("snapshot", 10, one),                 // the book
        b("delta", 11, r#"[["99","2"]]"#),      // contiguous
        b("delta", 11, r#"[["98","2"]]"#),      // duplicate u: stale, dropped
        b("delta", 9, "[]"),                    // old u: stale, dropped
        b("delta", 13, "[]"),                   // gap
        b("delta", 14, "[]"),                   // awaiting the fresh snapshot: dropped
        b("snapshot", 20, one),                 // the fresh snapshot
        b("snapshot", 1, one),                  // Bybit restarted: u = 1
        b("delta", 2, r#"[["101","1"]]"#),      // crosses the book
        b("delta", 3, "[]"),                    // awaiting a snapshot: dropped
        b("snapshot", 40, one),                 // fresh again
        b("delta", 41, r#"[["100","0"]]"#),     // deletes the best bid
        b("snapshot", 45, r#"[["99.5","3"]]"#), // a snapshot mid-stream replaces the book
        b("delta", 46, "[]"),
    ]
}

#[test]
fn gap_restart_crossed_stale_and_snapshot_resets_are_reported_alike() {
    let frames = scenario();
    let (view, dropped) = agree(Category::Linear, "ETHUSDT", 50, &frames);
    let expected: Vec<Vec<&str>> = vec![
        vec![],
        vec!["book u=10"],
        vec!["book u=11"],
        vec![],
        vec![],
        vec!["resync Gap"],
        vec![],
        vec!["book u=20"],
        vec!["resync Restart", "book u=1"],
        vec!["resync Crossed"],
        vec![],
        vec!["book u=40"],
        vec!["book u=41"],
        vec!["book u=45"],
        vec!["book u=46"],
    ];
    assert_eq!(kinds(&view), expected);
    // What the feed leaves out are exactly the dropped updates, which it logs instead.
    let dropped_at: Vec<usize> = (0..frames.len())
        .filter(|&i| !dropped[i].is_empty())
        .collect();
    assert_eq!(dropped_at, vec![0, 3, 4, 6, 10]);
    assert!(matches!(dropped[3][..], [Event::BookStale(_)]));
    assert!(matches!(dropped[6][..], [Event::BookAwaitingSnapshot(_)]));
    // The published book after the mid-stream snapshot is the snapshot's, not a merge.
    let Seen::Book(last) = &view[13][0] else {
        panic!("a book")
    };
    assert_eq!(last.levels, (1, 1));
}

#[test]
fn a_level_one_repeat_is_data_and_a_restart_resets_alike() {
    let b = |u: u64, bid: &str| {
        book(
            1,
            "BTCUSDT",
            "snapshot",
            u,
            &format!(r#"[["{bid}","1"]]"#),
            r#"[["101","1"]]"#,
        )
    };
    let frames = vec![
        b(7, "100"),
        b(7, "100"),
        b(8, "99"),
        b(8, "99"),
        b(1, "98"),
        b(2, "101"),
    ];
    let (view, dropped) = agree(Category::Linear, "BTCUSDT", 1, &frames);
    assert_eq!(
        kinds(&view),
        vec![
            vec!["book u=7"],
            vec!["book u=7"],
            vec!["book u=8"],
            vec!["book u=8"],
            vec!["resync Restart", "book u=1"],
            vec!["resync Crossed"],
        ]
    );
    assert!(dropped.iter().all(Vec::is_empty));
}

#[test]
fn real_bybit_frames_are_reported_alike() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/bybit/");
    let read = |name: &str| std::fs::read_to_string(format!("{dir}{name}")).expect("fixture");
    let spot: Vec<String> = read("spot-ob50-sequence.jsonl")
        .lines()
        .map(String::from)
        .collect();
    let (view, _) = agree(Category::Spot, "BTCUSDT", 50, &spot);
    assert_eq!(
        kinds(&view).concat().len(),
        spot.len(),
        "every real frame is data"
    );
    // The linear capture (lines prefixed with receive ns): its book frames, in order.
    let capture = read("linear-capture.txt");
    let mut by_depth: HashMap<u16, Vec<String>> = HashMap::new();
    for line in capture.lines() {
        let json = line.split_once(' ').map_or(line, |(_, j)| j);
        if let Ok(hft_core::protocol::ws::Frame::Book(u)) = decode(json) {
            by_depth.entry(u.depth).or_default().push(json.to_string());
        }
    }
    assert!(!by_depth.is_empty(), "the capture has book frames");
    for (depth, frames) in by_depth {
        agree(Category::Linear, "BTCUSDT", depth, &frames);
    }
}

/// A one-connection Bybit stand-in on loopback: answers every request (acks, pongs) and sends
/// `frames` once the first subscription is confirmed. Returns the feed's `ws_url`.
async fn scripted_exchange(frames: Vec<String>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        let mut frames = Some(frames);
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let req: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            let (op, id) = (req["op"].as_str().unwrap_or(""), &req["req_id"]);
            let reply = if op == "ping" {
                format!(
                    r#"{{"success":true,"ret_msg":"pong","conn_id":"c","req_id":{id},"op":"ping"}}"#
                )
            } else {
                format!(
                    r#"{{"success":true,"ret_msg":"","conn_id":"c","req_id":{id},"op":"{op}"}}"#
                )
            };
            if ws.send(Message::text(reply)).await.is_err() {
                return;
            }
            for frame in frames
                .take()
                .filter(|_| op == "subscribe")
                .unwrap_or_default()
            {
                if ws.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        }
    });
    (format!("ws://{addr}/v5/public"), task)
}

/// Receive times differ between a replay and a live socket; everything else must not.
fn without_recv_time(seen: Seen) -> Seen {
    match seen {
        Seen::Book(mut b) => {
            b.recv_ns = None;
            Seen::Book(b)
        }
        other => other,
    }
}

#[tokio::test]
async fn a_running_feed_reports_what_decode_reports() {
    let frames = scenario();
    let (normalized, _) = normalizer_view("linear", &frames);
    let expected: Vec<Seen> = normalized
        .into_iter()
        .flatten()
        .map(without_recv_time)
        .collect();
    assert_eq!(expected.len(), 11, "the scenario's data and resyncs");
    let (url, exchange) = scripted_exchange(frames).await;
    let mut cfg = FeedConfig::new(&url, "http://127.0.0.1:9", Category::Linear, &["ETHUSDT"]);
    cfg.feed.trades = false;
    let mut feed = Feed::spawn(cfg).expect("a valid configuration");
    let mut got = Vec::new();
    while got.len() < expected.len() {
        // A guard against a hang only; the feed answers in milliseconds.
        let event = tokio::time::timeout(Duration::from_secs(60), feed.next())
            .await
            .expect("the feed keeps delivering")
            .expect("the feed is running");
        match event {
            FeedEvent::Book(b) => got.push(without_recv_time(Seen::Book(b))),
            FeedEvent::Resync {
                symbol,
                depth,
                reason,
            } => got.push(Seen::Resync {
                symbol,
                depth,
                reason,
            }),
            FeedEvent::Disconnected { reason } => panic!("disconnected: {reason}"),
            _ => {}
        }
    }
    assert_eq!(got, expected);
    feed.shutdown().await;
    exchange.abort();
}
