//! The `run` service: feeds for many symbols and categories, kline backfill, live candles, the
//! store, and the shared state the HTTP API reads.
//!
//! # Layout
//! - [`state`]: statuses, books, trades and events shared with the HTTP API.
//! - [`metrics`]: hot-path counters (messages by type, delivery latency).
//! - [`writer`]: the store writer thread.
//! - [`backfill`]: chunked, resumable kline backfill within the REST budget.
//! - [`pipeline`]: one feed's events into state, candles, store and metrics.
//! - [`runner`]: start everything, wait for a signal, stop everything.
//! - [`controls`]: the running feeds by category, for state-changing HTTP routes.
//! - [`verify`]: symbols the exchange could not be asked about at start, checked until it answers.

pub mod backfill;
pub mod controls;
pub mod metrics;
pub mod pipeline;
pub mod runner;
pub mod state;
pub mod verify;
pub mod writer;

pub use state::{FeedKey, FeedStatus, ServiceState, StreamEvent};
