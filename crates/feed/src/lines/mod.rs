//! A/B line arbitration: one feed carried by two redundant connections ("lines") to the same
//! topics, merged so a single line's fault loses nothing and the faster line wins.
//!
//! # Layout
//! - [`trade_merge`]: one symbol's trades from several lines, exactly once and in order (pure).
//! - [`book_merge`]: one book topic's updates, each `u` once, never rewound (pure).
//! - [`arbiter`]: [`Arbiter`], every line event in, the feed's events out, lifecycle and lag
//!   detection (pure, synchronous).
//! - [`lines`]: [`LinesFeed`], the async layer owning the lines (each an ordinary
//!   [`crate::source::FeedSource`]) and restarting a lagging one.
//! - [`status`]: [`LinesShared`] and [`LineStatus`], what status APIs read.

pub mod arbiter;
pub mod book_merge;
#[allow(clippy::module_inception)]
pub mod lines;
pub mod status;
pub mod trade_merge;

#[cfg(test)]
mod arbiter_tests;
#[cfg(test)]
mod book_tests;
#[cfg(test)]
mod proptests;

pub use arbiter::{line_name, Arbiter, Lag, LagPolicy, LineNote, Step};
pub use lines::{line_span, LinesFeed, LINE_SPAN};
pub use status::{LineStatus, LinesShared};
