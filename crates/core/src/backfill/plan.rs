//! Backfill planning: which `/v5/market/kline` requests cover a time range, how far along the
//! backfill is, and what to do when a request fails. Pure: no I/O, no clock.
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
//! # Failures ([`RetryPolicy::decide`])
//! - HTTP 429, HTTP 5xx, a timeout or a network error: retry this chunk with exponential backoff
//!   (unbounded by default: an outage means retries, not a failed backfill).
//! - HTTP 403 ("access too frequent", an IP ban): stop **all** fetching for `ban_wait_ms` (10 minutes,
//!   Bybit's documented minimum), then retry.
//! - `retCode 10001` (invalid request parameter, which is how Bybit refuses an unknown symbol): fatal,
//!   naming the symbol; retrying cannot help.
//! - Any other `retCode`, other HTTP status or malformed body: retry with backoff a bounded number of
//!   times, then fail.

use std::collections::HashSet;

use serde::Serialize;

use crate::candles::{CandleError, Interval};
use crate::protocol::topic::valid_symbol;
use crate::protocol::{Category, RestError};

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

/// How one chunk request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Candles received.
    Ok,
    /// A non-2xx HTTP status.
    Http(u16),
    /// No answer in time.
    Timeout,
    /// Connection failed or broke.
    Network(String),
    /// HTTP 200 with `retCode != 0`.
    Api {
        /// `retCode`.
        code: i64,
        /// `retMsg`.
        message: String,
    },
    /// A body that is not the documented envelope/result.
    Malformed(String),
}

impl From<&RestError> for FetchOutcome {
    fn from(e: &RestError) -> Self {
        match e {
            RestError::Api { code, message } => FetchOutcome::Api {
                code: *code,
                message: message.clone(),
            },
            RestError::Malformed(d) => FetchOutcome::Malformed(d.message.clone()),
        }
    }
}

/// An error that ends a symbol's backfill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FatalError {
    /// `retCode 10001`: Bybit does not know the symbol (or refused a parameter).
    #[error("unknown symbol {symbol} in category {category}: Bybit retCode 10001: {message}")]
    UnknownSymbol {
        /// Symbol.
        symbol: String,
        /// Category.
        category: Category,
        /// `retMsg`.
        message: String,
    },
    /// The bounded retries of an error ran out.
    #[error(
        "backfill of {symbol} ({category}) chunk {chunk} failed after {attempts} attempts: {last}"
    )]
    RetriesExhausted {
        /// Symbol.
        symbol: String,
        /// Category.
        category: Category,
        /// Chunk id.
        chunk: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// What to do after a chunk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store the candles.
    Accept,
    /// Retry this chunk after `delay_ms` (other chunks may proceed).
    Retry {
        /// Backoff.
        delay_ms: u64,
    },
    /// IP ban: stop every request for `wait_ms`, then retry this chunk.
    PauseAll {
        /// Wait.
        wait_ms: u64,
    },
    /// Give up this symbol's backfill.
    Fatal(FatalError),
}

/// Retry rules of chunk requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Backoff of the first retry (ms); doubles each attempt.
    pub base_delay_ms: u64,
    /// Backoff ceiling (ms).
    pub max_delay_ms: u64,
    /// Attempts allowed for 429/5xx/timeouts/network errors (`None`: unbounded).
    pub max_transient_attempts: Option<u32>,
    /// Attempts allowed for other API errors, other HTTP statuses and malformed bodies.
    pub max_other_attempts: u32,
    /// Wait after an HTTP 403 (ms).
    pub ban_wait_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            max_transient_attempts: None,
            max_other_attempts: 5,
            ban_wait_ms: 600_000,
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `attempt` (1-based): `base · 2^(attempt-1)`, capped.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u64::MAX);
        self.base_delay_ms
            .saturating_mul(factor)
            .min(self.max_delay_ms)
    }

    /// The decision after attempt number `attempt` (1-based) of `chunk` ended with `outcome`.
    /// An HTTP 403 does not use up attempts: the caller retries after the pause with the same
    /// `attempt`.
    pub fn decide(&self, chunk: &Chunk, outcome: &FetchOutcome, attempt: u32) -> Decision {
        let retry_or_fail = |limit: Option<u32>, last: String| match limit {
            Some(max) if attempt >= max => Decision::Fatal(FatalError::RetriesExhausted {
                symbol: chunk.symbol.clone(),
                category: chunk.category,
                chunk: chunk.id.clone(),
                attempts: attempt,
                last,
            }),
            _ => Decision::Retry {
                delay_ms: self.backoff_ms(attempt),
            },
        };
        match outcome {
            FetchOutcome::Ok => Decision::Accept,
            FetchOutcome::Http(403) => Decision::PauseAll {
                wait_ms: self.ban_wait_ms,
            },
            FetchOutcome::Http(s @ (429 | 500..=599)) => {
                retry_or_fail(self.max_transient_attempts, format!("HTTP {s}"))
            }
            FetchOutcome::Timeout => {
                retry_or_fail(self.max_transient_attempts, "timeout".to_string())
            }
            FetchOutcome::Network(e) => {
                retry_or_fail(self.max_transient_attempts, format!("network: {e}"))
            }
            FetchOutcome::Api {
                code: 10001,
                message,
            } => Decision::Fatal(FatalError::UnknownSymbol {
                symbol: chunk.symbol.clone(),
                category: chunk.category,
                message: message.clone(),
            }),
            FetchOutcome::Api { code, message } => retry_or_fail(
                Some(self.max_other_attempts),
                format!("retCode {code}: {message}"),
            ),
            FetchOutcome::Http(s) => {
                retry_or_fail(Some(self.max_other_attempts), format!("HTTP {s}"))
            }
            FetchOutcome::Malformed(m) => {
                retry_or_fail(Some(self.max_other_attempts), format!("malformed: {m}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const DAY: u64 = 86_400_000;

    fn assert_exact_cover(chunks: &[Chunk], first: u64, end: u64, len: u64, limit: u64) {
        assert_eq!(chunks.first().map(|c| c.start_ms), Some(first));
        assert_eq!(chunks.last().map(|c| c.end_ms), Some(end));
        for w in chunks.windows(2) {
            assert_eq!(w[0].end_ms, w[1].start_ms, "gap or overlap");
        }
        for c in chunks {
            assert!(c.candles >= 1 && c.candles <= limit);
            assert_eq!(c.candles * len, c.end_ms - c.start_ms);
            assert_eq!(c.start_ms % len, 0);
        }
        let total: u64 = chunks.iter().map(|c| c.candles).sum();
        assert_eq!(total, (end - first) / len);
        let ids: HashSet<_> = chunks.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), chunks.len(), "ids unique");
    }

    #[test]
    fn ninety_days_of_minutes_is_about_130_chunks_covering_exactly() {
        let to = 1_760_000_000_000u64; // not aligned to anything in particular
        let from = to - 90 * DAY;
        let chunks = plan_chunks("BTCUSDT", Category::Linear, "1", from, to, 1000).unwrap();
        let first = from - from % MIN;
        let end = to - to % MIN + MIN; // includes the open candle
        assert_exact_cover(&chunks, first, end, MIN, 1000);
        assert_eq!(chunks.iter().map(|c| c.candles).sum::<u64>(), 129_601);
        assert!((130..=131).contains(&chunks.len()), "{}", chunks.len());
        let c = &chunks[1];
        assert_eq!(c.candles, 1000);
        assert_eq!(c.start_ms % (1000 * MIN), 0, "whole cells are on the grid");
        assert_eq!(
            c.id,
            format!("linear:BTCUSDT:1:{}-{}", c.start_ms, c.end_ms)
        );
    }

    #[test]
    fn replanning_later_keeps_the_ids_of_whole_chunks() {
        let to = 1_760_000_000_000u64;
        let a = plan_chunks("BTCUSDT", Category::Linear, "1", to - 90 * DAY, to, 1000).unwrap();
        let later = to + 7 * MIN;
        let b = plan_chunks(
            "BTCUSDT",
            Category::Linear,
            "1",
            later - 90 * DAY,
            later,
            1000,
        )
        .unwrap();
        let done: HashSet<String> = a.iter().map(|c| c.id.clone()).collect();
        let left = remaining(&b, &done);
        // Only the clipped head and the tail (which held the open candle) are fetched again.
        assert!(
            left.len() <= 2,
            "{:?}",
            left.iter().map(|c| &c.id).collect::<Vec<_>>()
        );
        assert!(left.iter().any(|c| c.end_ms == b[b.len() - 1].end_ms));
    }

    #[test]
    fn other_intervals_limits_and_aligned_ranges() {
        let chunks = plan_chunks("ETHUSDT", Category::Spot, "60", 0, 10 * DAY, 100).unwrap();
        assert_exact_cover(&chunks, 0, 10 * DAY, 3_600_000, 100);
        assert_eq!(chunks.len(), 3); // 240 hours: 100 + 100 + 40
        let one = plan_chunks("ETHUSDT", Category::Spot, "D", 5 * DAY, 5 * DAY + 1, 1000).unwrap();
        assert_eq!(
            (one.len(), one[0].candles, one[0].start_ms),
            (1, 1, 5 * DAY)
        );
        let week = 7 * DAY;
        let w = plan_chunks("BTCUSD", Category::Inverse, "W", 20 * week, 40 * week, 7).unwrap();
        for c in &w {
            assert_eq!(
                (c.start_ms - 4 * DAY) % week,
                0,
                "weekly starts are Mondays"
            );
        }
        assert_eq!(w.iter().map(|c| c.candles).sum::<u64>(), 21);
    }

    #[test]
    fn query_uses_inclusive_end_and_chunk_limit() {
        let c = &plan_chunks("BTCUSDT", Category::Linear, "5", 0, 300_000 * 3, 1000).unwrap()[0];
        let q = c.query();
        assert_eq!(q[0], ("category", "linear".to_string()));
        assert_eq!(q[3], ("start", "0".to_string()));
        assert_eq!(q[4], ("end", "899999".to_string()));
        assert_eq!(q[5], ("limit", "3".to_string()));
        assert!(!c.is_closed_at(899_999));
        assert!(c.is_closed_at(900_000));
    }

    #[test]
    fn refuses_bad_plans() {
        let p =
            |s: &str, i: &str, f: u64, t: u64, l: u64| plan_chunks(s, Category::Linear, i, f, t, l);
        assert_eq!(
            p("btcusdt", "1", 0, 1, 10),
            Err(PlanError::Symbol("btcusdt".into()))
        );
        assert!(matches!(
            p("BTCUSDT", "M", 0, 1, 10),
            Err(PlanError::Interval(_))
        ));
        assert_eq!(p("BTCUSDT", "1", 0, 1, 0), Err(PlanError::Limit(0)));
        assert_eq!(p("BTCUSDT", "1", 0, 1, 1001), Err(PlanError::Limit(1001)));
        assert_eq!(
            p("BTCUSDT", "1", 5, 5, 10),
            Err(PlanError::Range {
                from_ms: 5,
                to_ms: 5
            })
        );
    }

    #[test]
    fn progress_counts_and_serializes() {
        let mut p = BackfillProgress::new("BTCUSDT", Category::Linear, "1", 3, 1);
        assert_eq!(p.state, BackfillState::Pending);
        p.chunk_done(); // not running yet: ignored
        assert_eq!(p.done, 1);
        p.start();
        p.chunk_done();
        assert_eq!((p.done, p.state), (2, BackfillState::Running));
        p.chunk_done();
        assert_eq!((p.done, p.state), (3, BackfillState::Done));
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"symbol":"BTCUSDT","category":"linear","interval":"1","done":3,"total":3,"state":"done"})
        );
        let mut empty = BackfillProgress::new("BTCUSDT", Category::Linear, "1", 2, 5);
        empty.start();
        assert_eq!(
            (empty.done, empty.state, empty.fraction()),
            (2, BackfillState::Done, 1.0)
        );
        let mut f = BackfillProgress::new("X1", Category::Spot, "1", 4, 0);
        f.start();
        f.fail("boom");
        let j = serde_json::to_value(&f).unwrap();
        assert_eq!(
            (j["state"].as_str(), j["error"].as_str()),
            (Some("failed"), Some("boom"))
        );
    }

    fn chunk() -> Chunk {
        plan_chunks("NOPEUSDT", Category::Linear, "1", 0, MIN, 1000)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn decisions_follow_the_failure_kind() {
        let p = RetryPolicy::default();
        let c = chunk();
        assert_eq!(p.decide(&c, &FetchOutcome::Ok, 1), Decision::Accept);
        for o in [
            FetchOutcome::Http(429),
            FetchOutcome::Http(500),
            FetchOutcome::Http(503),
            FetchOutcome::Timeout,
            FetchOutcome::Network("reset".into()),
        ] {
            assert_eq!(
                p.decide(&c, &o, 1),
                Decision::Retry { delay_ms: 500 },
                "{o:?}"
            );
            // Unbounded by default.
            assert!(matches!(
                p.decide(&c, &o, 1_000),
                Decision::Retry { delay_ms: 30_000 }
            ));
        }
        assert_eq!(
            p.decide(&c, &FetchOutcome::Http(403), 1),
            Decision::PauseAll { wait_ms: 600_000 }
        );
        let custom = RetryPolicy {
            ban_wait_ms: 5,
            ..RetryPolicy::default()
        };
        assert_eq!(
            custom.decide(&c, &FetchOutcome::Http(403), 9),
            Decision::PauseAll { wait_ms: 5 }
        );
        let bad = FetchOutcome::Api {
            code: 10001,
            message: "The requested symbol is invalid.".into(),
        };
        match p.decide(&c, &bad, 1) {
            Decision::Fatal(e) => {
                assert!(matches!(e, FatalError::UnknownSymbol { .. }));
                let text = e.to_string();
                assert!(
                    text.contains("NOPEUSDT") && text.contains("10001") && text.contains("linear"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_errors_retry_a_bounded_number_of_times() {
        let p = RetryPolicy {
            max_other_attempts: 3,
            ..RetryPolicy::default()
        };
        let c = chunk();
        let busy = FetchOutcome::Api {
            code: 10006,
            message: "Too many visits!".into(),
        };
        assert_eq!(p.decide(&c, &busy, 1), Decision::Retry { delay_ms: 500 });
        assert_eq!(p.decide(&c, &busy, 2), Decision::Retry { delay_ms: 1_000 });
        match p.decide(&c, &busy, 3) {
            Decision::Fatal(FatalError::RetriesExhausted {
                attempts,
                last,
                chunk,
                ..
            }) => {
                assert_eq!(attempts, 3);
                assert!(last.contains("10006"));
                assert_eq!(chunk, c.id);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.decide(&c, &FetchOutcome::Http(404), 3),
            Decision::Fatal(_)
        ));
        assert!(matches!(
            p.decide(&c, &FetchOutcome::Malformed("x".into()), 2),
            Decision::Retry { .. }
        ));
        let bounded = RetryPolicy {
            max_transient_attempts: Some(2),
            ..RetryPolicy::default()
        };
        assert!(matches!(
            bounded.decide(&c, &FetchOutcome::Timeout, 2),
            Decision::Fatal(_)
        ));
        let from_rest: FetchOutcome = (&RestError::Api {
            code: 10001,
            message: "m".into(),
        })
            .into();
        assert!(matches!(
            p.decide(&c, &from_rest, 1),
            Decision::Fatal(FatalError::UnknownSymbol { .. })
        ));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        let seq: Vec<u64> = (1..=8).map(|a| p.backoff_ms(a)).collect();
        assert_eq!(
            seq,
            vec![500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        assert_eq!(p.backoff_ms(0), 500);
        assert_eq!(p.backoff_ms(200), 30_000);
    }
}
