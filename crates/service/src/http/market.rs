//! Market data routes: `GET /api/book/{symbol}?top=N` (the top N levels of the exact book) and
//! `GET /api/trades/{symbol}` (recent trades in the normalized schema, from memory or the store).

use std::collections::HashSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::feeds::{bounded, opt_u64, resolve, Params};
use crate::normalized::{pairs, Pair, TradeEvent};
use crate::protocol::Category;
use crate::service::state::RECENT_TRADES;
use crate::service::{FeedKey, ServiceState};
use crate::store::{Store, StoredTrade};

/// Default levels per side of `/api/book` (`top`).
pub const DEFAULT_DEPTH: u64 = 25;
/// Most levels per side of `/api/book` (Bybit's deepest book).
pub const MAX_DEPTH: u64 = 1000;
/// Default trades of `/api/trades`.
pub const DEFAULT_TRADES: u64 = 100;
/// Most trades of one `/api/trades` answer.
pub const MAX_TRADES: u64 = 1000;

/// `/api/book` body. Prices and sizes are the exact decimal strings Bybit sent.
#[derive(Debug, Serialize)]
pub struct BookBody {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// The book's depth: the `orderbook.{depth}` topic it is built from (`feed.depth`), as in
    /// the normalized schema.
    pub depth: usize,
    /// Levels per side returned at most (the `top` parameter).
    pub top: u64,
    /// Last applied update id.
    pub u: Option<u64>,
    /// Last cross sequence.
    pub seq: Option<u64>,
    /// Exchange time of the last update (ms).
    pub ts_ms: u64,
    /// Built from a snapshot and contiguous deltas only (false while awaiting a snapshot).
    pub synced: bool,
    /// Best bid.
    pub best_bid: Option<Pair>,
    /// Best ask.
    pub best_ask: Option<Pair>,
    /// Mid price.
    pub mid: Option<Decimal>,
    /// Spread.
    pub spread: Option<Decimal>,
    /// (bid levels, ask levels) in the whole book.
    pub levels: (usize, usize),
    /// Top bids, best first.
    pub bids: Vec<Pair>,
    /// Top asks, best first.
    pub asks: Vec<Pair>,
}

/// `GET /api/book/{symbol}?category=&top=N`.
pub async fn get_book(
    State(state): State<ServiceState>,
    Path(symbol): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult<Json<BookBody>> {
    if params.contains_key("depth") {
        // `depth` is the book's (feed.depth), never a count to return: one meaning per name.
        return Err(ApiError::bad_request(format!(
            "depth is the book's subscribed depth (feed.depth), not a parameter: ask for the \
             levels per side with top=N, e.g. /api/book/{}?top=10",
            symbol.trim().to_ascii_uppercase()
        )));
    }
    let key = resolve(&state, &symbol, &params)?;
    let depth = bounded(&params, "top", DEFAULT_DEPTH, MAX_DEPTH)?;
    let book = state.book(&key).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_book",
            format!(
                "no order book yet for {}/{}: waiting for the first snapshot",
                key.category, key.symbol
            ),
        )
    })?;
    let (bids, asks) = book.top(usize::try_from(depth).unwrap_or(usize::MAX));
    Ok(Json(BookBody {
        symbol: key.symbol,
        category: key.category,
        depth: book.depth(),
        top: depth,
        u: book.last_u(),
        seq: book.seq(),
        ts_ms: book.ts_ms(),
        synced: book.is_synced(),
        best_bid: book.best_bid().map(|l| (l.price, l.qty)),
        best_ask: book.best_ask().map(|l| (l.price, l.qty)),
        mid: book.mid(),
        spread: book.spread(),
        levels: book.level_counts(),
        bids: pairs(bids),
        asks: pairs(asks),
    }))
}

/// `/api/trades` body.
#[derive(Debug, Serialize)]
pub struct TradesBody {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// Trades returned.
    pub count: usize,
    /// `memory` (the service's recent trades) or `store` (older trades from SQLite, topped up
    /// from memory).
    pub source: &'static str,
    /// Trades, oldest first, in the normalized schema.
    pub trades: Vec<TradeEvent>,
}

fn from_stored(t: StoredTrade) -> TradeEvent {
    TradeEvent {
        category: Some(t.category.as_str().to_string()),
        symbol: t.symbol,
        id: t.id,
        price: t.price,
        qty: t.qty,
        side: t.side,
        ts_ms: t.ts_ms,
        seq: t.seq,
        block: false,
        recv_ns: None,
        recovered: t.recovered,
    }
}

/// `GET /api/trades/{symbol}?limit=N&since_ms=&category=`.
///
/// Without `since_ms`: the newest `limit` trades. With it: the first `limit` trades at or after
/// `since_ms` (page forward by passing the last `ts_ms`), read from the store when the service's
/// in-memory ring no longer reaches back that far. Oldest first either way.
pub async fn get_trades(
    State(state): State<ServiceState>,
    Path(symbol): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult<Json<TradesBody>> {
    let key = resolve(&state, &symbol, &params)?;
    let limit = bounded(&params, "limit", DEFAULT_TRADES, MAX_TRADES)?;
    let since = opt_u64(&params, "since_ms")?;
    let limit_n = usize::try_from(limit).unwrap_or(usize::MAX);
    let body = |source, trades: Vec<TradeEvent>| TradesBody {
        symbol: key.symbol.clone(),
        category: key.category,
        count: trades.len(),
        source,
        trades,
    };
    let Some(since) = since else {
        return Ok(Json(body("memory", state.trades(&key, None, limit_n))));
    };
    let all = state.trades(&key, None, RECENT_TRADES);
    let covered = all.first().is_some_and(|oldest| oldest.ts_ms <= since);
    let memory: Vec<TradeEvent> = all.into_iter().filter(|t| t.ts_ms >= since).collect();
    let store_path = state.store_path().map(|p| p.to_path_buf());
    let Some(path) = store_path.filter(|p| !covered && p.exists()) else {
        let trades = memory.into_iter().take(limit_n).collect();
        return Ok(Json(body("memory", trades)));
    };
    let k: FeedKey = key.clone();
    let stored = tokio::task::spawn_blocking(move || -> Result<Vec<StoredTrade>, String> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let store = Store::open(dir).map_err(|e| e.to_string())?;
        store
            .trades_since(&k.symbol, k.category, since, limit)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| store_error(e.to_string()))?
    .map_err(store_error)?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut trades: Vec<TradeEvent> = stored
        .into_iter()
        .map(from_stored)
        .filter(|t| seen.insert(t.id.clone()))
        .collect();
    let last_ts = trades.last().map(|t| t.ts_ms).unwrap_or(since);
    trades.extend(
        memory
            .into_iter()
            .filter(|t| t.ts_ms >= last_ts && !seen.contains(&t.id)),
    );
    trades.truncate(limit_n);
    Ok(Json(body("store", trades)))
}

/// A 500 for a store failure.
pub fn store_error(e: String) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_error",
        format!("store error: {e}"),
    )
}
