//! JWTs from an identity provider: RS256 and ES256 tokens signed with keys
//! the test makes (openssl), verified against the provider's JWKS, which the
//! server fetches once and caches.

mod support;

use std::process::Command;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::*;
use tapedeck_testkit::{Page, PageServer, run_ok};

/// A new private key in PEM: `RSA` or `EC` (P-256).
fn private_pem(kind: &str) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.args(["genpkey", "-algorithm", kind]);
    match kind {
        "RSA" => cmd.args(["-pkeyopt", "rsa_keygen_bits:2048"]),
        _ => cmd.args(["-pkeyopt", "ec_paramgen_curve:P-256"]),
    };
    run_ok(&mut cmd, "openssl genpkey (apt-get install openssl)").stdout
}

fn signing_key(kind: &str) -> EncodingKey {
    let pem = private_pem(kind);
    match kind {
        "RSA" => EncodingKey::from_rsa_pem(&pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&pem).unwrap(),
    }
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk
}

fn token(
    key: &EncodingKey,
    alg: Algorithm,
    kid: Option<&str>,
    claims: serde_json::Value,
) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_verified_with_its_keys() {
    let (rsa, ec, stranger) = (signing_key("RSA"), signing_key("EC"), signing_key("RSA"));
    let set = JwkSet {
        keys: vec![
            public_jwk(&rsa, Algorithm::RS256, "r1"),
            public_jwk(&ec, Algorithm::ES256, "e1"),
        ],
    };
    let idp = PageServer::start(vec![(
        "/jwks.json",
        Page::Body("application/json", serde_json::to_string(&set).unwrap()),
    )]);
    let url = idp.url("/jwks.json");
    let s = start(move |c| {
        c.auth.jwks_url = url;
        c.auth.jwt_issuer = "https://idp.test".into();
        c.auth.jwt_audience = "tapedeck".into();
    })
    .await;
    let exp = (tapedeck_server::now_ms() / 1000 + 600) as u64;
    let claims =
        |sub: &str| json!({"sub": sub, "exp": exp, "iss": "https://idp.test", "aud": "tapedeck"});

    for (key, alg, kid, user) in [
        (&rsa, Algorithm::RS256, "r1", "alice"),
        (&ec, Algorithm::ES256, "e1", "bob"),
    ] {
        let t = token(key, alg, Some(kid), claims(user));
        let (st, v) = s.get(&t, "/v1/me").await;
        assert_eq!((st, v["user"].as_str()), (200, Some(user)), "{alg:?}: {v}");
    }
    // A user's recordings are theirs, signed in either way.
    let alice = token(&rsa, Algorithm::RS256, Some("r1"), claims("alice"));
    let rec = s
        .create(&alice, json!({"source": {"kind": "frames"}}))
        .await;
    let bob = token(&ec, Algorithm::ES256, Some("e1"), claims("bob"));
    let (st, _) = s
        .get(
            &bob,
            &format!("/v1/recordings/{}", rec["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(st, 404);

    let refused = [
        // A key the provider does not have.
        token(&stranger, Algorithm::RS256, Some("r2"), claims("alice")),
        // The right key id, the wrong key.
        token(&stranger, Algorithm::RS256, Some("r1"), claims("alice")),
        // Another audience, another issuer, no audience.
        token(
            &rsa,
            Algorithm::RS256,
            Some("r1"),
            json!({"sub": "alice", "exp": exp, "iss": "https://idp.test", "aud": "other"}),
        ),
        token(
            &rsa,
            Algorithm::RS256,
            Some("r1"),
            json!({"sub": "alice", "exp": exp, "iss": "https://evil.test", "aud": "tapedeck"}),
        ),
        token(
            &rsa,
            Algorithm::RS256,
            Some("r1"),
            json!({"sub": "alice", "exp": exp, "iss": "https://idp.test"}),
        ),
        // Expired; a sub that is no user name.
        token(
            &rsa,
            Algorithm::RS256,
            Some("r1"),
            json!({"sub": "alice", "exp": 1000, "iss": "https://idp.test", "aud": "tapedeck"}),
        ),
        token(&rsa, Algorithm::RS256, Some("r1"), claims("../../x")),
        // HS256 is never checked against a provider's public key (and this
        // server has no HS256 secret).
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims("alice"),
            &EncodingKey::from_secret(b"r1"),
        )
        .unwrap(),
    ];
    for (i, t) in refused.iter().enumerate() {
        let (st, v) = s.get(t, "/v1/me").await;
        assert_eq!(st, 401, "token {i}: {v}");
    }
    // Cached: fetched once for all these tokens. An unknown key fetches the
    // set again only when the last fetch is over 30 s old, so a stream of
    // bad tokens cannot flood the provider.
    let fetches = idp.hits().iter().filter(|p| *p == "/jwks.json").count();
    assert_eq!(fetches, 1, "{:?}", idp.hits());
}
