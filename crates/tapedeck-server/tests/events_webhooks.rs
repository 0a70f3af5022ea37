//! Every status change is an event on /v1/events (only the owner's) and a
//! webhook POST signed with HMAC-SHA256, retried after a failure.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::*;

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let r2 = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let r = r2.clone();
            async move {
                let mut got = r.got.lock().unwrap();
                got.push((headers, body));
                // The very first delivery fails: it must be retried.
                if got.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_signed_webhooks() {
    let (url, hooks) = receiver().await;
    let s = start(|c| {
        c.webhooks.urls = vec![url];
        c.webhooks.secret = tapedeck_server::config::Secret("whsec".into());
        c.webhooks.retry_base_ms = 50;
    })
    .await;
    let alice = s.key("alice", false).await;
    let bob = s.key("bob", false).await;
    let mut a_ev = connect(&s.ws_url("/v1/events", &alice)).await;
    let mut b_ev = connect(&s.ws_url("/v1/events", &bob)).await;

    let rec = s
        .create(
            &alice,
            json!({"source": {"kind": "frames"}, "preset": "low"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &alice)).await;
    send_frames(&mut ws, 5, 200.0, |i| jpeg(854, 480, i)).await;
    s.post(&alice, &format!("/v1/recordings/{id}/pause"), json!({}))
        .await;
    s.post(&alice, &format!("/v1/recordings/{id}/resume"), json!({}))
        .await;
    s.post(&alice, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    s.wait_status(&alice, &id, "completed").await;

    let want = [
        "recording.created",
        "recording.started",
        "recording.paused",
        "recording.resumed",
        "recording.stopped",
        "recording.completed",
    ];
    let mut seen = vec![];
    while seen.len() < want.len() {
        let ev = next_json(&mut a_ev).await;
        assert_eq!(ev["recording"]["id"], id.as_str());
        seen.push(ev["type"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, want);

    // Bob sees only his own: create one and check it is the first thing he gets.
    let brec = s.create(&bob, json!({"source": {"kind": "frames"}})).await;
    let ev = next_json(&mut b_ev).await;
    assert_eq!(
        (ev["type"].as_str(), ev["recording"]["id"].as_str()),
        (Some("recording.created"), brec["id"].as_str())
    );

    // Webhooks: every event arrives, signed; the failed first one was retried.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = hooks
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, _)| h["tapedeck-event"] == "recording.completed")
            .count();
        if n > 0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = hooks.got.lock().unwrap().clone();
    let mut kinds = vec![];
    for (h, body) in &got {
        let ts = h["tapedeck-timestamp"].to_str().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(h["tapedeck-signature"].to_str().unwrap(), expected);
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v["type"].as_str().unwrap(),
            h["tapedeck-event"].to_str().unwrap()
        );
        kinds.push(v["type"].as_str().unwrap().to_string());
    }
    for w in want {
        assert!(kinds.iter().any(|k| k == w), "{w} not delivered: {kinds:?}");
    }
    let first = got[0].0["tapedeck-delivery"].to_str().unwrap();
    let retries = got
        .iter()
        .filter(|(h, _)| h["tapedeck-delivery"] == first)
        .count();
    assert_eq!(
        retries, 2,
        "the failed delivery was retried once and then succeeded"
    );
    let m = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("tapedeck_webhook_attempts_total{result=\"retried\"} 1"),
        "{m}"
    );
    // Every program run is counted: the recording started ffmpeg and ffprobe.
    for program in ["ffmpeg", "ffprobe"] {
        let started = m
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "tapedeck_program_runs{{program=\"{program}\",outcome=\"started\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        assert!(started.is_some_and(|n| n >= 1), "{program}: {m}");
    }
}
