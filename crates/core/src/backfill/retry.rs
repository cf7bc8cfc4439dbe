//! Backfill failures: what one `/v5/market/kline` request's outcome means for the backfill
//! ([`RetryPolicy::decide`]). Pure: no I/O, no clock.
//!
//! - HTTP 429, HTTP 5xx, a timeout or a network error: retry this chunk with exponential backoff
//!   (unbounded by default: an outage means retries, not a failed backfill).
//! - HTTP 403 ("access too frequent", an IP ban): stop **all** fetching for `ban_wait_ms` (10 minutes,
//!   Bybit's documented minimum), then retry.
//! - `retCode 10001` (invalid request parameter, which is how Bybit refuses an unknown symbol): fatal,
//!   naming the symbol; retrying cannot help.
//! - Any other `retCode`, other HTTP status or malformed body: retry with backoff a bounded number of
//!   times, then fail.

use serde::Serialize;

use super::plan::Chunk;
use crate::protocol::{Category, RestError};

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
