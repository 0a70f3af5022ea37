//! A cluster node killed with `kill -9` (the real binary, three nodes on
//! one PostgreSQL and one s3s-fs bucket, HAProxy in front) while it holds
//! a camera, a web recording rendering, a call with two Chromium
//! participants being recorded and a tus upload halfway: another node
//! takes each over from what was shipped to the bucket and finishes it.
//! The host's call page is on a surviving node (its socket forwarded); the
//! guest's comes through the load balancer (its socket may reach the
//! doomed node straight): both must end with `node_lost`.

mod support;

use serde_json::{Value, json};
use support::cluster::*;
use support::*;

const PAGE: &str = "<body style='margin:0;background:#eee'><div id=b style='width:80px;height:80px;background:#c00'></div>
<script>let n=0;(function f(){document.getElementById('b').style.marginLeft=(n++%400)+'px';requestAnimationFrame(f)})()</script></body>";

/// Seconds of the web recording's script.
const WEB_S: u64 = 40;

/// Recording `id`'s HLS playlist, as text.
async fn playlist(base: &str, token: &str, id: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}/v1/recordings/{id}/hls/index.m3u8"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn get(base: &str, token: &str, id: &str) -> Value {
    call(base, token, "GET", &format!("/v1/recordings/{id}"), None)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_work_is_finished_elsewhere() {
    use support::rooms::decode_errors;
    use tapedeck_testkit::{Page, PageServer};
    let site = PageServer::start(vec![("/", Page::Body("text/html", PAGE.into()))]);
    let hosts = format!("[\"127.0.0.1:{}\"]", site.port);
    let (hook_url, hooks) = hooks().await;
    let mut c = Cluster::start(3, |_| {
        vec![
            ("TAPEDECK_WEB__ALLOWED_HOSTS".into(), hosts.clone()),
            (
                "TAPEDECK_WEBHOOKS__URLS".into(),
                format!("[\"{hook_url}\"]"),
            ),
            ("TAPEDECK_WEBHOOKS__SECRET".into(), "whsec".into()),
            ("TAPEDECK_WEBHOOKS__RETRY_BASE_MS".into(), "100".into()),
        ]
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let lb = c.lb.clone();

    let doomed = "n1".to_string();
    let x = 0;
    let xb = c.nodes[0].base.clone();
    let yb = c.nodes[1].base.clone();

    // The call: a room on the doomed node, its two participants' pages
    // loaded from another, recorded.
    let (code, room) = call(
        &xb,
        &ann,
        "POST",
        "/v1/rooms",
        Some(json!({"name": "lost"})),
    )
    .await;
    assert_eq!(
        (code, room["node"].as_str()),
        (201, Some(doomed.as_str())),
        "{room}"
    );
    let room = room["id"].as_str().unwrap().to_string();
    let (code, inv) = call(
        &lb,
        &ann,
        "POST",
        &format!("/v1/rooms/{room}/invites"),
        Some(json!({"name": "Bob (guest)"})),
    )
    .await;
    assert_eq!(code, 201, "{inv}");
    let mut pages = LiveScript::start(
        "call_lost.mjs",
        vec![
            yb.clone(),
            room.clone(),
            ann.clone(),
            inv["token"].as_str().unwrap().to_string(),
            lb.clone(),
        ],
    );
    pages.wait_line("joined", 90).await;
    let (code, call_rec) = call(
        &lb,
        &ann,
        "POST",
        "/v1/recordings",
        // A grid with a live output: its grid is composed live too when
        // the node dies.
        Some(
            json!({"source": {"kind": "room", "room": room, "layout": "grid"},
                    "width": 640, "height": 360, "fps": 15,
                    "outputs": [{"kind": "hls", "segment_s": 1}]}),
        ),
    )
    .await;
    assert_eq!(
        (code, call_rec["node"].as_str()),
        (201, Some(doomed.as_str())),
        "{call_rec}"
    );
    let call_rec = call_rec["id"].as_str().unwrap().to_string();

    // A camera on the doomed node, sending through the load balancer.
    let (code, cam) = call(
        &xb,
        &ann,
        "POST",
        "/v1/recordings",
        Some(json!({"source": {"kind": "frames"}, "preset": "low"})),
    )
    .await;
    assert_eq!(
        (code, cam["node"].as_str()),
        (201, Some(doomed.as_str())),
        "{cam}"
    );
    let cam = cam["id"].as_str().unwrap().to_string();
    let mut ws = connect(&format!(
        "{}/v1/recordings/{cam}/frames?token={ann}",
        lb.replace("http://", "ws://")
    ))
    .await;
    // 6 s of pictures at 5 fps, as a camera sends them.
    send_frames(&mut ws, 30, 200.0, |i| jpeg(640, 360, i)).await;
    progress_until(&mut ws, |v| v["frames_received"] == 30).await;

    // An upload, half of it sent to the doomed node.
    let bytes = std::fs::read(live_webm(c.dir.path(), 3)).unwrap();
    let half = bytes.len() / 2;
    let octets = (
        "Content-Type",
        "application/offset+octet-stream".to_string(),
    );
    let r = tus_request(
        &xb,
        &ann,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", bytes.len().to_string()), octets.clone()],
        bytes[..half].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let path = header(&r, "location").trim_start_matches(&xb).to_string();
    let upload = path.rsplit('/').next().unwrap().to_string();

    // A deterministic web recording rendering on the doomed node (the
    // cluster's queue gives it to any node: until one lands there, the
    // others are cancelled).
    let mut tries = 0;
    let web = loop {
        let (code, web) = call(
            &lb,
            &ann,
            "POST",
            "/v1/recordings",
            Some(
                json!({"source": {"kind": "web", "url": site.url("/"), "split": "off",
                "script": [{"type": "wait", "duration_ms": WEB_S * 1000}]}, "preset": "low"}),
            ),
        )
        .await;
        assert_eq!(code, 201, "{web}");
        let web = web["id"].as_str().unwrap().to_string();
        let node = loop {
            let r = get(&lb, &ann, &web).await;
            if r["status"] == "recording" {
                break r["node"].as_str().unwrap().to_string();
            }
            assert_eq!(r["status"], "pending", "{r}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        if node == doomed {
            break web;
        }
        let (code, r) = call(
            &lb,
            &ann,
            "POST",
            &format!("/v1/recordings/{web}/cancel"),
            None,
        )
        .await;
        assert_eq!(code, 200, "{r}");
        tries += 1;
        assert!(tries < 20, "no web recording was claimed by {doomed}");
    };

    // The call's recording has both participants' pictures (a loaded
    // machine may take a while to send the first key frames), shipped a
    // segment later.
    let tracks = c.nodes[x].data.join("work").join(&call_rec).join("tracks");
    let start = std::time::Instant::now();
    loop {
        let videos = std::fs::read(tracks.join("manifest.json"))
            .ok()
            .and_then(|m| serde_json::from_slice::<Vec<Value>>(&m).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t["kind"] == "video")
            .filter(|t| {
                let name = format!(
                    "{}.{}",
                    t["id"].as_str().unwrap_or(""),
                    t["container"].as_str().unwrap_or("")
                );
                let f = tracks.join(name);
                std::fs::metadata(f).map_or(0, |m| m.len()) > 100_000
            })
            .count();
        if videos >= 2 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no pictures in {tracks:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The call goes on a few seconds (its grid composed live: a live
    // segment is out), then the node dies.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let live = playlist(&lb, &ann, &call_rec).await;
    assert!(
        live.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && live.contains(".m4s"),
        "the live grid before the kill: {live}"
    );
    let r = get(&lb, &ann, &web).await;
    assert_eq!(
        r["status"], "recording",
        "still rendering when its node dies: {r}"
    );
    c.nodes[x].proc.kill_9();
    let killed = std::time::Instant::now();
    drop(ws);
    // At once, before another node takes it over, the upload's node cannot
    // be reached: try again, not gone.
    let r = tus_request(&yb, &ann, "HEAD", &path, &[], vec![]).await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(header(&r, "retry-after"), "5");

    // The upload continues on another node from the bucket's offset.
    let offset = loop {
        let r = tus_request(&lb, &ann, "HEAD", &path, &[], vec![]).await;
        if r.status() == 200 {
            break header(&r, "upload-offset");
        }
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(60),
            "{}",
            r.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    println!(
        "the upload answered on another node {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(offset, half.to_string());
    let r = tus_request(
        &lb,
        &ann,
        "PATCH",
        &path,
        &[("Upload-Offset", half.to_string()), octets],
        bytes[half..].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 204);

    let mut last = std::time::Duration::ZERO;
    let mut done = std::collections::HashMap::new();
    for id in [&cam, &call_rec, &upload, &web] {
        let r = wait_for(&lb, &ann, id, "completed").await;
        last = last.max(killed.elapsed());
        assert_ne!(r["node"].as_str(), Some(doomed.as_str()), "{r}");
        done.insert(id.clone(), r);
    }
    println!(
        "every recording completed {:.1} s after the kill",
        last.as_secs_f64()
    );

    // The upload: the file, byte for byte.
    use sha2::Digest;
    assert_eq!(
        done[&upload]["source"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "{}",
        done[&upload]
    );
    // The camera: finished from its shipped spool, at most a segment short.
    let r = &done[&cam];
    assert_eq!(r["end_reason"], "node_lost", "{r}");
    let p = tapedeck_testkit::ffprobe(&download_at(&lb, &ann, &cam, c.dir.path()).await);
    assert!(
        p.duration_s >= 6.0 - 2.0,
        "6 s sent, a 2 s segment may be lost: {p:?}"
    );
    // The web recording: rendered again from its start, every frame.
    let r = &done[&web];
    let p = tapedeck_testkit::ffprobe(&download_at(&lb, &ann, &web, c.dir.path()).await);
    let fps = r["video"]["fps"].as_u64().unwrap();
    assert_eq!(p.frames, WEB_S * fps, "{p:?} {r}");
    // The call: every participant's track from the shipped files, decoding
    // cleanly.
    let r = &done[&call_rec];
    assert_eq!(r["end_reason"], "node_lost", "{r}");
    let tracks = r["tracks"].as_array().unwrap();
    assert_eq!(
        tracks.len(),
        4,
        "two people, a picture and a sound each: {r}"
    );
    for t in tracks {
        let file = track_file(
            &lb,
            &ann,
            &call_rec,
            t["id"].as_str().unwrap(),
            c.dir.path(),
        )
        .await;
        assert_eq!(decode_errors(&file), "", "{t}");
        assert!(support::rooms::duration_s(&file) > 1.0, "{t}");
    }
    // Its grid made from them after, and its VOD cut from that.
    assert_eq!(r["media"]["video_codec"], "h264", "{r}");
    let vod = playlist(&lb, &ann, &call_rec).await;
    assert!(
        vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains(".m4s"),
        "{vod}"
    );
    // Both pages were told the call's node was lost, and joined again on
    // the node that took the room.
    let out = pages.finish().await;
    assert_eq!(out["ended"]["host"], "node_lost", "{out}");
    assert_eq!(out["ended"]["guest"], "node_lost", "{out}");
    assert_eq!(out["rejoined"], true, "{out}");
    assert_ne!(out["takenBy"], out["node"], "{out}");

    // Every recording's webhooks: each event once (one delivery id, one
    // acknowledged), none lost.
    let start = std::time::Instant::now();
    loop {
        let got = hooks.got.lock().unwrap().clone();
        let acked =
            |ev: &str, id: &str| got.iter().filter(|g| g.0 == ev && g.1 == id && g.3).count();
        if [&cam, &call_rec, &upload, &web]
            .iter()
            .all(|id| acked("recording.completed", id) == 1)
        {
            for id in [&cam, &call_rec, &upload, &web] {
                for ev in ["recording.created", "recording.completed"] {
                    assert_eq!(acked(ev, id), 1, "{ev} {id}: {got:?}");
                }
            }
            let mut ids: Vec<&String> = got.iter().filter(|g| g.3).map(|g| &g.2).collect();
            let n = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), n, "a delivery acknowledged twice: {got:?}");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}
