//! The split of the log between the two processes. Every event of the operator contract (about
//! the exchange connection: `bybit_connector_connected`, `connector_disconnected`,
//! `connector_connection_error`, stale detection, book resyncs, trade recovery, the health check)
//! is logged once, by the supervisor, whose session made the decision; in process isolation each
//! carries the worker's `pid` (the span [`super::WORKER_SPAN`]). A worker logs only about itself,
//! events named `bybit_connector_worker_*`, which its supervisor wraps into
//! `bybit_connector_subprocess_stderr`. So a query by event name counts each occurrence once.

/// The health check event (the supervisor's: `process_alive` is its view of the worker).
pub const HEALTH_CHECK: &str = "bybit_connector_health_check";

/// Whether an event named `name` belongs to the operator contract (the supervisor's to log at top
/// level), as opposed to a worker's report about itself.
pub fn is_forwarded(name: &str) -> bool {
    !name.is_empty() && !name.starts_with("bybit_connector_worker_") && name != HEALTH_CHECK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_events_are_the_supervisors_and_worker_reports_are_not() {
        for name in [
            "bybit_connector_connected",
            "connector_disconnected",
            "connector_connection_error",
            "bybit_connector_stale_connection_detected",
        ] {
            assert!(is_forwarded(name), "{name}");
        }
        for name in ["", "bybit_connector_worker_stats", HEALTH_CHECK] {
            assert!(!is_forwarded(name), "{name}");
        }
    }
}
