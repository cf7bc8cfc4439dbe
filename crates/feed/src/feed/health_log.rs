//! The `bybit_connector_health_check` log event: one line per feed every `health.log_interval_s`,
//! the same fields whichever isolation runs the feed (the in-process feed logs its own; in process
//! isolation the supervisor logs its view of the worker, see [`crate::worker`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::HealthSnapshot;

/// The health check event name.
pub const EVENT: &str = "bybit_connector_health_check";

/// Logs one health check of feed `feed` (`category:symbols`); `pid` is the worker's, if any.
///
/// Fields: `feed`, `pid` (process isolation), `process_alive`, `queue_size`, `error_count`,
/// `seconds_since_last_event` (the stalest symbol, -1 before any), `status`, `reconnects`,
/// `stale_detections`, and `seconds_since_last_event_by_symbol` (`{"BTCUSDT": 0.4, ...}`).
pub fn log(feed: &str, h: &HealthSnapshot, pid: Option<u32>) {
    let by_symbol: serde_json::Map<String, serde_json::Value> = h
        .per_symbol
        .iter()
        .map(|(s, sh)| (s.clone(), serde_json::json!(sh.seconds_since_last_event)))
        .collect();
    let extra = format!(
        "\"seconds_since_last_event_by_symbol\":{}",
        serde_json::Value::Object(by_symbol)
    );
    // `forwarded_fields` (see `crate::forwarded`) puts the per-symbol object at top level.
    tracing::info!(
        event = EVENT,
        feed = %feed,
        pid,
        process_alive = h.process_alive,
        queue_size = h.queue_size,
        error_count = h.error_count,
        seconds_since_last_event = h.seconds_since_last_event.unwrap_or(-1.0),
        status = %h.status,
        reconnects = h.reconnects,
        stale_detections = h.stale_detections,
        forwarded_fields = %extra,
    );
}

/// Logs `snapshot()` every `every` (first after one interval) until `cancel`.
pub async fn log_every(
    snapshot: impl Fn() -> (HealthSnapshot, Option<u32>),
    cancel: CancellationToken,
    every: Duration,
    feed: String,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                let (h, pid) = snapshot();
                log(&feed, &h, pid);
            }
        }
    }
}
