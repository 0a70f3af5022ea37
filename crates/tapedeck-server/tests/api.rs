//! The REST contract: auth on every route, ownership, clear 4xx errors,
//! listing with filters and cursors, OpenAPI, health and metrics.

mod support;

use serde_json::{Value, json};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_ownership() {
    let s = start(|c| {
        c.auth.jwt_secret = tapedeck_server::config::Secret("jwt-secret-for-tests".into())
    })
    .await;
    let alice = s.key("alice", false).await;
    let bob = s.key("bob", false).await;
    let admin = s.key("root", true).await;
    let rec = s
        .create(&alice, json!({"source": {"kind": "frames"}}))
        .await;
    let id = rec["id"].as_str().unwrap();
    assert_eq!(rec["owner"], "alice");

    // Missing, malformed, unknown and revoked tokens: 401 on every route.
    let paths = [
        ("GET", "/v1/recordings".to_string()),
        ("POST", "/v1/recordings".to_string()),
        ("GET", format!("/v1/recordings/{id}")),
        ("DELETE", format!("/v1/recordings/{id}")),
        ("POST", format!("/v1/recordings/{id}/stop")),
        ("POST", format!("/v1/recordings/{id}/share")),
        ("GET", format!("/v1/recordings/{id}/media")),
        ("GET", format!("/v1/recordings/{id}/thumbnail")),
        ("GET", format!("/v1/recordings/{id}/frames")),
        ("GET", "/v1/events".to_string()),
        ("GET", "/v1/me".to_string()),
    ];
    for (m, p) in &paths {
        for tok in [None, Some("garbage"), Some("tdk_unknownkey"), Some("a.b.c")] {
            let mut r = s
                .client()
                .request(m.parse().unwrap(), format!("{}{p}", s.base));
            if let Some(t) = tok {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "{m} {p} with {tok:?}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }

    // Another user's recording is a 404, everywhere; admins see it.
    assert_eq!(s.get(&bob, &format!("/v1/recordings/{id}")).await.0, 404);
    assert_eq!(
        s.post(&bob, &format!("/v1/recordings/{id}/cancel"), json!({}))
            .await
            .0,
        404
    );
    assert_eq!(s.delete(&bob, &format!("/v1/recordings/{id}")).await, 404);
    assert_eq!(
        s.get(&bob, "/v1/recordings").await.1["recordings"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(s.get(&admin, &format!("/v1/recordings/{id}")).await.0, 200);
    assert_eq!(
        s.get(&admin, "/v1/recordings").await.1["recordings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ws =
        tokio_tungstenite::connect_async(s.ws_url(&format!("/v1/recordings/{id}/frames"), &bob))
            .await;
    assert!(ws.is_err(), "bob cannot attach to alice's recording");

    // HS256 JWTs: sub is the user; expired or wrongly signed ones are refused.
    let exp = (tapedeck_server::now_ms() / 1000 + 600) as u64;
    let jwt = |secret: &str, exp: u64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "alice", "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let good = jwt("jwt-secret-for-tests", exp);
    let (st, v) = s.get(&good, "/v1/me").await;
    assert_eq!((st, v["user"].as_str()), (200, Some("alice")));
    assert_eq!(s.get(&good, &format!("/v1/recordings/{id}")).await.0, 200);
    assert_eq!(s.get(&jwt("other", exp), "/v1/me").await.0, 401);
    assert_eq!(
        s.get(&jwt("jwt-secret-for-tests", 1000), "/v1/me").await.0,
        401
    );
    // `?token=` only where a browser cannot send a header.
    let r = s
        .client()
        .get(format!("{}/v1/recordings/{id}?token={good}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("?token="),
        "{v}"
    );
    // Not valid yet (past the 60 s leeway), and a sub that is no user name.
    let signed = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"jwt-secret-for-tests"),
        )
        .unwrap()
    };
    let now_s = (tapedeck_server::now_ms() / 1000) as u64;
    let early = signed(json!({"sub": "alice", "exp": exp, "nbf": now_s + 600}));
    let (st, v) = s.get(&early, "/v1/me").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let skewed = signed(json!({"sub": "alice", "exp": exp, "nbf": now_s + 30}));
    assert_eq!(s.get(&skewed, "/v1/me").await.0, 200, "within the leeway");
    for sub in ["../../x\u{0}", "", "a b", &"x".repeat(65)] {
        let bad = signed(json!({"sub": sub, "exp": exp}));
        let (st, v) = s.get(&bad, "/v1/me").await;
        assert_eq!(st, 401, "{sub:?}: {v}");
    }

    // Revoked keys stop working.
    let keys = s.state.repo.list_keys().await.unwrap();
    let bob_key = keys.iter().find(|k| k.user == "bob").unwrap();
    s.state.repo.revoke_key(&bob_key.id).await.unwrap();
    assert_eq!(s.get(&bob, "/v1/me").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_4xx() {
    let s = start(|_| {}).await;
    let t = s.key("alice", false).await;
    let cases: [(&[u8], u16, &str, &str); 7] = [
        (b"{not json", 400, "invalid_json", ""),
        (
            br#"{"source": {"kind": "frames"}, "colour": "red"}"#,
            400,
            "invalid_request",
            "colour",
        ),
        (
            br#"{"source": {"kind": "frames"}, "preset": "extreme"}"#,
            400,
            "invalid_request",
            "extreme",
        ),
        (
            br#"{"source": {"kind": "frames"}, "format": "avi"}"#,
            400,
            "invalid_request",
            "avi",
        ),
        (
            br#"{"source": {"kind": "television"}}"#,
            400,
            "invalid_request",
            "television",
        ),
        (
            br#"{"source": {"kind": "frames"}, "width": 1281}"#,
            422,
            "invalid_settings",
            "width",
        ),
        (br#"{"format": "mp4"}"#, 400, "invalid_request", "source"),
    ];
    for (body, status, code, mentions) in cases {
        let (st, v) = s.post_raw(&t, "/v1/recordings", body).await;
        assert_eq!(
            (st, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{}: {v}",
            String::from_utf8_lossy(body)
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(mentions),
            "{v}"
        );
    }
    for bad in [
        "nope",
        "rec_123",
        "rec_01ARZ3NDEKTSV4RRFFQ69G5FA%21",
        "..%2F..%2Fetc",
    ] {
        let (st, v) = s.get(&t, &format!("/v1/recordings/{bad}")).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (400, Some("invalid_id")),
            "{bad}"
        );
    }
    let (st, v) = s.get(&t, "/v1/recordings?status=sleeping").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let (st, v) = s.get(&t, "/v1/recordings?limit=0").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let (st, v) = s.get(&t, "/v1/nothing-here").await;
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));

    // Transitions the status does not allow: 409 invalid_transition.
    let rec = s.create(&t, json!({"source": {"kind": "frames"}})).await;
    let id = rec["id"].as_str().unwrap();
    for a in ["pause", "resume", "stop"] {
        let (st, v) = s
            .post(&t, &format!("/v1/recordings/{id}/{a}"), json!({}))
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (409, Some("invalid_transition")),
            "{a} on pending"
        );
    }
    let (st, v) = s
        .post(&t, &format!("/v1/recordings/{id}/explode"), json!({}))
        .await;
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (st, v) = s.get(&t, &format!("/v1/recordings/{id}/media")).await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("not_ready")));
    // Malformed control messages on the socket are answered, not fatal.
    use futures::{SinkExt, StreamExt};
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{\"pts\": 3}".into(),
    ))
    .await
    .unwrap();
    loop {
        let m = ws.next().await.unwrap().unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        if v["error"]["code"] == "bad_control" {
            break;
        }
    }
    send_frame(&mut ws, Some(0.0), jpeg(64, 48, 1)).await;
    progress_until(&mut ws, |v| {
        v["frames_received"] == 1 && v["status"] == "recording"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_and_cursor() {
    let s = start(|_| {}).await;
    let t = s.key("alice", false).await;
    let mut ids = vec![];
    for i in 0..5 {
        let r = s
            .create(
                &t,
                json!({"source": {"kind": "frames"}, "title": format!("n{i}")}),
            )
            .await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    s.post(&t, &format!("/v1/recordings/{}/cancel", ids[1]), json!({}))
        .await;
    let (_, page) = s.get(&t, "/v1/recordings?limit=2").await;
    let titles = |v: &Value| {
        v["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(&page), ["n4", "n3"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = s
        .get(&t, &format!("/v1/recordings?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(titles(&page2), ["n2", "n1"]);
    let (_, c) = s.get(&t, "/v1/recordings?status=cancelled").await;
    assert_eq!(titles(&c), ["n1"]);
    let (_, f) = s.get(&t, "/v1/recordings?kind=frames&status=pending").await;
    assert_eq!(titles(&f).len(), 4);
    let (_, w) = s.get(&t, "/v1/recordings?kind=web").await;
    assert!(titles(&w).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_health_metrics() {
    let s = start(|_| {}).await;
    let t = s.key("alice", false).await;
    let doc: Value = reqwest::get(format!("{}/v1/openapi.json", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 18, "{}", paths.len());
    // Every documented path is served (none falls through to the 404 route).
    let id = s.create(&t, json!({"source": {"kind": "frames"}})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, ops) in paths {
        let p = path.replace("{id}", &id);
        for m in ops.as_object().unwrap().keys() {
            let r = s
                .client()
                .request(m.to_uppercase().parse().unwrap(), format!("{}{p}", s.base))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                v["error"]["message"] != "no such route; see /v1/openapi.json",
                "{m} {path} is not routed"
            );
            assert!(st < 500 || path == "/readyz", "{m} {path}: {st}");
        }
    }
    assert_eq!(
        reqwest::get(format!("{}/healthz", s.base))
            .await
            .unwrap()
            .status(),
        200
    );
    let r = reqwest::get(format!("{}/readyz", s.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["database"].as_str(),
            v["storage"].as_str(),
            v["ffmpeg"].as_str()
        ),
        (Some("ok"), Some("ok"), Some("ok"))
    );
    assert_eq!(v["work"], "ok", "{v}");
    // The folders recordings write to are what readiness checks: a file
    // where the work folder or the store's recordings folder should be.
    let blocked = start(|_| {}).await;
    let _ = std::fs::remove_dir_all(blocked.data.join("work"));
    std::fs::write(blocked.data.join("work"), b"in the way").unwrap();
    std::fs::create_dir_all(blocked.data.join("media")).unwrap();
    let _ = std::fs::remove_dir_all(blocked.data.join("media/recordings"));
    std::fs::write(blocked.data.join("media/recordings"), b"in the way").unwrap();
    // Without an admin's token it says which part fails, not why (the
    // reasons name paths and hosts).
    let plain = blocked.key("plain", false).await;
    for token in [None, Some(plain.as_str())] {
        let mut r = reqwest::Client::new().get(format!("{}/readyz", blocked.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 503);
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (
                v["work"].as_str(),
                v["storage"].as_str(),
                v["database"].as_str()
            ),
            (Some("failing"), Some("failing"), Some("ok")),
            "{v}"
        );
        assert!(!text.contains(&*blocked.data.to_string_lossy()), "{text}");
    }
    let root = blocked.key("root", true).await;
    let v = not_ready(&blocked, &root).await;
    assert!(
        v["work"].as_str().is_some_and(|e| e.contains("work")),
        "{v}"
    );
    assert_ne!(v["storage"], "ok", "{v}");
    assert_eq!(v["database"], "ok", "{v}");
    // Encoder arguments this ffmpeg refuses make the server not ready.
    let broken = start(|c| c.encoder.x264_preset = "no-such-preset".into()).await;
    let root = broken.key("root", true).await;
    let v = not_ready(&broken, &root).await;
    assert!(
        v["ffmpeg"].as_str().is_some_and(|e| e.starts_with("mp4:")),
        "{v}"
    );
    let m = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("tapedeck_recordings_created_total{kind=\"frames\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("tapedeck_recordings_finished_total{status=\"cancelled\"} 1"),
        "{m}"
    );
    let page = reqwest::get(format!("{}/", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("tapedeck"));
}

/// Connections and sockets cannot be held forever: a client that sends
/// half a request, or stays idle between requests, is closed after
/// `server.header_read_timeout_s`; a user holds at most
/// `limits.max_event_sockets_per_user` event sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_sockets_have_limits() {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(|c| {
        c.server.header_read_timeout_s = 1;
        c.server.body_idle_timeout_s = 1;
        c.limits.max_event_sockets_per_user = 2;
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_string();
    // Half a request: closed.
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    // A whole request, answered, then nothing: closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // A body that stops halfway: cut off.
    let alice = s.key("alice", false).await;
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /v1/recordings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"source\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // A WHIP offer without a token is refused before its body is read.
    let mut whip = tokio::net::TcpStream::connect(&addr).await.unwrap();
    whip.write_all(
        b"POST /v1/rooms/room_00000000000000000000000000/whip HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n",
    )
    .await
    .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), whip.read(&mut buf))
        .await
        .expect("WHIP without a token answered at once")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    for (what, conn) in [
        ("half a request", &mut half),
        ("an idle connection", &mut idle),
        ("a stalled body", &mut stalled),
    ] {
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(got.is_ok(), "{what} is still open after 10 s");
    }

    // Event sockets: two per user, a third is refused with a code; another
    // user is not affected; closing one frees its place.
    let bob = s.key("bob", false).await;
    let mut first = connect(&s.ws_url("/v1/events", &alice)).await;
    let _second = connect(&s.ws_url("/v1/events", &alice)).await;
    let third = tokio_tungstenite::connect_async(s.ws_url("/v1/events", &alice)).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("too_many_sockets"), "{body}");
        }
        other => panic!("a third socket: {other:?}"),
    }
    let _bobs = connect(&s.ws_url("/v1/events", &bob)).await;
    first.close(None).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio_tungstenite::connect_async(s.ws_url("/v1/events", &alice)).await {
            Ok(_) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A revoked key's open socket is closed at its next check (every
    // ping, 20 s), saying why.
    let carol = s.key("carol", false).await;
    let mut open = connect(&s.ws_url("/v1/events", &carol)).await;
    let keys = s.state.repo.list_keys().await.unwrap();
    let id = &keys.iter().find(|k| k.user == "carol").unwrap().id;
    s.state.repo.revoke_key(id).await.unwrap();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match open.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                    return f.reason.to_string();
                }
                Some(Ok(_)) => {}
                _ => return String::new(),
            }
        }
    })
    .await
    .expect("the revoked key's socket stays open");
    assert!(closed.contains("revoked"), "{closed}");
}

/// Rooms come a page at a time, and a user has a limited number open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_listed_by_page_and_limited_per_user() {
    let s = start(|c| c.limits.max_open_rooms_per_user = 3).await;
    let alice = s.key("alice", false).await;
    let mut ids = vec![];
    for i in 0..3 {
        let (st, r) = s
            .post(&alice, "/v1/rooms", json!({"name": format!("r{i}")}))
            .await;
        assert_eq!(st, 201, "{r}");
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let (st, e) = s.post(&alice, "/v1/rooms", json!({"name": "r3"})).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (429, Some("too_many_rooms")),
        "{e}"
    );
    // Closing one makes room for another.
    assert_eq!(
        s.delete(&alice, &format!("/v1/rooms/{}", ids[0])).await,
        204
    );
    let (st, r) = s.post(&alice, "/v1/rooms", json!({"name": "r3"})).await;
    assert_eq!(st, 201, "{r}");
    // Four rooms, two a page, newest first.
    let (st, p1) = s.get(&alice, "/v1/rooms?limit=2").await;
    assert_eq!(st, 200, "{p1}");
    let names = |p: &Value| -> Vec<String> {
        p["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&p1), ["r3", "r2"]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .get(&alice, &format!("/v1/rooms?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(names(&p2), ["r1", "r0"]);
    let cursor = p2["next_cursor"].as_str().unwrap();
    let (_, p3) = s
        .get(&alice, &format!("/v1/rooms?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(names(&p3), Vec::<String>::new());
    assert!(p3["next_cursor"].is_null(), "{p3}");
    let (st, e) = s.get(&alice, "/v1/rooms?limit=0").await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
}

/// `/readyz` of `s` as `key` sees it, which must be 503.
async fn not_ready(s: &Server, key: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/readyz", s.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    r.json().await.unwrap()
}

/// Every code an API error or a recording can carry is in the
/// document, and every client error's status is answered by some route.
#[test]
fn every_code_is_in_the_document() {
    let doc = tapedeck_server::http::openapi::spec();
    let schemas = &doc["components"]["schemas"];
    let listed = |path: &str| -> Vec<String> {
        schemas
            .pointer(path)
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let api = listed("/Error/properties/error/properties/code/enum");
    let failures = listed("/Failure/properties/code/enum");
    let mut statuses = std::collections::HashSet::new();
    for item in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for op in item.as_object().into_iter().flat_map(|o| o.values()) {
            for status in op["responses"]
                .as_object()
                .into_iter()
                .flat_map(|r| r.keys())
            {
                statuses.insert(status.clone());
            }
        }
    }
    for c in tapedeck_core::Code::ALL {
        if c.is_api() {
            assert!(api.iter().any(|a| a == c.as_str()), "{c} not in Error");
            // Any path answers a method it does not take, and any may
            // fail on the server's side; no route lists those.
            if *c == tapedeck_core::Code::MethodNotAllowed || c.status() >= 500 {
                continue;
            }
            let status = c.status().to_string();
            assert!(
                statuses.contains(&status),
                "no route answers {status} ({c})"
            );
        }
        if c.is_failure() {
            assert!(
                failures.iter().any(|a| a == c.as_str()),
                "{c} not in Failure"
            );
        }
    }
    assert_eq!(api.len(), tapedeck_core::Code::api().count());
    assert_eq!(failures.len(), tapedeck_core::Code::failures().count());
}
