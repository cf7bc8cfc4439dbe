//! hft-service: the `run` service built on the feed: configuration, kline backfill, the SQLite
//! store, live candles, the HTTP status API, Prometheus metrics and the dashboard.
//!
//! # Layout
//! - [`config`]: TOML/environment/[`config::Overrides`] configuration and its validation.
//! - [`service`]: the service runner and its shared state (statuses, books, trades, events).
//! - [`app`]: the service as `hft-connector run` starts it (isolation, routes, signals).
//! - [`http`]: the HTTP API (status, book, trades, candles, SSE events), `/metrics`, the token
//!   guard and the embedded dashboard.
//! - [`store`]: the embedded SQLite store (WAL): candles, recent trades, backfill chunks, status.
//! - [`budget`]: the async REST request budget shared by every fetcher.
//! - [`record`]: crash-safe raw recording of every WebSocket frame (`[sinks.record]`).
//! - [`sinks`]: the NATS JetStream publisher of normalized events (`[sinks.nats]`).
//! - [`terminal`]: the log format per destination and the progress bars log lines print above.
//! - [`shutdown`]: the one shutdown signal, the registry naming the tasks still running, and the
//!   bounded stop (`[service] shutdown_timeout_s`).
//!
//! # Example
//! ```no_run
//! use hft_service::config::{Overrides, ServiceConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let overrides = Overrides { symbols: Some(vec!["BTCUSDT".into()]), ..Overrides::default() };
//! let cfg = ServiceConfig::load(&overrides, std::env::vars())?;
//! hft_service::app::serve(cfg).await?;
//! # Ok(()) }
//! ```

use hft_core::{backfill, book, candles, normalized, protocol};
use hft_feed::{feed, lines, source};

pub mod app;
pub mod budget;
pub mod config;
pub mod http;
pub mod record;
pub mod service;
pub mod shutdown;
pub mod sinks;
pub mod store;
pub mod terminal;
