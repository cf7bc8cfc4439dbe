//! The NATS sink's counters: shared atomics the sink updates, a snapshot for `/api/status` and the
//! `hft_connector_nats_*` Prometheus families.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Connection states of the sink.
pub const STATES: [&str; 3] = ["connecting", "connected", "disconnected"];

/// Live counters of one sink.
#[derive(Debug, Default)]
pub struct NatsStats {
    /// Index into [`STATES`].
    state: AtomicU8,
    /// The stream exists and is ready for publishes.
    pub stream_ready: AtomicBool,
    /// Messages stored by the stream (acked, not duplicates).
    pub published: AtomicU64,
    /// Publishes the stream acked as duplicates (another publisher, or a re-send, stored them).
    pub duplicates: AtomicU64,
    /// Messages dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Publishes that failed or timed out (each re-sent).
    pub errors: AtomicU64,
    /// Re-sent messages.
    pub retries: AtomicU64,
    /// Reconnections to the server.
    pub reconnects: AtomicU64,
    /// Publishes awaiting their ack.
    pub in_flight: AtomicU64,
    /// Messages waiting in the buffer.
    pub buffered: AtomicU64,
    /// Sum of publish-to-ack times (µs) of acked publishes.
    pub ack_us_sum: AtomicU64,
    /// Acked publishes (the count for `ack_us_sum`).
    pub acks: AtomicU64,
    /// The last error.
    pub last_error: Mutex<Option<String>>,
}

/// `/api/status` `sinks.nats`.
#[derive(Debug, Clone, Serialize)]
pub struct NatsStatus {
    /// Server URL.
    pub url: String,
    /// Stream.
    pub stream: String,
    /// `connecting`, `connected` or `disconnected`.
    pub state: &'static str,
    /// The stream is ready.
    pub stream_ready: bool,
    /// Messages stored.
    pub published: u64,
    /// Duplicates the stream dropped.
    pub duplicates: u64,
    /// Messages dropped by the sink (buffer full).
    pub dropped: u64,
    /// Failed publishes (re-sent).
    pub errors: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Publishes awaiting an ack.
    pub in_flight: u64,
    /// Messages buffered.
    pub buffered: u64,
    /// Mean publish-to-ack time (ms).
    pub mean_ack_ms: Option<f64>,
    /// The last error.
    pub last_error: Option<String>,
}

impl NatsStats {
    /// Sets the connection state (an index into [`STATES`]).
    pub fn set_state(&self, state: &str) {
        let i = STATES.iter().position(|s| *s == state).unwrap_or(0);
        self.state.store(i as u8, Ordering::Relaxed);
    }

    /// The connection state.
    pub fn state(&self) -> &'static str {
        STATES
            .get(usize::from(self.state.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or("connecting")
    }

    /// Remembers an error.
    pub fn error(&self, e: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.into());
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// A snapshot.
    pub fn status(&self, url: &str, stream: &str) -> NatsStatus {
        let acks = Self::get(&self.acks);
        NatsStatus {
            url: url.to_string(),
            stream: stream.to_string(),
            state: self.state(),
            stream_ready: self.stream_ready.load(Ordering::Relaxed),
            published: Self::get(&self.published),
            duplicates: Self::get(&self.duplicates),
            dropped: Self::get(&self.dropped),
            errors: Self::get(&self.errors),
            reconnects: Self::get(&self.reconnects),
            in_flight: Self::get(&self.in_flight),
            buffered: Self::get(&self.buffered),
            mean_ack_ms: (acks > 0)
                .then(|| Self::get(&self.ack_us_sum) as f64 / acks as f64 / 1000.0),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// The `hft_connector_nats_*` families in the Prometheus text format.
    pub fn prometheus(&self, stream: &str) -> String {
        let mut out = String::with_capacity(2048);
        let label = stream.replace('\\', "\\\\").replace('"', "\\\"");
        let mut family = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP hft_connector_nats_{name} {help}");
            let _ = writeln!(out, "# TYPE hft_connector_nats_{name} {kind}");
            let _ = writeln!(
                out,
                "hft_connector_nats_{name}{{stream=\"{label}\"}} {value}"
            );
        };
        let connected = u64::from(self.state() == "connected");
        family(
            "connected",
            "gauge",
            "1 while the NATS sink is connected.",
            connected as f64,
        );
        let g = |c: &AtomicU64| Self::get(c) as f64;
        family(
            "published_total",
            "counter",
            "Messages stored by the JetStream stream.",
            g(&self.published),
        );
        family("duplicates_total", "counter", "Publishes the stream acked as duplicates (stored already, by this or another publisher).", g(&self.duplicates));
        family(
            "dropped_total",
            "counter",
            "Messages dropped by the sink because its buffer was full.",
            g(&self.dropped),
        );
        family(
            "publish_errors_total",
            "counter",
            "Publishes that failed or timed out (re-sent).",
            g(&self.errors),
        );
        family(
            "retries_total",
            "counter",
            "Messages re-sent after a failed publish.",
            g(&self.retries),
        );
        family(
            "reconnects_total",
            "counter",
            "Reconnections to the NATS server.",
            g(&self.reconnects),
        );
        family(
            "in_flight",
            "gauge",
            "Publishes awaiting their JetStream ack.",
            g(&self.in_flight),
        );
        family(
            "buffered",
            "gauge",
            "Messages waiting in the sink's buffer.",
            g(&self.buffered),
        );
        family(
            "ack_seconds_total",
            "counter",
            "Sum of publish-to-ack times (s); divided by acks_total: the mean.",
            g(&self.ack_us_sum) / 1e6,
        );
        family(
            "acks_total",
            "counter",
            "Publishes acknowledged by JetStream.",
            g(&self.acks),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_exposition_follow_the_counters() {
        let s = NatsStats::default();
        assert_eq!(s.state(), "connecting");
        s.set_state("connected");
        s.published.store(5, Ordering::Relaxed);
        s.dropped.store(2, Ordering::Relaxed);
        s.acks.store(4, Ordering::Relaxed);
        s.ack_us_sum.store(2_000, Ordering::Relaxed);
        let st = s.status("nats://x:1", "MD");
        assert_eq!(st.state, "connected");
        assert_eq!(st.published, 5);
        assert_eq!(st.dropped, 2);
        assert_eq!(st.mean_ack_ms, Some(0.5));
        let text = s.prometheus("MD");
        assert!(
            text.contains("hft_connector_nats_connected{stream=\"MD\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("hft_connector_nats_published_total{stream=\"MD\"} 5\n"));
        assert!(text.contains("hft_connector_nats_dropped_total{stream=\"MD\"} 2\n"));
    }
}
