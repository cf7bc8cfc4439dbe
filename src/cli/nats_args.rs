//! The `--nats-*` flags shared by `run` and `stream`: each overrides `[sinks.nats]` and
//! `HFT_CONNECTOR_SINKS_NATS_*`.

use clap::Args;

use crate::sinks::{BooksMode, NatsOverrides};

/// The `--nats-*` flags (each overrides `[sinks.nats]` and `HFT_CONNECTOR_SINKS_NATS_*`).
#[derive(Debug, Clone, Args, Default)]
pub struct NatsArgs {
    /// Publish normalized events to this NATS server (e.g. nats://127.0.0.1:4222).
    #[arg(long = "nats-url", value_name = "URL")]
    pub url: Option<String>,
    /// JetStream stream name (created if missing).
    #[arg(long = "nats-stream", value_name = "NAME")]
    pub stream: Option<String>,
    /// Subject prefix (default md).
    #[arg(long = "nats-subject-prefix", value_name = "PREFIX")]
    pub subject_prefix: Option<String>,
    /// The stream's de-duplication window in seconds.
    #[arg(long = "nats-dedup-window-s", value_name = "S")]
    pub dedup_window_s: Option<f64>,
    /// Publishes awaiting their ack at once.
    #[arg(long = "nats-max-in-flight", value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// What to publish for books.
    #[arg(long = "nats-books", value_name = "deltas|top|none")]
    pub books: Option<BooksMode>,
    /// Messages buffered for the sink (drop and count beyond).
    #[arg(long = "nats-buffer", value_name = "N")]
    pub buffer: Option<usize>,
}

impl NatsArgs {
    /// The flags as configuration overrides.
    pub fn overrides(&self) -> NatsOverrides {
        NatsOverrides {
            url: self.url.clone(),
            stream: self.stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            dedup_window_s: self.dedup_window_s,
            max_in_flight: self.max_in_flight,
            books: self.books,
            buffer: self.buffer,
        }
    }
}
