//! hft-feed: the self-healing Bybit V5 live feed, in-process or in a supervised worker process.
//!
//! # Layout
//! - [`feed`]: the live feed (connection state machine, heartbeat, stale detection,
//!   resubscription, book resync, REST trade gap-fill) and its health.
//! - [`worker`]: worker-process isolation: the feed in a supervised child process (framing, worker,
//!   supervisor with exit tracking, stderr capture, hang detection and restarts).
//! - [`lines`]: A/B line arbitration: one feed over two redundant lines, merged.
//! - [`forwarded`]: worker log lines re-logged by the supervisor with their fields verbatim.
//! - [`conn_budget`]: the machine-wide connection budget per exchange address (all feeds and workers).
//! - [`busy_poll`]: `feed.busy_poll_us`, polling instead of sleeping while data flows.
//! - [`queue`]: the event queue to the consumer, bounded in events and in bytes, one hand-off per
//!   burst.
//! - [`raw_tap`]: the hook a recorder takes raw frames from (never blocks the feed).
//! - [`source`]: [`source::FeedSource`], one API over the in-process and the worker-process feed,
//!   and [`source::Isolation`].
//!
//! The pure core's modules this crate's API speaks in are re-exported: [`protocol`], [`book`],
//! [`normalized`], [`backoff`].
//!
//! # Example
//! ```no_run
//! use hft_feed::feed::{Feed, FeedConfig, FeedEvent};
//! use hft_feed::protocol::Category;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = FeedConfig::new("ws://127.0.0.1:9100/v5/public", "http://127.0.0.1:9100", Category::Linear, &["BTCUSDT"]);
//! let mut feed = Feed::spawn(cfg)?;
//! while let Some(event) = feed.next().await {
//!     if let FeedEvent::Trade(t) = event {
//!         println!("{} {} @ {}", t.symbol, t.qty, t.price);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The loop may run anywhere: in `#[tokio::main]` itself or in a spawned task, it gets the same
//! throughput, because the feed hands its events over once per burst, not once per event (see
//! [`queue`]). At high rates, `next_batch` takes what is queued in one call, up to the task's
//! cooperative budget ([`feed::FeedHandle::next_batch`], [`source::FeedSource::next_batch`]):
//!
//! ```no_run
//! # use hft_feed::feed::{Feed, FeedConfig, FeedEvent};
//! # use hft_feed::protocol::Category;
//! # async fn run(cfg: FeedConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let mut feed = Feed::spawn(cfg)?;
//! let mut batch = Vec::new();
//! while feed.next_batch(&mut batch).await > 0 {
//!     // The same events in the same order as `next()` gives them.
//!     for event in batch.drain(..) {
//!         if let FeedEvent::Book(b) = event {
//!             println!("{} top {:?} / {:?}", b.symbol, b.best_bid, b.best_ask);
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! hft-feed has no optional Cargo features yet: the live feed, worker-process isolation, A/B lines,
//! REST recovery and the TOML configuration are always built. Its dependencies are named with only
//! the features it uses; of Tokio, hft-feed enables `rt`, `macros`, `sync`, `time`, `net`,
//! `io-util`, `process` (starting workers) and `signal` (the worker's signals), and no `full`.
//! A program starts its own runtime: with `#[tokio::main]`, depend on Tokio with at least
//! `features = ["macros", "rt-multi-thread"]` (a current-thread runtime works as well; the feed
//! needs the I/O and time drivers, which `#[tokio::main]` and `Builder::enable_all` turn on).

pub use hft_core::{backoff, book, normalized, protocol};

pub mod busy_poll;
pub mod conn_budget;
pub mod feed;
pub mod forwarded;
pub mod lines;
pub mod queue;
pub mod raw_tap;
pub mod source;
pub mod worker;
