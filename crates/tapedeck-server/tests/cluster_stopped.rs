//! A cluster node killed with `kill -9` (the real binary, two nodes on
//! one PostgreSQL and one s3s-fs bucket): its sessions say "try again"
//! through the other node until it starts again and takes them up.

mod support;

use serde_json::json;
use support::cluster::*;
use support::*;

/// A node killed with `kill -9` holds its sessions until it starts again:
/// meanwhile, through any other node, they answer 503 `node_unreachable`
/// with Retry-After (a tus client tries again), not 410 or "ended", and a
/// live recording is not deleted; once the node is back, the upload
/// resumes where it was and the camera's recording is finished from its
/// spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_sessions_say_try_again() {
    let mut c = Cluster::start(2, |_| vec![]);
    let admin = c.key("root", true);
    let ann = c.key("ann", false);
    c.wait_alive(&admin).await;
    let n1 = c.node("n1").base.clone();
    let n2 = c.node("n2").base.clone();
    let (code, cam) = call(
        &n1,
        &ann,
        "POST",
        "/v1/recordings",
        Some(json!({"source": {"kind": "frames"}, "preset": "low"})),
    )
    .await;
    assert_eq!((code, cam["node"].as_str()), (201, Some("n1")), "{cam}");
    let cam = cam["id"].as_str().unwrap().to_string();
    let mut ws = connect(&format!(
        "{}/v1/recordings/{cam}/frames?token={ann}",
        n1.replace("http://", "ws://")
    ))
    .await;
    send_frames(&mut ws, 10, 200.0, |i| jpeg(640, 360, i)).await;
    progress_until(&mut ws, |v| v["frames_received"] == 10).await;
    let bytes = std::fs::read(live_webm(c.dir.path(), 2)).unwrap();
    let half = bytes.len() / 2;
    let octets = (
        "Content-Type",
        "application/offset+octet-stream".to_string(),
    );
    let r = tus_request(
        &n1,
        &ann,
        "POST",
        "/v1/uploads",
        &[("Upload-Length", bytes.len().to_string()), octets.clone()],
        bytes[..half].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let path = header(&r, "location").trim_start_matches(&n1).to_string();

    c.nodes[0].proc.kill_9();
    drop(ws);
    // Dead once its heartbeat is older than node_timeout_s (3 s here).
    let start = std::time::Instant::now();
    loop {
        let (_, v) = call(&n2, &admin, "GET", "/v1/admin/nodes", None).await;
        let n = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "n1")
            .unwrap()
            .clone();
        if n["alive"] == false {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(15), "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = tus_request(&n2, &ann, "HEAD", &path, &[], vec![]).await;
    assert_eq!(
        (r.status().as_u16(), header(&r, "retry-after")),
        (503, "5".to_string())
    );
    let r = tus_request(
        &n2,
        &ann,
        "PATCH",
        &path,
        &[("Upload-Offset", half.to_string()), octets.clone()],
        bytes[half..].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 503);
    for (method, what) in [("POST", "/stop"), ("DELETE", "")] {
        let (code, v) = call(
            &n2,
            &ann,
            method,
            &format!("/v1/recordings/{cam}{what}"),
            None,
        )
        .await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (503, Some("node_unreachable")),
            "{method} {what}: {v}"
        );
    }
    // Reading it is answered from the database.
    let (code, v) = call(&n2, &ann, "GET", &format!("/v1/recordings/{cam}"), None).await;
    assert_eq!(
        (code, v["status"].as_str()),
        (200, Some("recording")),
        "{v}"
    );

    c.nodes[0].start_again();
    c.wait_alive(&admin).await;
    let r = tus_request(&n2, &ann, "HEAD", &path, &[], vec![]).await;
    assert_eq!(
        (r.status().as_u16(), header(&r, "upload-offset")),
        (200, half.to_string())
    );
    let r = tus_request(
        &n2,
        &ann,
        "PATCH",
        &path,
        &[("Upload-Offset", half.to_string()), octets],
        bytes[half..].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 204);
    let uid = path.rsplit('/').next().unwrap();
    let done = wait_for(&c.lb, &ann, uid, "completed").await;
    use sha2::Digest;
    assert_eq!(
        done["source"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "{done}"
    );
    let done = wait_for(&c.lb, &ann, &cam, "completed").await;
    assert_eq!(
        (
            done["end_reason"].as_str(),
            done["stats"]["frames_in"].as_u64()
        ),
        (Some("recovered"), Some(10)),
        "{done}"
    );
}
