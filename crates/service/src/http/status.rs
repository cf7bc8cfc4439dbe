//! Feed status routes: `GET /health` (200 only when every feed is connected), `GET /api/status`
//! (the per-feed status contract) and `GET /api/events/recent` (recent lifecycle events).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::feed::health::{iso_time, unix_ms};
use crate::service::state::LogEvent;
use crate::service::{FeedStatus, ServiceState};

/// Operator-facing statuses, in display order.
pub const STATUSES: [&str; 4] = ["connected", "connecting", "disconnected", "down"];

/// A feed that is not connected, and why.
#[derive(Debug, Serialize)]
pub struct Unhealthy {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: String,
    /// Its status.
    pub status: String,
    /// Seconds since its last market event (`null` before the first).
    pub seconds_since_last_event: Option<f64>,
    /// Whether its task or worker process is alive.
    pub process_alive: bool,
    /// A sentence for humans.
    pub reason: String,
}

/// `/health` body.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    /// Feeds configured.
    pub feeds: usize,
    /// Feeds connected.
    pub connected: usize,
    /// The feeds that are not connected.
    pub not_connected: Vec<Unhealthy>,
    /// Now (ISO-8601 UTC).
    pub time: Option<String>,
}

fn reason(s: &FeedStatus) -> String {
    let since = match s.seconds_since_last_event {
        Some(secs) => format!("last market event {secs:.1} s ago"),
        None => "no market event yet".to_string(),
    };
    let process = if s.process_alive {
        ""
    } else {
        ", feed process not alive"
    };
    format!("{} is {}: {since}{process}", s.symbol, s.status)
}

/// The health verdict of these statuses.
pub fn health(statuses: &[FeedStatus]) -> Health {
    let not_connected: Vec<Unhealthy> = statuses
        .iter()
        .filter(|s| s.status != "connected")
        .map(|s| Unhealthy {
            symbol: s.symbol.clone(),
            category: s.category.to_string(),
            status: s.status.clone(),
            seconds_since_last_event: s.seconds_since_last_event,
            process_alive: s.process_alive,
            reason: reason(s),
        })
        .collect();
    Health {
        status: if not_connected.is_empty() {
            "ok"
        } else {
            "unhealthy"
        },
        feeds: statuses.len(),
        connected: statuses.len() - not_connected.len(),
        not_connected,
        time: iso_time(unix_ms()),
    }
}

/// `GET /health`: 200 when every feed is connected, 503 otherwise.
pub async fn get_health(State(state): State<ServiceState>) -> Response {
    let h = health(&state.statuses());
    let code = if h.not_connected.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(h)).into_response()
}

/// `/api/status` body: the feeds plus a summary.
#[derive(Debug, Serialize)]
pub struct StatusBody {
    /// Every feed, ordered by category then symbol.
    pub feeds: Vec<FeedStatus>,
    /// Feeds per status (all four statuses present).
    pub summary: BTreeMap<&'static str, usize>,
    /// Every feed is connected.
    pub healthy: bool,
    /// Server time (ISO-8601 UTC).
    pub time: Option<String>,
    /// Server time (Unix ms), for clients ticking "seconds since".
    pub time_ms: u64,
    /// Crate version.
    pub version: &'static str,
    /// Sinks (`nats`), present when configured.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sinks: BTreeMap<&'static str, crate::sinks::stats::NatsStatus>,
    /// The raw recorder (`[sinks.record]`), when on: frames written, dropped, lost, write errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<crate::record::RecordStatus>,
}

/// `GET /api/status`.
pub async fn get_status(State(state): State<ServiceState>) -> Json<StatusBody> {
    let feeds = state.statuses();
    let mut summary: BTreeMap<&'static str, usize> = STATUSES.iter().map(|s| (*s, 0)).collect();
    for f in &feeds {
        if let Some(n) = STATUSES
            .iter()
            .find(|s| **s == f.status)
            .and_then(|s| summary.get_mut(s))
        {
            *n += 1;
        }
    }
    let now = unix_ms();
    Json(StatusBody {
        healthy: feeds.iter().all(|f| f.status == "connected"),
        feeds,
        summary,
        time: iso_time(now),
        time_ms: now,
        version: env!("CARGO_PKG_VERSION"),
        sinks: state
            .nats()
            .map(|n| ("nats", n.status()))
            .into_iter()
            .collect(),
        record: state.record_status(),
    })
}

/// `/api/events/recent` body.
#[derive(Debug, Serialize)]
pub struct RecentEvents {
    /// Recent lifecycle events, newest first.
    pub events: Vec<LogEvent>,
}

/// `GET /api/events/recent`: recent lifecycle events, newest first.
pub async fn get_recent_events(State(state): State<ServiceState>) -> Json<RecentEvents> {
    let mut events = state.recent_events();
    events.reverse();
    Json(RecentEvents { events })
}
