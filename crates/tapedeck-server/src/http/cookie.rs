//! The session cookie as a credential: reading it from a request, the
//! checks a request signed in by it alone must pass (CSRF token, same
//! origin for WebSockets), the caller it names, and the cookie itself.
//! Sessions are opened and ended in `session.rs`.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use tapedeck_core::Code;

use crate::engine::principal::Principal;
use crate::http::error::ApiError;
use crate::http::secret::{ct_eq, hash_token, signature};
use crate::http::state::AppState;
use crate::now_ms;

/// The cookie's name.
pub const COOKIE: &str = "tapedeck_session";
/// Prefix of session tokens.
pub const PREFIX: &str = "tds_";
/// The CSRF token of a session: an HMAC of its token under the server's
/// key, so nothing more is stored and only a page that read
/// `GET /v1/session` (this origin) knows it.
pub fn csrf_of(key: &[u8], session_token: &str) -> String {
    signature(key, &format!("csrf.{session_token}"))
}

/// The session token in a request's cookies.
pub fn cookie_of(headers: &HeaderMap) -> Option<String> {
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    tapedeck_core::signin::cookie(values, COOKIE)
        .filter(|v| v.starts_with(PREFIX))
        .map(String::from)
}

/// Whether the request came from a page of this server: its `Origin` is
/// the server's public URL or the host it asked for.
pub(crate) fn same_origin(s: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == s.config.public_url() {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((bare, host), (Some(o), Some(h)) if o == h)
}

/// The checks a request authenticated by the cookie alone must pass: a
/// change (any method but GET/HEAD) carries the session's CSRF token, and
/// a WebSocket comes from this origin (a page elsewhere could otherwise
/// open one with the user's cookie and read it).
pub fn check_cookie_request(
    s: &AppState,
    method: &Method,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), ApiError> {
    let upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if upgrade {
        return if same_origin(s, headers) {
            Ok(())
        } else {
            Err(csrf_failed(
                "a WebSocket signed in by cookie must come from this server's page",
            ))
        };
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct_eq(sent.as_bytes(), csrf_of(&s.share_key, token).as_bytes()) {
        Ok(())
    } else if sent.is_empty() {
        Err(csrf_failed(
            "a change made with the session cookie needs the X-CSRF-Token header (from GET /v1/session)",
        ))
    } else {
        Err(csrf_failed(
            "the X-CSRF-Token header is not this session's (read it again from GET /v1/session)",
        ))
    }
}

pub(crate) fn csrf_failed(message: &str) -> ApiError {
    ApiError::new(Code::CsrfFailed, message)
}

/// The caller of a session token.
pub async fn principal(s: &AppState, token: &str) -> Result<Principal, ApiError> {
    match s.repo.session(&hash_token(token), now_ms()).await? {
        Some(sess) => Ok(Principal {
            user: sess.user,
            admin: sess.admin,
        }),
        None => Err(ended()),
    }
}

pub(crate) fn ended() -> ApiError {
    ApiError::new(
        Code::SessionExpired,
        "the sign-in has ended (it expired, was signed out, or its key was revoked); sign in again",
    )
}

/// The cookie that holds `token` for `max_age_s` (0: removes it).
pub fn cookie(s: &AppState, headers: &HeaderMap, token: &str, max_age_s: u64) -> HeaderValue {
    let secure = if over_https(s, headers) {
        "; Secure"
    } else {
        ""
    };
    let v =
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}");
    // Built from a token of letters and digits: always a valid header.
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""))
}

/// Whether the browser reached the server over HTTPS (its public URL, or
/// a proxy in front saying so).
pub fn over_https(s: &AppState, headers: &HeaderMap) -> bool {
    s.config.public_url().starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tapedeck_session=tds_abc; b=2"),
        );
        assert_eq!(cookie_of(&h).as_deref(), Some("tds_abc"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("tapedeck_session=tdk_x"),
        );
        assert_eq!(cookie_of(&h), None, "only a session token");
    }
}
