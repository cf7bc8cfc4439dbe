//! Sinks: where normalized events go besides the service itself.
//!
//! - [`config`]: `[sinks.nats]` keys, the `--nats-*` flags and their validation.
//! - [`dedup`]: the duplicate window's worst case and the warning when the window is shorter.
//! - [`message`]: feed events as NATS messages (subjects, `Nats-Msg-Id`, JSON payloads).
//! - [`nats`]: the JetStream publisher (bounded buffer, in-flight window, re-sends, reconnection).
//! - [`stats`]: its counters for `/api/status` and `/metrics`.

pub mod config;
pub mod dedup;
pub mod message;
pub mod nats;
pub mod stats;

pub use config::{BooksMode, NatsOverrides, NatsSection, SinksSection};
pub use nats::NatsSink;
