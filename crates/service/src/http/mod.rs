//! The HTTP side of the service: status API, market data, candles, the live event stream (SSE),
//! Prometheus metrics and the embedded dashboard, all read from a [`ServiceState`].
//!
//! # Routes
//! - `GET /` (+ `/assets/dashboard.js`, `/assets/dashboard-chart.js`,
//!   `/assets/dashboard-events.js`, `/assets/dashboard-book.js`, `/assets/dashboard.css`): the
//!   dashboard ([`dashboard`]).
//! - `GET /health`, `GET /api/status`, `GET /api/events/recent` ([`status`]).
//! - `GET /api/book/{symbol}`, `GET /api/trades/{symbol}` ([`market`]).
//! - `GET /api/candles/{symbol}` ([`candles`]).
//! - `GET /api/events`: Server-Sent Events ([`stream`]).
//! - `GET /metrics`: Prometheus text format ([`prometheus`]; A/B lines: [`prometheus_lines`]).
//! - `POST /api/feeds/{category}/reconnect` ([`actions`]): state-changing routes the service adds
//!   with [`router_with`] sit behind the bearer-token guard ([`auth`]).
//!
//! Errors are JSON `{"error": "...", "code": "..."}` ([`error`]); a request that matches no route
//! but looks like one is answered with the right form ([`routes`]).

pub mod actions;
pub mod auth;
pub mod candles;
pub mod dashboard;
pub mod error;
pub mod feeds;
pub mod market;
pub mod prometheus;
pub mod prometheus_lines;
pub mod routes;
pub mod status;
pub mod stream;

use axum::extract::{FromRef, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::service::ServiceState;
use error::ApiError;

/// Event-stream (`GET /api/events`) clients served at once; one more is answered 503.
pub const MAX_SSE_CLIENTS: usize = 64;
/// Largest request body accepted (413 beyond it).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the handlers share: the service state, the shutdown token that ends event streams and
/// the event-stream client slots.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service state.
    pub service: ServiceState,
    /// Cancelled when the server shuts down (event streams end).
    pub shutdown: CancellationToken,
    /// Free event-stream client slots.
    pub sse_clients: stream::ClientSlots,
}

impl FromRef<AppState> for stream::ClientSlots {
    fn from_ref(s: &AppState) -> Self {
        s.sse_clients.clone()
    }
}

impl FromRef<AppState> for ServiceState {
    fn from_ref(s: &AppState) -> Self {
        s.service.clone()
    }
}

impl FromRef<AppState> for CancellationToken {
    fn from_ref(s: &AppState) -> Self {
        s.shutdown.clone()
    }
}

/// The read-only API, metrics and dashboard. Event streams never end by themselves: prefer
/// [`router_with`] with a shutdown token when serving with graceful shutdown.
pub fn router(state: ServiceState) -> Router {
    router_with(state, CancellationToken::new(), Router::new())
}

/// [`router`], plus `actions` (state-changing routes, e.g. `POST /api/feeds/{category}/reconnect`)
/// behind the bearer-token guard, with event streams ending when `shutdown` is cancelled.
pub fn router_with(state: ServiceState, shutdown: CancellationToken, actions: Router) -> Router {
    let guarded = actions.layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    let app = AppState {
        service: state,
        shutdown,
        sse_clients: stream::ClientSlots::new(MAX_SSE_CLIENTS),
    };
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/dashboard.js", get(dashboard::script))
        .route("/assets/dashboard-chart.js", get(dashboard::chart_script))
        .route("/assets/dashboard-events.js", get(dashboard::events_script))
        .route("/assets/dashboard-book.js", get(dashboard::book_script))
        .route("/assets/dashboard.css", get(dashboard::stylesheet))
        .route("/assets/sinks.js", get(dashboard::sinks_script))
        .route("/assets/record.js", get(dashboard::record_script))
        .route("/assets/lines.js", get(dashboard::lines_script))
        .route("/health", get(status::get_health))
        .route("/api/status", get(status::get_status))
        .route("/api/events/recent", get(status::get_recent_events))
        .route("/api/events", get(stream::get_events))
        .route("/api/book/{symbol}", get(market::get_book))
        .route("/api/trades/{symbol}", get(market::get_trades))
        .route("/api/candles/{symbol}", get(candles::get_candles))
        .route("/metrics", get(prometheus::get_metrics))
        .with_state(app)
        .merge(guarded)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(nosniff))
}

async fn not_found(req: Request) -> Response {
    let mut message = format!("no route {} {}", req.method(), req.uri().path());
    if let Some(hint) = routes::hint(req.uri().path(), req.uri().query()) {
        message = format!("{message}: {hint}");
    }
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message).into_response()
}

async fn nosniff(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
