//! Work in a cluster of three nodes (the real binary) on one PostgreSQL
//! and one s3s-fs bucket behind HAProxy: web recordings of several users
//! share the nodes fairly within each node's budget; a call's grid and an
//! upload's transcode run on a node with room; a rolling restart of every
//! node while recordings of every kind run loses none of them.

mod support;

use serde_json::json;
use support::cluster::*;
use support::*;

const PAGE: &str = "<body style='margin:0;background:#eee'><div id=b style='width:80px;height:80px;background:#c00'></div>
<script>let n=0;(function f(){document.getElementById('b').style.marginLeft=(n++%400)+'px';requestAnimationFrame(f)})()</script></body>";

fn reserved_cores(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("tapedeck_cpu_cores{what=\"reserved\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reserved figure in {metrics}"))
}

/// A low-preset web recording is estimated at 0.558 of a core: with 0.6
/// per node, each node renders one at a time.
const NODE_BUDGET: f64 = 0.6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_recordings_of_three_users_share_the_cluster_fairly() {
    use tapedeck_testkit::{Page, PageServer};
    let site = PageServer::start(vec![("/", Page::Body("text/html", PAGE.into()))]);
    let hosts = format!("[\"127.0.0.1:{}\"]", site.port);
    let c = Cluster::start(3, |_| {
        vec![
            ("TAPEDECK_WEB__ALLOWED_HOSTS".into(), hosts.clone()),
            (
                "TAPEDECK_LIMITS__CPU_BUDGET_CORES".into(),
                NODE_BUDGET.to_string(),
            ),
        ]
    });
    let admin = c.key("root", true);
    let users: Vec<(String, String)> = ["ann", "bob", "cat"]
        .iter()
        .map(|u| (u.to_string(), c.key(u, false)))
        .collect();
    c.wait_alive(&admin).await;
    let body = json!({"source": {"kind": "web", "url": site.url("/"),
        "script": [{"type": "wait", "duration_ms": 500}]}, "preset": "low"});

    // Ten each, ann's all first, through the load balancer.
    let mut ids: Vec<(usize, String)> = vec![];
    // Ten each that complete, and one of cat's more to cancel.
    for (u, (_, tok)) in users.iter().enumerate() {
        for _ in 0..(if u == 2 { 11 } else { 10 }) {
            let (code, r) = call(&c.lb, tok, "POST", "/v1/recordings", Some(body.clone())).await;
            assert_eq!((code, r["status"].as_str()), (201, Some("pending")), "{r}");
            ids.push((u, r["id"].as_str().unwrap().to_string()));
        }
    }
    // One of cat's, still waiting, cancelled through any node: out of the
    // queue at once.
    let (_, cat_last) = ids.pop().unwrap();
    let (code, v) = call(
        &c.lb,
        &users[2].1,
        "POST",
        &format!("/v1/recordings/{cat_last}/cancel"),
        None,
    )
    .await;
    assert_eq!(
        (code, v["status"].as_str()),
        (200, Some("cancelled")),
        "{v}"
    );

    // Every node's reservation stays within its budget while they run.
    let mut peak = [0.0f64; 3];
    let mut done = vec![];
    for (u, id) in &ids {
        let tok = &users[*u].1;
        let r = loop {
            let (_, r) = call(&c.lb, tok, "GET", &format!("/v1/recordings/{id}"), None).await;
            for (i, n) in c.nodes.iter().enumerate() {
                let m = reqwest::get(format!("{}/metrics", n.base))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                peak[i] = peak[i].max(reserved_cores(&m));
            }
            match r["status"].as_str() {
                Some("completed") => break r,
                Some("failed" | "cancelled") => panic!("{id}: {r}"),
                _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        };
        done.push((*u, r));
    }
    for (i, p) in peak.iter().enumerate() {
        assert!(*p <= NODE_BUDGET + 1e-9, "n{} reserved {p}", i + 1);
    }
    // Spread over the nodes.
    let nodes: std::collections::BTreeSet<&str> = done
        .iter()
        .map(|(_, r)| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    // Whole files.
    for (u, r) in done.iter().step_by(7) {
        let id = r["id"].as_str().unwrap();
        let p =
            tapedeck_testkit::ffprobe(&download_at(&c.lb, &users[*u].1, id, c.dir.path()).await);
        assert_eq!((p.width, p.height, p.frames), (854, 480, 12), "{id}: {p:?}");
    }
    // Fair: no user's first finished after another's tenth.
    let finished = |u: usize| -> Vec<String> {
        let mut t: Vec<String> = done
            .iter()
            .filter(|(x, _)| *x == u)
            .map(|(_, r)| r["completed_at"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    for u in 0..3 {
        for v in 0..3 {
            let (first, last) = (finished(u)[0].clone(), finished(v).last().unwrap().clone());
            assert!(
                first <= last,
                "{}'s first finished at {first}, after {}'s last at {last}",
                users[u].0,
                users[v].0
            );
        }
    }
    // Nothing is left in anyone's reservation.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for n in &c.nodes {
        let m = reqwest::get(format!("{}/metrics", n.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(reserved_cores(&m), 0.0, "{}: {m}", n.id);
    }
}

/// Every node restarted in turn (SIGTERM, as systemd does, then started
/// again) while web recordings wait and render, a camera records and an
/// upload is under way: each drains (says so, takes no new work, lets its
/// sessions end for `drain_s`) and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_nothing() {
    use tapedeck_testkit::{Page, PageServer};
    let site = PageServer::start(vec![("/", Page::Body("text/html", PAGE.into()))]);
    let hosts = format!("[\"127.0.0.1:{}\"]", site.port);
    let mut c = Cluster::start(3, |_| {
        vec![
            ("TAPEDECK_WEB__ALLOWED_HOSTS".into(), hosts.clone()),
            (
                "TAPEDECK_LIMITS__CPU_BUDGET_CORES".into(),
                NODE_BUDGET.to_string(),
            ),
            ("TAPEDECK_CLUSTER__DRAIN_S".into(), "4".into()),
        ]
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let lb = c.lb.clone();

    // A camera held by n1, its socket through the load balancer.
    let (code, cam) = call(
        &c.node("n1").base,
        &ann,
        "POST",
        "/v1/recordings",
        Some(json!({"source": {"kind": "frames"}, "preset": "low"})),
    )
    .await;
    assert_eq!(code, 201, "{cam}");
    let cam = cam["id"].as_str().unwrap().to_string();
    let mut ws = connect(&format!(
        "{}/v1/recordings/{cam}/frames?token={ann}",
        lb.replace("http://", "ws://")
    ))
    .await;
    send_frames(&mut ws, 10, 200.0, |i| jpeg(640, 360, i)).await;
    progress_until(&mut ws, |v| v["frames_received"] == 10).await;

    // Twelve web recordings, waiting and rendering throughout.
    let body = json!({"source": {"kind": "web", "url": site.url("/"),
        "script": [{"type": "wait", "duration_ms": 500}]}, "preset": "low"});
    let mut webs = vec![];
    for _ in 0..12 {
        let (code, r) = call(&lb, &ann, "POST", "/v1/recordings", Some(body.clone())).await;
        assert_eq!(code, 201, "{r}");
        webs.push(r["id"].as_str().unwrap().to_string());
    }

    // An upload, a third sent before the restarts.
    let file = live_webm(c.dir.path(), 3);
    let bytes = std::fs::read(&file).unwrap();
    let r = tus_request(
        &lb,
        &ann,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", bytes.len().to_string())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 201);
    let path = header(&r, "location").trim_start_matches(&lb).to_string();
    let third = bytes.len() / 3;
    let patch = |from: usize, to: usize| {
        let (lb, ann, path, part) = (
            lb.clone(),
            ann.clone(),
            path.clone(),
            bytes[from..to].to_vec(),
        );
        async move {
            // As a tus client does: HEAD for the offset, then PATCH, again
            // while a node it reaches is restarting.
            let start = std::time::Instant::now();
            loop {
                let r = tus_request(&lb, &ann, "HEAD", &path, &[], vec![]).await;
                if r.status() == 200 && header(&r, "upload-offset") == from.to_string() {
                    let r = tus_request(
                        &lb,
                        &ann,
                        "PATCH",
                        &path,
                        &[
                            ("Upload-Offset", from.to_string()),
                            (
                                "Content-Type",
                                "application/offset+octet-stream".to_string(),
                            ),
                        ],
                        part.clone(),
                    )
                    .await;
                    if r.status() == 204 {
                        return;
                    }
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(60),
                    "upload stuck at {from}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    };
    patch(0, third).await;

    // A call held by n1, a WHIP publisher in it through the load balancer,
    // recorded.
    let (code, room) = call(
        &c.node("n1").base,
        &ann,
        "POST",
        "/v1/rooms",
        Some(json!({"name": "rolling"})),
    )
    .await;
    assert_eq!((code, room["node"].as_str()), (201, Some("n1")), "{room}");
    let room = room["id"].as_str().unwrap().to_string();
    let (code, inv) = call(
        &lb,
        &ann,
        "POST",
        &format!("/v1/rooms/{room}/invites"),
        Some(json!({"name": "Pub"})),
    )
    .await;
    assert_eq!(code, 201, "{inv}");
    let (code, call_rec) = call(
        &lb,
        &ann,
        "POST",
        "/v1/recordings",
        Some(json!({"source": {"kind": "room", "room": room}})),
    )
    .await;
    assert_eq!(
        (code, call_rec["node"].as_str()),
        (201, Some("n1")),
        "{call_rec}"
    );
    let call_rec = call_rec["id"].as_str().unwrap().to_string();
    let (video, audio) = (
        c.dir.path().join("clip.ivf"),
        c.dir.path().join("clip.opus"),
    );
    support::rooms::make_clips(&video, &audio);
    let load = tapedeck_testkit::loadgen::Load {
        whip: format!("{lb}/v1/rooms/{room}/whip"),
        tokens: vec![inv["token"].as_str().unwrap().to_string()],
        video,
        audio,
        seconds: 8,
        stagger_ms: 0,
        call: false,
    };
    let publisher = tokio::spawn(async move { tapedeck_testkit::loadgen::publish(&load).await });
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    for i in 0..3 {
        let id = c.nodes[i].id.clone();
        c.nodes[i].terminate_started();
        // It says it drains, to every node, while it finishes.
        let start = std::time::Instant::now();
        let other = c.nodes[(i + 1) % 3].base.clone();
        loop {
            let (_, v) = call(&other, &admin, "GET", "/v1/admin/nodes", None).await;
            let me = v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == id.as_str())
                .unwrap()
                .clone();
            if me["draining"] == true || me["alive"] == false {
                break;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "{v}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if i == 0 {
            // n1 holds the camera, so it drains for drain_s: a room asked
            // of it meanwhile is made on a node that stays.
            let (code, r) = call(
                &c.nodes[0].base,
                &ann,
                "POST",
                "/v1/rooms",
                Some(json!({"name": "drain"})),
            )
            .await;
            assert_eq!(code, 201, "{r}");
            assert!(r["node"] == "n2" || r["node"] == "n3", "{r}");
        }
        c.nodes[i].wait_stopped();
        c.nodes[i].start_again();
        c.wait_alive(&admin).await;
        if i == 0 {
            patch(third, 2 * third).await;
        }
    }
    patch(2 * third, bytes.len()).await;
    let _ = ws.close(None).await;

    // The camera: finished from its spool when n1 came back, every frame
    // it was sent in the file.
    let r = loop {
        let (_, r) = call(&lb, &ann, "GET", &format!("/v1/recordings/{cam}"), None).await;
        if r["status"] == "completed" || r["status"] == "failed" {
            break r;
        }
        if r["status"] == "recording" {
            call(
                &lb,
                &ann,
                "POST",
                &format!("/v1/recordings/{cam}/stop"),
                None,
            )
            .await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(r["status"], "completed", "{r}");
    assert!(r["stats"]["frames_in"].as_u64() >= Some(10), "{r}");
    let p = tapedeck_testkit::ffprobe(&download_at(&lb, &ann, &cam, c.dir.path()).await);
    let fps = r["video"]["fps"].as_u64().unwrap();
    assert!(p.frames >= 2 * fps, "10 frames at 5 fps are 2 s: {p:?}");

    for id in &webs {
        let r = wait_for(&lb, &ann, id, "completed").await;
        let p = tapedeck_testkit::ffprobe(&download_at(&lb, &ann, id, c.dir.path()).await);
        assert_eq!(p.frames, 12, "{id}: {p:?} {r}");
    }
    // The call: its recording finished from its track files when n1 came
    // back, every track decoding cleanly.
    let sent = publisher.await.unwrap().unwrap();
    assert_eq!(sent["connected"], 1, "{sent}");
    let done = wait_for(&lb, &ann, &call_rec, "completed").await;
    let tracks = done["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{done}");
    for t in tracks {
        let file = track_file(
            &lb,
            &ann,
            &call_rec,
            t["id"].as_str().unwrap(),
            c.dir.path(),
        )
        .await;
        assert_eq!(support::rooms::decode_errors(&file), "", "{t}");
        assert!(support::rooms::duration_s(&file) > 2.0, "{t}");
    }
    let uid = path.rsplit('/').next().unwrap();
    let done = wait_for(&lb, &ann, uid, "completed").await;
    use sha2::Digest;
    assert_eq!(
        done["source"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "{done}"
    );
}

/// A call's grid is composed by a node with room: the room's node has none
/// left (its budget is taken by the call's recording), so another claims
/// the grid job from the shared queue, fetches the tracks from the bucket
/// and puts the grid back, and the recording completes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_grid_is_composed_where_there_is_room() {
    use support::rooms::make_clips;
    let c = Cluster::start(3, |i| {
        if i == 2 {
            vec![("TAPEDECK_LIMITS__CPU_BUDGET_CORES".into(), "0.01".into())]
        } else {
            vec![]
        }
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let (code, room) = call(
        &c.node("n3").base,
        &ann,
        "POST",
        "/v1/rooms",
        Some(json!({"name": "grid"})),
    )
    .await;
    assert_eq!((code, room["node"].as_str()), (201, Some("n3")), "{room}");
    let room = room["id"].as_str().unwrap().to_string();
    let mut tokens = vec![];
    for name in ["Pub 1", "Pub 2"] {
        let (code, v) = call(
            &c.lb,
            &ann,
            "POST",
            &format!("/v1/rooms/{room}/invites"),
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(code, 201, "{v}");
        tokens.push(v["token"].as_str().unwrap().to_string());
    }
    let (code, rec) = call(
        &c.lb,
        &ann,
        "POST",
        "/v1/recordings",
        Some(json!({"source": {"kind": "room", "room": room, "layout": "grid"}, "preset": "low", "format": "mp4"})),
    )
    .await;
    assert_eq!((code, rec["node"].as_str()), (201, Some("n3")), "{rec}");
    let id = rec["id"].as_str().unwrap().to_string();
    let (video, audio) = (
        c.dir.path().join("clip.ivf"),
        c.dir.path().join("clip.opus"),
    );
    make_clips(&video, &audio);
    let sent = tapedeck_testkit::loadgen::publish(&tapedeck_testkit::loadgen::Load {
        whip: format!("{}/v1/rooms/{room}/whip", c.lb),
        tokens,
        video,
        audio,
        seconds: 4,
        stagger_ms: 0,
        call: false,
    })
    .await
    .unwrap();
    assert_eq!(sent["connected"], 2, "{sent}");
    let done = stop_and_complete(&c.lb, &ann, &id).await;
    assert!(done["note"].is_null(), "the grid was made: {done}");
    let p = tapedeck_testkit::ffprobe(&download_at(&c.lb, &ann, &id, c.dir.path()).await);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("h264", 854, 480),
        "{p:?}"
    );
    assert!(p.duration_s > 3.5, "{p:?}");
    // Composed by n1 or n2, not by the room's node.
    let ran = |n: &str| jobs_run(&c.node(n).base, "grid");
    assert_eq!(ran("n3").await, 0);
    assert_eq!(ran("n1").await + ran("n2").await, 1);
}

/// An upload's transcode is done by a node with room: the upload's node has
/// none left (the upload takes its whole budget), so another claims the
/// transcode job, and the recording completes transcoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploads_transcode_runs_where_there_is_room() {
    use base64::Engine;
    let c = Cluster::start(3, |i| {
        if i == 1 {
            vec![("TAPEDECK_LIMITS__CPU_BUDGET_CORES".into(), "0.01".into())]
        } else {
            vec![]
        }
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let bytes = std::fs::read(live_webm(c.dir.path(), 2)).unwrap();
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let r = tus_request(
        &c.node("n2").base,
        &ann,
        "POST",
        "/v1/uploads",
        &[
            ("Upload-Length", bytes.len().to_string()),
            (
                "Upload-Metadata",
                format!("format {},preset {}", b64("mp4"), b64("low")),
            ),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        bytes.clone(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = header(&r, "location")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let done = wait_for(&c.lb, &ann, &id, "completed").await;
    assert_eq!(done["node"], "n2", "{done}");
    assert_eq!(done["source"]["transcode"], true, "{done}");
    let p = tapedeck_testkit::ffprobe(&download_at(&c.lb, &ann, &id, c.dir.path()).await);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("h264", 854, 480),
        "{p:?}"
    );
    assert!((p.duration_s - 2.0).abs() < 0.15, "{p:?}");
    let ran = |n: &str| jobs_run(&c.node(n).base, "transcode");
    assert_eq!(ran("n2").await, 0);
    assert_eq!(ran("n1").await + ran("n3").await, 1);
}
