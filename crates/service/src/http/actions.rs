//! The state-changing routes, served behind the bearer-token guard ([`super::auth`]):
//!
//! - `POST /api/feeds/{category}/reconnect`: that category's feed drops its exchange connection
//!   now and reconnects the normal way (resubscribe, fresh book snapshots, REST trade gap-fill);
//!   in either isolation the feed's session (in this process) acts on it, in process isolation
//!   through the same worker. Answers 202 with what was done, 404 for a category the service does
//!   not run. An optional `reason` (query
//!   parameter or JSON body `{"reason": "..."}`) is logged with the caller's address as
//!   `bybit_connector_reconnect_requested`.
//! - `POST /api/feeds/{category}/resync`: that category's live connection resubscribes its book
//!   topics for fresh snapshots (the connection and the trade tape go on). 202, 404 as above,
//!   409 when the feed is not connected (a new
//!   connection starts from fresh snapshots anyway). Logged as `bybit_connector_resync_requested`.

use std::net::SocketAddr;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::feeds::Params;
use crate::feed::health::{iso_time, unix_ms};
use crate::protocol::Category;
use crate::service::state::LogEvent;
use crate::service::ServiceState;
use crate::source::{RequestOutcome, SourceMonitor};

/// Longest `reason` accepted (characters).
pub const MAX_REASON_CHARS: usize = 200;

/// The state-changing routes (the caller puts them behind the token guard).
pub fn routes(state: ServiceState) -> Router {
    Router::new()
        .route("/api/feeds/{category}/reconnect", post(reconnect))
        .route("/api/feeds/{category}/resync", post(resync))
        .with_state(state)
}

/// `POST /api/feeds/{category}/reconnect` and `/resync` answer (202).
#[derive(Debug, Serialize)]
pub struct ReconnectBody {
    /// The feed's category.
    pub category: Category,
    /// `reconnect` or `resync`.
    pub action: &'static str,
    /// `process` or `in-process`.
    pub isolation: &'static str,
    /// What was done: `feed_told` (the feed acts on it, in either isolation).
    pub done: &'static str,
    /// The worker carrying the connection (process isolation).
    pub pid: Option<u32>,
    /// The feed's status when asked (`connected`, `disconnected`, ...).
    pub status_before: String,
    /// Who asked (the caller's address).
    pub requested_by: String,
    /// Why (the caller's `reason`, empty when none was given).
    pub reason: String,
    /// What happens next, in words.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Reconnect,
    Resync,
}

async fn reconnect(
    state: State<ServiceState>,
    category: Path<String>,
    params: Query<Params>,
    extensions: Extensions,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ReconnectBody>)> {
    act(Action::Reconnect, state, category, params, extensions, body).await
}

async fn resync(
    state: State<ServiceState>,
    category: Path<String>,
    params: Query<Params>,
    extensions: Extensions,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ReconnectBody>)> {
    act(Action::Resync, state, category, params, extensions, body).await
}

async fn act(
    action: Action,
    State(state): State<ServiceState>,
    Path(category): Path<String>,
    Query(params): Query<Params>,
    extensions: Extensions,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ReconnectBody>)> {
    let (category, monitor) = feed(&state, &category)?;
    let reason = reason(&params, &body)?;
    let requested_by = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    let status_before = monitor.health().status;
    let why = if reason.is_empty() {
        format!("HTTP request from {requested_by}")
    } else {
        format!("HTTP request from {requested_by}: {reason}")
    };
    let isolation = match &monitor {
        SourceMonitor::InProcess(_) => "in-process",
        SourceMonitor::Process(_) => "process",
        // A/B lines: every line is asked; they share one isolation mode.
        SourceMonitor::Lines(s) => match s.monitors().first() {
            Some(SourceMonitor::Process(_)) => "process",
            _ => "in-process",
        },
    };
    if action == Action::Resync && status_before != "connected" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_connected",
            format!(
                "the {category} feed is {status_before}: nothing to resync (its next connection \
                 starts from fresh snapshots)"
            ),
        ));
    }
    let (name, event, outcome) = match action {
        Action::Reconnect => (
            "reconnect",
            "bybit_connector_reconnect_requested",
            monitor.reconnect(&why),
        ),
        Action::Resync => (
            "resync",
            "bybit_connector_resync_requested",
            monitor.resync(&why),
        ),
    };
    let what = match action {
        Action::Reconnect => "drops its connection now, or ends its reconnect backoff wait, and reconnects: it resubscribes, rebuilds its books from fresh snapshots and refills the trades in between from REST",
        Action::Resync => "resubscribes every book topic on its live connection: each book announces a resync and is rebuilt from a fresh snapshot while trades go on",
    };
    // In either isolation the feed's session runs in this process and acts on the request; in
    // process isolation its connection is carried by worker `pid` (kept, not replaced).
    let RequestOutcome::Requested = outcome;
    let pid = monitor.pid();
    let (done, detail) = ("feed_told", format!("the feed ({status_before}) {what}"));
    tracing::info!(
        event,
        category = %category,
        requested_by = %requested_by,
        reason = %reason,
        isolation,
        done,
        pid,
        status_before = %status_before,
    );
    state.push_event(LogEvent {
        timestamp: iso_time(unix_ms()).unwrap_or_default(),
        level: "INFO".into(),
        event: event.into(),
        category: Some(category),
        symbol: None,
        detail: why,
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(ReconnectBody {
            category,
            action: name,
            isolation,
            done,
            pid,
            status_before,
            requested_by,
            reason,
            detail,
        }),
    ))
}

/// The running feed of the `{category}` path segment; 404 naming what the service runs.
fn feed(state: &ServiceState, raw: &str) -> ApiResult<(Category, SourceMonitor)> {
    let controls = state.controls();
    let served = || {
        let c: Vec<&str> = controls.categories().iter().map(|c| c.as_str()).collect();
        if c.is_empty() {
            "no feed yet".to_string()
        } else {
            c.join(", ")
        }
    };
    let category = Category::from_str(&raw.trim().to_ascii_lowercase()).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_feed",
            format!("unknown category {raw:?}: this service runs {}", served()),
        )
    })?;
    let monitor = controls.get(category).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_feed",
            format!("no {category} feed: this service runs {}", served()),
        )
    })?;
    Ok((category, monitor))
}

/// The optional reason: `?reason=` or a JSON body `{"reason": "..."}` (an empty body is fine).
fn reason(params: &Params, body: &[u8]) -> ApiResult<String> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be empty or JSON like {{\"reason\": \"...\"}}: {e}"
            ))
        })?;
        match v.get("reason") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "reason must be a string, not {other}"
                )))
            }
        }
    };
    let reason = from_body
        .or_else(|| params.get("reason").cloned())
        .unwrap_or_default();
    let reason = reason.trim().to_string();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_request(format!(
            "reason is {} characters long: at most {MAX_REASON_CHARS}",
            reason.chars().count()
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "reason must not contain control characters",
        ));
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reason_from_query_or_body_with_clear_errors() {
        assert_eq!(reason(&params(&[]), b"").unwrap(), "");
        assert_eq!(reason(&params(&[("reason", " q ")]), b" \n").unwrap(), "q");
        assert_eq!(
            reason(&params(&[("reason", "q")]), br#"{"reason":"b"}"#).unwrap(),
            "b"
        );
        assert_eq!(reason(&params(&[]), br#"{}"#).unwrap(), "");
        let e = reason(&params(&[]), b"not json").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("JSON"), "{}", e.message);
        let e = reason(&params(&[]), br#"{"reason":5}"#).unwrap_err();
        assert!(e.message.contains("string"), "{}", e.message);
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let e = reason(&params(&[("reason", &long)]), b"").unwrap_err();
        assert!(e.message.contains("at most"), "{}", e.message);
        let e = reason(&params(&[("reason", "a\nb")]), b"").unwrap_err();
        assert!(e.message.contains("control"), "{}", e.message);
    }

    #[test]
    fn unknown_and_unserved_categories_are_404s_naming_what_runs() {
        let state = ServiceState::new(&[], None);
        let e = feed(&state, "futures").unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "unknown_feed"));
        assert!(e.message.contains("\"futures\""), "{}", e.message);
        let e = feed(&state, "spot").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(e.message.contains("no spot feed"), "{}", e.message);
    }
}
