//! A frames recording end to end over HTTP and a real WebSocket: 5 fps in,
//! 30 fps out, letterboxed, paused without a gap, bad frames counted and
//! reported, then media, thumbnails, Range, share links and delete.

mod support;

use serde_json::json;
use support::*;
use tapedeck_testkit::ffprobe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_fps_camera_into_a_720p30_mp4() {
    let s = start(|c| c.limits.max_frame_bytes = 200_000).await;
    let token = s.key("alice", false).await;
    let rec = s.create(&token, json!({"source": {"kind": "frames"}, "format": "mp4", "preset": "medium", "title": "cam"})).await;
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["status"], "pending");
    assert_eq!(
        (rec["video"]["width"].as_u64(), rec["video"]["fps"].as_u64()),
        (Some(1280), Some(30))
    );

    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &token)).await;
    // 4 s at 5 fps of 640x480 frames (4:3 into 16:9: letterboxed).
    for i in 0..20u32 {
        send_frame(&mut ws, Some(f64::from(i) * 200.0), jpeg(640, 480, i)).await;
    }
    // Bad frames: not an image, a truncated JPEG, one over the size limit.
    send_frame(&mut ws, None, b"definitely not an image".to_vec()).await;
    let mut cut = jpeg(640, 480, 99);
    cut.truncate(cut.len() / 2);
    send_frame(&mut ws, None, cut).await;
    send_frame(&mut ws, None, vec![0xFF; 300_000]).await;
    let p = progress_until(&mut ws, |v| v["frames_invalid"].as_u64() == Some(3)).await;
    assert!(p["last_error"].as_str().is_some(), "{p}");
    assert_eq!(p["status"], "recording");

    // Pause: frames sent while paused are dropped; the output gets no gap.
    let (st, v) = s
        .post(&token, &format!("/v1/recordings/{id}/pause"), json!({}))
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("paused")));
    let (st, v) = s
        .post(&token, &format!("/v1/recordings/{id}/pause"), json!({}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    progress_until(&mut ws, |v| v["status"] == "paused").await;
    for i in 0..5u32 {
        send_frame(
            &mut ws,
            Some(4000.0 + f64::from(i) * 200.0),
            jpeg(640, 480, 50 + i),
        )
        .await;
    }
    progress_until(&mut ws, |v| v["frames_received"].as_u64() == Some(28)).await;
    s.post(&token, &format!("/v1/recordings/{id}/resume"), json!({}))
        .await;
    // Resumed 30 s later on the client's clock: 2 more seconds.
    for i in 0..10u32 {
        send_frame(
            &mut ws,
            Some(30_000.0 + f64::from(i) * 200.0),
            jpeg(1280, 720, 100 + i),
        )
        .await;
    }
    progress_until(&mut ws, |v| {
        v["frames_received"].as_u64() == Some(38) && v["duration_s"].as_f64() >= Some(5.9)
    })
    .await;

    let (st, v) = s
        .post(&token, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    assert_eq!(
        (st, v["status"].as_str(), v["end_reason"].as_str()),
        (200, Some("processing"), Some("stopped"))
    );
    let done = s.wait_status(&token, &id, "completed").await;
    let _ = ws.close(None).await;

    // 30 frames x 200 ms = 6 s at 30 fps = 180 frames.
    let stats = &done["stats"];
    assert_eq!(stats["frames_in"], 38);
    assert_eq!(stats["frames_invalid"], 3);
    assert_eq!(stats["frames_dropped"], 8, "3 invalid + 5 paused: {stats}");
    assert_eq!(stats["frames_written"], 180);
    assert!(
        (stats["achieved_fps"].as_f64().unwrap() - 5.0).abs() < 0.1,
        "{stats}"
    );
    assert!(stats["cpu_s"].as_f64().unwrap() > 0.0);
    assert!(
        (done["duration_s"].as_f64().unwrap() - 6.0).abs() <= 1.0 / 30.0 + 1e-3,
        "{done}"
    );
    assert_eq!(done["media"]["sha256"].as_str().unwrap().len(), 64);
    for t in ["started_at", "stopped_at", "completed_at", "expires_at"] {
        assert!(done[t].is_string(), "{t}: {done}");
    }

    let file = s.download(&token, &id, "mp4").await;
    let m = ffprobe(&file);
    assert_eq!((m.codec.as_str(), m.width, m.height), ("h264", 1280, 720));
    assert_eq!(m.frames, 180);
    assert!((m.fps - 30.0).abs() < 1e-6, "{m:?}");
    assert!((m.duration_s - 6.0).abs() <= 1.0 / 30.0 + 1e-3, "{m:?}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        done["size_bytes"].as_u64().unwrap()
    );

    // HTTP Range.
    let r = s
        .client()
        .get(format!("{}/v1/recordings/{id}/media", s.base))
        .bearer_auth(&token)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", done["size_bytes"])
    );
    assert_eq!(
        &r.bytes().await.unwrap()[..],
        &std::fs::read(&file).unwrap()[10..20]
    );
    let r = s
        .client()
        .get(format!("{}/v1/recordings/{id}/media", s.base))
        .bearer_auth(&token)
        .header("range", "bytes=999999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    // Thumbnails: a 640-wide poster and a strip of 10 x 160 px.
    for (path, w) in [("thumbnail", 640), ("strip", 1600)] {
        let r = s
            .client()
            .get(format!(
                "{}/v1/recordings/{id}/{path}?token={token}",
                s.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let img = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(img.width(), w, "{path}");
    }

    // Share link: works without a token; a tampered one does not.
    let (st, share) = s
        .post(
            &token,
            &format!("/v1/recordings/{id}/share"),
            json!({"expires_in_s": 60}),
        )
        .await;
    assert_eq!(st, 200, "{share}");
    let url = share["url"].as_str().unwrap();
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().len() as u64,
        done["size_bytes"].as_u64().unwrap()
    );
    let r = reqwest::get(url.replace("exp=", "exp=1")).await.unwrap();
    assert_eq!(r.status(), 403);

    // Delete removes media and thumbnails.
    assert_eq!(s.delete(&token, &format!("/v1/recordings/{id}")).await, 204);
    assert_eq!(s.get(&token, &format!("/v1/recordings/{id}")).await.0, 404);
    let left: Vec<_> = walk(&s.data.join("media"));
    assert!(
        left.iter().all(|p| !p.to_string_lossy().contains(&id)),
        "{left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfr_webm_and_cancel() {
    let s = start(|_| {}).await;
    let token = s.key("bob", false).await;
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "frames"}, "format": "webm", "preset": "low", "cfr": false}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &token)).await;
    for (i, t) in [0.0, 100.0, 450.0, 500.0, 1300.0].into_iter().enumerate() {
        send_frame(&mut ws, Some(t), jpeg(854, 480, i as u32)).await;
    }
    progress_until(&mut ws, |v| {
        v["frames_received"].as_u64() == Some(5) && v["duration_s"].as_f64() > Some(1.0)
    })
    .await;
    s.post(&token, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&token, &id, "completed").await;
    let m = ffprobe(&s.download(&token, &id, "webm").await);
    assert_eq!((m.codec.as_str(), m.width, m.height), ("vp9", 854, 480));
    assert!((m.duration_s - 2.1).abs() < 0.05, "{m:?} {done}");

    // Cancel discards: the work files go and the status is final.
    let rec = s
        .create(&token, json!({"source": {"kind": "frames"}}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &token)).await;
    send_frame(&mut ws, None, jpeg(320, 240, 1)).await;
    progress_until(&mut ws, |v| v["frames_received"].as_u64() == Some(1)).await;
    let (st, v) = s
        .post(&token, &format!("/v1/recordings/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (st, v["status"].as_str(), v["end_reason"].as_str()),
        (200, Some("cancelled"), Some("cancelled"))
    );
    assert!(!s.data.join("work").join(&id).exists());
    let (st, v) = s
        .post(&token, &format!("/v1/recordings/{id}/resume"), json!({}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    let (st, _) = s.get(&token, &format!("/v1/recordings/{id}/media")).await;
    assert_eq!(st, 409);
}

/// Browser apps built on `canvas.toDataURL` send text: a JSON object with a
/// data URL, or the bare data URL. Both are frames, counted and limited like
/// binary ones; a broken one is invalid and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_url_frames_in_text_messages() {
    use base64::Engine;
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = start(|_| {}).await;
    let t = s.key("alice", false).await;
    let rec = s
        .create(
            &t,
            json!({"source": {"kind": "frames"}, "format": "mp4", "preset": "low"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    let data_url = |n: u32| {
        format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(jpeg(854, 480, n))
        )
    };
    // 1 s at 5 fps as JSON with a timestamp, then 5 bare data URLs.
    for i in 0..5u32 {
        let m = json!({"pts_ms": f64::from(i) * 200.0, "image": data_url(i)});
        ws.send(Message::Text(m.to_string().into())).await.unwrap();
    }
    for i in 5..10u32 {
        ws.send(Message::Text(
            json!({"pts_ms": f64::from(i) * 200.0}).to_string().into(),
        ))
        .await
        .unwrap();
        ws.send(Message::Text(data_url(i).into())).await.unwrap();
    }
    // Not base64, and base64 that is not an image.
    ws.send(Message::Text("data:image/jpeg;base64,@@@@".into()))
        .await
        .unwrap();
    let not_image = base64::engine::general_purpose::STANDARD.encode(b"plain text");
    ws.send(Message::Text(
        json!({"image": format!("data:image/png;base64,{not_image}")})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let p = progress_until(&mut ws, |v| v["frames_invalid"] == 2).await;
    assert!(
        p["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{p}"
    );
    assert_eq!(p["frames_received"], 12, "{p}");
    // The recording shows the live numbers while it records.
    let (_, live) = s.get(&t, &format!("/v1/recordings/{id}")).await;
    assert_eq!(live["status"], "recording", "{live}");
    assert_eq!(
        (
            live["stats"]["frames_in"].as_u64(),
            live["stats"]["frames_invalid"].as_u64()
        ),
        (Some(12), Some(2)),
        "{live}"
    );
    s.post(&t, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&t, &id, "completed").await;
    assert_eq!(done["stats"]["frames_invalid"], 2, "{done}");
    let m = ffprobe(&s.download(&t, &id, "mp4").await);
    // 10 frames 200 ms apart: 2 s at the preset's rate.
    let fps = rec["video"]["fps"].as_u64().unwrap();
    assert_eq!((m.codec.as_str(), m.frames), ("h264", 2 * fps), "{m:?}");
    assert!(
        (m.duration_s - 2.0).abs() <= 1.0 / fps as f64 + 1e-3,
        "{m:?}"
    );
}

/// A store that cannot take the media, past the time it is retried
/// (`storage.retry_for_s`, here none), fails the recording with
/// `storage_failed` and the store's reason; the next recording is unharmed.
/// (Within that time it waits instead: `tests/storage_outage.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_storage_write_says_storage_failed() {
    let s = start(|c| c.storage.retry_for_s = 0).await;
    let t = s.key("alice", false).await;
    let record = |blocked: bool| {
        let (s, t) = (&s, &t);
        async move {
            let rec = s
                .create(t, json!({"source": {"kind": "frames"}, "preset": "low"}))
                .await;
            let id = rec["id"].as_str().unwrap().to_string();
            if blocked {
                // A file where the recording's folder in the store should go.
                let dir = s.data.join("media").join("recordings");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(&id), b"in the way").unwrap();
            }
            let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), t)).await;
            send_frames(&mut ws, 5, 200.0, |i| jpeg(854, 480, i)).await;
            s.post(t, &format!("/v1/recordings/{id}/stop"), json!({}))
                .await;
            id
        }
    };
    let id = record(true).await;
    let failed = s.wait_status(&t, &id, "failed").await;
    assert_eq!(failed["error"]["code"], "storage_failed", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("storing the media failed")),
        "{failed}"
    );
    let id = record(false).await;
    s.wait_status(&t, &id, "completed").await;
}

/// One hostile `pts_ms` once made the server allocate gigabytes and crash
/// (and crash again on every restart, in recovery). Now the frame is refused
/// as invalid with a reason, the recording goes on, and its video stays
/// within its max duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_timestamp_is_refused_and_harms_nothing() {
    let s = start(|_| {}).await;
    let t = s.key("alice", false).await;
    let rec = s
        .create(
            &t,
            json!({"source": {"kind": "frames"}, "preset": "low", "max_duration_s": 10}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    send_frame(&mut ws, Some(0.0), jpeg(854, 480, 0)).await;
    send_frame(&mut ws, Some(1e12), jpeg(854, 480, 1)).await;
    // Within the lead the client may have, but past the 10 s limit.
    send_frame(&mut ws, Some(30_000.0), jpeg(854, 480, 2)).await;
    send_frame(&mut ws, Some(1_000.0), jpeg(854, 480, 3)).await;
    let p = progress_until(&mut ws, |v| v["frames_invalid"] == 2).await;
    assert!(
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timestamp")),
        "{p}"
    );
    progress_until(&mut ws, |v| v["frames_received"] == 4).await;
    s.post(&t, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&t, &id, "completed").await;
    assert_eq!(done["stats"]["frames_invalid"], 2, "{done}");
    let m = ffprobe(&s.download(&t, &id, "mp4").await);
    let fps = rec["video"]["fps"].as_u64().unwrap();
    assert_eq!(m.frames, 2 * fps, "two frames of 1 s: {m:?}");
    // The server is fine: another recording works.
    let (st, _) = s
        .post(&t, "/v1/recordings", json!({"source": {"kind": "frames"}}))
        .await;
    assert_eq!(st, 201);
}
