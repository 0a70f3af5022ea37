//! Who is calling: API keys (hashed at rest) and HS256 JWTs.
//!
//! The token comes from `Authorization: Bearer ...`, for browsers' media
//! elements and WebSockets from `?token=`, and for the web page from its
//! session cookie (`session.rs`). Every route but health, metrics, the web
//! page, sign-in and signed share links needs one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;
use tapedeck_core::Code;
use tapedeck_store::repo::{ApiKey, Repo};

use crate::http::error::ApiError;
use crate::http::secret::hash_token;
use crate::http::state::AppState;

pub use crate::engine::principal::{Principal, random_string};

/// Prefix of API key tokens.
pub const KEY_PREFIX: &str = "tdk_";

/// Whether `user` is a user name: 1-64 characters, letters, digits and `- _ . @`
/// (API keys and JWT `sub` alike).
pub fn valid_user_name(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// Creates an API key for `user`; returns the stored key and the token (shown once).
pub async fn create_key(
    repo: &Repo,
    user: &str,
    admin: bool,
    now_ms: i64,
) -> Result<(ApiKey, String), ApiError> {
    if !valid_user_name(user) {
        return Err(ApiError::new(
            Code::InvalidUser,
            "user names are 1-64 characters: letters, digits, - _ . @",
        ));
    }
    let token = format!("{KEY_PREFIX}{}", random_string(40));
    let key = ApiKey {
        id: format!("key_{}", random_string(12)),
        user: user.into(),
        admin,
        created_at: now_ms,
        revoked: false,
    };
    repo.create_key(&key, &hash_token(&token)).await?;
    Ok((key, token))
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    admin: bool,
}

/// Checks a token and returns the caller.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if token.starts_with(crate::http::cookie::PREFIX) {
        return crate::http::cookie::principal(state, token).await;
    }
    if token.starts_with(KEY_PREFIX) {
        return match state.repo.find_key(&hash_token(token)).await? {
            Some(k) => Ok(Principal {
                user: k.user,
                admin: k.admin,
            }),
            None => Err(ApiError::unauthorized("unknown or revoked API key")),
        };
    }
    if token.matches('.').count() == 2 {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::unauthorized(format!("invalid JWT: {e}")))?;
        let claims: Claims = if crate::http::jwks::asymmetric(header.alg) {
            let Some(jwks) = &state.jwks else {
                return Err(ApiError::unauthorized(format!(
                    "{:?} JWTs are not enabled on this server (auth.jwks_url)",
                    header.alg
                )));
            };
            jwks.verify(token, header.alg, header.kid.as_deref())
                .await?
        } else {
            let secret = &state.config.auth.jwt_secret.0;
            if secret.is_empty() {
                return Err(ApiError::unauthorized(
                    "JWTs are not enabled on this server (auth.jwt_secret)",
                ));
            }
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            v.set_required_spec_claims(&["exp", "sub"]);
            // `exp` and `nbf` both, with the library's 60 s leeway for clock skew.
            v.validate_nbf = true;
            let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
            jsonwebtoken::decode::<Claims>(token, &key, &v)
                .map_err(|e| ApiError::unauthorized(format!("invalid JWT: {e}")))?
                .claims
        };
        if !valid_user_name(&claims.sub) {
            return Err(ApiError::unauthorized(
                "JWT sub is not a user name (1-64 characters: letters, digits, - _ . @)",
            ));
        }
        return Ok(Principal {
            user: claims.sub,
            admin: claims.admin,
        });
    }
    if token.starts_with("jt_") {
        return Err(ApiError::unauthorized(
            "this is a call's join token: it is taken by the call page, WHIP and the upload (tus) routes of its room only",
        ));
    }
    Err(ApiError::unauthorized(
        "malformed token (an API key starts with tdk_; a JWT has three parts)",
    ))
}

/// Whether `path` may carry its token as `?token=`: what a browser loads
/// without headers (media, thumbnail, strip in `<video>`/`<img>`) and the
/// WebSockets. Anywhere else a token in a URL would only leak into logs.
pub fn query_token_allowed(path: &str) -> bool {
    if path == "/v1/events" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/v1/recordings/") else {
        return false;
    };
    match rest.split_once('/').map(|(_, tail)| tail) {
        Some("media" | "thumbnail" | "strip" | "frames") => true,
        // What a player or an <img> loads: HLS files, pictures.
        Some(tail) if tail.starts_with("hls/") || tail.starts_with("images/") => true,
        // A room recording's track file: tracks/{track}/media.
        Some(tail) => tail
            .strip_prefix("tracks/")
            .and_then(|t| t.split_once('/'))
            .is_some_and(|(track, end)| !track.is_empty() && end == "media"),
        None => false,
    }
}

/// The credential of a request: its token, and whether it came from the
/// session cookie (which needs [`crate::http::cookie::check_cookie_request`]).
pub fn credential_of(parts: &Parts) -> Option<(String, bool)> {
    if let Some(t) = token_of(parts) {
        return Some((t, false));
    }
    crate::http::cookie::cookie_of(&parts.headers).map(|t| (t, true))
}

/// The caller of a request, by [`credential_of`]: a cookie's request is
/// checked against cross-site use first.
pub async fn caller_of(state: &AppState, parts: &Parts) -> Result<(Principal, String), ApiError> {
    let (token, from_cookie) = credential_of(parts).ok_or_else(missing_token)?;
    if from_cookie {
        crate::http::cookie::check_cookie_request(state, &parts.method, &parts.headers, &token)?;
    }
    Ok((authenticate(state, &token).await?, token))
}

/// The token of a request: bearer header first, then `?token=` where
/// [`query_token_allowed`].
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let h = h.to_str().ok()?;
        return h.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    if !query_token_allowed(parts.uri.path()) {
        return None;
    }
    let q = parts.uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// A caller with the token it came with: for a connection that outlives
/// its request (a WebSocket), to check the token again as it goes.
pub struct Authenticated(pub Principal, pub String);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (p, token) = caller_of(state, parts).await?;
        Ok(Self(p, token))
    }
}

fn missing_token() -> ApiError {
    ApiError::unauthorized(
        "missing bearer token (?token= is taken only where a player, an <img> or a WebSocket loads: media, thumbnail, strip, hls/..., images/NNNNN.jpg, a track's media, frames and events; the web page signs in with POST /v1/session)",
    )
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(caller_of(state, parts).await?.0)
    }
}
