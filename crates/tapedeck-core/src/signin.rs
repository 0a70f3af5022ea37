//! What a browser sends to sign in: the sign-in body and its cookies.
//! Parsed here, without IO, so both are fuzzed (`fuzz/fuzz_targets/signin.rs`).

use serde::Deserialize;

use crate::request::{RequestError, parse_json};

/// A sign-in (`POST /v1/session`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A local account's name and password.
    Password {
        /// The user name.
        user: String,
        /// The password, as typed.
        password: String,
    },
    /// An API key or a JWT, exchanged for a session.
    Token(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    user: Option<String>,
    password: Option<String>,
    api_key: Option<String>,
}

/// Parses `{"user", "password"}` or `{"api_key"}`.
pub fn parse_sign_in(body: &[u8]) -> Result<SignIn, RequestError> {
    let b: Body = parse_json(body)?;
    match b {
        Body {
            user: Some(user),
            password: Some(password),
            api_key: None,
        } => Ok(SignIn::Password { user, password }),
        Body {
            user: None,
            password: None,
            api_key: Some(key),
        } => Ok(SignIn::Token(key)),
        _ => Err(RequestError::Shape(
            "sign in with {\"user\", \"password\"} or {\"api_key\"}".into(),
        )),
    }
}

/// The value of cookie `name` in `Cookie` header values (`a=1; b=2`).
pub fn cookie<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .into_iter()
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_is_a_password_or_a_key() {
        assert_eq!(
            parse_sign_in(br#"{"user": "ann", "password": "pw"}"#).unwrap(),
            SignIn::Password {
                user: "ann".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            parse_sign_in(br#"{"api_key": "tdk_x"}"#).unwrap(),
            SignIn::Token("tdk_x".into())
        );
        for bad in [
            &br#"{"user": "ann"}"#[..],
            br#"{"user": "ann", "password": "pw", "api_key": "k"}"#,
            br#"{"user": "ann", "password": "pw", "admin": true}"#,
            b"{}",
            b"[",
        ] {
            assert!(
                parse_sign_in(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_cookie_is_found_by_its_exact_name() {
        let h = ["a=1; tapedeck_session=tds_x", "other=2"];
        assert_eq!(cookie(h, "tapedeck_session"), Some("tds_x"));
        assert_eq!(cookie(h, "other"), Some("2"));
        assert_eq!(cookie(["xtapedeck_session=1"], "tapedeck_session"), None);
        assert_eq!(cookie(["junk; ;=;"], "tapedeck_session"), None);
    }
}
