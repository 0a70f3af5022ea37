//! Limits and retention: concurrency, quota, max duration, idle, expiry sweep.
//! Each refusal is a clear 4xx; each limit that ends a recording finalizes it
//! with the reason.

mod support;

use serde_json::json;
use support::*;
use tapedeck_testkit::ffprobe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits() {
    let s = start(|c| {
        c.limits.max_concurrent = 3;
        c.limits.max_concurrent_per_user = 2;
    })
    .await;
    let a = s.key("alice", false).await;
    let b = s.key("bob", false).await;
    let first = s.create(&a, json!({"source": {"kind": "frames"}})).await;
    s.create(&a, json!({"source": {"kind": "frames"}})).await;
    too_many(&s, &a, "max_concurrent_per_user").await;
    s.create(&b, json!({"source": {"kind": "frames"}})).await;
    too_many(&s, &b, "limits.max_concurrent)").await;
    // A finished recording frees its slot.
    s.post(
        &a,
        &format!("/v1/recordings/{}/cancel", first["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    s.create(&b, json!({"source": {"kind": "frames"}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_and_idle_finalize_with_a_reason() {
    let s = start(|c| c.limits.idle_timeout_s = 1).await;
    let t = s.key("alice", false).await;
    let rec = s
        .create(
            &t,
            json!({"source": {"kind": "frames"}, "preset": "low", "max_duration_s": 2}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    let mut sent = 0;
    for i in 0..25u32 {
        if !try_send_frame(&mut ws, f64::from(i) * 200.0, jpeg(854, 480, i)).await {
            break;
        }
        sent += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let done = s.wait_status(&t, &id, "completed").await;
    assert_eq!(done["end_reason"], "max_duration");
    assert!(
        sent < 25,
        "the server closed the socket when the limit ended the recording"
    );
    let m = ffprobe(&s.download(&t, &id, "mp4").await);
    assert!((m.duration_s - 2.0).abs() <= 0.21, "{m:?}");

    // Idle: a source that goes quiet is finalized, not left recording.
    let rec = s
        .create(&t, json!({"source": {"kind": "frames"}, "preset": "low"}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    for i in 0..5u32 {
        send_frame(&mut ws, Some(f64::from(i) * 200.0), jpeg(854, 480, i)).await;
    }
    let done = s.wait_status(&t, &id, "completed").await;
    assert_eq!(done["end_reason"], "idle");
    assert!(
        (done["duration_s"].as_f64().unwrap() - 1.0).abs() < 0.05,
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_stops_and_refuses() {
    let s = start(|c| c.limits.user_quota_bytes = 60_000).await;
    let t = s.key("alice", false).await;
    let rec = s
        .create(
            &t,
            json!({"source": {"kind": "frames"}, "preset": "low", "video_bitrate_kbps": 4000}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    noisy_until_stopped(&s, &t, &id).await;
    let done = s.wait_status(&t, &id, "completed").await;
    assert_eq!(done["end_reason"], "quota", "{done}");
    let (st, v) = s
        .post(&t, "/v1/recordings", json!({"source": {"kind": "frames"}}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("quota_exceeded")),
        "{v}"
    );
    // Another user is not affected.
    let b = s.key("bob", false).await;
    s.create(&b, json!({"source": {"kind": "frames"}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_recordings_are_swept() {
    let s = start(|_| {}).await;
    let t = s.key("alice", false).await;
    let rec = s
        .create(&t, json!({"source": {"kind": "frames"}, "preset": "low"}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let created =
        tapedeck_core::recording::time_ms::parse(rec["created_at"].as_str().unwrap()).unwrap();
    let expires =
        tapedeck_core::recording::time_ms::parse(rec["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires - created,
        30 * 86_400_000,
        "default retention is 30 days"
    );
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    send_frames(&mut ws, 5, 200.0, |i| jpeg(854, 480, i)).await;
    s.post(&t, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    s.wait_status(&t, &id, "completed").await;
    let keep = s.create(&t, json!({"source": {"kind": "frames"}})).await;

    let rid: tapedeck_core::RecordingId = id.parse().unwrap();
    let mut r = s.state.repo.get(rid).await.unwrap().unwrap();
    r.expires_at = Some(tapedeck_server::now_ms() - 1000);
    s.state.repo.update(&r).await.unwrap();
    // The sweep leaves recordings whose driver is still finishing (it
    // reports completed just before it lets go).
    for _ in 0..100 {
        if !s.state.supervisor.is_active(rid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(s.state.supervisor.sweep_once().await.unwrap(), 1);
    assert_eq!(s.get(&t, &format!("/v1/recordings/{id}")).await.0, 404);
    assert!(
        s.state.blobs.size(&r.media_key()).await.is_err(),
        "media deleted"
    );
    assert!(
        s.state.blobs.size(&r.poster_key()).await.is_err(),
        "poster deleted"
    );
    assert_eq!(
        s.get(
            &t,
            &format!("/v1/recordings/{}", keep["id"].as_str().unwrap())
        )
        .await
        .0,
        200
    );
}

/// Sends noisy frames (the encoder writes bytes quickly) until the server
/// stops the recording or closes the socket.
async fn noisy_until_stopped(s: &Server, t: &str, id: &str) -> u32 {
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), t)).await;
    for i in 0..300u32 {
        let img = image::RgbImage::from_fn(854, 480, |x, y| {
            image::Rgb([
                ((x * 7 + y * 13 + i * 101) % 251) as u8,
                ((x ^ y ^ i) % 255) as u8,
                ((x * y + i) % 253) as u8,
            ])
        });
        let mut buf = std::io::Cursor::new(vec![]);
        img.write_to(&mut buf, image::ImageFormat::Jpeg).unwrap();
        if !try_send_frame(&mut ws, f64::from(i) * 100.0, buf.into_inner()).await {
            return i;
        }
        let (_, v) = s.get(t, &format!("/v1/recordings/{id}")).await;
        if v["status"] != "recording" {
            return i + 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    300
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_stops_with_its_reason() {
    let s = start(|c| c.limits.max_size_bytes = 60_000).await;
    let t = s.key("alice", false).await;
    let rec = s
        .create(
            &t,
            json!({"source": {"kind": "frames"}, "preset": "low", "video_bitrate_kbps": 4000}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let sent = noisy_until_stopped(&s, &t, &id).await;
    let done = s.wait_status(&t, &id, "completed").await;
    assert_eq!(done["end_reason"], "max_size", "{done}");
    // Stopped at the limit: past it by no more than what the encoder held
    // (x264's lookahead, about 15 frames), and well before the client stopped.
    let size = done["size_bytes"].as_u64().unwrap();
    assert!(size >= 60_000, "{size} bytes");
    let m = tapedeck_testkit::ffprobe(&s.download(&t, &id, "mp4").await);
    assert!(sent < 300, "the server stopped taking frames after {sent}");
    assert!(
        m.duration_s > 0.0 && m.duration_s <= f64::from(sent) * 0.1,
        "{m:?} after {sent} frames 100 ms apart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_recording_nobody_starts_frees_its_slot() {
    let s = start(|c| {
        c.limits.max_concurrent_per_user = 1;
        c.limits.pending_timeout_s = 1;
    })
    .await;
    let t = s.key("alice", false).await;
    let first = s.create(&t, json!({"source": {"kind": "frames"}})).await;
    let (st, v) = s
        .post(&t, "/v1/recordings", json!({"source": {"kind": "frames"}}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("too_many_recordings"))
    );
    let gone = s
        .wait_status(&t, first["id"].as_str().unwrap(), "cancelled")
        .await;
    assert_eq!(gone["end_reason"], "cancelled", "{gone}");
    s.create(&t, json!({"source": {"kind": "frames"}})).await;
}

/// Another frames recording by `key` is refused with 429
/// too_many_recordings, naming the setting `names`.
async fn too_many(s: &Server, key: &str, names: &str) {
    let (st, v) = s
        .post(key, "/v1/recordings", json!({"source": {"kind": "frames"}}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("too_many_recordings"))
    );
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(names), "{v}");
}
