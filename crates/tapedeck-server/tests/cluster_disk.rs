//! A cluster node whose disk fills (its work folder on a small tmpfs) hands
//! its camera's recording over rather than failing it: what was shipped is
//! finished on another node, and the full node's work folder is freed.
//! Skips, saying why, where a tmpfs cannot be mounted (not root).

mod support;

use serde_json::json;
use support::cluster::*;
use support::*;

use support::disk::{mount_tmpfs, noise_png};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_hands_its_recordings_over() {
    let c = Cluster::start(2, |_| {
        vec![(
            "TAPEDECK_LIMITS__MAX_FRAME_BYTES".into(),
            (4 << 20).to_string(),
        )]
    });
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let work = c.nodes[0].data.join("work");
    let _mount = match mount_tmpfs(&work, "8m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping: cannot mount a tmpfs for the work folder here ({e})");
            return;
        }
    };
    let n1 = c.node("n1").base.clone();
    let (id, mut ws) = camera_on(
        &n1,
        "n1",
        &ann,
        json!({"source": {"kind": "frames"}, "preset": "low"}),
    )
    .await;
    // Pictures until the disk is full and the recording is handed over.
    let start = std::time::Instant::now();
    let mut sent = 0u32;
    let moved = loop {
        if try_send_frame(&mut ws, f64::from(sent) * 200.0, noise_png(sent)).await {
            sent += 1;
        }
        let (_, r) = call(&c.lb, &ann, "GET", &format!("/v1/recordings/{id}"), None).await;
        assert_ne!(r["status"], "failed", "{r}");
        if r["node"] == "n2" {
            break r;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(90), "{r}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    println!("handed over after {sent} pictures: {moved}");
    let done = wait_for(&c.lb, &ann, &id, "completed").await;
    assert_eq!(done["end_reason"], "node_lost", "{done}");
    let p = tapedeck_testkit::ffprobe(&download_at(&c.lb, &ann, &id, c.dir.path()).await);
    assert!(p.frames > 0, "{p:?}");
    // The full node's work folder was freed.
    assert!(
        !work.join(&id).exists(),
        "the work folder stayed on the full disk"
    );
}
