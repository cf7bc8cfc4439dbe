//! The token guard of state-changing routes: `Authorization: Bearer <token>` must match the
//! service's configured token (compared in constant time). Without a configured token such routes
//! are disabled (403); a missing or wrong token is a 401.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::service::ServiceState;

/// Whether `given` equals `secret`, in time that depends only on `given`'s length: no early exit
/// on the first differing byte, and no early exit on a length mismatch (which would tell an
/// attacker the secret's length).
pub fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return given.is_empty();
    }
    let mut diff = u8::from(given.len() != secret.len());
    for (i, g) in given.iter().enumerate() {
        diff |= g ^ secret[i % secret.len()];
    }
    diff == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_for_the_same_bytes_whatever_the_lengths() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cres", b"s3cret"));
        // Prefixes, extensions and repetitions of the secret are all refused.
        assert!(!constant_time_eq(b"s3c", b"s3cret"));
        assert!(!constant_time_eq(b"s3crets3cret", b"s3cret"));
        assert!(!constant_time_eq(b"", b"s3cret"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_header_parsing() {
        let h = |v: &'static str| HeaderValue::from_static(v);
        assert!(bearer_matches(Some(&h("Bearer tok")), "tok"));
        assert!(bearer_matches(Some(&h("bearer  tok ")), "tok"));
        assert!(!bearer_matches(Some(&h("Basic tok")), "tok"));
        assert!(!bearer_matches(Some(&h("Bearer to")), "tok"));
        assert!(!bearer_matches(None, "tok"));
    }
}
