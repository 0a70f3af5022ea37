//! JWTs signed by an identity provider: its public keys from a JWKS URL
//! (`auth.jwks_url`), cached for ten minutes and fetched again, at most
//! every 30 s, when a token names a key the cache does not hold (a key
//! rotation). Only asymmetric algorithms are taken from a JWKS: a token that
//! claims HS256 is checked against `auth.jwt_secret` or refused, never
//! against a public key.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::Mutex;

use serde::Deserialize;

use crate::config::OidcConfig;
use crate::http::error::ApiError;

const TTL: Duration = Duration::from_secs(600);
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// A provider's keys.
#[derive(Debug)]
pub struct Jwks {
    url: String,
    issuer: String,
    audience: String,
    client: reqwest::Client,
    cache: Mutex<Option<(Instant, JwkSet)>>,
}

/// Whether `alg` is one a JWKS key may verify.
pub fn asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl Jwks {
    /// Keys from `url`; `issuer`/`audience` checked when not empty.
    pub fn new(url: &str, issuer: &str, audience: &str) -> Self {
        Self {
            url: url.to_string(),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            cache: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<JwkSet, ApiError> {
        let fail = |e: String| {
            tracing::warn!(url = %self.url, error = %e, "fetching the JWKS failed");
            ApiError::unauthorized("the identity provider's keys could not be fetched")
        };
        let r = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !r.status().is_success() {
            return Err(fail(format!("HTTP {}", r.status())));
        }
        r.json::<JwkSet>().await.map_err(|e| fail(e.to_string()))
    }

    /// The key for `kid` (or the only key when the token names none).
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, ApiError> {
        let mut cache = self.cache.lock().await;
        for attempt in 0..2 {
            let stale = match cache.as_ref() {
                None => true,
                Some((at, _)) if at.elapsed() > TTL => true,
                Some((at, _)) => attempt == 1 && at.elapsed() > REFETCH_AFTER,
            };
            if stale {
                *cache = Some((Instant::now(), self.fetch().await?));
            }
            let Some((_, set)) = cache.as_ref() else {
                continue;
            };
            let jwk = match kid {
                Some(k) => set.find(k),
                None if set.keys.len() == 1 => set.keys.first(),
                None => {
                    return Err(ApiError::unauthorized(
                        "the JWT names no key (kid) and the provider has several",
                    ));
                }
            };
            if let Some(jwk) = jwk {
                return DecodingKey::from_jwk(jwk)
                    .map_err(|e| ApiError::unauthorized(format!("the provider's key: {e}")));
            }
        }
        Err(ApiError::unauthorized(format!(
            "the JWT's key {} is not one of the identity provider's",
            kid.unwrap_or("(none)")
        )))
    }

    /// Verifies `token` (signed with `alg`, key `kid`) and returns its claims.
    pub async fn verify<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<C, ApiError> {
        if !asymmetric(alg) {
            return Err(ApiError::unauthorized(
                "an HS256 JWT is checked against auth.jwt_secret, not the provider's keys",
            ));
        }
        let key = self.key(kid).await?;
        let mut v = Validation::new(alg);
        let mut required = vec!["exp", "sub"];
        if !self.issuer.is_empty() {
            required.push("iss");
        }
        if !self.audience.is_empty() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v.validate_nbf = true;
        if !self.issuer.is_empty() {
            v.set_issuer(&[&self.issuer]);
        }
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&[&self.audience]);
        }
        jsonwebtoken::decode::<C>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| ApiError::unauthorized(format!("invalid JWT: {e}")))
    }
}

/// What the provider's discovery document says (the parts used).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Discovery {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    pub(crate) jwks_uri: String,
}

/// The configured provider: its discovery document and keys, fetched on
/// the first sign-in and kept.
#[derive(Debug)]
pub struct Provider {
    pub(crate) config: OidcConfig,
    pub(crate) client: reqwest::Client,
    found: Mutex<Option<(Discovery, std::sync::Arc<Jwks>)>>,
}

impl Provider {
    /// The provider of `config`, or None when OpenID Connect is off.
    pub fn new(config: &OidcConfig) -> Option<Self> {
        if config.issuer.is_empty() {
            return None;
        }
        Some(Self {
            config: config.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            found: Mutex::new(None),
        })
    }

    /// The discovery document and keys, fetched once.
    pub(crate) async fn discover(&self) -> Result<(Discovery, std::sync::Arc<Jwks>), String> {
        let mut found = self.found.lock().await;
        if let Some(f) = found.as_ref() {
            return Ok(f.clone());
        }
        let issuer = self.config.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let r = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("the provider's discovery document ({url}): {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "the provider's discovery document ({url}): HTTP {}",
                r.status()
            ));
        }
        let d: Discovery = r
            .json()
            .await
            .map_err(|e| format!("the provider's discovery document ({url}): {e}"))?;
        if d.issuer.trim_end_matches('/') != issuer {
            return Err(format!(
                "the provider says its issuer is {}, not {issuer}",
                d.issuer
            ));
        }
        let jwks = std::sync::Arc::new(Jwks::new(&d.jwks_uri, &d.issuer, &self.config.client_id));
        *found = Some((d.clone(), jwks.clone()));
        Ok((d, jwks))
    }
}
