//! JSON errors of the HTTP API: every failure answers `{"error": "...", "code": "..."}` with a
//! fitting status, so clients (and the dashboard) never have to parse plain-text rejections.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An API failure: HTTP status, stable machine code and a human explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`bad_request`, `unknown_feed`, `no_book`, `no_store`, `store_error`,
    /// `unauthorized`, `forbidden`).
    pub code: &'static str,
    /// What went wrong, naming the offending value.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: &'a str,
}

impl ApiError {
    /// A 400 for a bad parameter.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            code: self.code,
        };
        (self.status, Json(body)).into_response()
    }
}

/// The result type of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
