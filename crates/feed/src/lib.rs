//! hft-feed: the self-healing Bybit V5 live feed, in-process or in a supervised worker process.
//!
//! # Layout
//! - [`feed`]: the live feed (connection state machine, heartbeat, stale detection,
//!   resubscription, book resync, REST trade gap-fill) and its health.
//! - [`worker`]: worker-process isolation: the feed in a supervised child process (framing, worker,
//!   supervisor with exit tracking, stderr capture, hang detection and restarts).
//! - [`lines`]: A/B line arbitration: one feed over two redundant lines, merged.
//! - [`forwarded`]: worker log lines re-logged by the supervisor with their fields verbatim.
//! - [`children`]: the worker processes started and not yet reaped, killed with a process that
//!   must exit at once.
//! - [`conn_budget`]: the machine-wide connection budget per exchange address (all feeds and workers).
//! - [`busy_poll`]: `feed.busy_poll_us`, polling instead of sleeping while data flows.
//! - [`queue`]: the event queue to the consumer, bounded in events and in bytes.
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

pub use hft_core::{backoff, book, normalized, protocol};

pub mod busy_poll;
pub mod children;
pub mod conn_budget;
pub mod feed;
pub mod forwarded;
pub mod lines;
pub mod queue;
pub mod raw_tap;
pub mod source;
pub mod worker;
