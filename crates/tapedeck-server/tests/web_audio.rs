//! A realtime web recording with the page's sound, through the API in the
//! real chromium-headless-shell. Its own test binary, so no other browser
//! test shares the two cores with it: realtime capture runs on the wall clock.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::*;
use tapedeck_testkit::{Page, PageServer, ffprobe};

const TONE_PAGE: &str = r##"<!doctype html><html><head><style>
html, body { margin: 0; height: 100%; background: #202020; }
#go { position: absolute; left: 380px; top: 200px; width: 100px; height: 40px; }
</style></head><body><button id="go">Play</button>
<script>
document.getElementById('go').addEventListener('click', () => {
  const ctx = new AudioContext();
  const o = ctx.createOscillator();
  o.frequency.value = 440;
  o.connect(ctx.destination);
  o.start();
  document.body.style.background = '#ffffff';
});
</script></body></html>"##;

/// The audio track as mono 48 kHz samples.
fn samples(video: &Path) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A realtime recording of the tone page, paused for a second in its first
/// wait; returns it completed.
async fn record(s: &Server, token: &str, url: String) -> serde_json::Value {
    let rec = s
        .create(
            token,
            json!({"source": {"kind": "web", "url": url, "mode": "realtime", "script": [
                {"type": "wait", "duration_ms": 1500},
                {"type": "click", "selector": "#go"},
                {"type": "wait", "duration_ms": 1500}
            ]}, "preset": "low", "format": "mp4"}),
        )
        .await;
    let id = rec["id"].as_str().unwrap();
    s.wait_status(token, id, "recording").await;
    // Pause for a second in the first wait: neither track may keep it.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (st, _) = s
        .post(token, &format!("/v1/recordings/{id}/pause"), json!({}))
        .await;
    assert_eq!(st, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let (st, _) = s
        .post(token, &format!("/v1/recordings/{id}/resume"), json!({}))
        .await;
    assert_eq!(st, 200);
    s.wait_status(token, id, "completed").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_records_the_page_audio_in_sync_across_a_pause() {
    let site = PageServer::start(vec![("/", Page::Body("text/html", TONE_PAGE.into()))]);
    let s = start_for_site(site.port).await;
    let token = s.key("alice", false).await;
    // Chromium 156 crashes (SIGTRAP) now and then in
    // Page.stopScreenRecording, where the tab's sound is handed over: in 5
    // of about 75 runs of this test here. The recording then completes without sound
    // and says so (`audio_missing`); that is the browser's defect, seen
    // once in a while, so a second recording is made. Sound that never
    // comes fails both.
    let mut done = record(&s, &token, site.url("/")).await;
    if done["note"]["code"] == "audio_missing"
        && done["note"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("crashed"))
    {
        eprintln!("the browser crashed saving the sound, recording again: {done}");
        done = record(&s, &token, site.url("/")).await;
    }
    let id = done["id"].as_str().unwrap();
    assert_eq!(done["media"]["audio_codec"], "aac", "{done}");
    let video = s.download(&token, id, "mp4").await;
    let p = ffprobe(&video);
    assert_eq!((p.codec.as_str(), p.width, p.height), ("h264", 854, 480));
    let f = frames(&video, 854, 480);
    assert_eq!(f.len() as u64, p.frames);
    let white = f
        .iter()
        .position(|fr| px(fr, 854, 40, 400)[0] > 240)
        .expect("the click never showed");
    // Wait 36 frames, move 17, press on frame 53, release on 54. The page
    // runs on the wall clock, so it may show the click a frame or two late,
    // but input must not hold the frame loop up (it once waited for each
    // mouse move's acknowledgement, seconds per frame, missing every frame).
    assert!(
        (54..=57).contains(&white),
        "the click showed in frame {white}"
    );
    let a = samples(&video);
    let audio_s = a.len() as f64 / 48000.0;
    assert!(
        (audio_s - p.duration_s).abs() < 0.05,
        "audio {audio_s:.3} s, video {:.3} s",
        p.duration_s
    );
    let onset = a
        .iter()
        .position(|x| x.unsigned_abs() > 3000)
        .expect("no tone in the audio");
    let (onset_s, shown_s) = (onset as f64 / 48000.0, white as f64 / 24.0);
    eprintln!("tone at {onset_s:.3} s, white frame {white} at {shown_s:.3} s");
    // Silence before the click; the tone lines up with the picture (a second
    // paused but not cut would put it a second late). The browser's own audio
    // output latency (about 40 ms for a new AudioContext on its silent output)
    // is in the sound, as a listener would hear it.
    assert!(onset_s > 1.0, "sound before the click: {onset_s}");
    assert!(
        (onset_s - shown_s).abs() < 0.1,
        "tone at {onset_s:.3} s, page turned white at {shown_s:.3} s"
    );
    // The tone goes on to the end (within one 1024-sample AAC frame).
    let last = a.iter().rposition(|x| x.unsigned_abs() > 3000).unwrap();
    assert!(
        a.len() - last < 1440,
        "the audio stops {:.3} s early",
        (a.len() - last) as f64 / 48000.0
    );
}
