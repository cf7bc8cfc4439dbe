//! The Bybit V5 public protocol codec: pure functions from text to typed values and back, no I/O.

mod decimal;
pub mod error;
mod fast;
mod general;
pub mod request;
pub mod rest;
pub mod topic;
pub mod ws;

pub use error::{DecodeError, RestError};
pub use topic::{Category, Topic, TopicRef};
pub use ws::{decode, decode_line, Frame, Level, Received, Side};
