//! The `run` service: feeds for many symbols and categories, kline backfill, live candles, the
//! store, and the shared state the HTTP API reads.

pub mod metrics;
pub mod state;

pub use state::{FeedKey, FeedStatus, ServiceState, StreamEvent};
