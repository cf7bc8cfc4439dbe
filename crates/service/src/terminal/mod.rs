//! The terminal experience the service owns: which log format a destination gets ([`mod@format`])
//! and the live progress bars that log lines are printed above ([`bars`]). The human log line
//! itself is the CLI's (`hft_connector::pretty`).

pub mod bars;
pub mod format;

pub use format::{LogFormat, LogSection};
