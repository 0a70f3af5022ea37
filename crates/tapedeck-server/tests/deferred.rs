//! Cameras beyond the CPU budget wait rather than being refused: each is
//! accepted, its pictures spooled as they arrive (nothing decoded or
//! encoded), and encoded from the spool after stop when the budget has
//! room, in the fair queue (`queue_position`, `stats.encode_lag_s`); only
//! past `limits.max_deferred_cameras`, or without
//! `limits.min_free_disk_bytes` free, is one refused with `server_busy`.

mod support;

use serde_json::json;
use support::*;
use tapedeck_testkit::ffprobe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_beyond_the_budget_are_spooled_and_encoded_after() {
    // A 720p camera at 5 fps costs 0.066 of a core (0.034 more when busy):
    // one fits in 0.09.
    let s = start(|c| {
        c.limits.cpu_budget_cores = 0.09;
        c.limits.max_deferred_cameras = 4;
    })
    .await;
    let ann = s.key("ann", false).await;
    let bob = s.key("bob", false).await;
    let camera = json!({"source": {"kind": "frames", "input_fps": 5}, "preset": "medium"});
    let mut cams = vec![];
    for i in 0..5 {
        let who = if i % 2 == 0 { &ann } else { &bob };
        let r = s.create(who, camera.clone()).await;
        assert_eq!(r["status"], "pending", "{r}");
        cams.push((who.clone(), r["id"].as_str().unwrap().to_string()));
    }
    // One live, four deferred: the sixth is refused, the spool's limit.
    let (st, v) = s.post(&ann, "/v1/recordings", camera.clone()).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("server_busy")),
        "{v}"
    );
    let why = v["error"]["message"].as_str().unwrap();
    assert!(why.contains("limits.max_deferred_cameras"), "{why}");
    let m = s.metrics().await;
    assert!(
        m.contains("tapedeck_cpu_cores{what=\"reserved\"} 0.066"),
        "{m}"
    );

    // 12 s of pictures each (60 at 5 fps), the same for all.
    let mut sockets = vec![];
    for (who, id) in &cams {
        let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), who)).await;
        send_frames(&mut ws, 60, 200.0, |k| jpeg(1280, 720, k)).await;
        sockets.push(ws);
    }
    // A deferred one says how far behind it is while it records.
    let (who, last) = &cams[4];
    let (_, r) = s.get(who, &format!("/v1/recordings/{last}")).await;
    assert_eq!(r["status"], "recording", "{r}");
    assert!(r["stats"]["encode_lag_s"].as_f64() > Some(11.0), "{r}");
    let (who, first) = &cams[0];
    let (_, r) = s.get(who, &format!("/v1/recordings/{first}")).await;
    assert!(
        r["stats"].get("encode_lag_s").is_none(),
        "encoded live: {r}"
    );

    // All stopped at once: the encodes wait their turn in the queue.
    for (who, id) in &cams {
        let (st, _) = s
            .post(who, &format!("/v1/recordings/{id}/stop"), json!({}))
            .await;
        assert_eq!(st, 200);
    }
    // Polled together until all are done: some wait, processing, with a
    // place in the queue and their lag.
    let mut seen_waiting = false;
    let mut done = std::collections::HashMap::new();
    while done.len() < cams.len() {
        for (who, id) in &cams {
            if done.contains_key(id) {
                continue;
            }
            let (_, r) = s.get(who, &format!("/v1/recordings/{id}")).await;
            if r["queue_position"].as_u64().is_some() {
                assert_eq!(r["status"], "processing", "{r}");
                assert!(r["stats"]["encode_lag_s"].as_f64() > Some(11.0), "{r}");
                seen_waiting = true;
            }
            if r["status"] == "completed" || r["status"] == "failed" {
                done.insert(id.clone(), r);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for (who, id) in &cams {
        let done = &done[id];
        assert_eq!(done["status"], "completed", "{done}");
        assert!(done["stats"].get("encode_lag_s").is_none(), "{done}");
        assert_eq!(done["stats"]["frames_in"], 60, "{done}");
        // Every picture in the file: 12 s at the preset's 30 fps.
        let p = ffprobe(&s.download(who, id, "mp4").await);
        assert_eq!(
            (p.width, p.height, p.frames),
            (1280, 720, 360),
            "{id}: {p:?}"
        );
    }
    assert!(seen_waiting, "no encode was seen waiting for its turn");
    let m = s.metrics().await;
    assert!(m.contains("tapedeck_cpu_cores{what=\"reserved\"} 0"), "{m}");
    drop(sockets);
}

/// Pictures wait on the data folder's disk: without the free space
/// `limits.min_free_disk_bytes` asks for, a camera beyond the budget is
/// refused as before, and one that fits is still taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_is_not_deferred_onto_a_full_disk() {
    let s = start(|c| {
        c.limits.cpu_budget_cores = 0.09;
        c.limits.min_free_disk_bytes = u64::MAX;
    })
    .await;
    let ann = s.key("ann", false).await;
    let camera = json!({"source": {"kind": "frames", "input_fps": 5}, "preset": "medium"});
    let r = s.create(&ann, camera.clone()).await;
    assert_eq!(r["status"], "pending", "{r}");
    let (st, v) = s.post(&ann, "/v1/recordings", camera).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("server_busy")),
        "{v}"
    );
    let why = v["error"]["message"].as_str().unwrap();
    assert!(why.contains("limits.min_free_disk_bytes"), "{why}");
}

/// A deferred camera whose budget frees up while it records begins its
/// encode then: the encoder follows its spool from the start, the lag
/// falls to about a picture, and stop no longer waits for a turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_camera_is_encoded_while_it_records_once_there_is_room() {
    let s = start(|c| c.limits.cpu_budget_cores = 0.09).await;
    let ann = s.key("ann", false).await;
    let camera = json!({"source": {"kind": "frames", "input_fps": 5}, "preset": "medium"});
    let live = s.create(&ann, camera.clone()).await;
    let late = s.create(&ann, camera).await;
    let (live, late) = (live["id"].as_str().unwrap(), late["id"].as_str().unwrap());
    let mut ws_live = connect(&s.ws_url(&format!("/v1/recordings/{live}/frames"), &ann)).await;
    let mut ws_late = connect(&s.ws_url(&format!("/v1/recordings/{late}/frames"), &ann)).await;
    send_frames(&mut ws_live, 30, 200.0, |k| jpeg(1280, 720, k)).await;
    send_frames(&mut ws_late, 30, 200.0, |k| jpeg(1280, 720, k)).await;
    let (_, r) = s.get(&ann, &format!("/v1/recordings/{late}")).await;
    assert!(r["stats"]["encode_lag_s"].as_f64() > Some(5.0), "{r}");

    // The live camera ends: its budget is free for the deferred encode.
    let (st, _) = s
        .post(&ann, &format!("/v1/recordings/{live}/stop"), json!({}))
        .await;
    assert_eq!(st, 200);
    s.wait_status(&ann, live, "completed").await;
    let mut caught_up = None;
    for i in 30..90u32 {
        send_frame(&mut ws_late, Some(f64::from(i) * 200.0), jpeg(1280, 720, i)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, r) = s.get(&ann, &format!("/v1/recordings/{late}")).await;
        assert_eq!(r["status"], "recording", "{r}");
        let lag = r["stats"]["encode_lag_s"].as_f64().unwrap();
        if i > 40 && lag < 1.0 {
            caught_up = Some(u64::from(i) + 1);
            break;
        }
    }
    let sent = caught_up.expect("the deferred encode never caught up while recording");
    let (st, _) = s
        .post(&ann, &format!("/v1/recordings/{late}/stop"), json!({}))
        .await;
    assert_eq!(st, 200);
    // Stopped, it has no turn to wait for.
    let done = loop {
        let (_, r) = s.get(&ann, &format!("/v1/recordings/{late}")).await;
        assert!(r.get("queue_position").is_none_or(|p| p.is_null()), "{r}");
        if r["status"] == "completed" || r["status"] == "failed" {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["stats"]["frames_in"].as_u64(), Some(sent), "{done}");
    // Every picture: `sent` at 5 fps, 30 fps out.
    let p = ffprobe(&s.download(&ann, late, "mp4").await);
    assert_eq!(
        (p.width, p.height, p.frames),
        (1280, 720, sent * 6),
        "{p:?}"
    );
    drop((ws_live, ws_late));
}

/// A deferred camera stopped while its pictures still come takes none
/// after the stop, though its encode waits for its turn: its socket is
/// closed, and the file holds the pictures before the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_deferred_camera_takes_no_more_pictures() {
    let s = start(|c| c.limits.cpu_budget_cores = 0.09).await;
    let ann = s.key("ann", false).await;
    let camera = json!({"source": {"kind": "frames", "input_fps": 5}, "preset": "medium"});
    // A pending camera holds the budget: the second is deferred, and its
    // encode cannot run until the first is gone.
    let holder = s.create(&ann, camera.clone()).await;
    let late = s.create(&ann, camera).await;
    let (holder, late) = (holder["id"].as_str().unwrap(), late["id"].as_str().unwrap());
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{late}/frames"), &ann)).await;
    send_frames(&mut ws, 25, 200.0, |k| jpeg(1280, 720, k)).await;
    let (st, r) = s
        .post(&ann, &format!("/v1/recordings/{late}/stop"), json!({}))
        .await;
    assert_eq!((st, r["status"].as_str()), (200, Some("processing")), "{r}");
    // More pictures: refused, the socket closes.
    let mut closed = false;
    for k in 25..200u32 {
        if !try_send_frame(&mut ws, f64::from(k) * 200.0, jpeg(1280, 720, k)).await {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(closed, "the socket of a stopped camera stayed open");
    let (_, r) = s.get(&ann, &format!("/v1/recordings/{late}")).await;
    assert_eq!(r["status"], "processing", "{r}");
    assert_eq!(r["queue_position"], 1, "{r}");
    // Being finished, it takes no action: answered at once, not once the
    // encode has run.
    let path = format!("/v1/recordings/{late}/cancel");
    let cancel = s.post(&ann, &path, json!({}));
    let (st, v) = tokio::time::timeout(std::time::Duration::from_secs(5), cancel)
        .await
        .expect("the cancel was answered at once");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("invalid_transition")),
        "{v}"
    );
    // The holder goes: the encode runs, with the 25 pictures before stop.
    let (st, _) = s
        .post(&ann, &format!("/v1/recordings/{holder}/cancel"), json!({}))
        .await;
    assert_eq!(st, 200);
    s.wait_status(&ann, late, "completed").await;
    // 25 pictures at 5 fps, 30 fps out.
    let p = ffprobe(&s.download(&ann, late, "mp4").await);
    assert_eq!(p.frames, 150, "{p:?}");
}
