//! The face's secrets: token hashes, constant-time comparison, and the
//! HMAC signatures of links (share links, presigned upload URLs, the CSRF
//! token, the sign-in flow's cookie), each over its own message shape.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tapedeck_core::Code;

use crate::http::error::ApiError;
use crate::now_ms;

/// SHA-256 of a token, hex: what the database stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a signed URL's `exp` (seconds since the epoch) and `sig` (what
/// `sign` makes of `exp`): 403 `invalid_signature` or `link_expired`.
pub(crate) fn check_signed(
    q: &HashMap<String, String>,
    what: &str,
    sign: impl Fn(i64) -> String,
) -> Result<(), ApiError> {
    let exp: i64 = q
        .get("exp")
        .ok_or_else(|| ApiError::new(Code::InvalidSignature, "missing exp"))?
        .parse()
        .map_err(|_| {
            ApiError::new(
                Code::InvalidSignature,
                "exp is not a time (whole seconds since 1970)",
            )
        })?;
    let sig = q
        .get("sig")
        .ok_or_else(|| ApiError::new(Code::InvalidSignature, "missing sig"))?;
    if !ct_eq(sign(exp).as_bytes(), sig.as_bytes()) {
        return Err(ApiError::new(
            Code::InvalidSignature,
            format!("the {what}'s signature is not valid"),
        ));
    }
    if exp.saturating_mul(1000) < now_ms() {
        return Err(ApiError::new(
            Code::LinkExpired,
            format!("the {what} has expired"),
        ));
    }
    Ok(())
}

/// HMAC-SHA256 of `message` under the server's link key, hex (share links,
/// presigned upload URLs: each signs its own message shape).
pub(crate) fn signature(key: &[u8], message: &str) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
