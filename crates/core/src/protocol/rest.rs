//! Decoding of Bybit V5 REST market responses: the `retCode` envelope and the typed results of
//! `kline`, `recent-trade`, `orderbook`, `instruments-info` (with cursor) and `time`.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::{DecodeError, RestError};
use super::ws::{decimal, Level, Side};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "retCode")]
    ret_code: i64,
    #[serde(rename = "retMsg", default)]
    ret_msg: String,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    time: Option<u64>,
}

/// A successful REST answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RestResponse<T> {
    /// The typed `result`.
    pub result: T,
    /// Server time of the answer (`time`, ms).
    pub time_ms: Option<u64>,
}

/// Decodes a REST body: `retCode != 0` becomes [`RestError::Api`]; a body that is not the envelope
/// or whose `result` is not a `T` becomes [`RestError::Malformed`] with the payload.
pub fn decode<T: DeserializeOwned>(body: &str) -> Result<RestResponse<T>, RestError> {
    let env: Envelope<'_> = serde_json::from_str(body)
        .map_err(|e| RestError::Malformed(DecodeError::new(format!("envelope: {e}"), body)))?;
    if env.ret_code != 0 {
        return Err(RestError::Api {
            code: env.ret_code,
            message: env.ret_msg,
        });
    }
    let raw = env.result.map(RawValue::get).unwrap_or("null");
    let result = serde_json::from_str(raw)
        .map_err(|e| RestError::Malformed(DecodeError::new(format!("result: {e}"), body)))?;
    Ok(RestResponse {
        result,
        time_ms: env.time,
    })
}

fn u64_from_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer or an integer string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.parse()
                .map_err(|_| E::custom(format_args!("invalid integer {v:?}")))
        }
    }
    d.deserialize_any(V)
}

fn opt_u64_from_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    u64_from_string(d).map(Some)
}

/// One candle, as REST returns it (`[start, open, high, low, close, volume, turnover]`, all strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candle {
    /// Start time (ms).
    pub start_ms: u64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close (last price while open).
    pub close: Decimal,
    /// Volume.
    pub volume: Decimal,
    /// Turnover.
    pub turnover: Decimal,
}

impl<'de> Deserialize<'de> for Candle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Candle;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a kline row of 7 strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Candle, A::Error> {
                let mut strs: [String; 7] = Default::default();
                for (i, slot) in strs.iter_mut().enumerate() {
                    *slot = s
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if s.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(8, &self));
                }
                let d = |i: usize| super::ws::parse_decimal(&strs[i]).map_err(de::Error::custom);
                Ok(Candle {
                    start_ms: strs[0].parse().map_err(|_| {
                        de::Error::custom(format_args!("invalid start time {:?}", strs[0]))
                    })?,
                    open: d(1)?,
                    high: d(2)?,
                    low: d(3)?,
                    close: d(4)?,
                    volume: d(5)?,
                    turnover: d(6)?,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// `GET /v5/market/kline` result: `list` is newest first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KlineResult {
    /// Symbol.
    #[serde(default)]
    pub symbol: String,
    /// Category.
    #[serde(default)]
    pub category: String,
    /// Candles, newest first as Bybit sends them.
    pub list: Vec<Candle>,
}

/// A trade from `GET /v5/market/recent-trade`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RestTrade {
    /// Trade id; the same as WebSocket `i`.
    #[serde(rename = "execId")]
    pub id: String,
    /// Symbol.
    pub symbol: String,
    /// Price.
    #[serde(deserialize_with = "decimal")]
    pub price: Decimal,
    /// Size.
    #[serde(rename = "size", deserialize_with = "decimal")]
    pub qty: Decimal,
    /// Taker side.
    pub side: Side,
    /// Fill time (ms; a string on the wire).
    #[serde(rename = "time", deserialize_with = "u64_from_string")]
    pub ts_ms: u64,
    /// Block trade flag.
    #[serde(rename = "isBlockTrade", default)]
    pub block: bool,
    /// RPI flag.
    #[serde(rename = "isRPITrade", default)]
    pub rpi: bool,
    /// Cross sequence (a string on the wire).
    #[serde(default, deserialize_with = "opt_u64_from_string")]
    pub seq: Option<u64>,
}

/// `GET /v5/market/recent-trade` result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecentTradeResult {
    /// Category.
    #[serde(default)]
    pub category: String,
    /// Trades (order not documented: sort by time, then seq).
    pub list: Vec<RestTrade>,
}

/// `GET /v5/market/orderbook` result. Its `u` belongs to the 1000-level stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderbookResult {
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Bids, best first.
    #[serde(rename = "b")]
    pub bids: Vec<Level>,
    /// Asks, best first.
    #[serde(rename = "a")]
    pub asks: Vec<Level>,
    /// Time (ms).
    pub ts: u64,
    /// Update id.
    pub u: u64,
    /// Cross sequence.
    #[serde(default)]
    pub seq: Option<u64>,
    /// Matching-engine time.
    #[serde(default)]
    pub cts: Option<u64>,
}

/// Price rules of an instrument.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PriceFilter {
    /// Tick size.
    #[serde(rename = "tickSize", deserialize_with = "decimal")]
    pub tick_size: Decimal,
}

/// Size rules of an instrument (spot has `basePrecision` instead of `qtyStep`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LotSizeFilter {
    /// Quantity step (futures).
    #[serde(rename = "qtyStep", default, deserialize_with = "opt_decimal")]
    pub qty_step: Option<Decimal>,
    /// Quantity step (spot).
    #[serde(rename = "basePrecision", default, deserialize_with = "opt_decimal")]
    pub base_precision: Option<Decimal>,
}

impl LotSizeFilter {
    /// The size step, whichever field the category uses.
    pub fn step(&self) -> Option<Decimal> {
        self.qty_step.or(self.base_precision)
    }
}

fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    decimal(d).map(Some)
}

/// One instrument from `GET /v5/market/instruments-info`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Instrument {
    /// Symbol.
    pub symbol: String,
    /// Trading status (`Trading`...).
    #[serde(default)]
    pub status: String,
    /// Base coin.
    #[serde(rename = "baseCoin", default)]
    pub base_coin: String,
    /// Quote coin.
    #[serde(rename = "quoteCoin", default)]
    pub quote_coin: String,
    /// Price rules.
    #[serde(rename = "priceFilter")]
    pub price_filter: PriceFilter,
    /// Size rules.
    #[serde(rename = "lotSizeFilter")]
    pub lot_size_filter: LotSizeFilter,
}

/// `GET /v5/market/instruments-info` result; follow `next_page_cursor` while non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstrumentsResult {
    /// Category.
    #[serde(default)]
    pub category: String,
    /// Instruments on this page.
    pub list: Vec<Instrument>,
    /// Cursor of the next page; empty (or absent, on spot) when this is the last.
    #[serde(rename = "nextPageCursor", default)]
    pub next_page_cursor: String,
}

/// `GET /v5/market/time` result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerTime {
    /// Seconds.
    #[serde(rename = "timeSecond", deserialize_with = "u64_from_string")]
    pub seconds: u64,
    /// Nanoseconds.
    #[serde(rename = "timeNano", deserialize_with = "u64_from_string")]
    pub nanos: u64,
}
