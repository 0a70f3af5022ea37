//! The one API error: a stable code, a message, an HTTP status.
//! Server faults are logged with their detail and sent as a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tapedeck_core::ErrorCode;

/// An error as the API returns it: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            tapedeck_core::codes::API.iter().any(|c| c.code == code),
            "{code} is not in the catalogue (tapedeck_core::codes::API)"
        );
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }
    /// 404 for recordings that do not exist or are not the caller's.
    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such recording")
    }
    /// 500: the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(500, "internal", "internal server error")
    }
    /// From any module error with a stable code; 5xx details are logged only.
    pub fn from_code<E: ErrorCode + std::fmt::Display>(e: E) -> Self {
        if e.status() >= 500 {
            tracing::error!(error = %e, code = e.code(), "server fault");
            Self::new(
                e.status(),
                e.code(),
                "the server could not complete the request; see its log",
            )
        } else {
            Self::new(e.status(), e.code(), e.to_string())
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

macro_rules! from_code {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self { ApiError::from_code(e) }
        }
    )*};
}

from_code!(
    tapedeck_core::id::InvalidId,
    tapedeck_core::recording::InvalidTransition,
    tapedeck_core::request::RequestError,
    tapedeck_store::repo::RepoError,
    tapedeck_store::blob::BlobError
);
