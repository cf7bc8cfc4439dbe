//! The operator contract in process isolation: which of a worker's log events the supervisor
//! re-logs as its own top-level events (same name, level and fields as in-process, plus `pid`), and
//! the connection state those events tell, so the supervisor can close a connection the worker
//! could not report (killed, hung).
//!
//! Every event the feed logs about the exchange connection (`bybit_connector_connected`,
//! `connector_disconnected`, `connector_connection_error`,
//! `bybit_connector_stale_connection_detected`, book resyncs, trade recovery, ...) is forwarded;
//! only the worker's reports about itself (`bybit_connector_worker_*`) stay wrapped in
//! `bybit_connector_subprocess_stderr`. A forwarded line is logged once, at top level, and never
//! also wrapped, so a query by event name counts each occurrence once. The worker's own
//! `bybit_connector_health_check` is dropped: in process mode the supervisor logs the health check
//! (its view: `process_alive` false while the worker is dead, hung or being replaced).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::forwarded::members_except;

/// The health check event, logged by the supervisor rather than forwarded.
pub const HEALTH_CHECK: &str = "bybit_connector_health_check";

/// What one worker's forwarded events said about its exchange connection.
#[derive(Debug, Default)]
pub(crate) struct LinkLog {
    /// When the worker logged `bybit_connector_connected`, if no `connector_disconnected` since.
    live_since: Mutex<Option<Instant>>,
}

impl LinkLog {
    /// How long the connection has been live, if the worker logged `bybit_connector_connected`
    /// and no `connector_disconnected` since.
    pub(crate) fn open_for(&self) -> Option<Duration> {
        self.since().map(|t| t.elapsed())
    }

    fn since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.live_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a worker event named `name` is re-logged at top level.
pub fn is_forwarded(name: &str) -> bool {
    !name.is_empty() && !name.starts_with("bybit_connector_worker_") && name != HEALTH_CHECK
}

/// Handles one JSON log line of worker `pid` with event `name` at `level`: re-logs it at top level
/// if it is forwarded (`true`), or tells the caller to wrap it (`false`). The worker's health check
/// is consumed silently (`true`).
pub(crate) fn relog(pid: u32, level: &str, name: &str, line: &str, link: &LinkLog) -> bool {
    if name == HEALTH_CHECK {
        return true;
    }
    if !is_forwarded(name) {
        return false;
    }
    let Some(fields) = members_except(line, &["timestamp", "level", "event", "pid"]) else {
        return false;
    };
    match name {
        "bybit_connector_connected" => {
            link.since().get_or_insert_with(Instant::now);
        }
        "connector_disconnected" => *link.since() = None,
        _ => {}
    }
    match level {
        "ERROR" => tracing::error!(event = %name, pid, forwarded_fields = %fields),
        "WARN" => tracing::warn!(event = %name, pid, forwarded_fields = %fields),
        "DEBUG" => tracing::debug!(event = %name, pid, forwarded_fields = %fields),
        "TRACE" => tracing::trace!(event = %name, pid, forwarded_fields = %fields),
        _ => tracing::info!(event = %name, pid, forwarded_fields = %fields),
    }
    true
}

/// After worker `pid` ended: once everything it logged is through (its stderr pump `stderr`
/// finished), a connection it reported live and could not report closed (killed, hung) is closed
/// in the log by the supervisor: `connector_disconnected` exactly once per connection, with the
/// in-process fields (`connector`, `reason`, `category`, `live_for_s`) plus `pid`.
pub(crate) async fn close_link(
    pid: u32,
    stderr: JoinHandle<()>,
    link: &LinkLog,
    reason: &str,
    category: &str,
) {
    let _ = tokio::time::timeout(Duration::from_secs(2), stderr).await;
    let Some(live_for) = link.open_for() else {
        return;
    };
    tracing::warn!(
        event = "connector_disconnected",
        pid,
        connector = "hft",
        reason = %reason,
        category = %category,
        live_for_s = live_for.as_secs_f64(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_events_are_forwarded_and_worker_reports_are_not() {
        for name in [
            "bybit_connector_connected",
            "connector_disconnected",
            "connector_connection_error",
            "bybit_connector_stale_connection_detected",
            "bybit_connector_book_resync",
            "bybit_connector_trades_recovered",
        ] {
            assert!(is_forwarded(name), "{name}");
        }
        for name in ["", "bybit_connector_worker_stats", HEALTH_CHECK] {
            assert!(!is_forwarded(name), "{name}");
        }
    }

    #[test]
    fn connection_state_follows_the_forwarded_events() {
        let link = LinkLog::default();
        let line = |e: &str| format!(r#"{{"timestamp":"t","level":"INFO","event":"{e}","x":1}}"#);
        assert!(relog(
            1,
            "INFO",
            "bybit_connector_connected",
            &line("bybit_connector_connected"),
            &link
        ));
        assert!(link.open_for().is_some());
        assert!(relog(
            1,
            "WARN",
            "connector_disconnected",
            &line("connector_disconnected"),
            &link
        ));
        assert!(link.open_for().is_none());
        assert!(!relog(
            1,
            "INFO",
            "bybit_connector_worker_stats",
            &line("bybit_connector_worker_stats"),
            &link
        ));
        assert!(relog(1, "INFO", HEALTH_CHECK, &line(HEALTH_CHECK), &link));
    }
}
