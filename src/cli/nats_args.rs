//! The `--nats-*` flags shared by `run` and `stream`: each overrides `[sinks.nats]` and
//! `HFT_CONNECTOR_SINKS_NATS_*`.

use clap::Args;

use crate::sinks::{BooksMode, NatsOverrides};

/// The `--nats-*` flags (each overrides `[sinks.nats]` and `HFT_CONNECTOR_SINKS_NATS_*`).
#[derive(Clone, Args, Default)]
pub struct NatsArgs {
    /// Publish normalized events to this NATS server (e.g. nats://127.0.0.1:4222).
    #[arg(long = "nats-url", value_name = "URL")]
    pub url: Option<String>,
    /// The servers of a NATS cluster, comma separated (instead of --nats-url): the sink connects
    /// to any of them and reconnects to the others.
    #[arg(
        id = "nats_urls",
        long = "nats-urls",
        value_name = "URL,URL,...",
        value_delimiter = ','
    )]
    pub urls: Option<Vec<String>>,
    /// JetStream stream name (created if missing).
    #[arg(long = "nats-stream", value_name = "NAME")]
    pub stream: Option<String>,
    /// Replicas of the stream when it is created (default 1; 3 on a three-node cluster).
    #[arg(id = "nats_replicas", long = "nats-replicas", value_name = "N")]
    pub replicas: Option<usize>,
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
    /// NATS credentials file (.creds).
    #[arg(id = "nats_creds_file", long = "nats-creds-file", value_name = "FILE")]
    pub creds_file: Option<String>,
    /// PEM file of CA certificates for the servers' TLS.
    #[arg(id = "nats_tls_ca", long = "nats-tls-ca", value_name = "FILE")]
    pub tls_ca: Option<String>,
    /// NATS user name (with a password).
    #[arg(id = "nats_user", long = "nats-user", value_name = "USER")]
    pub user: Option<String>,
    /// NATS password (prefer HFT_CONNECTOR_SINKS_NATS_PASSWORD: a flag shows in `ps`). Never logged.
    #[arg(id = "nats_password", long = "nats-password", value_name = "PASSWORD")]
    pub password: Option<String>,
    /// NATS token (prefer HFT_CONNECTOR_SINKS_NATS_TOKEN: a flag shows in `ps`). Never logged.
    #[arg(id = "nats_token", long = "nats-token", value_name = "TOKEN")]
    pub token: Option<String>,
}

impl NatsArgs {
    /// The flags as configuration overrides.
    pub fn overrides(&self) -> NatsOverrides {
        NatsOverrides {
            url: self.url.clone(),
            urls: self.urls.clone(),
            stream: self.stream.clone(),
            replicas: self.replicas,
            subject_prefix: self.subject_prefix.clone(),
            dedup_window_s: self.dedup_window_s,
            max_in_flight: self.max_in_flight,
            books: self.books,
            buffer: self.buffer,
            creds_file: self.creds_file.clone(),
            tls_ca: self.tls_ca.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            token: self.token.clone(),
        }
    }
}

impl std::fmt::Debug for NatsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets are redacted there.
        self.overrides().fmt(f)
    }
}
