//! The normalized event schema: one JSON object per event, shared by `decode`, the simulator's journal,
//! the HTTP API and the event stream. Field names are a stable contract; fields may be added.
//!
//! Decimals are JSON strings holding the exact value with the fraction digits Bybit sent (`"0.020"`
//! stays `"0.020"`, `"115440.7"` stays `"115440.7"`); a book level keeps the price text of the update
//! that created it and the size text of the update that last changed it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::book::OrderBook;
use crate::protocol::ws::{Ack, AckOp, BookKind, BookUpdate, KlineBar, Level, Side, Trade};

/// A price level in the normalized schema: `["price","size"]`.
pub type Pair = (Decimal, Decimal);

fn pair(l: &Level) -> Pair {
    (l.price, l.qty)
}

/// Converts levels to normalized pairs.
pub fn pairs(levels: &[Level]) -> Vec<Pair> {
    levels.iter().map(pair).collect()
}

/// A trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeEvent {
    /// Symbol.
    pub symbol: String,
    /// Trade id (`i` / `execId`).
    pub id: String,
    /// Price.
    pub price: Decimal,
    /// Size.
    pub qty: Decimal,
    /// Taker side: `buy` or `sell`.
    pub side: Side,
    /// Fill time (ms).
    pub ts_ms: u64,
    /// Cross sequence.
    #[serde(default)]
    pub seq: Option<u64>,
    /// Block trade.
    #[serde(default)]
    pub block: bool,
    /// Category, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Local receive time (ns), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_ns: Option<u64>,
    /// True when recovered from REST after an outage rather than received live.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

impl TradeEvent {
    /// From a WebSocket trade.
    pub fn from_ws(t: &Trade<'_>, recv_ns: Option<u64>) -> Self {
        TradeEvent {
            symbol: t.symbol.to_string(),
            id: t.id.to_string(),
            price: t.price,
            qty: t.qty,
            side: t.side,
            ts_ms: t.ts_ms,
            seq: t.seq,
            block: t.block,
            category: None,
            recv_ns,
            recovered: false,
        }
    }
}

/// The top levels of a book, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top {
    /// Bids.
    pub bids: Vec<Pair>,
    /// Asks.
    pub asks: Vec<Pair>,
}

impl Top {
    /// The best `n` levels of `book`.
    pub fn of(book: &OrderBook, n: usize) -> Self {
        let (b, a) = book.top(n);
        Top {
            bids: pairs(b),
            asks: pairs(a),
        }
    }
}

/// A book update that was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookEvent {
    /// Symbol.
    pub symbol: String,
    /// Subscribed depth.
    pub depth: u16,
    /// `snapshot` or `delta`.
    pub kind: BookKind,
    /// Update id.
    pub u: u64,
    /// Cross sequence.
    #[serde(default)]
    pub seq: Option<u64>,
    /// Exchange time (ms).
    pub ts_ms: u64,
    /// Matching-engine time (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cts_ms: Option<u64>,
    /// Bid levels as received.
    pub bids: Vec<Pair>,
    /// Ask levels as received.
    pub asks: Vec<Pair>,
    /// Best bid of the book after applying.
    pub best_bid: Option<Pair>,
    /// Best ask of the book after applying.
    pub best_ask: Option<Pair>,
    /// (bid count, ask count) after applying.
    pub levels: (usize, usize),
    /// Category, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Local receive time (ns), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_ns: Option<u64>,
    /// Top N levels after applying (`decode --top N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<Top>,
}

impl BookEvent {
    /// The event for `update` after it was applied to `book`: levels as received, best levels and
    /// counts after applying, and the top `top` levels when asked.
    pub fn applied(
        update: &BookUpdate<'_>,
        book: &OrderBook,
        category: Option<String>,
        recv_ns: Option<u64>,
        top: Option<usize>,
    ) -> Self {
        BookEvent {
            symbol: update.symbol.to_string(),
            depth: update.depth,
            kind: update.kind,
            u: update.u,
            seq: update.seq,
            ts_ms: update.ts_ms,
            cts_ms: update.cts_ms,
            bids: pairs(&update.bids),
            asks: pairs(&update.asks),
            best_bid: book.best_bid().map(|l| pair(&l)),
            best_ask: book.best_ask().map(|l| pair(&l)),
            levels: book.level_counts(),
            category,
            recv_ns,
            top: top.map(|n| Top::of(book, n)),
        }
    }
}

/// A candle (from a `kline` frame or built locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlineEvent {
    /// Symbol.
    pub symbol: String,
    /// Interval (`1`, `5`, `D`...).
    pub interval: String,
    /// Start (ms).
    pub start: u64,
    /// End (ms).
    pub end: u64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Volume.
    pub volume: Decimal,
    /// Turnover.
    pub turnover: Decimal,
    /// Closed.
    pub confirm: bool,
    /// Last update (ms).
    pub ts_ms: u64,
}

impl KlineEvent {
    /// From a WebSocket kline bar.
    pub fn from_ws(symbol: &str, bar: &KlineBar<'_>) -> Self {
        KlineEvent {
            symbol: symbol.to_string(),
            interval: bar.interval.to_string(),
            start: bar.start,
            end: bar.end,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            turnover: bar.turnover,
            confirm: bar.confirm,
            ts_ms: bar.timestamp,
        }
    }
}

/// A subscribe/unsubscribe acknowledgement or refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckEvent {
    /// `subscribe`, `unsubscribe`, `command` or the op Bybit named.
    pub op: String,
    /// Success.
    pub success: bool,
    /// Bybit's message.
    pub ret_msg: String,
    /// Echoed request id.
    #[serde(default)]
    pub req_id: Option<String>,
    /// Connection id.
    #[serde(default)]
    pub conn_id: Option<String>,
    /// Topics that failed (from `COMMAND_RESP`, or the one a refusal names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_topics: Vec<String>,
    /// Topics that succeeded (`COMMAND_RESP`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_topics: Vec<String>,
}

impl From<&Ack> for AckEvent {
    fn from(a: &Ack) -> Self {
        let mut fail_topics = a.fail_topics.clone();
        if fail_topics.is_empty() && !a.success {
            fail_topics.extend(a.refused_topic().map(str::to_string));
        }
        AckEvent {
            op: match &a.op {
                AckOp::Subscribe => "subscribe".into(),
                AckOp::Unsubscribe => "unsubscribe".into(),
                AckOp::Command => "command".into(),
                AckOp::Other(o) => o.clone(),
            },
            success: a.success,
            ret_msg: a.ret_msg.clone(),
            req_id: a.req_id.clone(),
            conn_id: a.conn_id.clone(),
            fail_topics,
            success_topics: a.success_topics.clone(),
        }
    }
}

/// Identifies a book topic in book lifecycle events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookGapEvent {
    /// Symbol.
    pub symbol: String,
    /// Depth.
    pub depth: u16,
    /// `last_u + 1`.
    pub expected_u: u64,
    /// What arrived.
    pub got_u: u64,
}

/// A restart snapshot (`u == 1`) replaced an advanced book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookResetEvent {
    /// Symbol.
    pub symbol: String,
    /// Depth.
    pub depth: u16,
    /// The `u` the book had reached.
    pub previous_u: u64,
    /// The snapshot's `u` (1).
    pub u: u64,
}

/// A book whose best bid reached its best ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookCrossedEvent {
    /// Symbol.
    pub symbol: String,
    /// Depth.
    pub depth: u16,
    /// Update id that crossed it.
    pub u: u64,
    /// Best bid price.
    pub best_bid: Decimal,
    /// Best ask price.
    pub best_ask: Decimal,
}

/// A dropped update: stale (`u <= last_u`) or arriving while awaiting a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookDroppedEvent {
    /// Symbol.
    pub symbol: String,
    /// Depth.
    pub depth: u16,
    /// The book's `u` (absent before the first snapshot).
    #[serde(default)]
    pub last_u: Option<u64>,
    /// The dropped update's `u`.
    pub got_u: u64,
}

/// Every normalized event. Serialized with a `type` tag: `{"type":"trade",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A trade.
    Trade(TradeEvent),
    /// An applied book update.
    Book(BookEvent),
    /// A delta skipped update ids; not applied.
    BookGap(BookGapEvent),
    /// A restart snapshot.
    BookReset(BookResetEvent),
    /// A crossed book.
    BookCrossed(BookCrossedEvent),
    /// A stale or duplicate delta, dropped.
    BookStale(BookDroppedEvent),
    /// A delta while awaiting a snapshot, dropped.
    BookAwaitingSnapshot(BookDroppedEvent),
    /// A candle.
    Kline(KlineEvent),
    /// An acknowledgement.
    Ack(AckEvent),
    /// A heartbeat reply.
    Pong {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<String>,
    },
    /// A frame we do not understand.
    Unknown {
        /// The frame text.
        raw: String,
    },
}

impl Event {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, bool or list of them: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
