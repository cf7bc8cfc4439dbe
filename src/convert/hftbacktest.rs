//! Bybit frames into hftbacktest's event rows, row for row what its own converter
//! (`hftbacktest.data.utils.bybit.convert_depth`, 2.4.x) produces before ordering:
//!
//! - `orderbook.{depth}.*` snapshot: per side with levels, a `DEPTH_CLEAR_EVENT` at the side's
//!   last (deepest) price with qty 0, then one `DEPTH_SNAPSHOT_EVENT` per level (bids, then asks);
//! - delta: one `DEPTH_EVENT` per level, bids then asks (qty 0 deletes);
//! - `publicTrade.*`: one `TRADE_EVENT` per trade at its `T`, side from `S` (`Sell` is SELL,
//!   anything else BUY, as hftbacktest reads it);
//! - exchange time is the frame's `ts` (ms) in ns; local time is the line's receive ns, or for
//!   archive lines without one, the exchange time plus `feed_latency_ns`.
//!
//! Only one book depth is converted (hftbacktest's `single_depth_level`); frames of other topics,
//! acks and pongs are skipped. Prices and sizes become `f64` here, as hftbacktest stores them
//! (correctly rounded, the same values Python's `float()` gives).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// `EXCH_EVENT`: the exchange sees it (hftbacktest.types).
pub const EXCH_EVENT: u64 = 1 << 31;
/// `LOCAL_EVENT`: the local side sees it.
pub const LOCAL_EVENT: u64 = 1 << 30;
/// `BUY_EVENT`: bid side / buyer-initiated.
pub const BUY_EVENT: u64 = 1 << 29;
/// `SELL_EVENT`: ask side / seller-initiated.
pub const SELL_EVENT: u64 = 1 << 28;
/// `DEPTH_EVENT`: a level update.
pub const DEPTH_EVENT: u64 = 1;
/// `TRADE_EVENT`: a public trade.
pub const TRADE_EVENT: u64 = 2;
/// `DEPTH_CLEAR_EVENT`: clear one side up to a price.
pub const DEPTH_CLEAR_EVENT: u64 = 3;
/// `DEPTH_SNAPSHOT_EVENT`: a snapshot level.
pub const DEPTH_SNAPSHOT_EVENT: u64 = 4;

/// One row of hftbacktest's `event_dtype` (64 bytes, all fields 8-byte aligned).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Event {
    /// Kind and flags.
    pub ev: u64,
    /// Exchange time (ns).
    pub exch_ts: i64,
    /// Local receive time (ns).
    pub local_ts: i64,
    /// Price.
    pub px: f64,
    /// Quantity.
    pub qty: f64,
    /// Order id (0 for market data).
    pub order_id: u64,
    /// Integer payload (0).
    pub ival: i64,
    /// Float payload (0).
    pub fval: f64,
}

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow, default)]
    topic: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    ts: Option<i64>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct BookData<'a> {
    #[serde(borrow, default)]
    b: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    #[serde(borrow, default)]
    a: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

#[derive(Deserialize)]
struct TradeData<'a> {
    #[serde(rename = "T", default)]
    time: Option<i64>,
    #[serde(borrow, default)]
    p: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    v: Option<Cow<'a, str>>,
    #[serde(rename = "S", borrow, default)]
    side: Option<Cow<'a, str>>,
}

/// Why a frame cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not JSON of the expected shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A price or size that is not a number.
    #[error("not a number: {0:?}")]
    Number(String),
    /// A frame of a second symbol (hftbacktest data is one asset per file).
    #[error(
        "frame of {found} in a conversion of {expected}: convert one symbol at a time (--symbol)"
    )]
    OtherSymbol {
        /// The symbol being converted.
        expected: String,
        /// The symbol found.
        found: String,
    },
}

fn num(s: &str) -> Result<f64, FrameError> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| FrameError::Number(s.to_string()))
}

/// Turns frames into rows for one symbol and one book depth.
#[derive(Debug, Clone, Default)]
pub struct EventBuilder {
    /// Book depth to convert (`None`: the depth of the first book frame seen).
    pub depth: Option<u16>,
    /// Symbol to convert (`None`: the first seen; a second one is an error).
    pub symbol: Option<String>,
    /// Added to the exchange time of lines without a local time (ns).
    pub feed_latency_ns: i64,
    /// Frames skipped (other depths, symbols or topics, acks, pongs, `data: null`).
    pub skipped: u64,
    seen: Option<String>,
}

impl EventBuilder {
    /// A builder for `depth` and `symbol` (`None`: found in the input), with this feed latency
    /// for lines without a local time.
    pub fn new(depth: Option<u16>, symbol: Option<String>, feed_latency_ns: i64) -> Self {
        EventBuilder {
            depth,
            symbol,
            feed_latency_ns,
            ..EventBuilder::default()
        }
    }

    /// Whether frames of `topic`'s symbol are converted: with `--symbol`, only that one; without,
    /// the first symbol seen, and a second one is an error (never two books mixed into one).
    fn symbol_ok(&mut self, topic: &str) -> Result<bool, FrameError> {
        let sym = topic.rsplit('.').next().unwrap_or("");
        if let Some(want) = &self.symbol {
            return Ok(want == sym);
        }
        match &self.seen {
            None => {
                self.seen = Some(sym.to_string());
                Ok(true)
            }
            Some(s) if s == sym => Ok(true),
            Some(s) => Err(FrameError::OtherSymbol {
                expected: s.clone(),
                found: sym.to_string(),
            }),
        }
    }

    /// The symbol converted (given, or the first seen).
    pub fn converted_symbol(&self) -> Option<&str> {
        self.symbol.as_deref().or(self.seen.as_deref())
    }

    /// Appends the rows of one frame (`json`, received at `local_ns`) to `out`.
    pub fn push(
        &mut self,
        local_ns: Option<i64>,
        json: &str,
        out: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        let msg: Msg<'_> = serde_json::from_str(json)?;
        let Some(data) = msg.data.filter(|d| d.get() != "null") else {
            self.skipped += 1;
            return Ok(());
        };
        let topic = msg.topic.as_deref().unwrap_or("");
        let ts = msg.ts.unwrap_or(0);
        let exch = ts.saturating_mul(1_000_000);
        let latency = self.feed_latency_ns;
        let local = |exch: i64| local_ns.unwrap_or(exch.saturating_add(latency));
        if let Some(rest) = topic.strip_prefix("orderbook.") {
            let depth = rest.split('.').next().and_then(|d| d.parse::<u16>().ok());
            if depth.is_none() || self.depth.is_some_and(|d| Some(d) != depth) {
                self.skipped += 1;
                return Ok(());
            }
            if !self.symbol_ok(topic)? {
                self.skipped += 1;
                return Ok(());
            }
            self.depth = depth;
            let local = local(exch);
            let book: BookData<'_> = serde_json::from_str(data.get())?;
            let row = |ev: u64, px: f64, qty: f64| Event {
                ev,
                exch_ts: exch,
                local_ts: local,
                px,
                qty,
                ..Event::default()
            };
            match msg.kind.as_deref() {
                Some("snapshot") => {
                    for (side, levels) in [(BUY_EVENT, &book.b), (SELL_EVENT, &book.a)] {
                        let Some(last) = levels.last() else { continue };
                        out.push(row(DEPTH_CLEAR_EVENT | side, num(&last.0)?, 0.0));
                        for (px, qty) in levels {
                            out.push(row(DEPTH_SNAPSHOT_EVENT | side, num(px)?, num(qty)?));
                        }
                    }
                }
                Some("delta") => {
                    for (side, levels) in [(BUY_EVENT, &book.b), (SELL_EVENT, &book.a)] {
                        for (px, qty) in levels {
                            out.push(row(DEPTH_EVENT | side, num(px)?, num(qty)?));
                        }
                    }
                }
                _ => self.skipped += 1,
            }
        } else if topic.starts_with("publicTrade.") {
            if !self.symbol_ok(topic)? {
                self.skipped += 1;
                return Ok(());
            }
            let trades: Vec<TradeData<'_>> = serde_json::from_str(data.get())?;
            let local = local(exch);
            for t in trades {
                let side = if t.side.as_deref() == Some("Sell") {
                    SELL_EVENT
                } else {
                    BUY_EVENT
                };
                out.push(Event {
                    ev: TRADE_EVENT | side,
                    exch_ts: t.time.unwrap_or(ts).saturating_mul(1_000_000),
                    local_ts: local,
                    px: num(t.p.as_deref().unwrap_or("0"))?,
                    qty: num(t.v.as_deref().unwrap_or("0"))?,
                    ..Event::default()
                });
            }
        } else {
            self.skipped += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
