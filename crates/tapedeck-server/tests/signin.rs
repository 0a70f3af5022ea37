//! Signing in on the web page (tests/e2e/signin.mjs drives Debian's
//! Chromium): a local account made with `tapedeck users create` signs in
//! with its password and out again, its session cookie HttpOnly and
//! SameSite=Lax, changes without the CSRF token refused and WebSockets
//! from another site too; a new password (`tapedeck users passwd`) signs
//! its browsers out; guessing is slowed; a session opened with a key ends
//! when the key is revoked and the page says why; and "Sign in with ..."
//! goes through a real OpenID Connect provider (oidc-provider from npm)
//! with PKCE.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::*;

/// `tapedeck users ARGS` on the server's database, `password` on stdin.
fn users(s: &Server, args: &[&str], password: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .arg("users")
        .args(args)
        .arg("--data-dir")
        .arg(&s.data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

fn cookie_header(token: &str) -> String {
    format!("tapedeck_session={token}")
}

/// A sign-in by password through the API; the session's cookie token and body.
async fn sign_in(s: &Server, user: &str, password: &str) -> (u16, Option<String>, Value) {
    let r = s
        .client()
        .post(format!("{}/v1/session", s.base))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("tapedeck_session="))
        .and_then(|v| v.split(';').next())
        .map(String::from);
    (status, token, r.json().await.unwrap_or(Value::Null))
}

async fn session_status(s: &Server, token: &str) -> (u16, Value) {
    let r = s
        .client()
        .get(format!("{}/v1/session", s.base))
        .header("cookie", cookie_header(token))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_account_signs_in_and_out_with_a_safe_cookie() {
    let s = start(|_| {}).await;
    let out = users(&s, &["create", "ann"], "correct horse battery");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("created ann"),
        "{out:?}"
    );
    // The database keeps an argon2id hash, not the password.
    let stored = s.state.repo.user("ann").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"), "{stored:?}");
    assert!(!stored.password_hash.contains("correct horse"));
    // Creating it again, or with a short password, is refused.
    assert!(
        !users(&s, &["create", "ann"], "another password")
            .status
            .success()
    );
    let short = users(&s, &["create", "bob"], "short");
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 8"),
        "{short:?}"
    );

    let r = page_script(
        "signin.mjs",
        vec![
            "password".into(),
            s.base.clone(),
            "ann".into(),
            "correct horse battery".into(),
        ],
    )
    .await;
    println!("{r}");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    assert_eq!(
        r["wrong"],
        json!({"text": "The user name or password is wrong.",
            "details": "bad_credentials: the user name or password is wrong"})
    );
    assert_eq!(r["user"], "ann");
    // A next that leads off the server is not followed.
    for k in ["urlAfterSignIn", "urlAfterNexts"] {
        assert!(r[k].as_str().unwrap().starts_with(&s.base), "{k}: {r}");
    }
    let c = &r["cookie"];
    assert_eq!(
        (&c["httpOnly"], &c["sameSite"], &c["secure"], &c["path"]),
        (&json!(true), &json!("Lax"), &json!(false), &json!("/")),
        "{r}"
    );
    assert_eq!(r["scriptSeesCookie"], false, "HttpOnly: {r}");
    assert_eq!(r["withToken"], 201, "{r}");
    assert_eq!(r["withoutToken"]["status"], 403, "{r}");
    assert_eq!(r["withoutToken"]["body"]["error"]["code"], "csrf_failed");
    assert_eq!(r["signedOutNote"], "You signed out.");
    assert_eq!(r["navAfterSignOut"], false);
    assert_eq!(r["sessionAfterSignOut"], 401);
    // The signed-out cookie opens nothing any more.
    let old = c["value"].as_str().unwrap();
    assert_eq!(session_status(&s, old).await.0, 401);

    // Another site's page cannot open a WebSocket with the cookie; this
    // server's page can.
    let (st, token, body) = sign_in(&s, "ann", "correct horse battery").await;
    assert_eq!(st, 200, "{body}");
    let token = token.unwrap();
    assert_eq!(body["user"], "ann");
    let ws = |origin: &str| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("{}/v1/events", s.base.replace("http", "ws"))
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("cookie", cookie_header(&token).parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    match ws("http://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a cross-site socket: {other:?}"),
    }
    assert!(ws(&s.base).await.is_ok(), "this server's page");
    // A sign-in posted from another site is refused (login CSRF).
    let r = s
        .client()
        .post(format!("{}/v1/session", s.base))
        .header("origin", "http://evil.example")
        .json(&json!({"user": "ann", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A new password signs every browser out.
    let out = users(&s, &["passwd", "ann"], "a new long password");
    assert!(out.status.success(), "{out:?}");
    let (st, body) = session_status(&s, &token).await;
    assert_eq!(
        (st, &body["error"]["code"]),
        (401, &json!("session_expired"))
    );
    assert_eq!(sign_in(&s, "ann", "correct horse battery").await.0, 401);
    assert_eq!(sign_in(&s, "ann", "a new long password").await.0, 200);
}

#[tokio::test]
async fn guessing_a_password_is_slowed_for_that_name_only() {
    let s = start(|_| {}).await;
    assert!(
        users(&s, &["create", "ann"], "correct horse battery")
            .status
            .success()
    );
    assert!(
        users(&s, &["create", "bob"], "bobs long password")
            .status
            .success()
    );
    for _ in 0..10 {
        assert_eq!(sign_in(&s, "ann", "guess guess").await.0, 401);
    }
    // Now even the right password waits; another name does not.
    let (st, _, body) = sign_in(&s, "ann", "correct horse battery").await;
    assert_eq!(
        (st, &body["error"]["code"]),
        (429, &json!("too_many_attempts"))
    );
    let r = s
        .client()
        .post(format!("{}/v1/session", s.base))
        .json(&json!({"user": "ann", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "600", "the failures' window");
    assert_eq!(sign_in(&s, "bob", "bobs long password").await.0, 200);
    // An unknown name answers as a wrong password does.
    let (st, _, body) = sign_in(&s, "nobody", "whatever it is").await;
    assert_eq!(
        (st, &body["error"]["code"]),
        (401, &json!("bad_credentials"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_signs_its_page_out_saying_why() {
    let s = start(|_| {}).await;
    let key = s.key("dan", false).await;
    let state = s.data.join("browser-state.json");
    let r = page_script(
        "signin.mjs",
        vec![
            "key".into(),
            s.base.clone(),
            key.clone(),
            state.display().to_string(),
        ],
    )
    .await;
    assert_eq!(r["user"], "dan", "{r}");
    let id = s.state.repo.list_keys().await.unwrap()[0].id.clone();
    assert!(s.state.repo.revoke_key(&id).await.unwrap());
    let r = page_script(
        "signin.mjs",
        vec!["reopen".into(), s.base.clone(), state.display().to_string()],
    )
    .await;
    println!("{r}");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    let text = r["reopened"]["text"].as_str().unwrap();
    assert!(text.starts_with("Your sign-in has ended"), "{r}");
    assert!(
        r["reopened"]["details"]
            .as_str()
            .unwrap()
            .starts_with("session_expired"),
        "{r}"
    );
    assert_eq!(r["navShown"], false);
}

/// oidc-provider on a port of its own, sending people back to `redirect`.
struct Idp {
    _process: tokio::process::Child,
}

async fn idp(port: u16, redirect: &str) -> Idp {
    use tokio::io::AsyncBufReadExt;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/idp.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg(port.to_string())
        .arg(redirect)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the provider starts")
        .unwrap()
        .unwrap();
    assert!(first.contains("issuer"), "{first}");
    // What it says later is read (and dropped), or it would fail writing.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Idp { _process: child }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_the_company_provider_over_openid_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = start(|c| {
        c.auth.oidc.issuer = format!("http://127.0.0.1:{port}");
        c.auth.oidc.client_id = "tapedeck".into();
        c.auth.oidc.client_secret = tapedeck_server::config::Secret("tapedeck-test-secret".into());
        c.auth.oidc.name = "Example Corp".into();
        c.auth.oidc.admin_group = "tapedeck-admins".into();
    })
    .await;
    let _idp = idp(port, &format!("{}/v1/session/oidc/callback", s.base)).await;

    let (_, methods) = s.get("", "/v1/session/methods").await;
    assert_eq!(methods["oidc"], json!({"name": "Example Corp"}));

    let r = page_script(
        "signin.mjs",
        vec!["oidc".into(), s.base.clone(), "carol".into()],
    )
    .await;
    println!("{r}");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    // A callback that no sign-in of this browser started.
    assert!(
        r["forged"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Signing in with your company's account failed"),
        "{r}"
    );
    assert!(
        r["forged"]["details"]
            .as_str()
            .unwrap()
            .starts_with("oidc_failed"),
        "{r}"
    );
    assert!(
        !r["urlAfterForged"]
            .as_str()
            .unwrap()
            .contains("signin_error"),
        "the address is cleaned: {r}"
    );
    assert_eq!(r["button"], "Sign in with Example Corp");
    // The authorization request: code flow with a PKCE challenge (S256),
    // a state and a nonce; no secret in the browser's address bar.
    let asked = url::Url::parse(r["authorizeUrl"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = asked.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "{q:?}");
    assert!(q["state"].len() >= 32 && q["nonce"].len() >= 32, "{q:?}");
    assert!(!asked.as_str().contains("tapedeck-test-secret"));
    // Signed in as the provider's user name; an admin by the group.
    assert_eq!(r["user"], "carol (admin)");
    assert_eq!(r["session"]["user"], "carol");
    assert_eq!(r["session"]["via"], "oidc");
    assert_eq!(r["session"]["admin"], true);
    assert_eq!(r["cookie"], json!({"httpOnly": true, "sameSite": "Lax"}));
    assert_eq!(r["flowCookieLeft"], false, "{r}");
}
