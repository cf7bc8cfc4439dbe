//! hft-connector: the command-line program (`run`, `demo`, `simulate`, `decode`, `worker`) and a
//! facade over the workspace's crates, so one dependency reaches everything.
//!
//! # Layout of the workspace (dependencies point one way, towards the core)
//! - `hft-core` ([`protocol`], [`book`], [`normalized`], [`normalizer`], [`candles`],
//!   [`backfill`], [`backoff`], [`ratelimit`]): the pure codec, book and rules; no async, no I/O.
//! - `hft-feed` ([`feed`], [`worker`], [`source`], [`lines`]): the self-healing live feed and worker-process
//!   isolation, on tokio.
//! - `hft-sim` ([`sim`]): the Bybit V5 simulator with ground truth and fault injection (a testkit).
//! - `hft-service` ([`config`], [`service`], [`http`], [`store`], [`app`], [`terminal`],
//!   [`sinks`], [`record`], [`shutdown`]): the `run` service.
//! - this crate: [`cli`] (one module per subcommand), [`logging`] (JSON log lines with stable
//!   event names, or human lines on a terminal), [`log_merge`] (worker events' fields lifted to
//!   top level), [`pretty`] (the human line) and [`convert`] (recordings and archives into
//!   hftbacktest `.npz` or normalized JSON lines). Nothing else imports it.

pub use hft_core::{backfill, backoff, book, candles, normalized, normalizer, protocol, ratelimit};
pub use hft_feed::{feed, lines, source, worker};
pub use hft_service::{
    app, budget, config, http, record, service, shutdown, sinks, store, terminal,
};
pub use hft_sim as sim;

pub mod cli;
pub mod convert;
pub mod log_merge;
pub mod logging;
pub mod pretty;

// The README's Rust example is compiled as a doc test, so the front page cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
