//! One deterministic web recording rendered by two browsers at once, each a
//! range of its frames, joined without re-encoding: the same video as one
//! browser's, frame by frame (the page's barcode of its clock and frame
//! count in every frame, SSIM against the one-browser render); a page that
//! is not the same when played again is rendered by one browser instead;
//! a stop keeps the part from the start.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::*;
use tapedeck_testkit::{Page, PageServer, barcode, ffprobe, ssim_per_frame};

/// The text page (a long article, a header barcode redrawn on every
/// animation frame, transitions and a canvas) scrolled for 11 s.
const FPS: u32 = 30;
const FRAMES: u64 = 11 * FPS as u64;

fn site() -> PageServer {
    PageServer::start(vec![(
        "/",
        Page::Body(
            "text/html",
            include_str!("../../../bench/pages/text.html").to_string(),
        ),
    )])
}

fn body(url: &str, split: &str) -> Value {
    json!({"source": {"kind": "web", "url": url, "split": split, "script": [
        {"type": "wait", "duration_ms": 1000},
        {"type": "scroll", "by_px": 2400, "duration_ms": 6000},
        {"type": "move", "x": 500, "y": 300, "duration_ms": 2000},
        {"type": "wait", "duration_ms": 2000}
    ]}, "width": 640, "height": 360, "fps": FPS})
}

/// Two browsers per recording, ranges of at least 2 s. A recording
/// spread out encodes at the busy preset: here every one does, so that a
/// one-browser render is the same encode of the same pictures.
async fn server(port: u16) -> Server {
    start(|c| {
        c.web.allowed_hosts = vec![format!("127.0.0.1:{port}")];
        c.web.browsers_per_recording = 2;
        c.web.min_range_s = 2;
        c.encoder.busy_above = 0.0;
    })
    .await
}

/// Every frame shows its own instant: frame k's counter is the first
/// frame's plus k and its clock k/fps later; none holds, none jumps.
fn assert_each_frame_its_own_instant(video: &Path, frames: u64) -> Vec<Option<barcode::Mark>> {
    let marks = barcode::decode_video(Path::new("ffmpeg"), video, FPS).unwrap();
    assert_eq!(marks.len() as u64, frames);
    let first = marks[0].expect("frame 0 has its barcode");
    for (k, m) in marks.iter().enumerate() {
        let m = m.unwrap_or_else(|| panic!("frame {k} has no barcode"));
        assert_eq!(
            m.counter,
            first.counter.wrapping_add(k as u16),
            "frame {k}: {m:?}"
        );
    }
    let s = barcode::smoothness(&marks, FPS);
    assert_eq!((s.holds, s.jerk), (0, 0.0), "{s:?}");
    marks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_render_the_one_browser_video() {
    let site = site();
    let s = server(site.port).await;
    let token = s.key("ann", false).await;
    let url = site.url("/?transitions=1&canvas=1");

    let split = s.create(&token, body(&url, "auto")).await;
    let id = split["id"].as_str().unwrap();
    let done = s.wait_status(&token, id, "completed").await;
    assert_eq!(done["stats"]["browsers"], 2, "{done}");
    assert!(done["note"].is_null(), "{done}");
    let joined = s.download(&token, id, "mp4").await;

    let one = s.create(&token, body(&url, "off")).await;
    let one_id = one["id"].as_str().unwrap();
    let one_done = s.wait_status(&token, one_id, "completed").await;
    assert_eq!(one_done["stats"]["browsers"], 1, "{one_done}");
    let whole = s.download(&token, one_id, "mp4").await;

    for (v, d) in [(&joined, &done), (&whole, &one_done)] {
        let p = ffprobe(v);
        assert_eq!(
            (p.codec.as_str(), p.width, p.height, p.frames),
            ("h264", 640, 360, FRAMES),
            "{p:?}"
        );
        assert!((p.duration_s - 11.0).abs() < 0.05, "{p:?}");
        assert_eq!(d["stats"]["frames_written"], FRAMES, "{d}");
    }
    let a = assert_each_frame_its_own_instant(&joined, FRAMES);
    let b = assert_each_frame_its_own_instant(&whole, FRAMES);
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(
            (x.clock_us, x.counter),
            (y.clock_us, y.counter),
            "frame {k}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let ssim = ssim_per_frame(&whole, &joined, 0, dir.path());
    assert_eq!(ssim.len() as u64, FRAMES);
    let worst = ssim.iter().cloned().fold(1.0, f64::min);
    assert!(worst >= 0.99, "worst SSIM {worst}");
}

/// A page that loads another article each time (seeded from
/// `Math.random`): the second browser's first picture is not the first
/// browser's at the join, so one browser renders it all, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_not_the_same_when_played_again_is_rendered_by_one_browser() {
    let site = site();
    let s = server(site.port).await;
    let token = s.key("ann", false).await;
    let rec = s
        .create(&token, body(&site.url("/?seed=random"), "auto"))
        .await;
    let id = rec["id"].as_str().unwrap();
    let done = s.wait_status(&token, id, "completed").await;
    assert_eq!(done["note"]["code"], "not_replayable", "{done}");
    assert_eq!(done["stats"]["browsers"], 1, "{done}");
    let video = s.download(&token, id, "mp4").await;
    assert_eq!(ffprobe(&video).frames, FRAMES);
    assert_each_frame_its_own_instant(&video, FRAMES);
}

/// Rendered again by one browser, still recording: a stop reaches it at
/// once and keeps the part from the start, with the note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reaches_the_render_by_one_browser() {
    let site = site();
    let s = server(site.port).await;
    let token = s.key("ann", false).await;
    let rec = s
        .create(&token, body(&site.url("/?seed=random"), "auto"))
        .await;
    let id = rec["id"].as_str().unwrap();
    let start = std::time::Instant::now();
    loop {
        let (_, v) = s.get(&token, &format!("/v1/recordings/{id}")).await;
        if v["stats"]["browsers"] == 1 && v["stats"]["frames_written"].as_u64().unwrap_or(0) >= 30 {
            assert_eq!(v["status"], "recording", "{v}");
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, v) = s
        .post(&token, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    assert_eq!(
        (code, v["status"].as_str()),
        (200, Some("processing")),
        "{v}"
    );
    let done = s.wait_status(&token, id, "completed").await;
    assert_eq!(done["note"]["code"], "not_replayable", "{done}");
    let video = s.download(&token, id, "mp4").await;
    let frames = ffprobe(&video).frames;
    assert!((30..FRAMES).contains(&frames), "{frames}: {done}");
    assert_each_frame_its_own_instant(&video, frames);
}

/// A script with a `goto`: the ranges start after it (the browsers that
/// play up to a range load the next page too) and the recording
/// completes, every frame there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_with_a_goto_completes() {
    let site = site();
    let s = server(site.port).await;
    let token = s.key("ann", false).await;
    let next = site.url("/?transitions=1");
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": site.url("/"), "script": [
                {"type": "wait", "duration_ms": 3000},
                {"type": "goto", "url": next},
                {"type": "wait", "duration_ms": 9000}
            ]}, "width": 640, "height": 360, "fps": FPS}),
        )
        .await;
    let id = rec["id"].as_str().unwrap();
    let done = s.wait_status(&token, id, "completed").await;
    let video = s.download(&token, id, "mp4").await;
    assert_eq!(ffprobe(&video).frames, 12 * u64::from(FPS), "{done}");
    let marks = barcode::decode_video(Path::new("ffmpeg"), &video, FPS).unwrap();
    assert!(
        marks.iter().all(Option::is_some),
        "a frame without its page"
    );
}

/// Stopped while both browsers render: the video is the part from the
/// start, every frame its own instant, nothing of the later range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_keeps_the_part_from_the_start() {
    let site = site();
    let s = server(site.port).await;
    let token = s.key("ann", false).await;
    let rec = s
        .create(&token, body(&site.url("/?transitions=1"), "auto"))
        .await;
    let id = rec["id"].as_str().unwrap();
    // Stop once some frames are rendered (the live stats say how many).
    let start = std::time::Instant::now();
    loop {
        let (_, v) = s.get(&token, &format!("/v1/recordings/{id}")).await;
        if v["stats"]["frames_written"].as_u64().unwrap_or(0) >= 40 {
            assert_eq!(v["stats"]["browsers"], 2, "{v}");
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, v) = s
        .post(&token, &format!("/v1/recordings/{id}/stop"), json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    let done = s.wait_status(&token, id, "completed").await;
    let video = s.download(&token, id, "mp4").await;
    let frames = ffprobe(&video).frames;
    assert!((20..FRAMES).contains(&frames), "{frames} frames: {done}");
    assert_eq!(done["stats"]["frames_written"], frames, "{done}");
    let marks = assert_each_frame_its_own_instant(&video, frames);
    // From the start: frame 0 shows one of the page's first animation
    // frames (the second range begins seconds in).
    let first = marks[0].unwrap();
    assert!(first.counter < 30, "{first:?}");
}

/// The browsers of a recording (their profiles are in its work folder).
fn browsers_of(data: &Path, id: &str) -> Vec<(String, String)> {
    let needle = data.join("work").join(id).to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).to_string();
            (cmd.contains(&needle) && cmd.contains("--remote-debugging-pipe"))
                .then(|| (e.file_name().to_string_lossy().to_string(), cmd))
        })
        .collect()
}

/// One range's browser dies: the recording fails as any whose browser
/// crashed, and its other browser is stopped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_s_browser_that_dies_fails_the_recording_and_stops_the_other() {
    let site = site();
    let s = server(site.port).await;
    let token = s.key("ann", false).await;
    let rec = s.create(&token, body(&site.url("/"), "auto")).await;
    let id = rec["id"].as_str().unwrap();
    let start = std::time::Instant::now();
    let second = loop {
        let b = browsers_of(&s.data, id);
        if b.len() == 2 {
            break b
                .into_iter()
                .find(|(_, cmd)| cmd.contains("range-1"))
                .unwrap();
        }
        assert!(start.elapsed().as_secs() < 60, "{b:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    std::process::Command::new("kill")
        .args(["-9", &second.0])
        .status()
        .unwrap();
    let f = s.wait_status(&token, id, "failed").await;
    assert_eq!(f["error"]["code"], "browser_crashed", "{f}");
    let start = std::time::Instant::now();
    while !browsers_of(&s.data, id).is_empty() {
        assert!(start.elapsed().as_secs() < 30, "a browser is left");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
