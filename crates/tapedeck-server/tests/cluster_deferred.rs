//! A camera that no node of the cluster has the budget to encode live is
//! spooled where it was asked for, and its encode after stop is a job of
//! the cluster's queue: the node with room claims it, fetches the spool
//! from the bucket and sends the file back.

mod support;

use serde_json::{Value, json};
use support::cluster::*;
use support::*;

/// A 720p camera at 5 fps costs 0.066 of a core: one fits in 0.09.
const CAMERA: fn() -> Value =
    || json!({"source": {"kind": "frames", "input_fps": 5}, "preset": "medium", "format": "mp4"});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_cameras_encode_runs_on_the_node_with_room() {
    let c = Cluster::start(2, |_| {
        vec![("TAPEDECK_LIMITS__CPU_BUDGET_CORES".into(), "0.09".into())]
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let (n1, n2) = (c.node("n1").base.clone(), c.node("n2").base.clone());
    let create = |base: String| {
        let ann = ann.clone();
        async move {
            let (code, r) = call(&base, &ann, "POST", "/v1/recordings", Some(CAMERA())).await;
            assert_eq!(code, 201, "{r}");
            (
                r["id"].as_str().unwrap().to_string(),
                r["node"].as_str().unwrap().to_string(),
            )
        }
    };
    // Each node records one camera live, which fills its budget.
    let (a, on_a) = create(n1.clone()).await;
    let (b, on_b) = create(n2.clone()).await;
    assert_eq!((on_a.as_str(), on_b.as_str()), ("n1", "n2"));
    // At once, before the heartbeats say the nodes are full: taken (the
    // node it is placed on defers it), not refused.
    let (code, r) = call(&c.lb, &ann, "POST", "/v1/recordings", Some(CAMERA())).await;
    assert_eq!(code, 201, "refused before the heartbeats: {r}");
    let (code, _) = call(
        &c.lb,
        &ann,
        "POST",
        &format!("/v1/recordings/{}/cancel", r["id"].as_str().unwrap()),
        Some(json!({})),
    )
    .await;
    assert_eq!(code, 200);
    wait_full(&n1, &admin).await;
    // A third has no room anywhere: taken on n1, spooled only.
    let (late, on_late) = create(n1.clone()).await;
    assert_eq!(on_late, "n1");
    let socket = |base: &str, id: &str| {
        format!(
            "{}/v1/recordings/{id}/frames?token={ann}",
            base.replace("http://", "ws://")
        )
    };
    let mut ws_a = connect(&socket(&n1, &a)).await;
    let mut ws_b = connect(&socket(&n2, &b)).await;
    let mut ws_late = connect(&socket(&n1, &late)).await;
    for ws in [&mut ws_a, &mut ws_b, &mut ws_late] {
        send_frames(ws, 30, 200.0, |k| jpeg(1280, 720, k)).await;
    }
    let (_, r) = call(&n1, &ann, "GET", &format!("/v1/recordings/{late}"), None).await;
    assert!(r["stats"]["encode_lag_s"].as_f64() > Some(5.0), "{r}");

    // n2's camera ends; n1's goes on. The deferred encode can only run on n2.
    stop_and_complete(&n2, &ann, &b).await;
    let done = stop_and_complete(&n1, &ann, &late).await;
    assert_eq!(done["node"], "n1", "{done}");
    assert_eq!(done["stats"]["frames_in"], 30, "{done}");
    assert!(done["stats"].get("encode_lag_s").is_none(), "{done}");
    let p = tapedeck_testkit::ffprobe(&download_at(&c.lb, &ann, &late, c.dir.path()).await);
    // Every picture: 6 s at 30 fps.
    assert_eq!((p.width, p.height, p.frames), (1280, 720, 180), "{p:?}");
    assert_eq!(jobs_run(&n2, "encode").await, 1);
    assert_eq!(jobs_run(&n1, "encode").await, 0);
    stop_and_complete(&n1, &ann, &a).await;
    drop((ws_a, ws_b, ws_late));
}

/// Until every node's heartbeat says it has no room for another camera.
async fn wait_full(base: &str, admin: &str) {
    let start = std::time::Instant::now();
    loop {
        let (_, v) = call(base, admin, "GET", "/v1/admin/nodes", None).await;
        let full = v["nodes"].as_array().is_some_and(|l| {
            l.iter().all(|n| {
                let cpu = &n["cpu"];
                cpu["budget"].as_f64().unwrap_or(0.0) - cpu["reserved"].as_f64().unwrap_or(0.0)
                    < 0.066
            })
        });
        if full {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
