//! What the NATS sink publishes: feed events turned into (subject, `Nats-Msg-Id`, JSON payload).
//! Subjects are `{prefix}.bybit.{category}.{symbol}.trade|book|status`; payloads are the normalized
//! schema; ids are `{category}.{symbol}.trade.{id}` and `{category}.{symbol}.{depth}.{u}`, the same
//! on every publisher, so JetStream stores each trade and book update once.

use bytes::Bytes;
use serde::Serialize;

use super::config::BooksMode;
use crate::feed::FeedEvent;
use crate::normalized::{BookEvent, Event, Pair, TradeEvent};
use crate::protocol::Category;

/// One message ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Subject.
    pub subject: String,
    /// `Nats-Msg-Id` (status messages have none: each publisher's own).
    pub msg_id: Option<String>,
    /// JSON payload.
    pub payload: Bytes,
}

/// The subject of `kind` (`trade`, `book`, `status`) for `symbol`.
pub fn subject(prefix: &str, category: Category, symbol: &str, kind: &str) -> String {
    format!("{prefix}.bybit.{}.{symbol}.{kind}", category.as_str())
}

/// The de-duplication id of a trade.
pub fn trade_id(category: Category, t: &TradeEvent) -> String {
    format!("{}.{}.trade.{}", category.as_str(), t.symbol, t.id)
}

/// The de-duplication id of a book update.
pub fn book_id(category: Category, b: &BookEvent) -> String {
    format!("{}.{}.{}.{}", category.as_str(), b.symbol, b.depth, b.u)
}

/// `books = "top"`: the top of the book after an update, without the levels.
#[derive(Debug, Serialize)]
struct BookTop<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    category: &'static str,
    depth: u16,
    u: u64,
    seq: Option<u64>,
    ts_ms: u64,
    best_bid: &'a Option<Pair>,
    best_ask: &'a Option<Pair>,
    levels: (usize, usize),
    #[serde(skip_serializing_if = "Option::is_none")]
    recv_ns: Option<u64>,
}

fn json(v: &impl Serialize) -> Bytes {
    // Plain strings, numbers and lists: serialization cannot fail.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// The trade or book message of a market event (`None` for lifecycle events and `books = none`).
pub fn market(
    prefix: &str,
    books: BooksMode,
    category: Category,
    ev: FeedEvent,
) -> Option<Outgoing> {
    match ev {
        FeedEvent::Trade(mut t) => {
            t.category = Some(category.as_str().to_string());
            Some(Outgoing {
                subject: subject(prefix, category, &t.symbol, "trade"),
                msg_id: Some(trade_id(category, &t)),
                payload: json(&Event::Trade(*t)),
            })
        }
        FeedEvent::Book(mut b) => {
            let payload = match books {
                BooksMode::None => return None,
                BooksMode::Top => json(&BookTop {
                    kind: "book_top",
                    symbol: &b.symbol,
                    category: category.as_str(),
                    depth: b.depth,
                    u: b.u,
                    seq: b.seq,
                    ts_ms: b.ts_ms,
                    best_bid: &b.best_bid,
                    best_ask: &b.best_ask,
                    levels: b.levels,
                    recv_ns: b.recv_ns,
                }),
                BooksMode::Deltas => {
                    b.category = Some(category.as_str().to_string());
                    json(&Event::Book((*b).clone()))
                }
            };
            Some(Outgoing {
                subject: subject(prefix, category, &b.symbol, "book"),
                msg_id: Some(book_id(category, &b)),
                payload,
            })
        }
        _ => None,
    }
}

/// The status messages of a lifecycle event: one per symbol it concerns (all of `symbols` for a
/// connection-wide event), the event's JSON plus `category`, `symbol`, `publisher` and `ts_ms`.
pub fn status(
    prefix: &str,
    category: Category,
    symbols: &[String],
    publisher: &str,
    now_ms: u64,
    ev: &FeedEvent,
) -> Vec<Outgoing> {
    if ev.is_market() {
        return Vec::new();
    }
    let own = match ev {
        FeedEvent::Stale { symbol, .. }
        | FeedEvent::Resync { symbol, .. }
        | FeedEvent::TradesRecovered { symbol, .. }
        | FeedEvent::TradeGap { symbol, .. } => Some(symbol.clone()),
        _ => None,
    };
    let Ok(serde_json::Value::Object(base)) = serde_json::to_value(ev) else {
        return Vec::new();
    };
    let targets: Vec<String> = match own {
        Some(s) => vec![s],
        None => symbols.to_vec(),
    };
    targets
        .into_iter()
        .map(|symbol| {
            let mut obj = base.clone();
            obj.insert("category".into(), category.as_str().into());
            obj.insert("symbol".into(), symbol.clone().into());
            obj.insert("publisher".into(), publisher.into());
            obj.insert("ts_ms".into(), now_ms.into());
            Outgoing {
                subject: subject(prefix, category, &symbol, "status"),
                msg_id: None,
                payload: json(&obj),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::event::DisconnectReason;
    use crate::protocol::ws::{BookKind, Side};
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn trade() -> TradeEvent {
        TradeEvent {
            symbol: "BTCUSDT".into(),
            id: "2a74-1".into(),
            price: d("109378.90"),
            qty: d("0.020"),
            side: Side::Buy,
            ts_ms: 1_758_841_135_823,
            seq: Some(7),
            block: false,
            category: None,
            recv_ns: None,
            recovered: false,
        }
    }

    fn book() -> BookEvent {
        BookEvent {
            symbol: "ETHUSDT".into(),
            depth: 50,
            kind: BookKind::Delta,
            u: 42,
            seq: Some(9),
            ts_ms: 5,
            cts_ms: None,
            bids: vec![(d("10.0"), d("1.50"))],
            asks: vec![],
            best_bid: Some((d("10.0"), d("1.50"))),
            best_ask: Some((d("10.5"), d("2"))),
            levels: (1, 1),
            category: None,
            recv_ns: None,
            top: None,
        }
    }

    #[test]
    fn trades_keep_the_schema_exact_decimals_and_a_stable_id() {
        let m = market(
            "md",
            BooksMode::Deltas,
            Category::Linear,
            FeedEvent::Trade(Box::new(trade())),
        )
        .unwrap();
        assert_eq!(m.subject, "md.bybit.linear.BTCUSDT.trade");
        assert_eq!(m.msg_id.as_deref(), Some("linear.BTCUSDT.trade.2a74-1"));
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["type"], "trade");
        assert_eq!(v["id"], "2a74-1");
        assert_eq!(v["price"], "109378.90");
        assert_eq!(v["qty"], "0.020");
        assert_eq!(v["category"], "linear");
        // The same trade recovered from REST by another publisher gets the same id.
        let mut r = trade();
        r.recovered = true;
        let m2 = market(
            "md",
            BooksMode::Deltas,
            Category::Linear,
            FeedEvent::Trade(Box::new(r)),
        )
        .unwrap();
        assert_eq!(m2.msg_id, m.msg_id);
    }

    #[test]
    fn books_follow_the_mode() {
        let m = market(
            "x.y",
            BooksMode::Deltas,
            Category::Spot,
            FeedEvent::Book(Box::new(book())),
        )
        .unwrap();
        assert_eq!(m.subject, "x.y.bybit.spot.ETHUSDT.book");
        assert_eq!(m.msg_id.as_deref(), Some("spot.ETHUSDT.50.42"));
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["type"], "book");
        assert_eq!(v["kind"], "delta");
        assert_eq!(v["bids"][0][1], "1.50");
        let t = market(
            "md",
            BooksMode::Top,
            Category::Spot,
            FeedEvent::Book(Box::new(book())),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&t.payload).unwrap();
        assert_eq!(v["type"], "book_top");
        assert_eq!(v["best_ask"][0], "10.5");
        assert!(v.get("bids").is_none());
        assert_eq!(t.msg_id, m.msg_id);
        assert!(market(
            "md",
            BooksMode::None,
            Category::Spot,
            FeedEvent::Book(Box::new(book()))
        )
        .is_none());
    }

    #[test]
    fn lifecycle_goes_to_status_subjects_per_symbol() {
        let syms = vec!["BTCUSDT".to_string(), "ETHUSDT".to_string()];
        let ev = FeedEvent::Disconnected {
            reason: DisconnectReason::PongTimeout,
        };
        let out = status("md", Category::Linear, &syms, "host-1", 99, &ev);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].subject, "md.bybit.linear.ETHUSDT.status");
        assert!(out[0].msg_id.is_none());
        let v: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(v["type"], "disconnected");
        assert_eq!(v["publisher"], "host-1");
        assert_eq!(v["symbol"], "BTCUSDT");
        let gap = FeedEvent::TradeGap {
            symbol: "ETHUSDT".into(),
            from_ms: 1,
            to_ms: 2,
        };
        let out = status("md", Category::Linear, &syms, "h", 1, &gap);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].subject, "md.bybit.linear.ETHUSDT.status");
        assert!(status(
            "md",
            Category::Linear,
            &syms,
            "h",
            1,
            &FeedEvent::Trade(Box::new(trade()))
        )
        .is_empty());
    }
}
