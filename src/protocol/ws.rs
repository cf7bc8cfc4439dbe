//! Decoding of Bybit V5 public WebSocket frames into typed, borrowed [`Frame`]s (no I/O, no `Value`).
//!
//! One pass over the text with a hand-written map visitor: when `topic` precedes `data` (as in every
//! frame Bybit sends) the payload is decoded straight into its typed struct; when it does not, the
//! payload is kept as a borrowed raw slice and decoded once the topic is known, so key order never
//! matters.

use std::borrow::Cow;
use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::DecodeError;
use super::topic::TopicRef;

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
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = RawFrame::deserialize(&mut de).map_err(|e| DecodeError::new(e.to_string(), text))?;
    de.end()
        .map_err(|e| DecodeError::new(e.to_string(), text))?;
    raw.into_frame(text)
        .map_err(|e| DecodeError::new(e.to_string(), text))
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

/// Deserializes a decimal from Bybit's decimal string, exactly (no rounding, no f64).
pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_str(DecimalVisitor)
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).map_err(E::custom)
    }
}

/// Parses a decimal string exactly; refuses anything that is not a plain finite decimal
/// (`-?digits(.digits)?`: no exponent, no sign `+`, no bare dot).
///
/// The common case (at most 19 significant digits) is parsed by hand into a 64-bit mantissa and a
/// scale, several times faster than a general decimal parser; longer numbers take the general path.
pub fn parse_decimal(v: &str) -> Result<Decimal, String> {
    let bytes = v.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let invalid = || format!("invalid decimal {v:?}");
    if digits.is_empty() || digits[0] == b'.' || digits[digits.len() - 1] == b'.' {
        return Err(invalid());
    }
    let mut mantissa: u64 = 0;
    let mut scale: u32 = 0;
    let mut seen_dot = false;
    let mut overflow = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                match mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u64::from(b - b'0')))
                {
                    Some(m) => mantissa = m,
                    None => overflow = true,
                }
                scale += u32::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(invalid()),
        }
    }
    if overflow || scale > 28 {
        return Decimal::from_str_exact(v).map_err(|e| format!("invalid decimal {v:?}: {e}"));
    }
    // A u64 mantissa always fits Decimal's 96 bits.
    Ok(Decimal::from_parts(
        mantissa as u32,
        (mantissa >> 32) as u32,
        0,
        negative,
        scale,
    ))
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl<'de> Visitor<'de> for LevelVisitor {
            type Value = Level;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [price, size] pair of decimal strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Level, A::Error> {
                let price = seq
                    .next_element_seed(DecimalSeed)?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let qty = seq
                    .next_element_seed(DecimalSeed)?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if qty.is_sign_negative() && !qty.is_zero() {
                    return Err(de::Error::custom(format_args!("negative size {qty}")));
                }
                // Bybit's RPI book sends a third element; tolerate and ignore anything extra.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Level { price, qty })
            }
        }
        d.deserialize_seq(LevelVisitor)
    }
}

struct DecimalSeed;
impl<'de> DeserializeSeed<'de> for DecimalSeed {
    type Value = Decimal;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Decimal, D::Error> {
        decimal(d)
    }
}

#[derive(Deserialize)]
struct BookData<'a> {
    #[serde(rename = "s", borrow)]
    symbol: Cow<'a, str>,
    #[serde(rename = "b")]
    bids: Vec<Level>,
    #[serde(rename = "a")]
    asks: Vec<Level>,
    u: u64,
    #[serde(default)]
    seq: Option<u64>,
}

#[derive(Deserialize, Default)]
struct CommandData {
    #[serde(rename = "successTopics", default)]
    success_topics: Vec<String>,
    #[serde(rename = "failTopics", default)]
    fail_topics: Vec<String>,
}

/// The payload, decoded as soon as the topic is known.
enum Data<'a> {
    Trades(Vec<Trade<'a>>),
    Book(BookData<'a>),
    Kline(Vec<KlineBar<'a>>),
    Raw(&'a RawValue),
}

/// Picks the payload type from the topic seen so far.
struct DataSeed<'t> {
    topic: Option<TopicRef<'t>>,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'de> {
    type Value = Data<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Data<'de>, D::Error> {
        Ok(match self.topic {
            Some(TopicRef::Trade { .. }) => Data::Trades(Deserialize::deserialize(d)?),
            Some(TopicRef::OrderBook { .. }) => Data::Book(Deserialize::deserialize(d)?),
            Some(TopicRef::Kline { .. }) => Data::Kline(Deserialize::deserialize(d)?),
            None => Data::Raw(Deserialize::deserialize(d)?),
        })
    }
}

#[derive(Default)]
struct RawFrame<'a> {
    topic: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    ts: Option<u64>,
    cts: Option<u64>,
    data: Option<Data<'a>>,
    success: Option<bool>,
    ret_msg: Option<String>,
    conn_id: Option<String>,
    req_id: Option<String>,
    op: Option<Cow<'a, str>>,
    args: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawFrame<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawFrameVisitor)
    }
}

struct RawFrameVisitor;

impl<'de> Visitor<'de> for RawFrameVisitor {
    type Value = RawFrame<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Bybit WebSocket frame (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFrame<'de>, A::Error> {
        let mut f = RawFrame::default();
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Topic => f.topic = Some(map.next_value_seed(BorrowedStr)?),
                Field::Type => f.kind = Some(map.next_value_seed(BorrowedStr)?),
                Field::Ts => f.ts = Some(map.next_value()?),
                Field::Cts => f.cts = map.next_value()?,
                Field::Data => {
                    let topic = match &f.topic {
                        // A borrowed topic lets the payload be decoded in place.
                        Some(Cow::Borrowed(t)) => TopicRef::parse(t),
                        _ => None,
                    };
                    f.data = Some(map.next_value_seed(DataSeed { topic })?);
                }
                Field::Success => f.success = Some(map.next_value()?),
                Field::RetMsg => f.ret_msg = Some(map.next_value()?),
                Field::ConnId => f.conn_id = map.next_value()?,
                Field::ReqId => f.req_id = map.next_value()?,
                Field::Op => f.op = Some(map.next_value_seed(BorrowedStr)?),
                Field::Args => f.args = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }
}

/// The frame keys we read; anything else is skipped without allocating.
enum Field {
    Topic,
    Type,
    Ts,
    Cts,
    Data,
    Success,
    RetMsg,
    ConnId,
    ReqId,
    Op,
    Args,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "topic" => Field::Topic,
                    "type" => Field::Type,
                    "ts" => Field::Ts,
                    "cts" => Field::Cts,
                    "data" => Field::Data,
                    "success" => Field::Success,
                    "ret_msg" => Field::RetMsg,
                    "conn_id" => Field::ConnId,
                    "req_id" => Field::ReqId,
                    "op" => Field::Op,
                    "args" => Field::Args,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Deserializes a string borrowing from the input when it has no escapes (plain `Cow` always copies).
struct BorrowedStr;

impl<'de> DeserializeSeed<'de> for BorrowedStr {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Why a syntactically valid frame could not be turned into a typed one.
#[derive(Debug)]
struct Shape(String);
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'a> RawFrame<'a> {
    fn into_frame(self, text: &'a str) -> Result<Frame<'a>, Shape> {
        if let Some(topic_text) = &self.topic {
            // Re-borrow the topic from the input text so the frame can hold `&'a str`.
            let topic = match topic_in(text, topic_text) {
                Some(t) => TopicRef::parse(t),
                None => None,
            };
            let Some(topic) = topic else {
                return Ok(Frame::Unknown(text));
            };
            let data = match self.data {
                Some(Data::Raw(raw)) => reparse(raw, topic)?,
                Some(d) => d,
                None => return Err(Shape("missing field `data`".into())),
            };
            let ts_ms = self.ts.ok_or_else(|| Shape("missing field `ts`".into()))?;
            return match (topic, data) {
                (TopicRef::Trade { symbol }, Data::Trades(trades)) => Ok(Frame::Trades(Trades {
                    symbol,
                    ts_ms,
                    trades,
                })),
                (TopicRef::OrderBook { depth, symbol }, Data::Book(b)) => {
                    let kind = match self.kind.as_deref() {
                        Some("snapshot") => BookKind::Snapshot,
                        Some("delta") => BookKind::Delta,
                        Some(other) => return Err(Shape(format!("unknown book type {other:?}"))),
                        None => return Err(Shape("missing field `type`".into())),
                    };
                    if b.symbol != symbol {
                        return Err(Shape(format!(
                            "data.s {:?} does not match topic symbol {symbol:?}",
                            b.symbol
                        )));
                    }
                    Ok(Frame::Book(BookUpdate {
                        symbol,
                        depth,
                        kind,
                        ts_ms,
                        cts_ms: self.cts,
                        u: b.u,
                        seq: b.seq,
                        bids: b.bids,
                        asks: b.asks,
                    }))
                }
                (TopicRef::Kline { interval, symbol }, Data::Kline(bars)) => {
                    Ok(Frame::Kline(Klines {
                        symbol,
                        interval,
                        ts_ms,
                        bars,
                    }))
                }
                _ => Err(Shape("payload does not match topic".into())),
            };
        }

        let ret_msg = self.ret_msg.unwrap_or_default();
        let op = self.op.as_deref();
        if ret_msg == "pong" || op == Some("pong") {
            return Ok(Frame::Pong(Pong {
                req_id: self.req_id,
                conn_id: self.conn_id,
                server_ms: self
                    .args
                    .as_ref()
                    .and_then(|a| a.first())
                    .and_then(|s| s.parse().ok()),
            }));
        }
        if self.kind.as_deref() == Some("COMMAND_RESP") {
            let cmd = match self.data {
                Some(Data::Raw(raw)) => serde_json::from_str::<CommandData>(raw.get())
                    .map_err(|e| Shape(format!("COMMAND_RESP data: {e}")))?,
                _ => CommandData::default(),
            };
            return Ok(Frame::Ack(Ack {
                op: AckOp::Command,
                success: self.success.unwrap_or(cmd.fail_topics.is_empty()),
                ret_msg,
                req_id: self.req_id,
                conn_id: self.conn_id,
                success_topics: cmd.success_topics,
                fail_topics: cmd.fail_topics,
            }));
        }
        if let Some(success) = self.success {
            let op = match op {
                Some("subscribe") => AckOp::Subscribe,
                Some("unsubscribe") => AckOp::Unsubscribe,
                other => AckOp::Other(other.unwrap_or_default().to_string()),
            };
            return Ok(Frame::Ack(Ack {
                op,
                success,
                ret_msg,
                req_id: self.req_id,
                conn_id: self.conn_id,
                success_topics: Vec::new(),
                fail_topics: Vec::new(),
            }));
        }
        Ok(Frame::Unknown(text))
    }
}

/// Finds `topic` as a slice of the original text (it is there verbatim unless it was escaped).
fn topic_in<'a>(text: &'a str, topic: &str) -> Option<&'a str> {
    let start = text.find(topic)?;
    text.get(start..start + topic.len())
}

fn reparse<'a>(raw: &'a RawValue, topic: TopicRef<'a>) -> Result<Data<'a>, Shape> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    DataSeed { topic: Some(topic) }
        .deserialize(&mut de)
        .map_err(|e| Shape(format!("data: {e}")))
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
