//! An upload survives `kill -9` of the real binary: at the next start it
//! takes bytes again where the last synced chunk ended, and the client
//! finishes it with `HEAD` + `PATCH` as after any dropped connection.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use tapedeck_testkit::free_port;

use support::{header as h, tus_request as tus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_then_resume_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = binary_key(&data, "alice");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve_binary(&data, port, &[]);
    let file = live_webm(dir.path(), 3);
    let bytes = std::fs::read(&file).unwrap();
    let octets = (
        "Content-Type",
        "application/offset+octet-stream".to_string(),
    );

    let r = tus(
        &base,
        &token,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", bytes.len().to_string())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);
    let path = h(&r, "location");
    let half = bytes.len() / 2;
    let r = tus(
        &base,
        &token,
        "PATCH",
        &path,
        &[("Upload-Offset", "0".into()), octets.clone()],
        bytes[..half].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 204);
    server.kill_9();

    let _server = serve_binary(&data, port, &[]);
    let r = tus(&base, &token, "HEAD", &path, &[], vec![]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "upload-offset"), half.to_string());
    assert_eq!(h(&r, "upload-length"), bytes.len().to_string());
    let r = tus(
        &base,
        &token,
        "PATCH",
        &path,
        &[("Upload-Offset", half.to_string()), octets],
        bytes[half..].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 204);
    let id = path.rsplit('/').next().unwrap();
    let start = Instant::now();
    let done = loop {
        let v: Value = reqwest::Client::new()
            .get(format!("{base}/v1/recordings/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] != "recording" && v["status"] != "processing" {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "stuck: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    use sha2::Digest;
    assert_eq!(
        done["source"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "{done}"
    );
    assert!(
        (done["duration_s"].as_f64().unwrap() - 3.0).abs() < 0.1,
        "{done}"
    );
}
