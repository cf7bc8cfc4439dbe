//! The dashboard at `/`: one HTML page, its script and its stylesheet, embedded in the binary
//! (`include_str!`, no CDN, no build step). The page reads `/api/status` every second, follows
//! `/api/events` (SSE), and renders all exchange-sourced text with `textContent` only.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
pub const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
/// Its candlestick chart (loaded before the script).
pub const CHART_JS: &str = include_str!("assets/dashboard-chart.js");
/// Its event rows (loaded before the script).
pub const EVENTS_JS: &str = include_str!("assets/dashboard-events.js");
/// Its book ladder (loaded before the script).
pub const BOOK_JS: &str = include_str!("assets/dashboard-book.js");
/// The sinks pill's script.
pub const SINKS_JS: &str = include_str!("assets/sinks.js");
/// The recorder pill's script.
pub const RECORD_JS: &str = include_str!("assets/record.js");
/// The A/B lines pill.
pub const LINES_JS: &str = include_str!("assets/lines.js");
/// Its stylesheet.
pub const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// The Content-Security-Policy of the page: only its own script, styles and API.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/dashboard.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

/// `GET /assets/dashboard-chart.js`.
pub async fn chart_script() -> Response {
    asset("text/javascript; charset=utf-8", CHART_JS)
}

/// `GET /assets/dashboard-events.js`.
pub async fn events_script() -> Response {
    asset("text/javascript; charset=utf-8", EVENTS_JS)
}

/// `GET /assets/dashboard-book.js`.
pub async fn book_script() -> Response {
    asset("text/javascript; charset=utf-8", BOOK_JS)
}

/// `GET /assets/sinks.js`.
pub async fn sinks_script() -> Response {
    asset("text/javascript; charset=utf-8", SINKS_JS)
}

/// `GET /assets/record.js`.
pub async fn record_script() -> Response {
    asset("text/javascript; charset=utf-8", RECORD_JS)
}

/// `GET /assets/lines.js`.
pub async fn lines_script() -> Response {
    asset("text/javascript; charset=utf-8", LINES_JS)
}

/// `GET /assets/dashboard.css`.
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}
