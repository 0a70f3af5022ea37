//! The real `tapedeck` binary: keys, serve, kill -9 mid-recording and recover
//! from the spool at the next start; the client commands and doctor.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tapedeck_testkit::{ffprobe, free_port};

fn serve(data: &std::path::Path, port: u16) -> Proc {
    serve_binary(data, port, &[])
}

fn serve_with(data: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Proc {
    serve_binary(data, port, env)
}

fn key(data: &std::path::Path, user: &str) -> String {
    binary_key(data, user)
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post(base: &str, token: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_final(base: &str, token: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = get(base, token, &format!("/v1/recordings/{id}")).await;
        if ["completed", "failed", "cancelled"].contains(&v["status"].as_str().unwrap_or("")) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "stuck: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_recording_then_recover() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = key(&data, "alice");
    assert!(token.starts_with("tdk_"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve(&data, port);

    let rec = post(
        &base,
        &token,
        "/v1/recordings",
        json!({"source": {"kind": "frames"}, "preset": "low"}),
    )
    .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&format!(
        "ws://127.0.0.1:{port}/v1/recordings/{id}/frames?token={token}"
    ))
    .await;
    // 4 s of frames at 5 fps.
    for i in 0..20u32 {
        send_frame(&mut ws, Some(f64::from(i) * 200.0), jpeg(854, 480, i)).await;
    }
    progress_until(&mut ws, |v| {
        v["frames_received"] == 20 && v["duration_s"].as_f64() >= Some(3.9)
    })
    .await;
    // A second recording whose source connected but sent nothing, and a pending one.
    let empty = post(
        &base,
        &token,
        "/v1/recordings",
        json!({"source": {"kind": "frames"}}),
    )
    .await;
    let empty_id = empty["id"].as_str().unwrap().to_string();
    let mut ws2 = connect(&format!(
        "ws://127.0.0.1:{port}/v1/recordings/{empty_id}/frames?token={token}"
    ))
    .await;
    progress_until(&mut ws2, |v| v["status"] == "recording").await;
    let pending = post(
        &base,
        &token,
        "/v1/recordings",
        json!({"source": {"kind": "frames"}}),
    )
    .await;
    let pending_id = pending["id"].as_str().unwrap().to_string();
    // The spool is synced at least every half second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.kill_9();
    drop(ws);
    drop(ws2);
    // A hostile timestamp already in the spool (as an older version let in)
    // must not turn recovery into an endless video or a crash loop.
    let mut spool =
        tapedeck_media::spool::SpoolWriter::open(&data.join("work").join(&id).join("frames.spool"))
            .unwrap();
    spool
        .append(1_000_000_000_000_000, &jpeg(854, 480, 99))
        .unwrap();
    spool.sync().unwrap();
    drop(spool);
    // The empty recording's spool cut inside its header (a crash before the
    // first flush): a clear reason, not an I/O error.
    std::fs::OpenOptions::new()
        .write(true)
        .open(data.join("work").join(&empty_id).join("frames.spool"))
        .unwrap()
        .set_len(3)
        .unwrap();

    let _server = serve(&data, port);
    let done = wait_final(&base, &token, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["end_reason"].as_str()),
        (Some("completed"), Some("recovered")),
        "{done}"
    );
    let dur = done["duration_s"].as_f64().unwrap();
    assert!(
        (3.0..=4.0 + 1e-3).contains(&dur),
        "at most about a second lost: {dur}"
    );
    let bytes = reqwest::Client::new()
        .get(format!("{base}/v1/recordings/{id}/media"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = dir.path().join("recovered.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let m = ffprobe(&file);
    assert_eq!((m.codec.as_str(), m.width, m.height), ("h264", 854, 480));
    assert!((m.fps - 24.0).abs() < 1e-6);

    let failed = wait_final(&base, &token, &empty_id).await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before any frame"),
        "{failed}"
    );
    assert_eq!(failed["error"]["code"], "recovery_failed", "{failed}");

    // Nothing is stuck, and the pending recording still takes frames.
    let list = get(&base, &token, "/v1/recordings?status=recording").await;
    assert_eq!(list["recordings"].as_array().unwrap().len(), 0);
    let list = get(&base, &token, "/v1/recordings?status=processing").await;
    assert_eq!(list["recordings"].as_array().unwrap().len(), 0);
    let mut ws3 = connect(&format!(
        "ws://127.0.0.1:{port}/v1/recordings/{pending_id}/frames?token={token}"
    ))
    .await;
    send_frame(&mut ws3, Some(0.0), jpeg(320, 240, 1)).await;
    progress_until(&mut ws3, |v| {
        v["status"] == "recording" && v["frames_received"] == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_commands_and_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = key(&data, "carol");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = serve(&data, port);
    let rec = post(
        &base,
        &token,
        "/v1/recordings",
        json!({"source": {"kind": "frames"}, "preset": "low", "title": "cli",
            "metadata": {"lead": 42}}),
    )
    .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let mut ws = connect(&format!(
        "ws://127.0.0.1:{port}/v1/recordings/{id}/frames?token={token}"
    ))
    .await;
    send_frames(&mut ws, 10, 200.0, |i| jpeg(854, 480, i)).await;

    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("TAPEDECK_URL", &base)
            .env("TAPEDECK_TOKEN", &token)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(&["ls"]);
    assert!(ok, "{err}");
    assert!(out.contains(&id) && out.contains("recording"), "{out}");
    let (ok, out, err) = cli(&["ls", "--metadata", "lead=42"]);
    assert!(ok && out.contains(&id), "{out}{err}");
    let (ok, out, err) = cli(&["ls", "--metadata", "lead=43"]);
    assert!(ok && !out.contains(&id), "{out}{err}");
    let (ok, _, err) = cli(&["ls", "--metadata", "lead"]);
    assert!(!ok && err.contains("KEY=VALUE"), "{err}");
    let (ok, out, _) = cli(&["stop", &id]);
    assert!(ok && out.contains("processing"), "{out}");
    wait_final(&base, &token, &id).await;
    let (ok, out, _) = cli(&["get", &id]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "completed");
    let (ok, out, err) = cli(&["download", &id, "-o", "cli.mp4"]);
    assert!(ok, "{err}");
    assert!(out.contains("cli.mp4"), "{out}");
    let m = ffprobe(&dir.path().join("cli.mp4"));
    assert_eq!((m.width, m.frames), (854, 48), "2 s at 24 fps: {m:?}");
    // An id is checked before it goes into a URL or a file name.
    for bad in ["rec_nope", "../../etc"] {
        let (ok, _, err) = cli(&["get", bad]);
        assert!(!ok && err.contains("is not a recording id"), "{err}");
    }
    let (ok, _, err) = Command::new(BIN)
        .args(["ls", "--server", &base, "--token", "tdk_bad"])
        .output()
        .map(|o| {
            (
                o.status.success(),
                (),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(!ok && err.contains("401"), "{err}");

    let out = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for what in [
        "ffmpeg",
        "ffprobe",
        "chromium-headless-shell",
        "chromium",
        "data folder",
        "database",
        "storage",
        "encode mp4",
        "encode webm",
        "encode mp4 when busy",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(what)),
            "{what}: {text}"
        );
    }
    // The open-files limit is reported (a warning when it is low).
    assert!(
        text.lines().any(|l| l.contains("open files:")
            && (l.starts_with("ok") || l.starts_with("warning"))),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .env("TAPEDECK_ENCODER__FFMPEG", "/nonexistent/ffmpeg")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("MISSING ffmpeg") && text.contains("apt-get install ffmpeg"),
        "{text}"
    );
    // ffmpeg runs and lists its encoders, but the configured arguments fail:
    // doctor says so (it makes a real two-frame file per path).
    let out = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .env("TAPEDECK_ENCODER__X264_PRESET", "no-such-preset")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("ffmpeg"))
            && text.contains("MISSING encode mp4")
            && !text.contains("MISSING encode webm"),
        "{text}"
    );
    // The preset of encoders started on a busy server is checked too.
    let out = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .env("TAPEDECK_ENCODER__BUSY_X264_PRESET", "no-such-preset")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("MISSING encode mp4 when busy")
            && text
                .lines()
                .any(|t| t.starts_with("ok") && t.contains("encode mp4") && !t.contains("busy")),
        "{text}"
    );
    // A missing browser, and the shell wrapper instead of the real binary.
    for (browser, says) in [
        (
            "/nonexistent/chromium-headless-shell",
            "apt-get install chromium-headless-shell",
        ),
        ("/usr/bin/chromium-headless-shell", "shell script"),
    ] {
        let out = Command::new(BIN)
            .args(["doctor", "--data-dir"])
            .arg(&data)
            .env("TAPEDECK_WEB__BROWSER", browser)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("MISSING chromium-headless-shell") && text.contains(says),
            "{text}"
        );
    }
}

#[test]
fn record_command_writes_a_file_or_says_why_not() {
    let page = tapedeck_testkit::PageServer::start(vec![(
        "/",
        tapedeck_testkit::Page::Body(
            "text/html",
            "<!doctype html><body style='background:#eee'><h1>Title</h1><a class='btn' href='#'>Start now</a><h2>One</h2><p style='height:1500px'>x</p><h2>Two</h2></body>".into(),
        ),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tour.mp4");
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .arg("record")
            .arg(page.url("/"))
            .arg("-o")
            .arg(&out)
            .args(extra)
            .env("TAPEDECK_ENCODER__X264_PRESET", "ultrafast")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // Loopback is refused unless allowed; nothing is written.
    let o = run(&["--auto", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("loopback"), "{err}");
    assert!(!out.exists());
    // A 3-second auto tour at 640x360.
    let o = run(&["--auto", "3", "--size", "640x360", "--allow-private"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let p = ffprobe(&out);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height, p.frames),
        ("h264", 640, 360, 90),
        "{p:?}"
    );
    // A template into WebM.
    let webm = dir.path().join("hero.webm");
    let o = Command::new(BIN)
        .arg("record")
        .arg(page.url("/"))
        .arg("-o")
        .arg(&webm)
        .args([
            "--template",
            "hero_showcase",
            "--preset",
            "low",
            "--allow-private",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = ffprobe(&webm);
    assert_eq!((p.codec.as_str(), p.width, p.height), ("vp9", 854, 480));
    // A bad script file names the step and field; nothing is written.
    let script = dir.path().join("bad.yaml");
    std::fs::write(&script, "- type: click\n  selectr: '#go'\n").unwrap();
    let bad = dir.path().join("bad.mp4");
    let o = Command::new(BIN)
        .arg("record")
        .arg(page.url("/"))
        .arg("-o")
        .arg(&bad)
        .arg("--script")
        .arg(&script)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("step 1 (click)") && err.contains("selectr"),
        "{err}"
    );
    assert!(!bad.exists());
    // No temporary folders are left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tapedeck"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_web_recording_takes_the_browser_down_too() {
    let page = tapedeck_testkit::PageServer::start(vec![(
        "/",
        tapedeck_testkit::Page::Body(
            "text/html",
            include_str!("../../../bench/pages/clock.html").into(),
        ),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = key(&data, "dave");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let open = [("TAPEDECK_WEB__ALLOW_PRIVATE_NETWORKS", "true")];
    let mut server = serve_with(&data, port, &open);
    let rec = post(
        &base,
        &token,
        "/v1/recordings",
        json!({"source": {"kind": "web", "url": page.url("/"), "script": [{"type": "wait", "duration_ms": 120000}]}, "preset": "low"}),
    )
    .await;
    let id = rec["id"].as_str().unwrap().to_string();
    // Let it record a while (the spool syncs twice a second).
    let t0 = Instant::now();
    loop {
        let r = get(&base, &token, &format!("/v1/recordings/{id}")).await;
        // It starts a moment after it is created.
        assert!(
            r["status"] == "recording" || r["status"] == "pending",
            "{r}"
        );
        let spool = data.join("work").join(&id).join("frames.spool");
        if std::fs::metadata(&spool)
            .map(|m| m.len() > 200_000)
            .unwrap_or(false)
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no frames spooled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let browsers = || {
        let needle = data.to_string_lossy().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                let c = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let c = String::from_utf8_lossy(&c);
                c.contains(&needle) && c.contains("headless")
            })
            .count()
    };
    assert!(browsers() >= 1, "the browser runs while recording");
    server.kill_9();
    // The browser's pipe closed: it exits by itself.
    let t0 = Instant::now();
    while browsers() > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the browser outlived the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At the next start the recording is finalized from its spool.
    let _server = serve_with(&data, port, &open);
    let r = wait_final(&base, &token, &id).await;
    assert_eq!(
        (r["status"].as_str(), r["end_reason"].as_str()),
        (Some("completed"), Some("recovered")),
        "{r}"
    );
    assert!(r["duration_s"].as_f64().unwrap() > 0.5, "{r}");
}

/// `kill -9` while a room records a call: at the next start every track
/// file is finalized where it was cut and the recording completes with
/// `end_reason: recovered`, each track playing to within a second of the
/// kill (Chromium publishes over WHIP; tests/e2e/whip.mjs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_room_records_then_recover_its_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = key(&data, "alice");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve(&data, port);
    let room = post(&base, &token, "/v1/rooms", json!({"name": "call"})).await;
    let room = room["id"].as_str().unwrap().to_string();
    let guest = post(
        &base,
        &token,
        &format!("/v1/rooms/{room}/invites"),
        json!({"name": "Guest"}),
    )
    .await;
    let guest = guest["token"].as_str().unwrap().to_string();
    let rec = post(
        &base,
        &token,
        "/v1/recordings",
        json!({"source": {"kind": "room", "room": room}}),
    )
    .await;
    let id = rec["id"].as_str().unwrap().to_string();
    // The publisher outlives the server; what it says afterwards is not
    // what this test is about.
    let publisher = tokio::spawn(page_script(
        "whip.mjs",
        vec![base.clone(), room.clone(), guest, "12".into()],
    ));
    let start = Instant::now();
    loop {
        let r = get(&base, &token, &format!("/v1/rooms/{room}")).await;
        if r["participants"][0]["frames_in"].as_u64().unwrap_or(0) > 100 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no media: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = get(&base, &token, &format!("/v1/recordings/{id}")).await["started_at"]
        .as_str()
        .unwrap()
        .to_string();
    let started_ms = tapedeck_core::recording::time_ms::parse(&started).unwrap();
    let killed_ms = tapedeck_server::now_ms();
    server.kill_9();
    let ran_s = (killed_ms - started_ms) as f64 / 1000.0;

    let _server = serve(&data, port);
    let done = wait_final(&base, &token, &id).await;
    println!("{}", serde_json::to_string_pretty(&done["tracks"]).unwrap());
    assert_eq!(
        (done["status"].as_str(), done["end_reason"].as_str()),
        (Some("completed"), Some("recovered")),
        "{done}"
    );
    let tracks = done["tracks"].as_array().unwrap();
    let mut kinds: Vec<&str> = tracks.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"], "{done}");
    for t in tracks {
        let tid = t["id"].as_str().unwrap();
        let bytes = reqwest::Client::new()
            .get(format!("{base}/v1/recordings/{id}/tracks/{tid}/media"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let file = dir.path().join(format!("{tid}.webm"));
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(rooms::decode_errors(&file), "", "{tid} decodes cleanly");
        let dur = rooms::duration_s(&file);
        let end = t["start_s"].as_f64().unwrap() + dur;
        println!(
            "{tid} {}: ends at {end:.2} s, killed at {ran_s:.2} s",
            t["kind"]
        );
        assert!(
            end > ran_s - 1.0 && end < ran_s + 0.5,
            "{tid} ends at {end} s on the recording's timeline; the server was killed at {ran_s} s"
        );
    }
    let media = dir.path().join("media.webm");
    let bytes = reqwest::Client::new()
        .get(format!("{base}/v1/recordings/{id}/media"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(&media, &bytes).unwrap();
    assert_eq!(rooms::codecs(&media), ["opus", "vp8"]);
    publisher.abort();
}
