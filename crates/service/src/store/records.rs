//! The store's records (candles, trades, retention, status history) and how a row decodes into
//! one: decimals and categories come back exactly as written, anything else is a corrupt row.

use std::str::FromStr;

use rusqlite::Row;
use rust_decimal::Decimal;
use serde::Serialize;

use super::StoreError;
use crate::candles::BuiltCandle;
use crate::normalized::TradeEvent;
use crate::protocol::rest::Candle;
use crate::protocol::{Category, Side};

/// Where a candle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CandleSource {
    /// REST (`/v5/market/kline`).
    Backfill,
    /// Built from live trades (possibly on a REST base).
    Live,
}

impl CandleSource {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CandleSource::Backfill => "backfill",
            CandleSource::Live => "live",
        }
    }
}

/// A stored candle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCandle {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// Interval name.
    pub interval: String,
    /// Start (ms).
    pub start_ms: u64,
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
    /// Origin.
    pub source: CandleSource,
    /// Closed.
    pub confirmed: bool,
}

impl StoredCandle {
    /// A REST candle; `confirmed` when it had closed at the answer's server time.
    pub fn from_rest(
        symbol: &str,
        category: Category,
        interval: &str,
        c: &Candle,
        confirmed: bool,
    ) -> Self {
        StoredCandle {
            symbol: symbol.to_string(),
            category,
            interval: interval.to_string(),
            start_ms: c.start_ms,
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume,
            turnover: c.turnover,
            source: CandleSource::Backfill,
            confirmed,
        }
    }

    /// A candle built from live trades.
    pub fn from_built(c: &BuiltCandle, category: Category) -> Self {
        StoredCandle {
            symbol: c.symbol.clone(),
            category,
            interval: c.interval.clone(),
            start_ms: c.start_ms,
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume,
            turnover: c.turnover,
            source: CandleSource::Live,
            confirmed: c.confirmed,
        }
    }
}

/// A stored trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredTrade {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// Trade id.
    pub id: String,
    /// Price.
    pub price: Decimal,
    /// Size.
    pub qty: Decimal,
    /// Taker side.
    pub side: Side,
    /// Fill time (ms).
    pub ts_ms: u64,
    /// Cross sequence.
    pub seq: Option<u64>,
    /// Recovered from REST.
    pub recovered: bool,
}

impl StoredTrade {
    /// From a normalized trade of `category`.
    pub fn from_event(t: &TradeEvent, category: Category) -> Self {
        StoredTrade {
            symbol: t.symbol.clone(),
            category,
            id: t.id.clone(),
            price: t.price,
            qty: t.qty,
            side: t.side,
            ts_ms: t.ts_ms,
            seq: t.seq,
            recovered: t.recovered,
        }
    }
}

/// How many recent trades to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// Delete trades older than this (ms before `now`).
    pub max_age_ms: Option<u64>,
    /// Keep at most this many per (symbol, category), the newest.
    pub keep_last: Option<u64>,
}

impl Retention {
    /// Keep `hours` of trades.
    pub fn hours(hours: u64) -> Self {
        Retention {
            max_age_ms: Some(hours.saturating_mul(3_600_000)),
            keep_last: None,
        }
    }
}

/// One feed status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRecord {
    /// When (ms).
    pub ts_ms: u64,
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// Status (`up`, `down`, `degraded`...).
    pub status: String,
    /// Why.
    pub detail: String,
}

pub(super) fn int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Range(v))
}

pub(super) fn corrupt(table: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.into(),
    }
}

pub(super) fn dec(table: &'static str, row: &Row<'_>, i: usize) -> Result<Decimal, StoreError> {
    let s: String = row.get(i)?;
    Decimal::from_str(&s).map_err(|e| corrupt(table, format!("decimal {s:?}: {e}")))
}

pub(super) fn cat(table: &'static str, row: &Row<'_>, i: usize) -> Result<Category, StoreError> {
    let s: String = row.get(i)?;
    Category::from_str(&s).map_err(|e| corrupt(table, e))
}

pub(super) fn uint(table: &'static str, row: &Row<'_>, i: usize) -> Result<u64, StoreError> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| corrupt(table, format!("negative value {v}")))
}

pub(super) const CANDLE_COLUMNS: &str =
    "symbol, category, interval, start_ms, open, high, low, close, volume, turnover, source, confirmed";

pub(super) fn candle_row(row: &Row<'_>) -> Result<StoredCandle, StoreError> {
    const T: &str = "candles";
    let source: String = row.get(10)?;
    Ok(StoredCandle {
        symbol: row.get(0)?,
        category: cat(T, row, 1)?,
        interval: row.get(2)?,
        start_ms: uint(T, row, 3)?,
        open: dec(T, row, 4)?,
        high: dec(T, row, 5)?,
        low: dec(T, row, 6)?,
        close: dec(T, row, 7)?,
        volume: dec(T, row, 8)?,
        turnover: dec(T, row, 9)?,
        source: match source.as_str() {
            "backfill" => CandleSource::Backfill,
            "live" => CandleSource::Live,
            other => return Err(corrupt(T, format!("source {other:?}"))),
        },
        confirmed: row.get(11)?,
    })
}

pub(super) fn trade_row(row: &Row<'_>) -> Result<StoredTrade, StoreError> {
    const T: &str = "trades";
    let side: String = row.get(5)?;
    let seq: Option<i64> = row.get(7)?;
    Ok(StoredTrade {
        symbol: row.get(0)?,
        category: cat(T, row, 1)?,
        id: row.get(2)?,
        price: dec(T, row, 3)?,
        qty: dec(T, row, 4)?,
        side: match side.as_str() {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            other => return Err(corrupt(T, format!("side {other:?}"))),
        },
        ts_ms: uint(T, row, 6)?,
        seq: seq
            .map(|s| u64::try_from(s).map_err(|_| corrupt(T, format!("negative seq {s}"))))
            .transpose()?,
        recovered: row.get(8)?,
    })
}

pub(super) fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    f: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(row)?);
    }
    Ok(out)
}
