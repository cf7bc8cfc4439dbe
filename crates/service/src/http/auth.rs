//! The token guard of state-changing routes: `Authorization: Bearer <token>` must match the
//! service's configured token (compared in constant time). Without a configured token such routes
//! are disabled (403); a missing or wrong token is a 401.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::service::ServiceState;

/// Equal without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `header` (an `Authorization` value) carries `token`.
pub fn bearer_matches(header: Option<&HeaderValue>, token: &str) -> bool {
    let Some(value) = header.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let given = parts.next().unwrap_or_default().trim();
    scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Middleware: lets the request through only with the configured bearer token.
pub async fn require_token(
    State(state): State<ServiceState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = state.token().filter(|t| !t.is_empty()) else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "state-changing routes are disabled: no token is configured \
             (set --token or HFT_CONNECTOR_TOKEN)",
        )
        .into_response();
    };
    if bearer_matches(req.headers().get(header::AUTHORIZATION), token) {
        return next.run(req).await;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong token: send Authorization: Bearer <token>",
    )
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"hft-connector\""),
    );
    resp
}
