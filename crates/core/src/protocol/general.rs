//! The general WebSocket frame decoder: one serde pass with a hand-written map visitor. When
//! `topic` precedes `data` (as in every frame Bybit sends) the payload is decoded straight into its
//! typed struct; otherwise it is kept as a borrowed raw slice and decoded once the topic is known,
//! so key order never matters. Handles escapes, acks, pongs and unknown frames.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::DecodeError;
use super::topic::TopicRef;
use super::ws::{
    Ack, AckOp, BookKind, BookUpdate, Frame, KlineBar, Klines, Level, Pong, Trade, Trades,
};

/// Decodes any frame (see the module docs).
pub(crate) fn decode(text: &str) -> Result<Frame<'_>, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = RawFrame::deserialize(&mut de).map_err(|e| DecodeError::new(e.to_string(), text))?;
    de.end()
        .map_err(|e| DecodeError::new(e.to_string(), text))?;
    raw.into_frame(text)
        .map_err(|e| DecodeError::new(e.to_string(), text))
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
