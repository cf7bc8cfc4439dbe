//! hft-sim: the Bybit V5 exchange simulator (`hft-connector simulate`), usable as a testkit by any
//! Bybit client: public WebSocket streams, REST market
//! endpoints, a deterministic market, a ground-truth journal and fault injection, on one port.
//!
//! # Layout
//! - [`config`]: [`SimConfig`], every setting and its default.
//! - [`server`]: [`Simulator::start`], [`SimHandle`] and the state the tasks share.
//! - [`clock`]: the market clock (rate, level-1 repeats, kline pushes).
//! - [`core`]: instruments, true books, per-topic `u`, publication and journaling under one lock;
//!   [`lifecycle`]: level-1 repeats, kline pushes, the gap/restart faults.
//! - [`market`]: the seeded order process (arrivals, cancels, taker sweeps).
//! - [`ladder`]: the true book and its N-level window deltas; [`TrueBook`].
//! - [`instrument`] / [`instruments`]: tick sizes, decimals, `instruments-info` records.
//! - [`tape`]: recent trades and candles (with synthetic history).
//! - [`encode`]: the exact frame texts per category.
//! - [`hub`]: connections, subscriptions, fan-out of one encoded frame.
//! - [`ws`] / [`ops`]: the WebSocket endpoint and its requests (ping, subscribe, ...).
//! - [`rest`] / [`ratelimit`]: REST endpoints and the IP limit.
//! - [`control`]: `/sim/*` routes; [`fault`]: fault kinds and their effects.
//! - [`journal`]: ground truth in the normalized schema; [`stats`]: counters.
//! - [`listener`]: TCP accept (the refuse and blackhole faults) and reset-on-drop sockets.
//! - [`refuse`]: which connections the refuse and blackhole faults admit (the control routes).
//!
//! # Example: a simulated exchange for a client's tests
//! ```
//! use hft_sim::{FaultKind, FaultRequest, SimConfig, Simulator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! // Port 0: the OS picks a free loopback port; the seed makes the market reproducible.
//! let sim = Simulator::start(SimConfig::for_tests(7)).await?;
//! let ws_url = format!("ws://{}/v5/public/linear", sim.addr());
//! let rest_url = sim.rest_url();
//! // ... point the client under test at ws_url / rest_url, then break things:
//! sim.inject(FaultRequest::new(FaultKind::Close));
//! # let _ = (ws_url, rest_url);
//! # Ok(())
//! # }
//! ```

use hft_core::{normalized, protocol};

pub mod clock;
pub mod config;
pub mod control;
pub mod core;
pub mod encode;
pub mod fault;
pub mod hub;
pub mod instrument;
pub mod instruments;
pub mod journal;
pub mod ladder;
pub mod lifecycle;
pub mod listener;
pub mod market;
pub mod ops;
pub mod ratelimit;
pub mod refuse;
pub mod rest;
pub mod server;
pub mod stats;
pub mod tape;
pub mod ws;

pub use config::SimConfig;
pub use fault::{FaultKind, FaultReport, FaultRequest};
pub use journal::JournalQuery;
pub use ladder::TrueBook;
pub use server::{SimHandle, Simulator};
pub use stats::SimStats;
