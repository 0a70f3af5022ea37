//! "Sign in with ..." on the web page: OpenID Connect's authorization code
//! flow with PKCE (`[auth.oidc]`).
//!
//! `GET /v1/session/oidc` sends the browser to the provider with a random
//! `state`, `nonce` and PKCE challenge (S256), kept meanwhile in a signed,
//! HttpOnly cookie of ten minutes; `GET /v1/session/oidc/callback` checks
//! the state, trades the code (and the verifier) for an ID token at the
//! provider's token endpoint, verifies the token with the provider's keys
//! (`jwks.rs`: signature, `iss`, `aud`, `exp`) and its nonce, and opens a
//! session (`session.rs`). Failures go back to the sign-in form with
//! `?signin_error=oidc_failed` (the reason in the server's log).
//!
//! Written here rather than with the `openidconnect` crate: that crate
//! brings its own HTTP client stack (reqwest 0.12, where the server uses
//! 0.13) and its own JOSE stack beside `jsonwebtoken`, which already checks
//! the provider's tokens; the flow itself is two requests.

use tapedeck_core::Code;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::http::auth::{Principal, random_string, valid_user_name};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The cookie that carries the flow's state between the two requests.
const FLOW_COOKIE: &str = "tapedeck_oidc";
/// How long a sign-in at the provider may take.
const FLOW_TTL_S: i64 = 600;

/// The flow's state, kept in the signed cookie.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    exp: i64,
}

fn sign(key: &[u8], payload: &str) -> String {
    crate::http::secret::signature(key, &format!("oidc.{payload}"))
}

fn seal(key: &[u8], flow: &Flow) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(flow).unwrap_or_default());
    format!("{payload}.{}", sign(key, &payload))
}

fn open_seal(key: &[u8], sealed: &str, now_s: i64) -> Option<Flow> {
    let (payload, sig) = sealed.split_once('.')?;
    if !crate::http::secret::ct_eq(sign(key, payload).as_bytes(), sig.as_bytes()) {
        return None;
    }
    let flow: Flow = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (flow.exp >= now_s).then_some(flow)
}

/// Where to go after signing in: a path of this server only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // A backslash or a control character (a tab, which browsers drop)
        // can turn "/..." into another site.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.chars().any(|c| c == '\\' || c.is_control() || c == ' ') =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

/// The callback URL the provider sends the browser back to.
fn redirect_uri(s: &AppState, headers: &HeaderMap) -> String {
    let base = match &s.config.server.public_url {
        Some(_) => s.config.public_url(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let scheme = if crate::http::cookie::over_https(s, headers) {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
    };
    format!("{base}/v1/session/oidc/callback")
}

fn flow_cookie(s: &AppState, headers: &HeaderMap, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if crate::http::cookie::over_https(s, headers) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; Path=/v1/session/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or(HeaderValue::from_static(""))
}

fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

/// Back to the sign-in form, saying it failed.
fn failed(why: &str) -> Response {
    // The reason goes to the log only: a sign-in form that showed text
    // from its address would show anyone's text.
    tracing::warn!(reason = why, "OpenID Connect sign-in failed");
    see_other("/?signin_error=oidc_failed")
}

/// `?next=`.
#[derive(Debug, Deserialize)]
pub struct Start {
    next: Option<String>,
}

/// `GET /v1/session/oidc`: to the provider's sign-in.
pub async fn start(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Result<Response, ApiError> {
    let Some(provider) = &s.oidc else {
        return Err(ApiError::new(
            Code::NotFound,
            "signing in with an identity provider is not configured (auth.oidc.issuer)",
        ));
    };
    let (d, _) = match provider.discover().await {
        Ok(d) => d,
        Err(e) => return Ok(failed(&e)),
    };
    let flow = Flow {
        state: random_string(32),
        nonce: random_string(32),
        verifier: random_string(64),
        next: safe_next(q.next.as_deref()),
        exp: crate::now_ms() / 1000 + FLOW_TTL_S,
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(flow.verifier.as_bytes()));
    let mut to = url::Url::parse(&d.authorization_endpoint)
        .map_err(|e| ApiError::internal(format!("authorization_endpoint: {e}")))?;
    to.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.config.client_id)
        .append_pair("redirect_uri", &redirect_uri(&s, &headers))
        .append_pair("scope", &provider.config.scopes)
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let cookie = flow_cookie(&s, &headers, &seal(&s.share_key, &flow), FLOW_TTL_S);
    let mut r = see_other(to.as_str());
    r.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(r)
}

/// The provider's answer.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// `GET /v1/session/oidc/callback`: checks the answer, opens a session.
pub async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    match finish(&s, &headers, q).await {
        Ok((p, next)) => match crate::http::session::open(&s, &headers, p, "oidc", None).await {
            Ok(opened) => {
                let mut r = see_other(&next);
                for c in opened.headers().get_all(header::SET_COOKIE) {
                    r.headers_mut().append(header::SET_COOKIE, c.clone());
                }
                r.headers_mut()
                    .append(header::SET_COOKIE, flow_cookie(&s, &headers, "", 0));
                r
            }
            Err(e) => failed(&e.message),
        },
        Err(why) => {
            let mut r = failed(&why);
            r.headers_mut()
                .append(header::SET_COOKIE, flow_cookie(&s, &headers, "", 0));
            r
        }
    }
}

async fn finish(
    s: &AppState,
    headers: &HeaderMap,
    q: Callback,
) -> Result<(Principal, String), String> {
    let provider = s.oidc.as_ref().ok_or("not configured")?;
    if let Some(e) = q.error {
        let more = q
            .error_description
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(format!("the provider said {e}{more}"));
    }
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let sealed = tapedeck_core::signin::cookie(values, FLOW_COOKIE)
        .ok_or("the sign-in was not started from this browser, or took over ten minutes")?;
    let flow = open_seal(&s.share_key, sealed, crate::now_ms() / 1000)
        .ok_or("the sign-in was not started from this browser, or took over ten minutes")?;
    let state = q.state.unwrap_or_default();
    if !crate::http::secret::ct_eq(state.as_bytes(), flow.state.as_bytes()) {
        return Err("the answer's state is not this sign-in's".into());
    }
    let code = q.code.ok_or("the provider sent no code")?;
    let (d, jwks) = provider.discover().await?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", &redirect_uri(s, headers))
        .append_pair("code_verifier", &flow.verifier)
        .append_pair("client_id", &provider.config.client_id)
        .finish();
    let mut req = provider
        .client
        .post(&d.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form);
    let secret = &provider.config.client_secret.0;
    if !secret.is_empty() {
        // client_secret_basic: each part form-encoded (RFC 6749 2.3.1).
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(&provider.config.client_id), Some(enc(secret)));
    }
    let r = req
        .send()
        .await
        .map_err(|e| format!("the token endpoint: {e}"))?;
    let status = r.status();
    let answer: TokenAnswer = r
        .json()
        .await
        .map_err(|e| format!("the token endpoint's answer (HTTP {status}): {e}"))?;
    if let Some(e) = answer.error {
        let more = answer
            .error_description
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(format!("the token endpoint said {e}{more}"));
    }
    let id_token = answer
        .id_token
        .ok_or("the token endpoint sent no ID token")?;
    let head = jsonwebtoken::decode_header(&id_token).map_err(|e| format!("the ID token: {e}"))?;
    let claims: IdClaims = jwks
        .verify(&id_token, head.alg, head.kid.as_deref())
        .await
        .map_err(|e| format!("the ID token: {}", e.message))?;
    let nonce = claims.nonce.unwrap_or_default();
    if !crate::http::secret::ct_eq(nonce.as_bytes(), flow.nonce.as_bytes()) {
        return Err("the ID token's nonce is not this sign-in's".into());
    }
    let named = claims
        .rest
        .get(&provider.config.user_claim)
        .and_then(|v| v.as_str())
        .filter(|n| valid_user_name(n));
    let user = match named {
        Some(n) => n.to_string(),
        None if valid_user_name(&claims.sub) => claims.sub.clone(),
        None => {
            return Err(format!(
                "the provider's user name is not one tapedeck takes (claim {}, or sub {:?}: 1-64 letters, digits, - _ . @)",
                provider.config.user_claim, claims.sub
            ));
        }
    };
    let group = &provider.config.admin_group;
    let admin = !group.is_empty()
        && claims
            .rest
            .get("groups")
            .and_then(|g| g.as_array())
            .is_some_and(|g| g.iter().any(|x| x.as_str() == Some(group)));
    Ok((Principal { user, admin }, flow.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_cookie_opens_only_unchanged_and_in_time() {
        let flow = Flow {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            next: "/".into(),
            exp: 100,
        };
        let sealed = seal(b"key", &flow);
        assert_eq!(
            open_seal(b"key", &sealed, 100).map(|f| f.state),
            Some("s".into())
        );
        assert!(open_seal(b"key", &sealed, 101).is_none(), "expired");
        assert!(open_seal(b"other", &sealed, 0).is_none(), "another key");
        let (payload, sig) = sealed.split_once('.').unwrap();
        let changed = format!("{}A.{sig}", payload);
        assert!(open_seal(b"key", &changed, 0).is_none(), "changed");
    }

    #[test]
    fn next_is_a_path_of_this_server() {
        assert_eq!(safe_next(Some("/call/room_1")), "/call/room_1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
