//! `GET /api/candles/{symbol}?interval=1m&from=&to=&limit=&category=`: candles from the SQLite
//! store, ascending. Intervals are given as `1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w` or Bybit's
//! names (`1 3 5 15 30 60 120 240 360 720 D W`). When the store holds no candles of the interval
//! itself (backfill stores 1-minute klines), they are aggregated exactly from 1-minute candles.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::feeds::{bounded, opt_u64, resolve, Params};
use super::market::store_error;
use crate::feed::health::unix_ms;
use crate::protocol::topic::interval_ms;
use crate::protocol::Category;
use crate::service::ServiceState;
use crate::store::{CandleSource, Store, StoredCandle};

/// Default candles of one answer.
pub const DEFAULT_CANDLES: u64 = 500;
/// Most candles of one answer.
pub const MAX_CANDLES: u64 = 5000;

const ALIASES: [(&str, &str); 12] = [
    ("1m", "1"),
    ("3m", "3"),
    ("5m", "5"),
    ("15m", "15"),
    ("30m", "30"),
    ("1h", "60"),
    ("2h", "120"),
    ("4h", "240"),
    ("6h", "360"),
    ("12h", "720"),
    ("1d", "D"),
    ("1w", "W"),
];

/// Bybit's interval name and its length (ms) for an interval parameter.
pub fn parse_interval(text: &str) -> Result<(&'static str, u64), String> {
    let t = text.trim();
    let name = ALIASES
        .iter()
        .find(|(alias, bybit)| t.eq_ignore_ascii_case(alias) || t.eq_ignore_ascii_case(bybit))
        .map(|(_, bybit)| *bybit);
    name.and_then(|n| interval_ms(n).map(|ms| (n, ms)))
        .ok_or_else(|| {
            format!(
                "invalid interval {t:?}: expected one of 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w \
                 (or Bybit's 1 3 5 15 30 60 120 240 360 720 D W)"
            )
        })
}

/// One candle of the answer. Decimals are exact strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CandleOut {
    /// Start (ms).
    pub start_ms: u64,
    /// Last millisecond (start + interval - 1).
    pub end_ms: u64,
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
    /// `backfill` (REST) or `live` (built from trades; any live part when aggregated).
    pub source: CandleSource,
    /// Closed.
    pub confirmed: bool,
}

impl CandleOut {
    fn from_stored(c: &StoredCandle, iv_ms: u64) -> Self {
        CandleOut {
            start_ms: c.start_ms,
            end_ms: c.start_ms + iv_ms - 1,
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume,
            turnover: c.turnover,
            source: c.source,
            confirmed: c.confirmed,
        }
    }
}

/// Aggregates ascending 1-minute candles into `iv_ms` candles aligned to the Unix epoch. A bucket
/// is confirmed only when all its minutes are present and confirmed.
pub fn aggregate(minutes: &[StoredCandle], iv_ms: u64) -> Vec<CandleOut> {
    let per_bucket = iv_ms / 60_000;
    let mut out: Vec<(CandleOut, u64)> = Vec::new();
    for m in minutes {
        let start = m.start_ms - m.start_ms % iv_ms;
        match out.last_mut() {
            Some((c, n)) if c.start_ms == start => {
                c.high = c.high.max(m.high);
                c.low = c.low.min(m.low);
                c.close = m.close;
                c.volume = c.volume.checked_add(m.volume).unwrap_or(c.volume);
                c.turnover = c.turnover.checked_add(m.turnover).unwrap_or(c.turnover);
                c.confirmed &= m.confirmed;
                if m.source == CandleSource::Live {
                    c.source = CandleSource::Live;
                }
                *n += 1;
            }
            _ => {
                let mut c = CandleOut::from_stored(m, iv_ms);
                c.start_ms = start;
                c.end_ms = start + iv_ms - 1;
                out.push((c, 1));
            }
        }
    }
    out.into_iter()
        .map(|(mut c, n)| {
            c.confirmed &= n == per_bucket;
            c
        })
        .collect()
}

/// `/api/candles` body.
#[derive(Debug, Serialize)]
pub struct CandlesBody {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// Bybit's interval name (`1`, `60`, `D`...).
    pub interval: &'static str,
    /// Interval length (ms).
    pub interval_ms: u64,
    /// Range start (inclusive, ms) actually served.
    pub from: u64,
    /// Range end (exclusive, ms).
    pub to: u64,
    /// `1` when aggregated from 1-minute candles, else `null`.
    pub derived_from: Option<&'static str>,
    /// The range held more than `limit` candles: only the newest are returned.
    pub truncated: bool,
    /// Candles returned.
    pub count: usize,
    /// Candles, ascending by start.
    pub candles: Vec<CandleOut>,
}

/// `GET /api/candles/{symbol}`.
pub async fn get_candles(
    State(state): State<ServiceState>,
    Path(symbol): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult<Json<CandlesBody>> {
    let key = resolve(&state, &symbol, &params)?;
    let (interval, iv_ms) = parse_interval(params.get("interval").map_or("1m", |s| s.as_str()))
        .map_err(ApiError::bad_request)?;
    let limit = bounded(&params, "limit", DEFAULT_CANDLES, MAX_CANDLES)?;
    let to = opt_u64(&params, "to")?.unwrap_or_else(|| unix_ms().saturating_add(iv_ms));
    let span = limit.saturating_mul(iv_ms);
    let from = opt_u64(&params, "from")?.unwrap_or_else(|| to.saturating_sub(span));
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "invalid range: from ({from}) must be before to ({to})"
        )));
    }
    let served_from = from.max(to.saturating_sub(span));
    let truncated = served_from > from;
    let path = state.store_path().map(|p| p.to_path_buf()).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_store",
            "this service keeps no store: candles are unavailable",
        )
    })?;
    let k = key.clone();
    let (candles, derived) = tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return Ok((Vec::new(), None));
        }
        let store = Store::open_read_only(&path).map_err(|e| e.to_string())?;
        let native = store
            .candles_range(&k.symbol, k.category, interval, served_from, to)
            .map_err(|e| e.to_string())?;
        let derivable = interval != "1" && interval != "W";
        if !native.is_empty() || !derivable {
            let out = native
                .iter()
                .map(|c| CandleOut::from_stored(c, iv_ms))
                .collect();
            return Ok((out, None));
        }
        let aligned = served_from - served_from % iv_ms;
        let minutes = store
            .candles_range(&k.symbol, k.category, "1", aligned, to)
            .map_err(|e| e.to_string())?;
        Ok((aggregate(&minutes, iv_ms), Some("1")))
    })
    .await
    .map_err(|e| store_error(e.to_string()))?
    .map_err(store_error)?;
    Ok(Json(CandlesBody {
        symbol: key.symbol,
        category: key.category,
        interval,
        interval_ms: iv_ms,
        from: served_from,
        to,
        derived_from: derived,
        truncated,
        count: candles.len(),
        candles,
    }))
}
