//! Presigned direct uploads (`POST /v1/uploads/url`, one PUT, `POST
//! /v1/recordings/{id}/complete`), sent by a plain HTTP client that is not
//! tapedeck's: to tapedeck's own signed URL on local storage, and straight
//! to the bucket on S3 (s3s-fs, real SigV4 presigned URLs). Expired and
//! tampered URLs are refused; a complete before the bytes, or with the
//! wrong SHA-256, says so.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use tapedeck_server::config::{Secret, StorageKind};

/// `PUT` of `bytes` to `url` with `headers`, as any HTTP client does.
async fn put(url: &str, headers: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let mut r = reqwest::Client::new().put(url);
    for (k, v) in headers.as_object().unwrap() {
        r = r.header(k, v.as_str().unwrap());
    }
    r.body(bytes).send().await.unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Asks for a URL, PUTs the file, completes; the completed recording.
async fn direct_upload(s: &Server, key: &str, bytes: &[u8], want_host: &str) -> Value {
    let (st, u) = s
        .post(
            key,
            "/v1/uploads/url",
            json!({"filename": "camera.webm", "content_type": "video/webm",
                   "size": bytes.len(), "sha256": sha256_hex(bytes)}),
        )
        .await;
    assert_eq!(st, 201, "{u}");
    assert_eq!(
        (u["method"].as_str(), u["expires_in"].as_u64()),
        (Some("PUT"), Some(1800))
    );
    let url = u["upload_url"].as_str().unwrap();
    assert!(url.contains(want_host), "{url}");
    let id = u["recording_id"].as_str().unwrap().to_string();
    // Completing before the bytes: 409 upload_incomplete.
    let (st, e) = s
        .post(key, &format!("/v1/recordings/{id}/complete"), json!({}))
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (409, Some("upload_incomplete")),
        "{e}"
    );
    let r = put(url, &u["headers"], bytes.to_vec()).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (st, r) = s
        .post(key, &format!("/v1/recordings/{id}/complete"), json!({}))
        .await;
    assert_eq!(st, 202, "{r}");
    let done = s.wait_status(key, &id, "completed").await;
    assert_eq!(done["source"]["sha256"], sha256_hex(bytes), "{done}");
    assert!(
        (done["duration_s"].as_f64().unwrap() - 3.0).abs() < 0.1,
        "{done}"
    );
    let media = s.download(key, &id, "webm").await;
    assert_eq!(tapedeck_testkit::ffprobe(&media).codec, "vp8");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_upload_to_local_storage_goes_through_tapedecks_signed_url() {
    let s = start(|c| c.uploads.url_expires_s = 2).await;
    let key = s.key("alice", false).await;
    let file = live_webm(&s.data, 3);
    let bytes = std::fs::read(&file).unwrap();

    // An expired URL, a tampered one, and the wrong SHA-256 are refused.
    let (_, u) = s
        .post(
            &key,
            "/v1/uploads/url",
            json!({"size": bytes.len(), "sha256": "00".repeat(32)}),
        )
        .await;
    let url = u["upload_url"].as_str().unwrap().to_string();
    let tampered = url.replace("sig=", "sig=0");
    let r = put(&tampered, &json!({}), bytes.clone()).await;
    assert_eq!(r.status(), 403);
    let r = put(&url, &json!({}), bytes.clone()).await;
    assert_eq!(r.status(), 200);
    let id = u["recording_id"].as_str().unwrap();
    let (st, e) = s
        .post(&key, &format!("/v1/recordings/{id}/complete"), json!({}))
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (460, Some("checksum_mismatch")),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = put(&url, &json!({}), bytes.clone()).await;
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "link_expired");
    // Too large for what was declared: 413.
    let (_, u) = s.post(&key, "/v1/uploads/url", json!({"size": 10})).await;
    let r = put(u["upload_url"].as_str().unwrap(), &json!({}), vec![0; 11]).await;
    assert_eq!(r.status(), 413);

    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let done = direct_upload(&s, &key, &bytes, &s.base).await;
    assert_eq!(done["source"]["direct"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_upload_to_s3_goes_straight_to_the_bucket() {
    let s3 = tapedeck_testkit::s3();
    let config = |c: &mut tapedeck_server::config::Config| {
        c.storage.kind = StorageKind::S3;
        c.storage.bucket = s3.bucket.clone();
        c.storage.endpoint = Some(s3.endpoint.clone());
        c.storage.access_key = s3.access_key.clone();
        c.storage.secret_key = Secret(s3.secret_key.clone());
    };
    let s = start(config).await;
    let key = s.key("alice", false).await;
    let file = live_webm(&s.data, 3);
    let bytes = std::fs::read(&file).unwrap();
    // The URL is the bucket's (SigV4 presigned), not tapedeck's.
    let endpoint = s3.endpoint.trim_start_matches("http://").to_string();
    direct_upload(&s, &key, &bytes, &endpoint).await;

    // The bucket refuses its own URL once expired.
    let s = start(|c| {
        config(c);
        c.uploads.url_expires_s = 1;
    })
    .await;
    let key = s.key("alice", false).await;
    let (_, u) = s
        .post(&key, "/v1/uploads/url", json!({"size": bytes.len()}))
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = put(u["upload_url"].as_str().unwrap(), &json!({}), bytes.clone()).await;
    assert_eq!(r.status(), 403, "{:?}", r.text().await);
}
