//! A realtime web recording with the page's sound, through the API in the
//! real chromium-headless-shell: in its file, and live (HLS and an RTMP
//! push to nginx). Its own test binary, its tests one at a time, so no
//! other browser shares the two cores: realtime capture runs on the wall
//! clock.

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

/// One realtime browser at a time in this binary.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let id = start_recording(s, token, url, 1500, json!([])).await;
    s.wait_status(token, &id, "completed").await
}

/// Starts a realtime recording of the tone page (the click 1.5 s in, then
/// `then_ms` of tone) with `outputs`, and pauses it for a second in its
/// first wait: its id, once resumed.
async fn start_recording(
    s: &Server,
    token: &str,
    url: String,
    then_ms: u32,
    outputs: serde_json::Value,
) -> String {
    let rec = s
        .create(
            token,
            json!({"source": {"kind": "web", "url": url, "mode": "realtime", "script": [
                {"type": "wait", "duration_ms": 1500},
                {"type": "click", "selector": "#go"},
                {"type": "wait", "duration_ms": then_ms}
            ]}, "preset": "low", "format": "mp4", "outputs": outputs}),
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
    id.to_string()
}

/// The first frame (24 fps) where the page turned white, and the tone's
/// onset, both in seconds; the audio's and the video's length.
fn onsets(video: &Path) -> ((f64, f64), (f64, f64)) {
    let p = ffprobe(video);
    let (w, h) = (p.width as u32, p.height as u32);
    let f = frames(video, w, h);
    let white = f
        .iter()
        .position(|fr| px(fr, w, 40, 400)[0] > 240)
        .expect("the click never showed");
    let a = samples(video);
    let onset = a
        .iter()
        .position(|x| x.unsigned_abs() > 3000)
        .expect("no tone in the audio");
    (
        (white as f64 / 24.0, onset as f64 / 48000.0),
        (f.len() as f64 / 24.0, a.len() as f64 / 48000.0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_records_the_page_audio_in_sync_across_a_pause() {
    let _one = ONE_AT_A_TIME.lock().await;
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

/// The page's sound goes live: the live segments, read while the page
/// records, and nginx's copy of the RTMP push carry the tone (AAC), which
/// starts where the page turned white, across a second's pause, as in the
/// file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_sound_is_in_the_live_segments_and_the_stream() {
    use tapedeck_testkit::receivers::NginxRtmp;
    let _one = ONE_AT_A_TIME.lock().await;
    let site = PageServer::start(vec![("/", Page::Body("text/html", TONE_PAGE.into()))]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nginx")).unwrap();
    let mut nginx = NginxRtmp::start(&dir.path().join("nginx"));
    let hosts = (
        format!("127.0.0.1:{}", site.port),
        format!("127.0.0.1:{}", nginx.port),
    );
    let s = start(move |c| {
        c.web.allowed_hosts = vec![hosts.0];
        c.outputs.allowed_hosts = vec![hosts.1];
    })
    .await;
    let token = s.key("alice", false).await;
    let outputs =
        json!([{"kind": "hls", "segment_s": 1}, {"kind": "rtmp", "url": nginx.url("page")}]);
    let id = start_recording(&s, &token, site.url("/"), 20_000, outputs).await;

    // While it records: the live playlist once it holds 7 s, and its
    // segments so far, copied here.
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let get = |name: String| {
        let (s, token, id) = (&s, &token, &id);
        async move {
            let r = s
                .client()
                .get(format!("{}/v1/recordings/{id}/hls/{name}", s.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{name}");
            r.bytes().await.unwrap().to_vec()
        }
    };
    let playlist = loop {
        let text = String::from_utf8(get("index.m3u8".into()).await).unwrap();
        let held: f64 = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .filter_map(|l| l.trim_end_matches(',').parse::<f64>().ok())
            .sum();
        if held >= 7.0 {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let (_, now) = s.get(&token, &format!("/v1/recordings/{id}")).await;
    assert_eq!(now["status"], "recording", "read while recording: {now}");
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    std::fs::write(live.join("init.mp4"), get("init.mp4".into()).await).unwrap();
    for seg in playlist.lines().filter(|l| l.ends_with(".m4s")) {
        std::fs::write(live.join(seg), get(seg.to_string()).await).unwrap();
    }
    // Ended here, so ffmpeg reads the copy from its first segment (a live
    // playlist it would join three from the end, and reload).
    std::fs::write(
        live.join("index.m3u8"),
        format!("{playlist}#EXT-X-ENDLIST\n"),
    )
    .unwrap();
    let local = live.join("index.m3u8");
    assert_eq!(codecs(&local), ["aac", "h264"], "{playlist}");
    let ((shown, heard), (video_s, audio_s)) = onsets(&local);
    eprintln!(
        "live: white at {shown:.3} s, tone at {heard:.3} s; video {video_s:.3} s, audio {audio_s:.3} s"
    );
    assert!(heard > 1.0, "sound before the click: {heard}");
    assert!(
        (heard - shown).abs() < 0.15,
        "live: tone at {heard:.3} s, page turned white at {shown:.3} s"
    );
    assert!(
        (audio_s - video_s).abs() < 0.2,
        "live: audio {audio_s:.3} s under {video_s:.3} s of video"
    );
    // The tone goes on under the rest of what was segmented.
    let a = samples(&local);
    let tail = &a[a.len() - 48_000..a.len() - 4_800];
    let loud = tail.iter().filter(|x| x.unsigned_abs() > 3000).count();
    assert!(
        loud > tail.len() / 4,
        "the live tone fades: {loud} loud samples"
    );

    let done = s.wait_status(&token, &id, "completed").await;
    assert_eq!(done["media"]["audio_codec"], "aac", "{done}");
    // The file's sound lines up as the live one did.
    let file = s.download(&token, &id, "mp4").await;
    let ((shown, heard), _) = onsets(&file);
    eprintln!("file: white at {shown:.3} s, tone at {heard:.3} s");
    assert!(
        (heard - shown).abs() < 0.15,
        "file: tone at {heard:.3} s, page turned white at {shown:.3} s"
    );
    // nginx recorded the push: H.264 and the tone in AAC, in sync.
    nginx.kill();
    let files = nginx.recorded();
    let flv = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .expect("nginx recorded nothing");
    assert_eq!(codecs(flv), ["aac", "h264"], "{files:?}");
    let a = samples(flv);
    let loud = a.iter().filter(|x| x.unsigned_abs() > 3000).count();
    assert!(
        loud as f64 / 48_000.0 > 4.0,
        "{:.2} s of tone in the stream",
        loud as f64 / 48_000.0
    );
}

/// The codecs of `file`'s streams, as ffprobe names them, each once
/// (sorted; a playlist's program lists them again).
fn codecs(file: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    let mut c: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    c.sort();
    c.dedup();
    c
}
