//! Crash-safe raw recording (`[sinks.record]`): every raw WebSocket frame with its local receive
//! time in ns, one `<ns> <json>` line each (the line format hftbacktest's collector writes), in
//! files per category, symbol and period.
//!
//! # Layout
//! - [`config`]: the `[sinks.record]` section and its validation.
//! - [`tap`]: [`RawTap`], the hook the feed offers raw frames to (never blocks, drops and counts).
//! - [`segment`]: one output file; one gzip member per flush so a killed recorder leaves files that
//!   read cleanly up to the last flush.
//! - [`recorder`]: the writer thread: routing frames to segments, flushing, rotation, statistics.

pub mod config;
pub mod recorder;
pub mod segment;
pub mod tap;

pub use config::{Compress, RecordSection, Rotate};
pub use recorder::{RecordStats, RecordStatus, Recorder};
pub use tap::{RawSink, RawTap};
