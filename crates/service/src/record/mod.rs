//! Crash-safe raw recording (`[sinks.record]`): every raw WebSocket frame with its local receive
//! time in ns, one `<ns> <json>` line each (the line format hftbacktest's collector writes), in
//! files per category, symbol and period.
//!
//! # Layout
//! - [`config`]: the `[sinks.record]` section and its validation.
//! - [`RawTap`] (from `hft_feed::raw_tap`): the hook the feed offers raw frames to (never blocks,
//!   drops and counts).
//! - [`segment`]: one output file; one gzip member per flush so a killed recorder leaves files that
//!   read cleanly up to the last flush.
//! - [`recorder`]: the writer thread: routing frames to segments, flushing, rotation, statistics.

pub mod config;
pub mod recorder;
pub mod segment;

pub use config::{Compress, RecordSection, Rotate};
pub use hft_feed::raw_tap::{RawSink, RawTap};
pub use recorder::{RecordStats, RecordStatus, Recorder};
