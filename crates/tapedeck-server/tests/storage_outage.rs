//! A storage outage delays a recording, it does not destroy it: with the S3
//! server (s3s-fs) down when the recording finishes, the recording waits in
//! `processing` with a `storage_retry` note and its files kept; once the
//! store is back it completes, and the stored file's SHA-256 is the one
//! reported.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use serde_json::json;
use sha2::Digest;
use support::*;
use tapedeck_testkit::free_port;

/// One s3s-fs process of this test's own, to stop and start again.
struct S3Process(Child);

impl S3Process {
    /// Starts s3s-fs on `port` and waits until it answers HTTP. A bare TCP
    /// connect is not proof: with nothing listening, a connect to a port in
    /// the ephemeral range can connect to itself, and the port may be held
    /// for a moment by another socket (s3s-fs then exits and is started
    /// again).
    fn start(root: &std::path::Path, port: u16) -> Self {
        let spawn = || {
            Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", "testkey", "--secret-key", "testsecret"])
                .arg(root)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary --locked)")
        };
        let mut child = spawn();
        let start = Instant::now();
        while !answers_http(port) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "s3s-fs did not start on port {port}"
            );
            if child.try_wait().ok().flatten().is_some() {
                std::thread::sleep(Duration::from_millis(200));
                child = spawn();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

/// Whether an HTTP server answers on `port` (a socket connected to itself
/// reads back the request instead).
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = [0u8; 5];
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
        && c.read_exact(&mut head).is_ok()
        && &head == b"HTTP/"
}

impl Drop for S3Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_delays_the_recording_and_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("media")).unwrap();
    let port = free_port();
    let s3 = S3Process::start(root.path(), port);
    let s = start(move |c| {
        on_s3(
            c,
            &format!("http://127.0.0.1:{port}"),
            "media",
            "testkey",
            "testsecret",
        );
    })
    .await;
    let t = s.key("alice", false).await;
    let admin = s.key("root", true).await;
    let rec = s
        .create(&t, json!({"source": {"kind": "frames"}, "preset": "low"}))
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    send_frames(&mut ws, 10, 200.0, |i| jpeg(854, 480, i)).await;

    // The store goes down; the recording finishes.
    drop(s3);
    s.post(&t, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    let start_wait = Instant::now();
    let waiting = loop {
        let (_, v) = s.get(&t, &format!("/v1/recordings/{id}")).await;
        if v["note"]["code"] == "storage_retry" {
            break v;
        }
        assert_ne!(v["status"], "failed", "{v}");
        assert!(start_wait.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(waiting["status"], "processing", "{waiting}");
    assert!(
        waiting["note"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("storing the media failed")),
        "the store's own reason: {waiting}"
    );
    // Its files are kept meanwhile.
    let work = s.data.join("work").join(&id);
    assert!(work.join("poster.jpg").is_file() && work.join("frames.spool").is_file());
    // An operator sees it with doctor.
    let out = Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .args(["doctor", "--data-dir"])
        .arg(&s.data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("waiting storage: 1 recording") && text.contains(&id),
        "{text}"
    );
    // Only an admin may hurry it.
    let (st, _) = s
        .post(&t, &format!("/v1/admin/recordings/{id}/retry"), json!({}))
        .await;
    assert_eq!(st, 403);

    // The store comes back (same port, same folder); the operator requeues.
    let _s3 = S3Process::start(root.path(), port);
    let (st, v) = s
        .post(
            &admin,
            &format!("/v1/admin/recordings/{id}/retry"),
            json!({}),
        )
        .await;
    // It may already have been retried on its own schedule.
    assert!(st == 200 || st == 409, "{st} {v}");
    let done = s.wait_status(&t, &id, "completed").await;
    assert!(done["note"].is_null(), "{done}");
    let object = std::fs::read(
        root.path()
            .join("media/recordings")
            .join(&id)
            .join("media.mp4"),
    )
    .unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&object));
    assert_eq!(
        done["media"]["sha256"].as_str(),
        Some(sha.as_str()),
        "{done}"
    );
    let downloaded = std::fs::read(s.download(&t, &id, "mp4").await).unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&downloaded)), sha);
    // The work files go once the store has the file.
    assert!(!work.exists());
}

/// The real binary, the store down when a recording finishes, then the
/// server killed while it waits: at the next start the recording is rebuilt
/// from its spool and stored once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_waiting_for_the_store_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("media")).unwrap();
    let (s3_port, port) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let env = [
        ("TAPEDECK_STORAGE__KIND", "s3"),
        ("TAPEDECK_STORAGE__BUCKET", "media"),
        ("TAPEDECK_STORAGE__ENDPOINT", endpoint.as_str()),
        ("TAPEDECK_STORAGE__ACCESS_KEY", "testkey"),
        ("TAPEDECK_STORAGE__SECRET_KEY", "testsecret"),
    ];
    let serve = || serve_binary(&data, port, &env);
    let token = binary_key(&data, "alice");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let get = |id: String| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            http.get(format!("{base}/v1/recordings/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };

    // No store at all while the recording finishes.
    let server = serve();
    let rec: serde_json::Value = http
        .post(format!("{base}/v1/recordings"))
        .bearer_auth(&token)
        .json(&json!({"source": {"kind": "frames"}, "preset": "low"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&format!(
        "ws://127.0.0.1:{port}/v1/recordings/{id}/frames?token={token}"
    ))
    .await;
    send_frames(&mut ws, 10, 200.0, |i| jpeg(854, 480, i)).await;
    http.post(format!("{base}/v1/recordings/{id}/stop"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let v = get(id.clone()).await;
        if v["note"]["code"] == "storage_retry" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(ws);
    drop(server); // killed while it waits

    // The store is up at the next start.
    let _s3 = S3Process::start(&root, s3_port);
    let _server = serve();
    let start = Instant::now();
    let done = loop {
        let v = get(id.clone()).await;
        if v["status"] == "completed" {
            break v;
        }
        assert_ne!(v["status"], "failed", "{v}");
        assert!(start.elapsed() < Duration::from_secs(90), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // It keeps the reason it ended with (the user stopped it), and no
    // note of the retries that are over.
    assert_eq!(done["end_reason"], "stopped", "{done}");
    assert!(done["note"].is_null(), "{done}");
    let object = std::fs::read(root.join("media/recordings").join(&id).join("media.mp4")).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&object));
    assert_eq!(
        done["media"]["sha256"].as_str(),
        Some(sha.as_str()),
        "{done}"
    );
    assert!(
        (done["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.05,
        "{done}"
    );
}

/// A TCP relay between the server and s3s-fs that lets everything through
/// until it sees the media file's upload (a `PUT` of `.../media.mp4`: the
/// whole file, or a multipart part of a larger one); after `stall_after`
/// bytes of that request it stops relaying and says so, so the test can
/// stop the store with the upload half sent.
struct StallingRelay {
    port: u16,
    stalled: Arc<tokio::sync::Notify>,
    seen: Arc<AtomicU64>,
}

impl StallingRelay {
    async fn start(backend: u16, stall_after: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(tokio::sync::Notify::new());
        let seen = Arc::new(AtomicU64::new(0));
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (stalled2, seen2) = (stalled.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                else {
                    continue; // the store is down: the client sees the connection close
                };
                let (stalled, seen, armed) = (stalled2.clone(), seen2.clone(), armed.clone());
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut in_part: Option<u64> = None;
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        if in_part.is_none()
                            && chunk.starts_with(b"PUT ")
                            && chunk.windows(10).any(|w| w == b"/media.mp4")
                            && armed.load(Ordering::SeqCst)
                        {
                            in_part = Some(0);
                        }
                        if let Some(sent) = in_part.as_mut() {
                            let take = (stall_after - *sent).min(n as u64) as usize;
                            if sw.write_all(&chunk[..take]).await.is_err() {
                                break;
                            }
                            *sent += take as u64;
                            seen.fetch_add(take as u64, Ordering::SeqCst);
                            if *sent >= stall_after {
                                // Half a part is with the store; hold the rest.
                                armed.store(false, Ordering::SeqCst);
                                stalled.notify_one();
                                let _ = down.await;
                                break;
                            }
                        } else if sw.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            port,
            stalled,
            seen,
        }
    }
}

/// Noise, so the video is large enough that its upload is under way when the
/// store stops.
fn noise_jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(vec![]);
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// The store stops in the middle of the media file's upload (64 KiB of it
/// sent) and comes back a few seconds later: the recording completes, and
/// the stored file is whole (its SHA-256 is the one reported and the one
/// downloaded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_stopped_mid_upload_and_restarted_loses_nothing() {
    const STALL_AFTER: u64 = 64 * 1024;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("media")).unwrap();
    let s3_port = free_port();
    let s3 = S3Process::start(root.path(), s3_port);
    let relay = StallingRelay::start(s3_port, STALL_AFTER).await;
    let relay_port = relay.port;
    let s = start(move |c| {
        on_s3(
            c,
            &format!("http://127.0.0.1:{relay_port}"),
            "media",
            "testkey",
            "testsecret",
        );
    })
    .await;
    let t = s.key("alice", false).await;
    let rec = s
        .create(
            &t,
            json!({"source": {"kind": "frames"}, "preset": "medium"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&s.ws_url(&format!("/v1/recordings/{id}/frames"), &t)).await;
    send_frames(&mut ws, 30, 66.0, |i| noise_jpeg(640, 360, i)).await;
    s.post(&t, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;

    // Part of the file is sent: the store goes down there, and comes back.
    tokio::time::timeout(Duration::from_secs(120), relay.stalled.notified())
        .await
        .expect("the media upload reached the store");
    drop(s3);
    assert_eq!(relay.seen.load(Ordering::SeqCst), STALL_AFTER);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _s3 = S3Process::start(root.path(), s3_port);
    let back = Instant::now();

    let done = s.wait_status(&t, &id, "completed").await;
    println!(
        "stored {:.1} s after the store came back: {}",
        back.elapsed().as_secs_f64(),
        done["size_bytes"]
    );
    assert!(
        done["size_bytes"].as_u64().unwrap() > 2 * STALL_AFTER,
        "the file is larger than what was sent before the stop: {done}"
    );
    let object = std::fs::read(
        root.path()
            .join("media/recordings")
            .join(&id)
            .join("media.mp4"),
    )
    .unwrap();
    assert_eq!(object.len() as u64, done["size_bytes"].as_u64().unwrap());
    let sha = hex::encode(sha2::Sha256::digest(&object));
    assert_eq!(
        done["media"]["sha256"].as_str(),
        Some(sha.as_str()),
        "{done}"
    );
    let downloaded = std::fs::read(s.download(&t, &id, "mp4").await).unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&downloaded)), sha);
    // And it plays: ffprobe counts every frame.
    let path = s.data.join("check.mp4");
    std::fs::write(&path, &object).unwrap();
    let frames = tapedeck_testkit::run_ok(
        std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(&path),
        "ffprobe",
    );
    let frames = String::from_utf8_lossy(&frames.stdout);
    assert!(frames.trim().parse::<u32>().unwrap() >= 59, "{frames}");
}
