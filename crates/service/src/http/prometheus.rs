//! `GET /metrics`: Prometheus text exposition (format 0.0.4), rendered by hand from the feed
//! statuses and the service's hot-path [`Metrics`](crate::service::metrics::Metrics). Every name
//! starts with `hft_connector_`; label values (exchange symbols included) are escaped.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::status::STATUSES;
use crate::service::metrics::Histogram;
use crate::service::{FeedStatus, ServiceState};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Backfill states, as the status API names them.
pub const BACKFILL_STATES: [&str; 5] = ["pending", "running", "done", "failed", "disabled"];

/// Escapes a label value (`\`, `"` and newlines).
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP hft_connector_{name} {help}");
        let _ = writeln!(self.0, "# TYPE hft_connector_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.0, "hft_connector_{name}");
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// One sample per feed.
    fn per_feed(
        &mut self,
        feeds: &[FeedStatus],
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&FeedStatus) -> Option<f64>,
    ) {
        self.family(name, kind, help);
        for f in feeds {
            if let Some(v) = value(f) {
                self.sample(name, &feed_labels(f), v);
            }
        }
    }
}

fn feed_labels(f: &FeedStatus) -> [(&'static str, &str); 2] {
    [("category", f.category.as_str()), ("symbol", &f.symbol)]
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

fn histogram(out: &mut Out, name: &str, help: &str, h: &Histogram) {
    out.family(name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (le, count) in &h.buckets {
        out.sample(&bucket, &[("le", &le.to_string())], count);
    }
    out.sample(&bucket, &[("le", "+Inf")], h.count);
    out.sample(&format!("{name}_sum"), &[], h.sum);
    out.sample(&format!("{name}_count"), &[], h.count);
}

/// The whole exposition of `state`.
pub fn render(state: &ServiceState) -> String {
    let feeds = state.statuses();
    let mut out = Out(String::with_capacity(4096 + feeds.len() * 2048));

    out.family("build_info", "gauge", "Build information (always 1).");
    out.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    out.family("feeds", "gauge", "Feeds configured.");
    out.sample("feeds", &[], feeds.len());

    out.family(
        "feed_status",
        "gauge",
        "Feed connection state: 1 for the current status (connected, connecting, disconnected, down), 0 for the others.",
    );
    for f in &feeds {
        for s in STATUSES {
            let [c, sym] = feed_labels(f);
            out.sample("feed_status", &[c, sym, ("status", s)], flag(f.status == s));
        }
    }
    out.per_feed(
        &feeds,
        "feed_up",
        "gauge",
        "1 when the feed is connected.",
        |f| Some(f64::from(flag(f.status == "connected"))),
    );
    out.per_feed(
        &feeds,
        "feed_process_alive",
        "gauge",
        "1 when the feed's task or worker process is alive.",
        |f| Some(f64::from(flag(f.process_alive))),
    );
    out.per_feed(
        &feeds,
        "feed_reconnects_total",
        "counter",
        "Reconnects of the feed's exchange connection.",
        |f| Some(f.reconnects as f64),
    );
    out.per_feed(
        &feeds,
        "feed_stale_detections_total",
        "counter",
        "Times the feed was detected stale (no market data within the threshold).",
        |f| Some(f.stale_detections as f64),
    );
    out.per_feed(
        &feeds,
        "feed_worker_restarts_total",
        "counter",
        "Restarts of the feed's worker process (process isolation).",
        |f| Some(f.worker_restarts as f64),
    );
    out.per_feed(
        &feeds,
        "feed_errors_total",
        "counter",
        "Errors of the feed (malformed frames, failed connections, refused topics...).",
        |f| Some(f.error_count as f64),
    );
    out.per_feed(
        &feeds,
        "feed_events_total",
        "counter",
        "Market events received by the feed.",
        |f| Some(f.messages as f64),
    );
    out.per_feed(
        &feeds,
        "feed_queue_size",
        "gauge",
        "Events buffered between the feed and the service.",
        |f| Some(f.queue_size as f64),
    );
    out.per_feed(
        &feeds,
        "feed_seconds_since_last_event",
        "gauge",
        "Seconds since the feed's last market event (absent before the first).",
        |f| f.seconds_since_last_event,
    );
    out.per_feed(
        &feeds,
        "backfill_chunks_done",
        "gauge",
        "Kline backfill chunks stored.",
        |f| Some(f.backfill.done as f64),
    );
    out.per_feed(
        &feeds,
        "backfill_chunks_planned",
        "gauge",
        "Kline backfill chunks planned.",
        |f| Some(f.backfill.total as f64),
    );
    out.family(
        "backfill_state",
        "gauge",
        "Kline backfill state: 1 for the current state (pending, running, done, failed, disabled).",
    );
    for f in &feeds {
        for s in BACKFILL_STATES {
            let [c, sym] = feed_labels(f);
            out.sample(
                "backfill_state",
                &[c, sym, ("state", s)],
                flag(f.backfill.state == s),
            );
        }
    }

    out.family(
        "messages_total",
        "counter",
        "Messages delivered to consumers, by category and type.",
    );
    for ((category, kind), n) in state.metrics().messages() {
        out.sample(
            "messages_total",
            &[("category", &category), ("type", &kind)],
            n,
        );
    }
    histogram(
        &mut out,
        "delivery_latency_seconds",
        "Time from a frame's local receipt to its delivery to consumers.",
        &state.metrics().latency(),
    );
    if let Some(n) = state.store_dropped() {
        out.family(
            "store_dropped_batches_total",
            "counter",
            "Live store writes (trades, candles, status) dropped because the store writer fell behind.",
        );
        out.sample("store_dropped_batches_total", &[], n);
    }
    if let Some(r) = state.record_status() {
        for (name, help, v) in [
            (
                "record_frames_total",
                "Raw frames written by the recorder.",
                r.frames,
            ),
            (
                "record_dropped_total",
                "Raw frames dropped because the recorder's queue was full.",
                r.dropped,
            ),
            (
                "record_lost_total",
                "Raw frames lost to failed writes (e.g. a full disk).",
                r.lost,
            ),
            (
                "record_write_errors_total",
                "Failed recorder writes or file creations.",
                r.write_errors,
            ),
        ] {
            out.family(name, "counter", help);
            out.sample(name, &[], v);
        }
    }
    super::prometheus_lines::render(&mut out.0, &feeds);
    if let Some(sink) = state.nats() {
        out.0.push_str(&sink.prometheus());
    }
    out.0
}

/// `GET /metrics`.
pub async fn get_metrics(State(state): State<ServiceState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&state)).into_response()
}
