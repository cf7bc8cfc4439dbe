//! Backfill planning: which `/v5/market/kline` requests cover a time range, how far along the
//! backfill is, and how far along it is (what to do when a request fails: [`super::retry`]). Pure: no I/O, no clock.
//!
//! # Chunks
//! Chunks sit on a fixed grid of `limit` candles aligned to the interval (cell `k` holds the starts
//! `[k·limit·len, (k+1)·limit·len)`), clipped to the range. So planning "the last 90 days" again a few
//! minutes later yields the same ids for every whole cell, and a restart skips the chunks already
//! stored; only the clipped first and last chunks get new ids (and are at most two requests). A
//! chunk's id is `category:symbol:interval:start-end`, which also tells chunks of different limits
//! apart. The last chunk usually holds the open candle: mark a chunk done only when
//! [`Chunk::is_closed_at`] the answer's server time.
//!

use std::collections::HashSet;

use serde::Serialize;

use crate::candles::{CandleError, Interval};
use crate::protocol::topic::valid_symbol;
use crate::protocol::Category;

/// Most candles one `/v5/market/kline` request returns.
pub const MAX_KLINE_LIMIT: u64 = 1000;

/// Why a range cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Bad symbol.
    #[error("invalid symbol {0:?}: Bybit symbols are upper-case letters and digits")]
    Symbol(String),
    /// Bad interval.
    #[error(transparent)]
    Interval(#[from] CandleError),
    /// Bad limit.
    #[error("kline limit {0} is outside 1..=1000")]
    Limit(u64),
    /// Empty or reversed range.
    #[error("empty backfill range: from {from_ms} is not before to {to_ms}")]
    Range {
        /// From (ms).
        from_ms: u64,
        /// To (ms).
        to_ms: u64,
    },
}

/// One kline request: the candles starting in `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// Stable id: `category:symbol:interval:start-end`.
    pub id: String,
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// Interval name.
    pub interval: String,
    /// First candle start (ms).
    pub start_ms: u64,
    /// End (exclusive, ms): one interval after the last candle start.
    pub end_ms: u64,
    /// Candles it holds (the `limit` to ask for).
    pub candles: u64,
}

impl Chunk {
    /// The request's `end` parameter: Bybit's `end` is inclusive, so the last millisecond.
    pub fn query_end_ms(&self) -> u64 {
        self.end_ms - 1
    }

    /// Query parameters of `GET /v5/market/kline` for this chunk.
    pub fn query(&self) -> [(&'static str, String); 6] {
        [
            ("category", self.category.as_str().to_string()),
            ("symbol", self.symbol.clone()),
            ("interval", self.interval.clone()),
            ("start", self.start_ms.to_string()),
            ("end", self.query_end_ms().to_string()),
            ("limit", self.candles.to_string()),
        ]
    }

    /// Whether every candle of the chunk was closed at server time `as_of_ms` (only then may it be
    /// recorded as done).
    pub fn is_closed_at(&self, as_of_ms: u64) -> bool {
        self.end_ms <= as_of_ms
    }
}

/// The chunks covering every candle that overlaps `[from_ms, to_ms)`, in ascending order, without
/// gaps or overlap, each at most `limit` candles, on the fixed grid described in the module docs.
pub fn plan_chunks(
    symbol: &str,
    category: Category,
    interval: &str,
    from_ms: u64,
    to_ms: u64,
    limit: u64,
) -> Result<Vec<Chunk>, PlanError> {
    if !valid_symbol(symbol) {
        return Err(PlanError::Symbol(symbol.to_string()));
    }
    let iv = Interval::parse(interval)?;
    if !(1..=MAX_KLINE_LIMIT).contains(&limit) {
        return Err(PlanError::Limit(limit));
    }
    if from_ms >= to_ms {
        return Err(PlanError::Range { from_ms, to_ms });
    }
    let len = iv.ms();
    let first = iv.start_of(from_ms);
    let end = iv.start_of(to_ms - 1) + len;
    let cell = limit * len;
    // The grid is anchored at the interval's first boundary (Monday 1970-01-05 for `W`).
    let anchor = iv.first_boundary().min(first);
    let mut chunks = Vec::new();
    let mut start = first;
    while start < end {
        let cell_end = anchor + ((start - anchor) / cell + 1) * cell;
        let stop = cell_end.min(end);
        chunks.push(Chunk {
            id: format!("{}:{symbol}:{interval}:{start}-{stop}", category.as_str()),
            symbol: symbol.to_string(),
            category,
            interval: interval.to_string(),
            start_ms: start,
            end_ms: stop,
            candles: (stop - start) / len,
        });
        start = stop;
    }
    Ok(chunks)
}

/// The chunks whose id is not in `done`, in order.
pub fn remaining<'a>(chunks: &'a [Chunk], done: &HashSet<String>) -> Vec<&'a Chunk> {
    chunks.iter().filter(|c| !done.contains(&c.id)).collect()
}

/// State of one backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackfillState {
    /// Planned, not started.
    Pending,
    /// Fetching.
    Running,
    /// Every chunk stored.
    Done,
    /// Stopped by a fatal error.
    Failed,
}

/// Progress of one backfill (what the `backfill_progress` log event and the status API show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillProgress {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: Category,
    /// Interval.
    pub interval: String,
    /// Chunks stored (including those found stored at start).
    pub done: u64,
    /// Chunks planned.
    pub total: u64,
    /// State.
    pub state: BackfillState,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BackfillProgress {
    /// Pending progress of `total` chunks of which `already_done` were stored before.
    pub fn new(
        symbol: &str,
        category: Category,
        interval: &str,
        total: u64,
        already_done: u64,
    ) -> Self {
        BackfillProgress {
            symbol: symbol.to_string(),
            category,
            interval: interval.to_string(),
            done: already_done.min(total),
            total,
            state: BackfillState::Pending,
            error: None,
        }
    }

    /// Fetching starts (or there is nothing left to fetch).
    pub fn start(&mut self) {
        if self.state == BackfillState::Pending {
            self.state = if self.done >= self.total {
                BackfillState::Done
            } else {
                BackfillState::Running
            };
        }
    }

    /// One more chunk stored.
    pub fn chunk_done(&mut self) {
        if self.state == BackfillState::Running {
            self.done = (self.done + 1).min(self.total);
            if self.done == self.total {
                self.state = BackfillState::Done;
            }
        }
    }

    /// A fatal error stopped it.
    pub fn fail(&mut self, error: impl Into<String>) {
        self.state = BackfillState::Failed;
        self.error = Some(error.into());
    }

    /// Done fraction in `[0, 1]` (1 when there is nothing to do).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
}
