//! A full disk under the work folder (a small tmpfs): the recording that
//! hits it fails with `disk_full`, what it spooled before stays readable,
//! the server goes on, and another recording completes once there is room.
//! Skips, saying why, where a tmpfs cannot be mounted (not root).

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use tapedeck_testkit::ffprobe;

use support::disk::{mount_tmpfs, noise_png};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_one_recording_clearly_and_harms_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _mount = match mount_tmpfs(&data.join("work"), "8m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping: cannot mount a tmpfs for the work folder here ({e})");
            return;
        }
    };
    let mut c = config(&data);
    c.limits.max_frame_bytes = 4 << 20;
    let s = start_with(c).await;
    let t = s.key("alice", false).await;

    // B starts first and sends a little.
    let b = s
        .create(&t, json!({"source": {"kind": "frames"}, "preset": "low"}))
        .await;
    let b_id = b["id"].as_str().unwrap().to_string();
    let mut wb = connect(&s.ws_url(&format!("/v1/recordings/{b_id}/frames"), &t)).await;
    for i in 0..3u32 {
        send_frame(&mut wb, Some(f64::from(i) * 200.0), jpeg(854, 480, i)).await;
    }
    progress_until(&mut wb, |v| v["frames_received"] == 3).await;

    // A fills the disk.
    let a = s
        .create(&t, json!({"source": {"kind": "frames"}, "preset": "low"}))
        .await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let mut wa = connect(&s.ws_url(&format!("/v1/recordings/{a_id}/frames"), &t)).await;
    let start = Instant::now();
    let failed = 'fill: {
        for i in 0..200u32 {
            if !try_send_frame(&mut wa, f64::from(i) * 200.0, noise_png(i)).await {
                break;
            }
            let (_, v) = s.get(&t, &format!("/v1/recordings/{a_id}")).await;
            if v["status"] == "failed" {
                break 'fill v;
            }
        }
        loop {
            let (_, v) = s.get(&t, &format!("/v1/recordings/{a_id}")).await;
            if v["status"] == "failed" {
                break v;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(failed["error"]["code"], "disk_full", "{failed}");
    // What A spooled before the disk filled is intact.
    let spool = data.join("work").join(&a_id).join("frames.spool");
    let records = tapedeck_media::spool::SpoolReader::open(&spool)
        .unwrap()
        .count();
    assert!(records > 0, "nothing spooled before the disk filled");

    // The server goes on: A is deleted (its files free the disk), B finishes.
    let r = s
        .client()
        .delete(format!("{}/v1/recordings/{a_id}", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for i in 3..6u32 {
        send_frame(&mut wb, Some(f64::from(i) * 200.0), jpeg(854, 480, i)).await;
    }
    progress_until(&mut wb, |v| v["frames_received"] == 6).await;
    s.post(&t, &format!("/v1/recordings/{b_id}/stop"), json!({}))
        .await;
    let done = s.wait_status(&t, &b_id, "completed").await;
    let m = ffprobe(&s.download(&t, &b_id, "mp4").await);
    // All six frames, 200 ms apart: 1.2 s.
    let fps = b["video"]["fps"].as_f64().unwrap();
    assert_eq!(m.frames, (1.2 * fps).round() as u64, "{m:?} {done}");
    assert!((m.duration_s - 1.2).abs() <= 1.0 / fps + 0.01, "{m:?}");
}
