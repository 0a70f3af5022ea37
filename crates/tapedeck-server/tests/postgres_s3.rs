//! The whole lifecycle on PostgreSQL and S3 (s3s-fs, real SigV4) instead of
//! SQLite and disk: media streamed to the bucket, served through the API,
//! shared with a presigned URL.

mod support;

use serde_json::json;
use support::*;
use tapedeck_server::config::Secret;
use tapedeck_testkit::ffprobe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_recording_on_postgres_and_s3() {
    let pg = tapedeck_testkit::postgres_url();
    let s3 = tapedeck_testkit::s3();
    let s = start(|c| {
        c.database.url = Some(Secret(pg));
        on_s3(c, &s3.endpoint, &s3.bucket, &s3.access_key, &s3.secret_key);
    })
    .await;
    assert_eq!(s.state.repo.backend(), "postgres");
    assert_eq!(s.state.blobs.kind(), "s3");
    let t = s.key("alice", false).await;
    let rec = s
        .create(
            &t,
            json!({"source": {"kind": "frames"}, "format": "mkv", "preset": "low"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    send_frames(&mut ws, 15, 200.0, |i| jpeg(854, 480, i)).await;
    s.post(&t, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&t, &id, "completed").await;

    // The objects are in the bucket folder of the S3 server.
    let obj = s3
        .root
        .join(&s3.bucket)
        .join("recordings")
        .join(&id)
        .join("media.mkv");
    assert_eq!(
        std::fs::metadata(&obj).unwrap().len(),
        done["size_bytes"].as_u64().unwrap()
    );
    assert!(
        s3.root
            .join(&s3.bucket)
            .join("recordings")
            .join(&id)
            .join("poster.jpg")
            .exists()
    );

    let m = ffprobe(&s.download(&t, &id, "mkv").await);
    assert_eq!(
        (m.codec.as_str(), m.width, m.height, m.frames),
        ("h264", 854, 480, 72)
    );
    assert!(m.container.contains("matroska"));

    let (st, share) = s
        .post(&t, &format!("/v1/recordings/{id}/share"), json!({}))
        .await;
    assert_eq!(st, 200);
    let url = share["url"].as_str().unwrap();
    assert!(
        url.starts_with(&s3.endpoint) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().len() as u64,
        done["size_bytes"].as_u64().unwrap()
    );

    assert_eq!(s.delete(&t, &format!("/v1/recordings/{id}")).await, 204);
    assert!(!obj.exists());
}
