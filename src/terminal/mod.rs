//! The terminal experience: which log format a destination gets ([`format`]), the human log line
//! ([`pretty`]), and the live progress bars that log lines are printed above ([`bars`]).

pub mod bars;
pub mod format;
pub mod pretty;

pub use format::{LogFormat, LogSection};
