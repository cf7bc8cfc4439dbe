//! Candle intervals (length and alignment of Bybit's kline intervals) and the closed intervals an
//! outage left missing.

use std::fmt;

use serde::Serialize;

use super::CandleError;
use crate::protocol::topic::interval_ms;

/// Monday 1970-01-05 00:00 UTC: the first weekly candle boundary after the epoch.
const WEEK_OFFSET_MS: u64 = 4 * 86_400_000;

/// A kline interval with its length and alignment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interval {
    pub(super) name: String,
    pub(super) ms: u64,
    pub(super) offset_ms: u64,
}

impl Interval {
    /// Parses a Bybit interval string (`1`, `5`, `60`, `D`, `W`...); `M` is refused.
    pub fn parse(name: &str) -> Result<Self, CandleError> {
        let ms = interval_ms(name).ok_or_else(|| CandleError::Interval(name.to_string()))?;
        let offset_ms = if name == "W" { WEEK_OFFSET_MS } else { 0 };
        Ok(Interval {
            name: name.to_string(),
            ms,
            offset_ms,
        })
    }

    /// Bybit's name for it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length in milliseconds.
    pub fn ms(&self) -> u64 {
        self.ms
    }

    /// Start of the interval containing `ts_ms` (0 for times before the first boundary).
    pub fn start_of(&self, ts_ms: u64) -> u64 {
        if ts_ms < self.offset_ms {
            return 0;
        }
        ts_ms - (ts_ms - self.offset_ms) % self.ms
    }

    /// The first boundary at or after the epoch (0, or Monday 1970-01-05 for `W`).
    pub fn first_boundary(&self) -> u64 {
        self.offset_ms
    }

    /// Whether `ms` is a boundary of this interval.
    pub fn is_boundary(&self, ms: u64) -> bool {
        ms >= self.offset_ms && (ms - self.offset_ms) % self.ms == 0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Closed intervals to re-fetch from REST: `[from_ms, to_ms)` of candle starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MissingSpan {
    /// First missing start.
    pub from_ms: u64,
    /// End (exclusive): the start of the interval open at `now`.
    pub to_ms: u64,
    /// Interval length.
    pub interval_ms: u64,
}

impl MissingSpan {
    /// Number of candles missing.
    pub fn count(&self) -> u64 {
        (self.to_ms - self.from_ms) / self.interval_ms
    }

    /// The missing starts, ascending.
    pub fn starts(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count()).map(move |i| self.from_ms + i * self.interval_ms)
    }
}

/// The closed candles after `last_confirmed_start` (the newest candle history holds as closed)
/// up to the interval open at `now_ms` (excluded: reconcile it with
/// [`super::CandleAggregator::reconcile_open`]). `None` when nothing is missing.
pub fn missing_intervals(
    interval: &Interval,
    last_confirmed_start: u64,
    now_ms: u64,
) -> Option<MissingSpan> {
    let from_ms = interval.start_of(last_confirmed_start) + interval.ms;
    let to_ms = interval.start_of(now_ms);
    (from_ms < to_ms).then_some(MissingSpan {
        from_ms,
        to_ms,
        interval_ms: interval.ms,
    })
}
