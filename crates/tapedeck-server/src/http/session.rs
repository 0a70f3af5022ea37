//! Signing in on the web page: a session cookie opened with a local
//! account's password, an API key, or the company's identity provider
//! (`oidc.rs`).
//!
//! The cookie (`tapedeck_session`) is HttpOnly, SameSite=Lax, Secure when
//! the server is reached over HTTPS; the database keeps only its hash. A
//! request that changes something and carries only the cookie must also
//! carry `X-CSRF-Token` (given by `GET /v1/session`, an HMAC of the
//! session that another site cannot read); a WebSocket opened with the
//! cookie must come from this origin. API keys and JWTs in headers are
//! unaffected: a program never needs a session.

use tapedeck_core::Code;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tapedeck_core::signin::{SignIn, parse_sign_in};
use tapedeck_store::accounts::Session;

use crate::http::auth::{Principal, random_string};
use crate::http::cookie::{
    PREFIX, check_cookie_request, cookie, cookie_of, csrf_failed, csrf_of, ended, same_origin,
};
use crate::http::error::ApiError;
use crate::http::secret::hash_token;
use crate::http::state::AppState;
use crate::now_ms;

/// Longest password taken (argon2 would hash more, slowly).
const MAX_PASSWORD: usize = 1024;
/// Hashes a password (argon2id, a random salt) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    check_password(password)?;
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether a new password is acceptable.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 8 {
        return Err("a password has at least 8 characters".into());
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("a password has at most {MAX_PASSWORD} bytes"));
    }
    Ok(())
}

/// A hash of a random password, for names that have no account.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_string(32)).unwrap_or_default())
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// `POST /v1/session` `{"user", "password"}` or `{"api_key"}` (a key or a
/// JWT): opens a session and sets its cookie.
pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A sign-in posted from another site would sign this browser in as
    // the attacker (login CSRF).
    if headers.contains_key(header::ORIGIN) && !same_origin(&s, &headers) {
        return Err(csrf_failed("sign in from this server's page"));
    }
    let (principal, via, key_id) = match parse_sign_in(&body).map_err(ApiError::from_code)? {
        SignIn::Password { user, password } => (
            password_sign_in(&s, &user, &password).await?,
            "password",
            None,
        ),
        SignIn::Token(key) => {
            let p = crate::http::auth::authenticate(&s, &key).await?;
            let key_id = if key.starts_with(crate::http::auth::KEY_PREFIX) {
                s.repo.find_key(&hash_token(&key)).await?.map(|k| k.id)
            } else {
                None
            };
            (p, "api_key", key_id)
        }
    };
    open(&s, &headers, principal, via, key_id).await
}

async fn password_sign_in(s: &AppState, user: &str, password: &str) -> Result<Principal, ApiError> {
    let now = now_ms();
    if s.signins.blocked(user, now) {
        return Err(ApiError::new(
            Code::TooManyAttempts,
            "too many wrong passwords for this user; wait ten minutes",
        )
        .retry_after(crate::http::throttle::FAILURE_WINDOW_MS as u64 / 1000));
    }
    let found = if password.len() > MAX_PASSWORD {
        None
    } else {
        s.repo.user(user).await?
    };
    // The hash is checked off the async threads (argon2 takes tens of
    // ms); an unknown name is checked against a made-up hash, so the
    // answer takes as long and does not tell which names exist.
    let hash = match &found {
        Some(u) => u.password_hash.clone(),
        None => decoy_hash().to_string(),
    };
    let typed = if password.len() > MAX_PASSWORD {
        String::new()
    } else {
        password.to_string()
    };
    let matched = tokio::task::spawn_blocking(move || password_matches(&hash, &typed))
        .await
        .unwrap_or(false);
    let ok = found.is_some() && matched;
    match found {
        Some(u) if ok => {
            s.signins.succeeded(user);
            Ok(Principal {
                user: u.name,
                admin: u.admin,
            })
        }
        _ => {
            s.signins.failed(user, now);
            Err(ApiError::new(
                Code::BadCredentials,
                "the user name or password is wrong",
            ))
        }
    }
}

/// Opens a session for `p` and answers with it and its cookie.
pub async fn open(
    s: &AppState,
    headers: &HeaderMap,
    p: Principal,
    via: &str,
    key_id: Option<String>,
) -> Result<Response, ApiError> {
    let token = format!("{PREFIX}{}", random_string(40));
    let now = now_ms();
    let ttl_s = s.config.auth.session_ttl_s;
    let sess = Session {
        user: p.user,
        admin: p.admin,
        via: via.into(),
        key_id,
        created_at: now,
        expires_at: now + ttl_s as i64 * 1000,
    };
    s.repo.create_session(&hash_token(&token), &sess).await?;
    let cookie = cookie(s, headers, &token, ttl_s);
    let body = describe(s, &token, &sess);
    Ok((StatusCode::OK, [(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

fn describe(s: &AppState, token: &str, sess: &Session) -> serde_json::Value {
    json!({
        "user": sess.user,
        "admin": sess.admin,
        "via": sess.via,
        "csrf": csrf_of(&s.share_key, token),
        "expires_at": tapedeck_core::recording::time_ms::format(sess.expires_at),
    })
}

/// `GET /v1/session`: the browser's session and its CSRF token; 401
/// `session_expired` when it has none or it ended.
pub async fn get(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(token) = cookie_of(&headers) else {
        return Err(ApiError::unauthorized("not signed in"));
    };
    match s.repo.session(&hash_token(&token), now_ms()).await? {
        Some(sess) => Ok(Json(describe(&s, &token, &sess)).into_response()),
        None => Err(ended()),
    }
}

/// `DELETE /v1/session`: signs out (with the CSRF token); the cookie goes.
pub async fn delete(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie_of(&headers) {
        check_cookie_request(&s, &Method::DELETE, &headers, &token)?;
        s.repo.end_session(&hash_token(&token)).await?;
    }
    let gone = cookie(&s, &headers, "", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, gone)]).into_response())
}

/// `GET /v1/session/methods`: how this server signs people in (for the
/// sign-in form): always a password, and the identity provider's name
/// when OpenID Connect is configured.
pub async fn methods(State(s): State<AppState>) -> Json<serde_json::Value> {
    let oidc = &s.config.auth.oidc;
    let provider = (!oidc.issuer.is_empty()).then(|| json!({"name": oidc.name}));
    Json(json!({"password": true, "api_key": true, "oidc": provider}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_checks_that_password_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "correct horse"));
        assert!(!password_matches(&h, "correct horsf"));
        assert!(!password_matches("not a hash", "correct horse"));
        // Two hashes of one password differ (the salt).
        assert_ne!(h, hash_password("correct horse").unwrap());
        assert!(hash_password("short").is_err());
    }
}
