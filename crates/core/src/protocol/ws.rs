//! Bybit V5 public WebSocket frames as typed, borrowed values ([`Frame`]) and the entry points that
//! decode them (no I/O, no `serde_json::Value`): a strict fast path (`protocol::fast`) for the common
//! trade and book frames, the general decoder (`protocol::general`) for everything else.

use std::borrow::Cow;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer};
use serde::Deserialize;

pub use super::decimal::{decimal, parse_decimal};
use super::error::DecodeError;

/// A price or size level `[price, size]`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Price, exactly as sent (scale preserved).
    pub price: Decimal,
    /// Size; zero in a delta deletes the level.
    pub qty: Decimal,
}

impl Level {
    /// A level from its two parts.
    pub fn new(price: Decimal, qty: Decimal) -> Self {
        Level { price, qty }
    }
}

/// Taker side of a trade. Serialized in lower case (normalized schema); accepts `Buy`/`buy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Taker bought (`Buy`).
    Buy,
    /// Taker sold (`Sell`).
    Sell,
}

impl Side {
    /// Bybit's spelling (`Buy`/`Sell`).
    pub fn as_bybit(self) -> &'static str {
        match self {
            Side::Buy => "Buy",
            Side::Sell => "Sell",
        }
    }
}

impl<'de> Deserialize<'de> for Side {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only used on the wire (Bybit spells it `Buy`/`Sell`); the normalized schema uses lower case.
        let s: Cow<'de, str> = Deserialize::deserialize(d)?;
        match s.as_ref() {
            "Buy" | "buy" => Ok(Side::Buy),
            "Sell" | "sell" => Ok(Side::Sell),
            other => Err(de::Error::custom(format_args!("unknown side {other:?}"))),
        }
    }
}

/// One trade from a `publicTrade` frame.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Trade<'a> {
    /// Trade id (`i`): a UUID on futures, a numeric string on spot.
    #[serde(rename = "i", borrow)]
    pub id: Cow<'a, str>,
    /// Fill time in ms (`T`).
    #[serde(rename = "T")]
    pub ts_ms: u64,
    /// Symbol (`s`).
    #[serde(rename = "s", borrow)]
    pub symbol: Cow<'a, str>,
    /// Taker side (`S`).
    #[serde(rename = "S")]
    pub side: Side,
    /// Size (`v`).
    #[serde(rename = "v", deserialize_with = "decimal")]
    pub qty: Decimal,
    /// Price (`p`).
    #[serde(rename = "p", deserialize_with = "decimal")]
    pub price: Decimal,
    /// Tick direction (`L`, futures only).
    #[serde(rename = "L", default, borrow)]
    pub tick_direction: Option<Cow<'a, str>>,
    /// Block trade flag (`BT`).
    #[serde(rename = "BT", default)]
    pub block: bool,
    /// Retail-price-improvement flag (`RPI`).
    #[serde(rename = "RPI", default)]
    pub rpi: bool,
    /// Cross sequence (`seq`), shared by all trades of one taker sweep.
    #[serde(default)]
    pub seq: Option<u64>,
}

/// A `publicTrade.{symbol}` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Trades<'a> {
    /// Symbol from the topic.
    pub symbol: &'a str,
    /// System time the frame was generated (`ts`, ms).
    pub ts_ms: u64,
    /// Trades, ascending by match time.
    pub trades: Vec<Trade<'a>>,
}

/// Snapshot or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookKind {
    /// Replaces the whole book.
    Snapshot,
    /// Changes some levels.
    Delta,
}

/// An `orderbook.{depth}.{symbol}` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct BookUpdate<'a> {
    /// Symbol from the topic.
    pub symbol: &'a str,
    /// Depth from the topic.
    pub depth: u16,
    /// Snapshot or delta (`type`).
    pub kind: BookKind,
    /// System time (`ts`, ms).
    pub ts_ms: u64,
    /// Matching-engine time (`cts`, ms), absent in old captures.
    pub cts_ms: Option<u64>,
    /// Update id (`u`), contiguous per topic.
    pub u: u64,
    /// Cross sequence (`seq`).
    pub seq: Option<u64>,
    /// Bid levels as received.
    pub bids: Vec<Level>,
    /// Ask levels as received.
    pub asks: Vec<Level>,
}

/// One candle from a `kline` frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KlineBar<'a> {
    /// Candle start (ms).
    pub start: u64,
    /// Candle end (ms, inclusive).
    pub end: u64,
    /// Interval (`1`, `5`, `D`...).
    #[serde(borrow)]
    pub interval: Cow<'a, str>,
    /// Open price.
    #[serde(deserialize_with = "decimal")]
    pub open: Decimal,
    /// Close (last) price.
    #[serde(deserialize_with = "decimal")]
    pub close: Decimal,
    /// High price.
    #[serde(deserialize_with = "decimal")]
    pub high: Decimal,
    /// Low price.
    #[serde(deserialize_with = "decimal")]
    pub low: Decimal,
    /// Volume.
    #[serde(deserialize_with = "decimal")]
    pub volume: Decimal,
    /// Turnover.
    #[serde(deserialize_with = "decimal")]
    pub turnover: Decimal,
    /// Whether the candle is closed.
    pub confirm: bool,
    /// Time of the last update (ms).
    pub timestamp: u64,
}

/// A `kline.{interval}.{symbol}` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Klines<'a> {
    /// Symbol from the topic.
    pub symbol: &'a str,
    /// Interval from the topic.
    pub interval: &'a str,
    /// System time (`ts`, ms).
    pub ts_ms: u64,
    /// Candles.
    pub bars: Vec<KlineBar<'a>>,
}

/// Which request an acknowledgement answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOp {
    /// `subscribe`
    Subscribe,
    /// `unsubscribe`
    Unsubscribe,
    /// The option/spread `COMMAND_RESP` envelope (its op is not stated).
    Command,
    /// Any other op (e.g. the answer to an invalid op or undecodable text).
    Other(String),
}

/// A response to a request: subscribe/unsubscribe acknowledgement, or a refusal of any other op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// What it answers.
    pub op: AckOp,
    /// Whether the request succeeded.
    pub success: bool,
    /// Bybit's message (`""`, `"subscribe"`, `"error:handler not found,topic:..."`...).
    pub ret_msg: String,
    /// Echoed request id, when one was sent.
    pub req_id: Option<String>,
    /// Connection id.
    pub conn_id: Option<String>,
    /// `COMMAND_RESP` topics that succeeded.
    pub success_topics: Vec<String>,
    /// `COMMAND_RESP` topics that failed.
    pub fail_topics: Vec<String>,
}

impl Ack {
    /// The topic a refusal names (`error:handler not found,topic:orderbook.50.NOPEUSDT`), if any.
    pub fn refused_topic(&self) -> Option<&str> {
        self.ret_msg
            .split_once("topic:")
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
    }
}

/// A heartbeat reply in any of Bybit's shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    /// Echoed request id.
    pub req_id: Option<String>,
    /// Connection id.
    pub conn_id: Option<String>,
    /// Server time from the option/private shape (`args[0]`, ms).
    pub server_ms: Option<u64>,
}

/// Everything a public connection can receive.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame<'a> {
    /// `publicTrade`
    Trades(Trades<'a>),
    /// `orderbook`
    Book(BookUpdate<'a>),
    /// `kline`
    Kline(Klines<'a>),
    /// Subscribe/unsubscribe acknowledgement or refusal.
    Ack(Ack),
    /// Heartbeat reply.
    Pong(Pong),
    /// Valid JSON we do not understand (a topic or op we do not handle): carried raw, never an error.
    Unknown(&'a str),
}

/// A frame with the local time it was received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received<'a> {
    /// Local receive time, ns since the Unix epoch (if known).
    pub recv_ns: Option<u64>,
    /// The frame.
    pub frame: Frame<'a>,
}

/// Decodes one frame. Malformed input is an error that carries (a truncated copy of) the payload.
pub fn decode(text: &str) -> Result<Frame<'_>, DecodeError> {
    if let Some(frame) = super::fast::try_decode(text) {
        return Ok(frame);
    }
    decode_general(text)
}

/// The general decoder: any key order, escapes, every frame kind. [`decode`] tries a strict fast
/// path first and falls back to this; both give the same result for any input the fast path takes.
pub fn decode_general(text: &str) -> Result<Frame<'_>, DecodeError> {
    super::general::decode(text)
}

/// Decodes a capture line: either plain JSON or `<receive-ns> <json>` (hftbacktest's collector format).
pub fn decode_line(line: &str) -> Result<Received<'_>, DecodeError> {
    let line = line.trim();
    let (recv_ns, json) = split_receive_time(line);
    Ok(Received {
        recv_ns,
        frame: decode(json)?,
    })
}

/// Splits an optional leading `<receive-ns> ` prefix off a capture line.
pub fn split_receive_time(line: &str) -> (Option<u64>, &str) {
    if let Some((head, rest)) = line.split_once(' ') {
        if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(ns) = head.parse::<u64>() {
                return (Some(ns), rest.trim_start());
            }
        }
    }
    (None, line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimal_parsing_is_exact_and_keeps_the_scale() {
        for text in [
            "0",
            "0.020",
            "109378.90",
            "115440.7",
            "-1.5",
            "0.000000001",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999.5",
            "1.0000000000000000000000000001",
        ] {
            let d = parse_decimal(text).expect(text);
            assert_eq!(d, Decimal::from_str_exact(text).unwrap(), "{text}");
            assert_eq!(d.to_string(), text, "printing back gives the same text");
        }
        for bad in [
            "", "-", ".", "1.", ".5", "1e5", "+1", "1.2.3", "1,5", " 1", "NaN", "0x10", "--1",
        ] {
            assert!(parse_decimal(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Decimal::from_str("75845.40").unwrap(),
            parse_decimal("75845.4").unwrap()
        );
    }
}
