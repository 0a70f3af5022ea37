//! Live media shipped to the store while it records (`cluster.ship_live`,
//! here on a server alone): the store goes away for 10 s mid-way and
//! nothing is lost; shipping catches up when it is back. And a node that
//! dies while the store is away: its recording waits for the store that
//! holds what was shipped, rather than failing.

mod support;

use serde_json::{Value, json};
use support::*;

/// What the store holds of recording `id`'s live media: its manifest.
fn shipped(store: &tapedeck_testkit::StoppableS3, id: &str) -> Option<Value> {
    let path = store
        .s3
        .root
        .join(&store.s3.bucket)
        .join(format!("live/{id}/manifest.json"));
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_catches_up_after_the_store_was_away() {
    let mut store = tapedeck_testkit::StoppableS3::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = tapedeck_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let s3 = &store.s3;
    let _server = serve_binary(
        &data,
        port,
        &[
            ("TAPEDECK_STORAGE__KIND", "s3"),
            ("TAPEDECK_STORAGE__BUCKET", &s3.bucket),
            ("TAPEDECK_STORAGE__ENDPOINT", &s3.endpoint),
            ("TAPEDECK_STORAGE__ACCESS_KEY", &s3.access_key),
            ("TAPEDECK_STORAGE__SECRET_KEY", &s3.secret_key),
            ("TAPEDECK_CLUSTER__SHIP_LIVE", "true"),
            ("TAPEDECK_CLUSTER__SEGMENT_S", "1"),
        ],
    );
    let ann = binary_key(&data, "ann");
    let frames_shipped = "tapedeck_shipped_bytes_total{kind=\"frames\"}";

    // A camera, 3 s of pictures shipped.
    let (code, cam) = support::cluster::call(
        &base,
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
        base.replace("http://", "ws://")
    ))
    .await;
    send_frames(&mut ws, 15, 200.0, |i| jpeg(640, 360, i)).await;
    let start = std::time::Instant::now();
    while metric(&base, frames_shipped).await == 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "nothing shipped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // An upload, its first half in (and in the store).
    let bytes = std::fs::read(live_webm(dir.path(), 3)).unwrap();
    let half = bytes.len() / 2;
    let octets = (
        "Content-Type",
        "application/offset+octet-stream".to_string(),
    );
    let r = tus_request(
        &base,
        &ann,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", bytes.len().to_string()), octets.clone()],
        bytes[..half].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let path = header(&r, "location").trim_start_matches(&base).to_string();
    let upload = path.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        shipped(&store, &upload).unwrap()["files"]["upload.part"],
        half as u64,
        "a chunk is in the store once acknowledged"
    );

    // The store goes away for 10 s: the camera goes on, and the upload's
    // next chunk waits for the store rather than being acknowledged
    // without it.
    store.stop();
    let failures = metric(&base, "tapedeck_ship_failures_total").await;
    let patch = {
        let (base, ann, path, rest) = (
            base.clone(),
            ann.clone(),
            path.clone(),
            bytes[half..].to_vec(),
        );
        tokio::spawn(async move {
            tus_request(
                &base,
                &ann,
                "PATCH",
                &path,
                &[("Upload-Offset", half.to_string()), octets],
                rest,
            )
            .await
            .status()
        })
    };
    // 10 s of pictures at 5 fps, in real time.
    for i in 15..65u32 {
        send_frame(&mut ws, Some(f64::from(i) * 200.0), jpeg(640, 360, i)).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        metric(&base, "tapedeck_ship_failures_total").await > failures,
        "shipping was refused while the store was away"
    );
    store.resume();
    assert_eq!(patch.await.unwrap(), 204);
    progress_until(&mut ws, |v| v["frames_received"] == 65).await;

    // Shipping catches up: the store has every byte of the camera's spool.
    let spool = data.join("work").join(&cam).join("frames.spool");
    let start = std::time::Instant::now();
    loop {
        let local = std::fs::metadata(&spool).unwrap().len();
        let there = shipped(&store, &cam).and_then(|m| m["files"]["frames.spool"].as_u64());
        if there == Some(local) && local > 0 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "spool {local} bytes, shipped {there:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    // Both complete whole; what was shipped goes with them.
    let done = support::cluster::stop_and_complete(&base, &ann, &cam).await;
    assert_eq!(done["stats"]["frames_in"], 65, "{done}");
    let done = support::cluster::wait_for(&base, &ann, &upload, "completed").await;
    use sha2::Digest;
    assert_eq!(
        done["source"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "{done}"
    );
    for id in [&cam, &upload] {
        let start = std::time::Instant::now();
        while shipped(&store, id).is_some() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{id} kept"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_recording_waits_for_the_store_that_holds_it() {
    use support::cluster::{Cluster, call, camera_on, wait_for};
    let mut store = tapedeck_testkit::StoppableS3::start();
    let mut c = Cluster::start_on(store.s3.clone(), 2, |_| {
        vec![("TAPEDECK_CLUSTER__SEGMENT_S".into(), "1".into())]
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let n1 = c.node("n1").base.clone();
    let (id, mut ws) = camera_on(
        &n1,
        "n1",
        &ann,
        json!({"source": {"kind": "frames"}, "preset": "low", "format": "mp4"}),
    )
    .await;
    // 4 s of pictures, all shipped: in two halves a second and a half
    // apart, so at least two rounds ship (a fast build takes all 20 within
    // one second, which one round would ship whole).
    for k in 0..20u32 {
        if k == 10 {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        }
        send_frame(&mut ws, Some(f64::from(k) * 200.0), jpeg(640, 360, k)).await;
    }
    progress_until(&mut ws, |v| v["frames_received"] == 20).await;
    let start = std::time::Instant::now();
    while shipped(&store, &id).is_none_or(|m| m["packs"].as_u64() < Some(2)) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "nothing shipped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let before = shipped(&store, &id).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // The store goes away, then the node dies.
    store.stop();
    c.nodes[0].proc.kill_9();
    drop(ws);
    // n2 takes it over and cannot read the store: the recording waits.
    let n2 = c.node("n2").base.clone();
    let taken = "tapedeck_cluster_taken_over_total{kind=\"frames\"}";
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let (_, r) = call(&n2, &ann, "GET", &format!("/v1/recordings/{id}"), None).await;
    assert_eq!(r["status"], "recording", "{r}");
    assert_eq!(r["node"], "n2", "{r}");
    assert_eq!(metric(&n2, taken).await, 0);
    // The store is back: finished from what it holds.
    store.resume();
    let done = wait_for(&n2, &ann, &id, "completed").await;
    assert_eq!(done["end_reason"], "node_lost", "{done}");
    assert_eq!(metric(&n2, taken).await, 1);
    let p = tapedeck_testkit::ffprobe(
        &support::cluster::download_at(&n2, &ann, &id, c.dir.path()).await,
    );
    // All 20 pictures were shipped before the store went: 4 s.
    assert!(p.duration_s >= 3.8, "{p:?} from {before}");
}
