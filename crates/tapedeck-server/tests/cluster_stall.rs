//! A node that stalls (SIGSTOP) past `node_timeout_s` has its camera taken
//! over and finished elsewhere; when it runs again it lets go of it: the
//! camera's socket on it is closed (no picture is taken that no file will
//! hold), and nothing it writes changes the finished recording.

mod support;

use serde_json::json;
use support::cluster::*;
use support::*;

fn signal(node: &ClusterNode, sig: &str) {
    let pid = node.proc.0.id().to_string();
    let sent = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_lets_go_of_what_was_taken_over() {
    let c = Cluster::start(2, |_| {
        vec![("TAPEDECK_CLUSTER__SEGMENT_S".into(), "1".into())]
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let (n1, n2) = (c.node("n1").base.clone(), c.node("n2").base.clone());
    let (id, mut ws) = camera_on(
        &n1,
        "n1",
        &ann,
        json!({"source": {"kind": "frames"}, "preset": "low", "format": "mp4"}),
    )
    .await;
    send_frames(&mut ws, 20, 200.0, |k| jpeg(640, 360, k)).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    // n1 stalls; n2 takes the camera over and finishes it.
    signal(c.node("n1"), "-STOP");
    let done = wait_for(&n2, &ann, &id, "completed").await;
    assert_eq!(
        (done["end_reason"].as_str(), done["node"].as_str()),
        (Some("node_lost"), Some("n2")),
        "{done}"
    );
    // n1 runs again: within a few heartbeats its socket is closed.
    signal(c.node("n1"), "-CONT");
    let start = std::time::Instant::now();
    let mut k = 20u32;
    while try_send_frame(&mut ws, f64::from(k) * 200.0, jpeg(640, 360, k)).await {
        k += 1;
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "n1 still took pictures {:.1} s after it ran again",
            start.elapsed().as_secs_f64()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!(
        "n1 let go {:.1} s after it ran again ({} pictures sent meanwhile)",
        start.elapsed().as_secs_f64(),
        k - 20
    );
    // And the finished recording is as n2 made it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, now) = call(&c.lb, &ann, "GET", &format!("/v1/recordings/{id}"), None).await;
    for f in ["status", "node", "end_reason", "media"] {
        assert_eq!(now[f], done[f], "{f}: {now}");
    }
}
