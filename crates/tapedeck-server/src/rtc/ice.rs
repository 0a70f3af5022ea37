//! The ICE servers (STUN and TURN) a call's participants are handed:
//! `[[rtc.ice_servers]]` in the config, given to the call page
//! (`GET /v1/rooms/{id}/ice-servers`) and to WHIP clients (`Link` headers,
//! RFC 9725 §4.6). A TURN server relays for participants whose network
//! lets nothing but its own port through.
//!
//! Credentials are either fixed (`username`, `credential`) or made per
//! participant from a shared `secret`, the "TURN REST API" coturn takes
//! with `use-auth-secret`: the username is `EXPIRY:WHO` and the password
//! base64(HMAC-SHA1(secret, username)), valid until EXPIRY (Unix seconds).
//! The secret itself never leaves the server.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

/// One `[[rtc.ice_servers]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp|tcp`, `turns:host:port`.
    pub urls: Vec<String>,
    /// A fixed TURN username (with `credential`).
    #[serde(default)]
    pub username: Option<String>,
    /// A fixed TURN password (with `username`).
    #[serde(default)]
    pub credential: Option<String>,
    /// The TURN server's shared secret (coturn's `static-auth-secret`):
    /// each participant gets its own credentials, valid `ttl_s`.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long credentials made from `secret` are valid.
    #[serde(default = "default_ttl")]
    pub ttl_s: u64,
}

fn default_ttl() -> u64 {
    24 * 3600
}

/// What a participant is handed: the shape of `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handed {
    /// Where.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    /// Why this entry cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.urls.is_empty() {
            return Some("rtc.ice_servers: an entry has no urls".into());
        }
        let mut turn = false;
        for u in &self.urls {
            let scheme = u.split(':').next().unwrap_or("");
            match scheme {
                "stun" | "stuns" => {}
                "turn" | "turns" => turn = true,
                _ => {
                    return Some(format!(
                        "rtc.ice_servers: {u:?} is not a stun:, turn: or turns: URL"
                    ));
                }
            }
            if u.len() <= scheme.len() + 1 || u.contains(char::is_whitespace) {
                return Some(format!("rtc.ice_servers: {u:?} names no host"));
            }
        }
        let fixed = self.username.is_some() || self.credential.is_some();
        if fixed && self.secret.is_some() {
            return Some(
                "rtc.ice_servers: an entry has both username/credential and secret; give one"
                    .into(),
            );
        }
        if fixed && (self.username.is_none() || self.credential.is_none()) {
            return Some("rtc.ice_servers: username and credential go together".into());
        }
        if turn && !fixed && self.secret.is_none() {
            return Some(format!(
                "rtc.ice_servers: {:?} is TURN and needs username and credential, or secret",
                self.urls[0]
            ));
        }
        if self.secret.as_deref() == Some("") {
            return Some("rtc.ice_servers: secret is empty".into());
        }
        if self.ttl_s == 0 {
            return Some("rtc.ice_servers: ttl_s must be at least 1".into());
        }
        None
    }

    /// This entry as handed to `who` at `now_s` (Unix seconds).
    pub fn hand(&self, who: &str, now_s: i64) -> Handed {
        let (username, credential) = match &self.secret {
            Some(secret) => {
                // coturn splits the username at its first ':' for the
                // expiry; the rest is free (a guest's name may hold ':').
                let expiry = now_s.saturating_add(i64::try_from(self.ttl_s).unwrap_or(i64::MAX));
                let username = format!("{expiry}:{who}");
                (
                    Some(username.clone()),
                    Some(rest_password(secret, &username)),
                )
            }
            None => (self.username.clone(), self.credential.clone()),
        };
        Handed {
            urls: self.urls.clone(),
            username,
            credential,
        }
    }
}

/// The TURN REST API password of `username`.
fn rest_password(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length: this never returns early.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Every configured server as handed to `who`.
pub fn hand_all(servers: &[IceServer], who: &str, now_s: i64) -> Vec<Handed> {
    servers.iter().map(|s| s.hand(who, now_s)).collect()
}

/// A WHIP answer's `Link` header values (RFC 9725 §4.6), one per URL.
pub fn link_headers(handed: &[Handed]) -> Vec<String> {
    let quote = |v: &str| v.replace(['"', '\\', '\r', '\n'], "");
    let mut out = vec![];
    for h in handed {
        for url in &h.urls {
            let mut link = format!("<{}>; rel=\"ice-server\"", url.replace(['<', '>'], ""));
            if let (Some(u), Some(c)) = (&h.username, &h.credential) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote(u),
                    quote(c)
                ));
            }
            out.push(link);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(secret: Option<&str>) -> IceServer {
        IceServer {
            urls: vec!["turn:turn.example.com:3478?transport=tcp".into()],
            username: None,
            credential: None,
            secret: secret.map(str::to_string),
            ttl_s: 600,
        }
    }

    #[test]
    fn a_shared_secret_makes_the_credentials_coturn_checks() {
        // The TURN REST API's reference: base64(HMAC-SHA1(key, username)),
        // here against the value `openssl dgst -sha1 -hmac` prints.
        let h = turn(Some("north")).hand("guest:Ann", 1_700_000_000);
        assert_eq!(h.username.as_deref(), Some("1700000600:guest:Ann"));
        assert_eq!(
            h.credential.as_deref(),
            Some(rest_password("north", "1700000600:guest:Ann").as_str())
        );
        assert_eq!(
            rest_password("key", "The quick brown fox jumps over the lazy dog"),
            "3nybhbi3iqa8ino29wqQcBydtNk="
        );
        // Another participant, another password.
        assert_ne!(
            turn(Some("north"))
                .hand("guest:Bob", 1_700_000_000)
                .credential,
            h.credential
        );
    }

    #[test]
    fn entries_that_cannot_work_are_refused_with_the_reason() {
        assert_eq!(turn(Some("s")).problem(), None);
        assert!(turn(None).problem().unwrap().contains("needs username"));
        let mut both = turn(Some("s"));
        both.username = Some("u".into());
        both.credential = Some("c".into());
        assert!(both.problem().unwrap().contains("give one"));
        let mut half = turn(None);
        half.username = Some("u".into());
        assert!(half.problem().unwrap().contains("go together"));
        let mut bad = turn(Some("s"));
        bad.urls = vec!["http://x".into()];
        assert!(bad.problem().unwrap().contains("not a stun:"));
        bad.urls = vec![];
        assert!(bad.problem().unwrap().contains("no urls"));
        let stun = IceServer {
            urls: vec!["stun:stun.example.com:3478".into()],
            username: None,
            credential: None,
            secret: None,
            ttl_s: 600,
        };
        assert_eq!(stun.problem(), None);
    }

    #[test]
    fn link_headers_carry_each_url_and_its_credentials() {
        let h = turn(Some("s")).hand("user:ann", 10);
        let links = link_headers(std::slice::from_ref(&h));
        assert_eq!(links.len(), 1);
        assert!(
            links[0].starts_with("<turn:turn.example.com:3478?transport=tcp>; rel=\"ice-server\"; username=\"610:user:ann\"; credential=\""),
            "{}",
            links[0]
        );
    }
}
