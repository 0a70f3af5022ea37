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
    direct_upload_with(s, key, bytes, want_host, 200).await
}

/// As [`direct_upload`], the store answering the PUT with `put_status`.
async fn direct_upload_with(
    s: &Server,
    key: &str,
    bytes: &[u8],
    want_host: &str,
    put_status: u16,
) -> Value {
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
    assert_eq!(r.status(), put_status, "{:?}", r.text().await);
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

    // A PUT that is refused (too large) or cut off leaves the whole file an
    // earlier PUT sent, as a bucket does.
    let (_, u) = s
        .post(
            &key,
            "/v1/uploads/url",
            json!({"size": bytes.len(), "sha256": sha256_hex(&bytes)}),
        )
        .await;
    let url = u["upload_url"].as_str().unwrap().to_string();
    assert_eq!(put(&url, &json!({}), bytes.clone()).await.status(), 200);
    let mut more = bytes.clone();
    more.extend_from_slice(b"0123456789");
    assert_eq!(put(&url, &json!({}), more).await.status(), 413);
    {
        use tokio::io::AsyncWriteExt;
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut c = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
            bytes.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&[b'A'; 5000]).await.unwrap();
        c.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let id = u["recording_id"].as_str().unwrap();
    let (st, r) = s
        .post(&key, &format!("/v1/recordings/{id}/complete"), json!({}))
        .await;
    assert_eq!(st, 202, "{r}");
    let done = s.wait_status(&key, id, "completed").await;
    assert_eq!(done["source"]["sha256"], sha256_hex(&bytes), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_upload_to_s3_goes_straight_to_the_bucket() {
    let s3 = tapedeck_testkit::s3();
    let config = |c: &mut tapedeck_server::config::Config| {
        on_s3(c, &s3.endpoint, &s3.bucket, &s3.access_key, &s3.secret_key);
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

    // Its bytes never pass through tapedeck: an object in the bucket is what
    // keeps it from expiring at its first-byte time (3 s here), and one
    // whose client never sent expires then.
    let s = start(|c| {
        config(c);
        c.uploads.url_expires_s = 2;
        c.uploads.start_timeout_s = 1;
    })
    .await;
    let key = s.key("alice", false).await;
    let (_, sent) = s
        .post(&key, "/v1/uploads/url", json!({"size": bytes.len()}))
        .await;
    let (_, never) = s
        .post(&key, "/v1/uploads/url", json!({"size": bytes.len()}))
        .await;
    let r = put(
        sent["upload_url"].as_str().unwrap(),
        &sent["headers"],
        bytes.clone(),
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let never = never["recording_id"].as_str().unwrap();
    let failed = s.wait_status(&key, never, "failed").await;
    assert_eq!(failed["end_reason"], "upload_expired", "{failed}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let id = sent["recording_id"].as_str().unwrap();
    let (_, r) = s.get(&key, &format!("/v1/recordings/{id}")).await;
    assert_eq!(r["status"], "recording", "{r}");
    let (st, r) = s
        .post(&key, &format!("/v1/recordings/{id}/complete"), json!({}))
        .await;
    assert_eq!(st, 202, "{r}");
    s.wait_status(&key, id, "completed").await;
}

/// A 6 s MJPEG Matroska of about 12 MB: large enough for three parts
/// of 5 MiB.
fn big_media(dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("big.mkv");
    let r = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=1280x720:r=30",
        ])
        .args(["-t", "6", "-c:v", "mjpeg", "-q:v", "2"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    std::fs::read(out).unwrap()
}

/// Asks for a multipart URL set, PUTs each part (the last first), checks
/// a complete without every part is refused, completes; the completed
/// recording.
async fn multipart_upload(s: &Server, key: &str, bytes: &[u8], want_host: &str) -> Value {
    let (st, u) = s
        .post(
            key,
            "/v1/uploads/url",
            json!({"filename": "big.mkv", "content_type": "video/x-matroska",
                   "size": bytes.len(), "sha256": sha256_hex(bytes)}),
        )
        .await;
    assert_eq!(st, 201, "{u}");
    assert!(u.get("upload_url").is_none(), "{u}");
    let m = &u["multipart"];
    let part_size = m["part_size"].as_u64().unwrap() as usize;
    assert_eq!(part_size, 5 * 1024 * 1024, "{m}");
    let parts = m["parts"].as_array().unwrap();
    assert_eq!(parts.len(), bytes.len().div_ceil(part_size), "{m}");
    let id = u["recording_id"].as_str().unwrap().to_string();
    let mut etags = Vec::new();
    for p in parts.iter().rev() {
        let n = p["part_number"].as_u64().unwrap() as usize;
        let url = p["url"].as_str().unwrap();
        assert!(url.contains(want_host), "{url}");
        let chunk = &bytes[(n - 1) * part_size..(n * part_size).min(bytes.len())];
        assert_eq!(p["size"].as_u64(), Some(chunk.len() as u64));
        let r = put(url, &json!({}), chunk.to_vec()).await;
        assert_eq!(r.status(), 200, "part {n}: {:?}", r.text().await);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        etags.push(json!({"part_number": n, "etag": etag}));
        if n == parts.len() {
            // A part 0 is a malformed request, whatever the upload's state.
            let (st, e) = s
                .post(
                    key,
                    &format!("/v1/recordings/{id}/complete"),
                    json!({"parts": [{"part_number": 0, "etag": "x"}]}),
                )
                .await;
            assert_eq!(
                (st, e["error"]["code"].as_str()),
                (400, Some("invalid_request")),
                "{e}"
            );
            // Only the last part: complete says which are missing.
            let (st, e) = s
                .post(
                    key,
                    &format!("/v1/recordings/{id}/complete"),
                    json!({"parts": etags}),
                )
                .await;
            assert_eq!(
                (st, e["error"]["code"].as_str()),
                (409, Some("upload_incomplete")),
                "{e}"
            );
            assert!(
                e["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("missing: 1, 2"),
                "{e}"
            );
        }
    }
    let (st, r) = s
        .post(
            key,
            &format!("/v1/recordings/{id}/complete"),
            json!({"parts": etags}),
        )
        .await;
    assert_eq!(st, 202, "{r}");
    let done = s.wait_status(key, &id, "completed").await;
    assert_eq!(done["source"]["sha256"], sha256_hex(bytes), "{done}");
    assert_eq!(done["source"]["length"], bytes.len());
    let media = s.download(key, &id, "mkv").await;
    let p = tapedeck_testkit::ffprobe(&media);
    assert_eq!(
        (p.codec.as_str(), p.width, p.frames),
        ("mjpeg", 1280, 180),
        "{p:?}"
    );
    done
}

fn small_parts(c: &mut tapedeck_server::config::Config) {
    c.uploads.multipart_threshold_bytes = 1024 * 1024;
    c.uploads.part_size_bytes = 5 * 1024 * 1024;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_presigned_upload_goes_in_parts_to_local_storage() {
    let s = start(small_parts).await;
    let key = s.key("alice", false).await;
    let bytes = big_media(&s.data);
    assert!(bytes.len() > 10 * 1024 * 1024, "{}", bytes.len());
    // A part of the wrong size is refused, and a part URL is only good
    // for its part.
    let (_, u) = s
        .post(&key, "/v1/uploads/url", json!({"size": bytes.len()}))
        .await;
    let first = u["multipart"]["parts"][0]["url"].as_str().unwrap();
    let r = put(first, &json!({}), vec![0; 10]).await;
    assert_eq!(r.status(), 400);
    let r = put(&first.replace("part=1", "part=2"), &json!({}), vec![0; 10]).await;
    assert_eq!(r.status(), 403);
    multipart_upload(&s, &key, &bytes, &s.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_presigned_upload_goes_in_parts_straight_to_the_bucket() {
    let s3 = tapedeck_testkit::s3();
    let s = start(|c| {
        small_parts(c);
        on_s3(c, &s3.endpoint, &s3.bucket, &s3.access_key, &s3.secret_key);
    })
    .await;
    let key = s.key("alice", false).await;
    let bytes = big_media(&s.data);
    let endpoint = s3.endpoint.trim_start_matches("http://").to_string();
    let done = multipart_upload(&s, &key, &bytes, &endpoint).await;
    assert!(
        done["source"]["multipart"]["upload_id"].is_string(),
        "{done}"
    );
}

/// On Azure Blob Storage (Azurite): the presigned URL is the container's
/// own SAS URL, and the stored recording is served and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_upload_to_azure_goes_straight_to_the_container() {
    let az = tapedeck_testkit::azure();
    let s = start(|c| {
        on_azure(c, &az);
    })
    .await;
    assert_eq!(s.state.blobs.kind(), "azure");
    let key = s.key("alice", false).await;
    let file = live_webm(&s.data, 3);
    let bytes = std::fs::read(&file).unwrap();
    let endpoint = az.endpoint.trim_start_matches("http://").to_string();
    let done = direct_upload_with(&s, &key, &bytes, &endpoint, 201).await;
    let id = done["id"].as_str().unwrap();
    let stored = s
        .state
        .blobs
        .list(&format!("recordings/{id}"))
        .await
        .unwrap();
    assert!(
        stored.iter().any(|k| k.ends_with("/media.webm")),
        "{stored:?}"
    );
    assert!(s.state.blobs.list("uploads").await.unwrap().is_empty());
    assert_eq!(s.delete(&key, &format!("/v1/recordings/{id}")).await, 204);
    assert!(
        s.state
            .blobs
            .list(&format!("recordings/{id}"))
            .await
            .unwrap()
            .is_empty()
    );
}
