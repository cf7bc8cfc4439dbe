//! hft-connector: a live, exact, self-healing Bybit V5 market-data connector.
//!
//! # Layout
//! - [`protocol`]: the pure V5 codec. [`protocol::ws`] decodes WebSocket frames into typed, borrowed
//!   values; [`protocol::request`] encodes subscribe/ping requests within Bybit's limits;
//!   [`protocol::rest`] decodes the REST envelope and results; [`protocol::topic`] names topics.
//! - [`book`]: the exact L2 order book and its sequencing rules (gap, stale, reset, crossed).
//! - [`normalized`]: the stable normalized event schema (JSON) shared by every output.
//! - [`normalizer`]: frames in, normalized events out, one book per topic.
//! - [`backoff`]: capped, jittered reconnect delays within Bybit's connection limit.
//! - [`feed`]: the self-healing live feed (connection state machine, heartbeat, stale detection,
//!   resubscription, book resync, REST trade gap-fill) and its health.
//! - [`logging`]: JSON log lines with stable event names.
//! - [`worker`]: worker-process isolation: the feed in a supervised child process (framing, worker,
//!   supervisor with exit tracking, stderr capture, hang detection and restarts).
//! - [`source`]: [`source::FeedSource`], one API over the in-process and the worker-process feed.
//! - [`service`]: the `run` service and its shared state (statuses, books, trades, events).
//! - [`http`]: the HTTP API (status, book, trades, candles, SSE events), Prometheus `/metrics`, the
//!   token guard and the embedded dashboard.
//! - [`config`]: the service's TOML/environment/flag configuration and its validation.
//! - [`cli`]: the `hft-connector` subcommands.
//! - [`sim`]: the Bybit V5 exchange simulator (WS, REST, ground-truth journal, fault injection).
//! - [`candles`]: exact candles built from trades, stitched to REST's open candle; outage re-fetch spans.
//! - [`backfill`]: kline backfill chunk planning (stable ids for resume), progress, retry decisions.
//! - [`ratelimit`]: the shared REST request budget (sliding window) with a ban for HTTP 403.
//! - [`store`]: the embedded SQLite store (WAL): candles, recent trades, backfill chunks, feed status.
//! - [`record`]: crash-safe raw recording of every WebSocket frame (`[sinks.record]`).
//! - [`convert`]: recordings and archives into hftbacktest `.npz` event arrays or normalized JSON lines.
//!
//! Prices and sizes are [`rust_decimal::Decimal`]s parsed exactly from Bybit's strings; nothing on
//! the book path touches `f64`.

pub mod backfill;
pub mod backoff;
pub mod book;
pub mod candles;
pub mod cli;
pub mod config;
pub mod convert;
pub mod feed;
pub mod http;
pub mod logging;
pub mod normalized;
pub mod normalizer;
pub mod protocol;
pub mod ratelimit;
pub mod record;
pub mod service;
pub mod sim;
pub mod source;
pub mod store;
pub mod worker;
