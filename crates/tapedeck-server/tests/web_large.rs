//! The largest sizes on a page like a real one (`bench/pages/text.html`): a
//! long article under a fixed header whose barcode the page redraws on every
//! animation frame, with a web font and images that load late, CSS
//! transitions and a canvas, scrolled at 2160p60 and 1440p60 on the default
//! preset. Every frame of the video must show its own instant: the barcode
//! of each is read back, none repeats the one before, none jumps.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tapedeck_testkit::{Page, PageServer, barcode, ffprobe};

/// The text page with its font (late by 300 ms) and figure (late by 700 ms).
fn text_site(dir: &std::path::Path) -> PageServer {
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf").unwrap();
    let png = dir.join("figure.png");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=960x360")
        .args(["-frames:v", "1"])
        .arg(&png)
        .status()
        .unwrap();
    assert!(made.success());
    PageServer::start(vec![
        (
            "/",
            Page::Body(
                "text/html",
                include_str!("../../../bench/pages/text.html").to_string(),
            ),
        ),
        (
            "/font.ttf",
            Page::Late("font/ttf", font, Duration::from_millis(300)),
        ),
        (
            "/figure.png",
            Page::Late(
                "image/png",
                std::fs::read(&png).unwrap(),
                Duration::from_millis(700),
            ),
        ),
    ])
}

async fn scrolled_at(w: u32, h: u32, fps: u32) {
    let dir = tempfile::tempdir().unwrap();
    let site = text_site(dir.path());
    let s = start_for_site(site.port).await;
    let token = s.key("ann", false).await;
    let url = site.url("/?font=/font.ttf&images=/figure.png&transitions=1&canvas=1");
    // The default preset (medium) at another size and rate.
    let rec = s
        .create(
            &token,
            json!({"source": {"kind": "web", "url": url, "script": [
                {"type": "wait", "duration_ms": 500},
                {"type": "scroll", "by_px": 1500, "duration_ms": 1500},
                {"type": "move", "x": 600, "y": 400, "duration_ms": 800},
                {"type": "wait", "duration_ms": 300}
            ]}, "width": w, "height": h, "fps": fps}),
        )
        .await;
    let id = rec["id"].as_str().unwrap();
    let done = s.wait_status(&token, id, "completed").await;
    let video = s.download(&token, id, "mp4").await;
    let p = ffprobe(&video);
    let frames = u64::from(fps) * 3100 / 1000;
    assert_eq!(
        (p.codec.as_str(), p.width, p.height, p.frames),
        ("h264", u64::from(w), u64::from(h), frames),
        "{p:?} {done}"
    );
    let marks = barcode::decode_video(std::path::Path::new("ffmpeg"), &video, fps).unwrap();
    let st = barcode::smoothness(&marks, fps);
    eprintln!(
        "{w}x{h}@{fps}: {st:?}, bitrate cap {} kbit/s",
        done["video"]["video_bitrate_kbps"]
    );
    assert_eq!(st.unreadable, 0, "{st:?}");
    assert_eq!(st.holds, 0, "a picture older than its instant: {st:?}");
    assert_eq!(st.jerk, 0.0, "{st:?}");
    // The late figure did arrive, and in the recording's virtual time.
    assert!(site.hits().iter().any(|h| h.starts_with("/figure.png")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_page_scrolled_at_2160p60_repeats_no_picture() {
    scrolled_at(3840, 2160, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_page_scrolled_at_1440p60_repeats_no_picture() {
    scrolled_at(2560, 1440, 60).await;
}
