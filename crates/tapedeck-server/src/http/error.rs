//! The one API error: a stable code, a message, an HTTP status.
//! Server faults are logged with their detail and sent as a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tapedeck_core::{Code, ErrorCode};

/// An error as the API returns it: `{"error": {"code", "message"}}`, with
/// its code's HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (the code's).
    pub status: u16,
    /// Stable code.
    pub code: Code,
    /// What went wrong, for people.
    pub message: String,
    /// Seconds to wait before asking again (`Retry-After`), if known.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with `code`, at its status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        debug_assert!(code.is_api(), "{code} is not an API error code");
        Self {
            status: code.status(),
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The same, telling the client when to ask again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthorized, message)
    }
    /// 404 for recordings that do not exist or are not the caller's.
    pub fn not_found() -> Self {
        Self::new(Code::NotFound, "no such recording")
    }
    /// 500: the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(Code::Internal, "internal server error")
    }
    /// From any module error with a stable code; 5xx details are logged only.
    pub fn from_code<E: ErrorCode + std::fmt::Display>(e: E) -> Self {
        if e.status() >= 500 {
            tracing::error!(error = %e, code = %e.code(), "server fault");
            Self::new(
                e.code(),
                "the server could not complete the request; see its log",
            )
        } else {
            Self::new(e.code(), e.to_string())
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
        let mut r = (
            status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if let Some(s) = self.retry_after_s {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        r
    }
}

/// The face of the engine's answer: a server fault's detail is logged,
/// not sent.
impl From<tapedeck_core::Problem> for ApiError {
    fn from(p: tapedeck_core::Problem) -> Self {
        ApiError::from_code(p)
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
