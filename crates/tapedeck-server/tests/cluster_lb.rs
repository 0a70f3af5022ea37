//! Three nodes (the real binary) on one PostgreSQL and one s3s-fs bucket
//! behind HAProxy, round robin with no stickiness: every call works
//! wherever it lands. A session another node holds is forwarded to it
//! (HTTP bodies and WebSockets streamed); a recording refused
//! `server_busy` where it was asked for is placed on the node with room.

mod support;

use serde_json::json;
use support::cluster::*;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_and_an_upload_through_any_node() {
    // n2 has almost no CPU budget: what it is asked to record goes elsewhere.
    let c = Cluster::start(3, |i| {
        if i == 1 {
            vec![("TAPEDECK_LIMITS__CPU_BUDGET_CORES".into(), "0.001".into())]
        } else {
            vec![]
        }
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;

    // A create without a key is refused where recordings are placed.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/recordings", c.node("n2").base))
        .body(vec![b'x'; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // n2 takes one camera, which fills its budget.
    let frames = json!({"source": {"kind": "frames"}, "preset": "low", "format": "mp4"});
    let (code, filler) = call(
        &c.node("n2").base,
        &ann,
        "POST",
        "/v1/recordings",
        Some(frames.clone()),
    )
    .await;
    assert_eq!(
        (code, filler["node"].as_str()),
        (201, Some("n2")),
        "{filler}"
    );
    // The next one asked of n2 is placed on a node that has room; it
    // writes live HLS.
    let mut with_hls = frames;
    with_hls["outputs"] = json!([{"kind": "hls", "segment_s": 1}]);
    let (code, rec, answered) = call_at(
        &c.node("n2").base,
        &ann,
        "POST",
        "/v1/recordings",
        Some(with_hls),
    )
    .await;
    if code != 201 {
        let (_, nodes) = call(&c.node("n2").base, &admin, "GET", "/v1/admin/nodes", None).await;
        panic!("{code} {rec} {nodes}");
    }
    let holder = rec["node"].as_str().unwrap().to_string();
    assert_ne!(holder, "n2", "{rec}");
    assert_eq!(answered, holder, "the holder answered the create");
    let id = rec["id"].as_str().unwrap().to_string();
    let fps = rec["video"]["fps"].as_u64().unwrap();

    // Its socket opened on a node that does not hold it: joined to the
    // holder end to end.
    let other = c.nodes.iter().find(|n| n.id != holder).unwrap();
    let url = format!(
        "{}/v1/recordings/{id}/frames?token={ann}",
        other.base.replace("http://", "ws://")
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(url.into_client_request().unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-tapedeck-node"].to_str().unwrap(),
        holder,
        "the socket reached the holder"
    );
    // 3 s at 5 fps.
    send_frames(&mut ws, 15, 200.0, |i| jpeg(640, 360, i)).await;
    progress_until(&mut ws, |v| v["frames_received"] == 15).await;
    // Control through the load balancer, whichever node it lands on.
    let (code, v, _) = call_at(
        &c.lb,
        &ann,
        "POST",
        &format!("/v1/recordings/{id}/pause"),
        None,
    )
    .await;
    assert_eq!((code, v["status"].as_str()), (200, Some("paused")), "{v}");
    let (code, v, _) = call_at(
        &c.lb,
        &ann,
        "POST",
        &format!("/v1/recordings/{id}/resume"),
        None,
    )
    .await;
    assert_eq!(
        (code, v["status"].as_str()),
        (200, Some("recording")),
        "{v}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let (code, v, node) =
            call_at(&c.lb, &ann, "GET", &format!("/v1/recordings/{id}"), None).await;
        assert_eq!(
            (code, v["stats"]["frames_in"].as_u64()),
            (200, Some(15)),
            "live stats: {v}"
        );
        seen.insert(node);
    }
    assert_eq!(
        seen.len(),
        1,
        "every read of a live recording answered by its holder: {seen:?}"
    );
    // Its live playlist, asked of any node, comes from the holder's work
    // folder (where the segments are).
    for base in [&c.lb, &other.base] {
        let r = reqwest::Client::new()
            .get(format!("{base}/v1/recordings/{id}/hls/index.m3u8"))
            .bearer_auth(&ann)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-tapedeck-node"].to_str().unwrap(), holder);
        let text = r.text().await.unwrap();
        assert!(
            text.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && text.contains("s00000.m4s"),
            "{text}"
        );
    }
    // A client passing itself off as a node is forwarded all the same.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/recordings/{id}", other.base))
        .bearer_auth(&ann)
        .header("x-tapedeck-forwarded-by", "n9 0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-tapedeck-node"].to_str().unwrap(), holder);
    // Its id spelt with an escape is the same recording: forwarded, and a
    // live one is not deleted.
    let escaped = format!("%72{}", &id[1..]);
    let (code, v, node) = call_at(
        &other.base,
        &ann,
        "DELETE",
        &format!("/v1/recordings/{escaped}"),
        None,
    )
    .await;
    assert_eq!(
        (code, v["error"]["code"].as_str(), node.as_str()),
        (409, Some("invalid_transition"), holder.as_str()),
        "{v}"
    );
    // Nor by a node that does not hold it, when a request reaches it
    // marked as forwarded (made here with the cluster's key).
    let key = String::from_utf8(
        std::process::Command::new("psql")
            .args([
                &c.pg,
                "-Atc",
                "SELECT value FROM cluster_secrets WHERE name = 'share_key'",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.trim().as_bytes()).unwrap();
    mac.update(b"tapedeck-forwarded");
    let mark = hex::encode(mac.finalize().into_bytes());
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/recordings/{id}", other.base))
        .bearer_auth(&ann)
        .header("x-tapedeck-forwarded-by", format!("n9 {mark}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-tapedeck-node"].to_str().unwrap(),
        other.id,
        "answered where it landed"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_transition", "{v}");
    for i in 15..20 {
        support::send_frame(
            &mut ws,
            Some(3000.0 + f64::from(i - 15) * 200.0),
            jpeg(640, 360, i),
        )
        .await;
    }
    progress_until(&mut ws, |v| v["frames_received"] == 20).await;
    let (code, _, _) = call_at(
        &c.lb,
        &ann,
        "POST",
        &format!("/v1/recordings/{id}/stop"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let _ = ws.close(None).await;
    let done = wait_for(&c.lb, &ann, &id, "completed").await;
    assert_eq!(done["node"], holder.as_str());
    let file = download_at(&c.lb, &ann, &id, c.dir.path()).await;
    let m = tapedeck_testkit::ffprobe(&file);
    // 20 frames x 200 ms = 4 s.
    assert_eq!((m.codec.as_str(), m.frames), ("h264", 4 * fps), "{m:?}");
    // Its VOD playlist and segments, from the bucket, through every node.
    for n in &c.nodes {
        let url = format!("{}/v1/recordings/{id}/hls/index.m3u8?token={ann}", n.base);
        let got = tapedeck_testkit::decode_count(&url);
        assert_eq!(
            (got.codec.as_str(), got.frames),
            ("h264", 4 * fps),
            "{} {got:?}",
            n.id
        );
    }

    // Another user cannot reach it through any node.
    let bob = c.key("bob", false);
    for n in &c.nodes {
        let (code, _) = call(&n.base, &bob, "GET", &format!("/v1/recordings/{id}"), None).await;
        assert_eq!(code, 404);
    }

    // A tus upload whose chunks land on every node in turn.
    let file = live_webm(c.dir.path(), 3);
    let bytes = std::fs::read(&file).unwrap();
    let r = tus_request(
        &c.lb,
        &ann,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", bytes.len().to_string())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);
    let path = header(&r, "location");
    let path = path.trim_start_matches(&c.lb).to_string();
    let chunk = bytes.len().div_ceil(3);
    for (i, part) in bytes.chunks(chunk).enumerate() {
        let base = &c.nodes[i % 3].base;
        let offset = i * chunk;
        let r = tus_request(base, &ann, "HEAD", &path, &[], vec![]).await;
        assert_eq!(
            header(&r, "upload-offset"),
            offset.to_string(),
            "HEAD on {base}"
        );
        let r = tus_request(
            base,
            &ann,
            "PATCH",
            &path,
            &[
                ("Upload-Offset", offset.to_string()),
                (
                    "Content-Type",
                    "application/offset+octet-stream".to_string(),
                ),
            ],
            part.to_vec(),
        )
        .await;
        assert_eq!(r.status(), 204, "PATCH on {base}");
    }
    let uid = path.rsplit('/').next().unwrap();
    let done = wait_for(&c.lb, &ann, uid, "completed").await;
    use sha2::Digest;
    assert_eq!(
        done["source"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_on_every_node_and_each_webhook_once() {
    let (url, hooks) = hooks().await;
    let c = Cluster::start(3, |_| {
        vec![
            ("TAPEDECK_WEBHOOKS__URLS".into(), format!("[\"{url}\"]")),
            ("TAPEDECK_WEBHOOKS__SECRET".into(), "whsec".into()),
            ("TAPEDECK_WEBHOOKS__RETRY_BASE_MS".into(), "100".into()),
        ]
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let mut sockets = vec![];
    for n in &c.nodes {
        let url = format!(
            "{}/v1/events?token={ann}",
            n.base.replace("http://", "ws://")
        );
        sockets.push(connect(&url).await);
    }

    // Two cameras, on n1 and n3, each with its events.
    let mut ids = vec![];
    for held in ["n1", "n3"] {
        let (code, rec) = call(
            &c.node(held).base,
            &ann,
            "POST",
            "/v1/recordings",
            Some(json!({"source": {"kind": "frames"}, "preset": "low"})),
        )
        .await;
        assert_eq!((code, rec["node"].as_str()), (201, Some(held)), "{rec}");
        let id = rec["id"].as_str().unwrap().to_string();
        let mut ws = connect(&format!(
            "{}/v1/recordings/{id}/frames?token={ann}",
            c.lb.replace("http://", "ws://")
        ))
        .await;
        send_frames(&mut ws, 5, 200.0, |i| jpeg(640, 360, i)).await;
        progress_until(&mut ws, |v| v["frames_received"] == 5).await;
        stop_and_complete(&c.lb, &ann, &id).await;
        ids.push(id);
    }
    let want = [
        "recording.created",
        "recording.started",
        "recording.stopped",
        "recording.completed",
    ];
    // Every node's listener saw both recordings' events, in order.
    for (n, ws) in c.nodes.iter().zip(sockets.iter_mut()) {
        for id in &ids {
            let mut seen = vec![];
            while seen.len() < want.len() {
                let ev = next_json(ws).await;
                assert_eq!(ev["recording"]["id"], id.as_str(), "on {}", n.id);
                seen.push(ev["type"].as_str().unwrap().to_string());
            }
            assert_eq!(seen, want, "on {}", n.id);
        }
    }

    // Each event was acknowledged once by the receiver: 8 in all, the one
    // refused at first sent again under the same delivery id.
    let start = std::time::Instant::now();
    loop {
        let acked = hooks.got.lock().unwrap().iter().filter(|g| g.3).count();
        if acked >= 8 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{:?}",
            hooks.got.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Time for a duplicate to show, if a node were to send one.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let got = hooks.got.lock().unwrap().clone();
    for id in &ids {
        for kind in want {
            let acked = got
                .iter()
                .filter(|g| g.0 == kind && &g.1 == id && g.3)
                .count();
            assert_eq!(acked, 1, "{kind} of {id}: {got:?}");
        }
    }
    assert_eq!(got.iter().filter(|g| g.3).count(), 8, "{got:?}");
    let refused = &got[0];
    assert!(!refused.3);
    assert_eq!(
        got.iter().filter(|g| g.2 == refused.2).count(),
        2,
        "retried under its delivery id: {got:?}"
    );
}

/// A call whose two Chromium participants loaded their pages from two
/// nodes while a third holds the room, with a WHIP publisher through the
/// load balancer, recorded by the host through the load balancer: each
/// sees the other, and every track decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_across_nodes_is_recorded() {
    use support::rooms::{codecs, decode_errors, make_clips};
    let c = Cluster::start(3, |_| vec![]);
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let (code, room) = call(
        &c.node("n3").base,
        &ann,
        "POST",
        "/v1/rooms",
        Some(json!({"name": "standup"})),
    )
    .await;
    assert_eq!((code, room["node"].as_str()), (201, Some("n3")), "{room}");
    let room = room["id"].as_str().unwrap().to_string();
    let invite = |name: &'static str| {
        let (lb, ann, room) = (c.lb.clone(), ann.clone(), room.clone());
        async move {
            let (code, v) = call(
                &lb,
                &ann,
                "POST",
                &format!("/v1/rooms/{room}/invites"),
                Some(json!({"name": name})),
            )
            .await;
            assert_eq!(code, 201, "{v}");
            v["token"].as_str().unwrap().to_string()
        }
    };
    let guest = invite("Bob (guest)").await;
    let publisher = invite("Pub").await;

    // Recorded by the host through the load balancer: made on the room's node.
    let (code, rec, answered) = call_at(
        &c.lb,
        &ann,
        "POST",
        "/v1/recordings",
        Some(json!({"source": {"kind": "room", "room": room}})),
    )
    .await;
    assert_eq!(
        (code, rec["node"].as_str(), answered.as_str()),
        (201, Some("n3"), "n3"),
        "{rec}"
    );
    let id = rec["id"].as_str().unwrap().to_string();

    let (video, audio) = (
        c.dir.path().join("clip.ivf"),
        c.dir.path().join("clip.opus"),
    );
    make_clips(&video, &audio);
    let load = tapedeck_testkit::loadgen::Load {
        whip: format!("{}/v1/rooms/{room}/whip", c.lb),
        tokens: vec![publisher],
        video,
        audio,
        seconds: 8,
        stagger_ms: 0,
        call: false,
    };
    let whip = tokio::spawn(async move { tapedeck_testkit::loadgen::publish(&load).await });
    let out = page_script(
        "call_cluster.mjs",
        vec![
            c.node("n1").base.clone(),
            c.node("n2").base.clone(),
            room.clone(),
            ann.clone(),
            guest,
            "3".into(),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(out["pageErrors"], json!([]), "{out}");
    assert!(out.get("guestErrors").is_none(), "{out}");
    for who in ["host", "guest"] {
        assert!(
            out[who]["video"]["framesDecoded"].as_u64() > Some(30),
            "{who}: {out}"
        );
        assert!(
            out[who]["audio"]["packets"].as_u64() > Some(50),
            "{who}: {out}"
        );
    }
    let sent = whip.await.unwrap().unwrap();
    assert_eq!(sent["connected"], 1, "{sent}");

    let done = stop_and_complete(&c.lb, &ann, &id).await;
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(
        tracks.len(),
        6,
        "three people, a picture and a sound each: {done}"
    );
    for t in tracks {
        let file = track_file(&c.lb, &ann, &id, t["id"].as_str().unwrap(), c.dir.path()).await;
        assert_eq!(decode_errors(&file), "", "{t}");
        if t["kind"] == "video" {
            assert!(tapedeck_testkit::ffprobe(&file).frames > 30, "{t}");
        } else {
            assert_eq!(codecs(&file), ["opus"], "{t}");
        }
    }
}
