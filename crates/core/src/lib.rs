//! hft-core: the pure core of hft-connector. No async runtime, no sockets, no clocks: time is a
//! value passed in, so every rule here is tested exhaustively and fast.
//!
//! # Layout
//! - [`protocol`]: the Bybit V5 codec. [`protocol::ws`] decodes WebSocket frames into typed, borrowed
//!   values; [`protocol::request`] encodes subscribe/ping requests within Bybit's limits;
//!   [`protocol::rest`] decodes the REST envelope and results; [`protocol::topic`] names topics.
//! - [`book`]: the exact L2 order book and its sequencing rules (gap, stale, reset, crossed).
//! - [`normalized`]: the stable normalized event schema (JSON) shared by every output.
//! - [`normalizer`]: frames in, normalized events out, one book per topic.
//! - [`sequencer`]: what an applied book update means (events to emit, resync to do); shared by
//!   the normalizer and the live feed.
//! - [`candles`]: exact candles built from trades, stitched to REST's open candle.
//! - [`backfill`]: kline backfill chunk planning (stable ids for resume), progress, retry decisions.
//! - [`backoff`]: capped, jittered reconnect delays within Bybit's connection limit.
//! - [`ratelimit`]: the sliding-window request budget with a ban for HTTP 403.
//!
//! Prices and sizes are [`rust_decimal::Decimal`]s parsed exactly from Bybit's strings; nothing on
//! the book path touches `f64`.
//!
//! # Example
//! ```
//! use hft_core::book::{OrderBook, Outcome};
//! use hft_core::protocol::ws::{decode, Frame};
//!
//! let snapshot = r#"{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[["100.5","2"]],"a":[["101","1.25"]],"u":7,"seq":9},"cts":1}"#;
//! let Ok(Frame::Book(update)) = decode(snapshot) else { panic!("a book frame") };
//! let mut book = OrderBook::new("BTCUSDT", 1);
//! assert_eq!(book.apply(&update), Outcome::Snapshot);
//! assert_eq!(book.best_bid().map(|l| l.price.to_string()), Some("100.5".to_string()));
//! ```

pub mod backfill;
pub mod backoff;
pub mod book;
pub mod candles;
pub mod normalized;
pub mod normalizer;
pub mod protocol;
pub mod ratelimit;
pub mod sequencer;
