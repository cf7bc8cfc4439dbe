//! Live candles built from trades, exactly (every sum is a [`Decimal`]), and their stitching to REST
//! history.
//!
//! One [`CandleAggregator`] per (symbol, interval). It takes [`TradeEvent`]s and yields closed
//! candles and the open ones. Time is always a value passed in (trade times and `now_ms`); nothing
//! here reads a clock.
//!
//! # Rules
//! - **Buckets.** A trade at `ts` belongs to the interval starting at [`Interval::start_of`]`(ts)`:
//!   minute intervals and `D` are aligned to the Unix epoch (UTC), `W` to Monday 00:00 UTC. `M` is
//!   calendar based and not supported.
//! - **Out of order.** A bucket `[s, s + len)` stays open until the watermark (the latest trade time
//!   or `now_ms` seen) reaches `s + len + grace_ms`; trades for it arriving before that are applied
//!   in event order (open = earliest `(ts, seq)`, close = latest). Later trades are [`Ingest::Late`]
//!   and ignored: a closed candle is never changed locally (the REST re-fetch of
//!   [`missing_intervals`] is how history is corrected).
//! - **Duplicates.** A trade id already applied to an open bucket is [`Ingest::Duplicate`]
//!   (REST-recovered trades overlapping live ones). Ids are forgotten when their bucket closes,
//!   and only the newest [`DEFAULT_DEDUPE_CAPACITY`] are kept (REST recovers at most 1000 trades).
//! - **Empty intervals** yield no live candle (Bybit's REST has a flat one; fetch it if needed).
//! - **Stitching** ([`CandleAggregator::reconcile_open`]): REST's open candle is a snapshot taken at
//!   the server time of its answer, `as_of_ms`, and cannot be split by time. So the join point is
//!   `as_of_ms`: REST is authoritative for every trade at or before it (its open, high, low, volume,
//!   turnover are taken as they are) and live trades strictly after it extend the candle (high/low
//!   widen, close moves, volume and turnover add). Live trades at or before `as_of_ms` are dropped as
//!   already counted by REST, now and when they arrive late. Using "the first live trade" as the
//!   join point instead would double count every trade between the first live trade and the REST
//!   answer, which is the normal case when the feed subscribes before fetching (the order that
//!   leaves no hole). If the REST answer is older than the first live trade, the interval between
//!   them may be a hole; [`Reconciled::hole`] reports it so the caller can re-fetch that candle
//!   once it closes.
//!
//!   To split live data at `as_of_ms`, an aggregator keeps the individual trades of buckets opened
//!   while it awaits REST (from construction, or after [`CandleAggregator::interrupted`]) until the
//!   bucket is reconciled or closes; otherwise it keeps only the sums.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::normalized::{KlineEvent, TradeEvent};
use crate::protocol::rest::Candle;

/// Default number of trade ids remembered for de-duplication. A REST recent-trade answer holds
/// at most 1000 trades, the newest, so only recent live ids can reappear in it; bounding the ids by
/// count keeps `D`/`W` aggregators from holding a day or week of ids.
pub const DEFAULT_DEDUPE_CAPACITY: usize = 50_000;

/// Default time a bucket stays open after its end for out-of-order trades.
pub const DEFAULT_GRACE_MS: u64 = 2_000;

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandleError {
    /// Not a Bybit interval, or a calendar one (`M`).
    #[error(
        "unsupported kline interval {0:?}: expected one of 1 3 5 15 30 60 120 240 360 720 D W"
    )]
    Interval(String),
    /// A REST candle whose start is not an interval boundary.
    #[error("REST candle start {start_ms} is not a boundary of interval {interval}")]
    Misaligned {
        /// Interval name.
        interval: String,
        /// The start REST gave.
        start_ms: u64,
    },
    /// The bucket was already closed locally.
    #[error("candle {start_ms} is already closed")]
    AlreadyClosed {
        /// Start of the candle.
        start_ms: u64,
    },
    /// Live trades at or before the join point were summed without being kept, so they cannot be
    /// separated from REST's part. Call [`CandleAggregator::interrupted`] before fetching REST.
    #[error("candle {start_ms} has live trades before the REST answer that were not retained")]
    NotRetained {
        /// Start of the candle.
        start_ms: u64,
    },
    /// A REST answer dated before the candle it describes.
    #[error("REST answer time {as_of_ms} is before candle start {start_ms}")]
    AnswerBeforeStart {
        /// Start of the candle.
        start_ms: u64,
        /// REST answer time.
        as_of_ms: u64,
    },
    /// A sum exceeded the range of `Decimal`.
    #[error("decimal overflow in candle {start_ms}")]
    Overflow {
        /// Start of the candle.
        start_ms: u64,
    },
}

/// A candle built here (possibly on top of REST's open candle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuiltCandle {
    /// Symbol.
    pub symbol: String,
    /// Interval name.
    pub interval: String,
    /// Start (ms).
    pub start_ms: u64,
    /// Last millisecond of the interval (Bybit's `end`: start + length - 1).
    pub end_ms: u64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close (last price while open).
    pub close: Decimal,
    /// Volume: Σ qty.
    pub volume: Decimal,
    /// Turnover: Σ price × qty.
    pub turnover: Decimal,
    /// Live trades applied (REST's part is not counted).
    pub trade_count: u64,
    /// Time of the latest trade applied (ms), if any live trade was.
    pub last_trade_ms: Option<u64>,
    /// Closed.
    pub confirmed: bool,
    /// When REST's candle is its base: the REST answer time (the join point).
    pub rest_as_of_ms: Option<u64>,
}

impl BuiltCandle {
    /// As a normalized kline event, last updated at `ts_ms`.
    pub fn to_kline_event(&self, ts_ms: u64) -> KlineEvent {
        KlineEvent {
            symbol: self.symbol.clone(),
            interval: self.interval.clone(),
            start: self.start_ms,
            end: self.end_ms,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            turnover: self.turnover,
            confirm: self.confirmed,
            ts_ms,
        }
    }
}

/// What became of one trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ingest {
    /// Added to its candle.
    Applied,
    /// Same id already applied to an open candle.
    Duplicate,
    /// Its candle is already closed.
    Late,
    /// At or before the REST answer its candle was reconciled with: already counted.
    CoveredByRest,
    /// For another symbol.
    OtherSymbol,
    /// Sums would exceed `Decimal`; ignored.
    Overflow,
}

/// Counters of [`Ingest`] outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Applied.
    pub applied: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// Late.
    pub late: u64,
    /// Covered by REST.
    pub covered_by_rest: u64,
    /// Other symbol.
    pub other_symbol: u64,
    /// Overflow.
    pub overflow: u64,
}

/// The result of [`CandleAggregator::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// What became of the trade.
    pub ingest: Ingest,
    /// Candles this trade's time closed, oldest first.
    pub closed: Vec<BuiltCandle>,
}

/// The result of [`CandleAggregator::reconcile_open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The stitched candle.
    pub candle: BuiltCandle,
    /// Live trades kept (after the join point).
    pub kept_live: usize,
    /// Live trades dropped as already in REST's candle.
    pub dropped_covered: usize,
    /// `(rest_as_of_ms, first_live_ms)` when the REST answer predates the first live trade seen
    /// since the aggregator started or was interrupted: trades in between may be missing.
    pub hole: Option<(u64, u64)>,
}

/// Builds candles of one symbol and interval from its trades.
#[derive(Debug, Clone)]
pub struct CandleAggregator {
    symbol: String,
    interval: Interval,
    grace_ms: u64,
    open: BTreeMap<u64, Building>,
    /// Every bucket starting before this is closed.
    closed_before: Option<u64>,
    watermark_ms: u64,
    arrivals: u64,
    awaiting_rest: bool,
    /// First live trade time since construction or the last interruption.
    live_since_ms: Option<u64>,
    seen: SeenIds,
    stats: IngestStats,
}

impl CandleAggregator {
    /// An aggregator for `symbol` and a Bybit interval string, with [`DEFAULT_GRACE_MS`]. It starts
    /// awaiting REST's open candle (see [`Self::reconcile_open`]).
    pub fn new(symbol: &str, interval: &str) -> Result<Self, CandleError> {
        Self::with_grace(symbol, interval, DEFAULT_GRACE_MS)
    }

    /// As [`Self::new`], keeping each bucket open `grace_ms` after its end for late trades.
    pub fn with_grace(symbol: &str, interval: &str, grace_ms: u64) -> Result<Self, CandleError> {
        Ok(CandleAggregator {
            symbol: symbol.to_string(),
            interval: Interval::parse(interval)?,
            grace_ms,
            open: BTreeMap::new(),
            closed_before: None,
            watermark_ms: 0,
            arrivals: 0,
            awaiting_rest: true,
            live_since_ms: None,
            seen: SeenIds::new(DEFAULT_DEDUPE_CAPACITY),
            stats: IngestStats::default(),
        })
    }

    /// Remembers at most `capacity` (at least 1) trade ids for de-duplication (see
    /// [`DEFAULT_DEDUPE_CAPACITY`]).
    pub fn with_dedupe_capacity(mut self, capacity: usize) -> Self {
        self.seen = SeenIds::new(capacity);
        self
    }

    /// Symbol.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// Interval.
    pub fn interval(&self) -> &Interval {
        &self.interval
    }

    /// Outcome counters.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// Whether buckets opened now keep their trades for a coming [`Self::reconcile_open`].
    pub fn awaiting_rest(&self) -> bool {
        self.awaiting_rest
    }

    /// The live feed was interrupted (reconnect, outage): live coverage restarts with the next
    /// trade and new buckets keep their trades until reconciled with REST.
    pub fn interrupted(&mut self) {
        self.awaiting_rest = true;
        self.live_since_ms = None;
    }

    /// Applies one trade; returns what became of it and the candles its time closed.
    pub fn push(&mut self, t: &TradeEvent) -> Pushed {
        let ingest = self.ingest(t);
        match ingest {
            Ingest::Applied => self.stats.applied += 1,
            Ingest::Duplicate => self.stats.duplicate += 1,
            Ingest::Late => self.stats.late += 1,
            Ingest::CoveredByRest => self.stats.covered_by_rest += 1,
            Ingest::OtherSymbol => self.stats.other_symbol += 1,
            Ingest::Overflow => self.stats.overflow += 1,
        }
        let closed = if ingest == Ingest::OtherSymbol {
            Vec::new()
        } else {
            self.close_due(t.ts_ms)
        };
        Pushed { ingest, closed }
    }

    fn ingest(&mut self, t: &TradeEvent) -> Ingest {
        if t.symbol != self.symbol {
            return Ingest::OtherSymbol;
        }
        let start = self.interval.start_of(t.ts_ms);
        if self.closed_before.is_some_and(|c| start < c) {
            return Ingest::Late;
        }
        self.arrivals += 1;
        let key = (t.ts_ms, t.seq.unwrap_or(0), self.arrivals);
        let retain = self.awaiting_rest;
        let b = self
            .open
            .entry(start)
            .or_insert_with(|| Building::empty(&self.symbol, &self.interval, start, retain));
        if self.seen.contains(&t.id) {
            return Ingest::Duplicate;
        }
        if b.candle.rest_as_of_ms.is_some_and(|a| t.ts_ms <= a) {
            self.seen.insert(start, &t.id);
            return Ingest::CoveredByRest;
        }
        if !b.apply(key, t.price, t.qty) {
            return Ingest::Overflow;
        }
        self.seen.insert(start, &t.id);
        self.live_since_ms = Some(self.live_since_ms.map_or(t.ts_ms, |s| s.min(t.ts_ms)));
        Ingest::Applied
    }

    /// Advances time to `now_ms` (never backwards) and returns the candles that closed, oldest
    /// first. Call it periodically so quiet markets still close their candles.
    pub fn close_due(&mut self, now_ms: u64) -> Vec<BuiltCandle> {
        self.watermark_ms = self.watermark_ms.max(now_ms);
        let horizon = self.watermark_ms.saturating_sub(self.grace_ms);
        let boundary = self.interval.start_of(horizon);
        self.closed_before = Some(self.closed_before.map_or(boundary, |c| c.max(boundary)));
        self.seen.forget_before(boundary);
        let still_open = self.open.split_off(&boundary);
        let closing = std::mem::replace(&mut self.open, still_open);
        closing
            .into_values()
            .filter(Building::has_data)
            .map(|b| {
                let mut c = b.candle;
                c.confirmed = true;
                c
            })
            .collect()
    }

    /// Open candles with data, oldest first (more than one only during a grace period).
    pub fn open_candles(&self) -> Vec<BuiltCandle> {
        self.open
            .values()
            .filter(|b| b.has_data())
            .map(|b| b.candle.clone())
            .collect()
    }

    /// The newest open candle with data.
    pub fn current(&self) -> Option<BuiltCandle> {
        self.open
            .values()
            .rev()
            .find(|b| b.has_data())
            .map(|b| b.candle.clone())
    }

    /// Stitches REST's candle for an open (or not yet seen) bucket with the live trades, REST being
    /// authoritative up to `as_of_ms`, the server time of its answer (see the module rules).
    /// Replaces any earlier reconciliation of the same bucket.
    pub fn reconcile_open(
        &mut self,
        rest: &Candle,
        as_of_ms: u64,
    ) -> Result<Reconciled, CandleError> {
        let start = rest.start_ms;
        if !self.interval.is_boundary(start) {
            return Err(CandleError::Misaligned {
                interval: self.interval.name.clone(),
                start_ms: start,
            });
        }
        if self.closed_before.is_some_and(|c| start < c) {
            return Err(CandleError::AlreadyClosed { start_ms: start });
        }
        if as_of_ms < start {
            return Err(CandleError::AnswerBeforeStart {
                start_ms: start,
                as_of_ms,
            });
        }
        let old = self.open.get(&start);
        let mut live: Vec<Rec> = match old {
            None => Vec::new(),
            Some(b) => match &b.retained {
                Some(r) => r.clone(),
                // Sums only: usable when they are wholly after the join point.
                None if b.first_key.is_none_or(|k| k.0 > as_of_ms) => match b.first_key {
                    None => Vec::new(),
                    Some(_) => return self.extend_unretained(rest, as_of_ms),
                },
                None => return Err(CandleError::NotRetained { start_ms: start }),
            },
        };
        live.sort_by_key(|r| r.key);
        let mut b = Building::empty(&self.symbol, &self.interval, start, false);
        set_rest_base(&mut b.candle, rest, as_of_ms);
        let mut kept = 0;
        let mut dropped = 0;
        for r in &live {
            if r.key.0 <= as_of_ms {
                dropped += 1;
            } else if b.apply(r.key, r.price, r.qty) {
                kept += 1;
            } else {
                return Err(CandleError::Overflow { start_ms: start });
            }
        }
        let hole = self.hole_after(as_of_ms);
        let candle = b.candle.clone();
        self.open.insert(start, b);
        self.awaiting_rest = false;
        Ok(Reconciled {
            candle,
            kept_live: kept,
            dropped_covered: dropped,
            hole,
        })
    }

    fn hole_after(&self, as_of_ms: u64) -> Option<(u64, u64)> {
        self.live_since_ms
            .filter(|&s| s > as_of_ms + 1)
            .map(|s| (as_of_ms, s))
    }

    /// Reconciliation of a bucket whose live part is known only as sums, all after the join point.
    fn extend_unretained(
        &mut self,
        rest: &Candle,
        as_of_ms: u64,
    ) -> Result<Reconciled, CandleError> {
        let start = rest.start_ms;
        let overflow = CandleError::Overflow { start_ms: start };
        let Some(b) = self.open.get_mut(&start) else {
            return Err(CandleError::NotRetained { start_ms: start });
        };
        let live = b.candle.clone();
        let c = &mut b.candle;
        c.open = rest.open;
        c.high = rest.high.max(live.high);
        c.low = rest.low.min(live.low);
        c.volume = rest
            .volume
            .checked_add(live.volume)
            .ok_or(overflow.clone())?;
        c.turnover = rest.turnover.checked_add(live.turnover).ok_or(overflow)?;
        c.rest_as_of_ms = Some(as_of_ms);
        let candle = c.clone();
        self.awaiting_rest = false;
        Ok(Reconciled {
            kept_live: usize::try_from(candle.trade_count).unwrap_or(usize::MAX),
            candle,
            dropped_covered: 0,
            hole: self.hole_after(as_of_ms),
        })
    }
}

fn set_rest_base(c: &mut BuiltCandle, rest: &Candle, as_of_ms: u64) {
    c.open = rest.open;
    c.high = rest.high;
    c.low = rest.low;
    c.close = rest.close;
    c.volume = rest.volume;
    c.turnover = rest.turnover;
    c.rest_as_of_ms = Some(as_of_ms);
}

mod building;
mod interval;
mod seen;

use building::{Building, Rec};
use seen::SeenIds;

pub use interval::{missing_intervals, Interval, MissingSpan};

#[cfg(test)]
mod tests;
