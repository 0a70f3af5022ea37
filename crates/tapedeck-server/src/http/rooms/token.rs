//! Join tokens: what an invite gives a guest without an API key. A token
//! names one room, the guest's name and an expiry, signed with the server's
//! key (HMAC-SHA256), so nothing is stored and nothing else is reachable
//! with it: `jt_{room}.{exp}.{name, base64url}.{signature, hex}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tapedeck_core::Code;
use tapedeck_core::RoomId;

/// What a valid join token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinClaims {
    /// The one room it opens.
    pub room: RoomId,
    /// The guest's name in the call.
    pub name: String,
    /// Expiry, unix seconds.
    pub exp: i64,
}

fn signature(key: &[u8], room: &str, exp: i64, name_b64: &str) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(format!("join.{room}.{exp}.{name_b64}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A token for `claims`.
pub fn sign(key: &[u8], claims: &JoinClaims) -> String {
    let room = claims.room.to_string();
    let name = URL_SAFE_NO_PAD.encode(claims.name.as_bytes());
    let sig = signature(key, &room, claims.exp, &name);
    format!("jt_{room}.{}.{name}.{sig}", claims.exp)
}

/// Whether `token` looks like a join token (not an API key or a JWT).
pub fn is_join_token(token: &str) -> bool {
    token.starts_with("jt_")
}

/// Why a join token opens nothing, so a guest reads which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token this server signed (cut short, changed, another server's).
    Invalid,
    /// Genuine, but past its expiry.
    Expired,
}

impl Refusal {
    /// The API error a caller gets (401 `invite_invalid` or `invite_expired`).
    pub fn error(self) -> crate::http::error::ApiError {
        match self {
            Self::Invalid => crate::http::error::ApiError::new(
                Code::InviteInvalid,
                "the invite link is not valid (changed or cut short, or for another room)",
            ),
            Self::Expired => crate::http::error::ApiError::new(
                Code::InviteExpired,
                "the invite link has expired; the host can send a new one",
            ),
        }
    }
}

/// The claims of a genuine, unexpired token.
pub fn verify(key: &[u8], token: &str, now_s: i64) -> Result<JoinClaims, Refusal> {
    let genuine = genuine(key, token).ok_or(Refusal::Invalid)?;
    if genuine.exp < now_s {
        return Err(Refusal::Expired);
    }
    Ok(genuine)
}

/// The claims of a token this server signed, expired or not.
fn genuine(key: &[u8], token: &str) -> Option<JoinClaims> {
    let mut parts = token.strip_prefix("jt_")?.split('.');
    let (room, exp, name, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let exp: i64 = exp.parse().ok()?;
    if !crate::http::secret::ct_eq(signature(key, room, exp, name).as_bytes(), sig.as_bytes()) {
        return None;
    }
    let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
    Some(JoinClaims {
        room: room.parse().ok()?,
        name,
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_room_until_it_expires() {
        let claims = JoinClaims {
            room: RoomId::from_parts(1_700_000_000_000, 7),
            name: "Bob B.".into(),
            exp: 2_000,
        };
        let t = sign(b"key", &claims);
        assert!(is_join_token(&t));
        assert_eq!(verify(b"key", &t, 1_999), Ok(claims.clone()));
        assert_eq!(verify(b"key", &t, 2_001), Err(Refusal::Expired));
        assert_eq!(
            verify(b"other key", &t, 0),
            Err(Refusal::Invalid),
            "another server's"
        );
        // Any change to what it says breaks the signature.
        let longer = t.replacen(".2000.", ".9000.", 1);
        assert_eq!(verify(b"key", &longer, 0), Err(Refusal::Invalid));
        let renamed = sign(
            b"key",
            &JoinClaims {
                name: "Mallory".into(),
                ..claims.clone()
            },
        );
        let (head, _) = t.rsplit_once('.').unwrap();
        let (_, sig) = renamed.rsplit_once('.').unwrap();
        assert_eq!(
            verify(b"key", &format!("{head}.{sig}"), 0),
            Err(Refusal::Invalid)
        );
        for junk in ["", "jt_", "jt_a.b.c.d", "jt_a.1.2.3.4", "rec_x"] {
            assert_eq!(verify(b"key", junk, 0), Err(Refusal::Invalid), "{junk}");
        }
    }
}
