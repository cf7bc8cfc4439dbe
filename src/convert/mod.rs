//! Recordings into backtest-ready data: `hft-connector convert --to hftbacktest|jsonl`.
//!
//! # Layout
//! - [`input`]: reads our recordings, hftbacktest collector files (gzip `<ns> <json>` lines, one or
//!   many gzip members, a truncated last member tolerated) and Bybit's archives (JSON lines
//!   without a local timestamp, plain, gzip or zip).
//! - [`hftbacktest`]: frames into hftbacktest's event rows, exactly as its
//!   `hftbacktest.data.utils.bybit.convert_depth` builds them.
//! - [`order`]: hftbacktest's `correct_local_timestamp` and `correct_event_order`.
//! - [`npy`]: the `.npz` writer (a zip holding `data.npy` with hftbacktest's structured dtype).
//! - [`pipeline`]: a whole conversion: inputs in order, checks, progress bar, output.
//! - [`spill`]: ordering more rows than the memory budget holds, through sorted runs on disk.

pub mod hftbacktest;
pub mod input;
pub mod npy;
pub mod order;
pub mod pipeline;
pub mod spill;

pub use hftbacktest::{Event, EventBuilder};
