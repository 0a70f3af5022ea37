//! The in-browser recorder (web/recorder.js) on the home page's Record tab,
//! in Debian's Chromium with a fake camera and microphone
//! (tests/e2e/record_tab.mjs drives the page): a 5 s network cut during
//! the recording loses no second of it; an upload that cannot finish
//! offers the whole file as a download; the screen with the camera in a
//! corner is one composed picture.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::rooms::largest_gap;
use support::*;

fn has_cues(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(4).any(|w| w == [0x1C, 0x53, 0xBB, 0x6B])
}

/// Decodes `path` in full: ffmpeg prints no decoding error. (The null
/// muxer's "non monotonically increasing dts to muxer" is about its own
/// output time base, which two frames closer than it, as a loaded
/// browser's camera sends, share; it is not a flaw of the file.)
fn decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.contains("to muxer")).collect();
    assert!(
        out.status.success() && errors.is_empty(),
        "{}: {stderr}",
        path.display(),
    );
}

fn audio_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .fold(0.0, f64::max)
}

/// One browser scenario at a time: each runs Chromium encoding 720p VP8
/// in software, and two at once on a 2-core machine starve the page's
/// composition to a frame or two a second.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn the_upload(out: &Value) -> String {
    let recs = out["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{out}");
    assert_eq!(recs[0]["kind"], "upload", "{out}");
    recs[0]["id"].as_str().unwrap().to_string()
}

/// Records 12 s of the camera with the server cut off (the browser's
/// network emulation) from 3 s to 8 s. The page keeps recording, says it
/// keeps the recording, and catches up: the uploaded file holds the whole
/// 12 s, with no gap in its pictures or its sound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cut_during_recording_loses_no_second() {
    let _one = ONE_BROWSER.lock().await;
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let out = page_script(
        "record_tab.mjs",
        vec![
            s.base.clone(),
            key.clone(),
            "drop".into(),
            "12".into(),
            "3".into(),
            "5".into(),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(out["pageErrors"], serde_json::json!([]), "{out}");
    assert_eq!(out["upload"], "completed", "{out}");
    let offline = out["offlineTo"].as_f64().unwrap() - out["offlineFrom"].as_f64().unwrap();
    assert!(offline > 4.9, "{out}");
    let seen = out["seen"].as_array().unwrap();
    assert!(
        seen.iter()
            .any(|t| t.as_str().unwrap().contains("kept in this browser")),
        "the page said it keeps the recording while offline: {out}"
    );
    let id = the_upload(&out);
    let done = s.wait_status(&key, &id, "completed").await;
    println!("{done}");
    let media = s.download(&key, &id, "webm").await;
    let p = tapedeck_testkit::ffprobe(&media);
    println!("{p:?}");
    // Every second recorded is there: as long as the page recorded, from
    // start to stop as it timed them (on a loaded machine the test's own
    // clock sees both late).
    let recorded = out["recordedS"].as_f64().unwrap();
    assert!(recorded >= 12.0, "{out}");
    assert!(
        (p.duration_s - recorded).abs() < 1.0,
        "{recorded} s recorded, {p:?}"
    );
    let audio = audio_duration(&media);
    assert!(audio > recorded - 1.0, "audio ends at {audio}");
    let gap = largest_gap(&media);
    println!("largest gap between pictures {gap:.3} s");
    // The camera itself skips a few frames on a loaded machine; a lost
    // chunk would be a hole of a second or more (the cut lasted 5).
    assert!(gap < 1.0, "a hole in the pictures: {gap} s");
    assert!(has_cues(&media));
    decodes_cleanly(&media);
    assert_eq!(done["note"], Value::Null, "{done}");
}

/// The server stays out of reach from 1 s on: after stop the upload gives
/// up (`tapedeck.giveUpMs` set to 3 s) and the page offers the whole
/// recording as a download, which plays from start to end. The browser
/// keeps it: back online, the reloaded page lists it and uploads the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_cannot_finish_is_offered_as_a_download() {
    let _one = ONE_BROWSER.lock().await;
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("download.webm");
    let out = page_script(
        "record_tab.mjs",
        vec![
            s.base.clone(),
            key.clone(),
            "fallback".into(),
            "5".into(),
            file.display().to_string(),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(out["pageErrors"], serde_json::json!([]), "{out}");
    assert_eq!(out["upload"], "failed", "{out}");
    assert!(
        out["downloadName"].as_str().unwrap().ends_with(".webm"),
        "{out}"
    );
    let p = tapedeck_testkit::ffprobe(&file);
    println!("{p:?}");
    assert_eq!((p.codec.as_str(), p.width, p.height), ("vp8", 1280, 720));
    // A live WebM has no duration of its own: the last packet's time.
    let last = audio_duration(&file);
    let recorded = out["recordedS"].as_f64().unwrap();
    assert!(recorded >= 5.0, "{out}");
    assert!(
        (last - recorded).abs() < 1.0,
        "the file ends at {last} of {recorded} s"
    );
    assert!(largest_gap(&file) < 1.0);
    decodes_cleanly(&file);
    // Reloaded and back online, the page listed the recording it kept and
    // uploaded the rest of it: the server has the very bytes of the file.
    assert_eq!(out["leftovers"], 1, "{out}");
    assert_eq!(out["leftoversAfter"], 0, "{out}");
    let id = the_upload(&out);
    let done = s.wait_status(&key, &id, "completed").await;
    println!("{done}");
    let bytes = std::fs::read(&file).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(done["source"]["sha256"], sha.as_str(), "{done}");
    assert_eq!(done["source"]["length"], bytes.len());
    let media = s.download(&key, &id, "webm").await;
    let p = tapedeck_testkit::ffprobe(&media);
    assert!(p.duration_s > recorded - 1.0, "{p:?}");
}

/// "Screen and camera": this tab shared as the screen, with the fake
/// camera in the bottom right corner, composed into one picture at the
/// screen's size, with sound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screen_and_the_camera_are_one_picture() {
    let _one = ONE_BROWSER.lock().await;
    let (s, key, out) = record_tab("both").await;
    let id = the_upload(&out);
    let done = s.wait_status(&key, &id, "completed").await;
    let media = s.download(&key, &id, "webm").await;
    let p = tapedeck_testkit::ffprobe(&media);
    println!("{p:?}");
    assert!(p.duration_s > 3.0, "{p:?}");
    assert!(audio_duration(&media) > 3.0);
    decodes_cleanly(&media);
    println!("{done}");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("record-tab-both.png");
    let r = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-ss", "2", "-i"])
        .arg(&media)
        .args(["-frames:v", "1"])
        .arg(&shot)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    println!("a frame: {}", shot.display());
    // With --use-fake-device-for-media-stream the screen is Chromium's fake
    // capture too: a dark green picture with a bright green disc (a
    // turning "pacman") in its middle. The camera is the same pattern at a
    // quarter of the width in the bottom right corner: its small disc is
    // there, where the screen alone has only background.
    // Before recording: the microphone's meter moved; a 3-2-1 countdown.
    assert!(out["micMax"].as_f64().unwrap() > 0.0, "{out}");
    assert_eq!(
        out["countdown"],
        serde_json::json!(["3", "2", "1"]),
        "{out}"
    );
    let rgb = frame_rgb(&media, 1.5, 1280, 720);
    let bright = |rgb: &[u8], x0: usize, y0: usize, x1: usize, y1: usize| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let i = (y * 1280 + x) * 3;
                rgb[i + 1] > 200 && rgb[i] > 40 && rgb[i] < 150
            })
            .count()
    };
    let screen_disc = bright(&rgb, 440, 160, 840, 560);
    let camera_disc = bright(&rgb, 950, 530, 1250, 690);
    println!("bright pixels: screen's disc {screen_disc}, camera's disc {camera_disc}");
    assert!(screen_disc > 20_000, "{screen_disc}");
    assert!((1_500..12_000).contains(&camera_disc), "{camera_disc}");
    // Dragged to the top left corner halfway: the camera's disc is there
    // at the end, and no longer in the bottom right.
    let moved_at = out["bubbleMovedAt"].as_f64().unwrap();
    assert!(moved_at < p.duration_s - 1.5, "{out}");
    // A picture 0.8 s after the drag (not one timed from the file's end:
    // the sound may run past the last picture on a busy machine).
    let late = frame_rgb(&media, moved_at + 0.8, 1280, 720);
    let top_left = bright(&late, 20, 20, 340, 200);
    let bottom_right = bright(&late, 950, 530, 1250, 690);
    println!("after the drag: top left {top_left}, bottom right {bottom_right}");
    assert!((1_500..12_000).contains(&top_left), "{top_left}: {out}");
    assert!(bottom_right < 200, "{bottom_right}");
}

/// Pause and resume on the Record tab: the timer stands still while
/// paused, and the file holds the recorded time only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_tab_pauses_and_resumes() {
    let _one = ONE_BROWSER.lock().await;
    let (s, key, out) = record_tab("pause").await;
    assert_eq!(out["previewBefore"], true, "{out}");
    assert_eq!(out["pausedShown"], true, "{out}");
    assert_eq!(out["pauseLabel"], "Resume", "{out}");
    assert_eq!(out["timerWhilePaused"], "0:02", "{out}");
    let recorded = out["recordedS"].as_f64().unwrap();
    assert!((3.5..5.0).contains(&recorded), "6 s with 2 paused: {out}");
    let id = the_upload(&out);
    s.wait_status(&key, &id, "completed").await;
    let media = s.download(&key, &id, "webm").await;
    let last = audio_duration(&media);
    assert!(
        (last - recorded).abs() < 1.0,
        "the file ends at {last} s, {recorded} s were recorded"
    );
    decodes_cleanly(&media);
}

/// The strength of `freq` in mono PCM at `rate` (Goertzel).
fn tone_power(pcm: &[f32], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in pcm {
        let s = x as f64 + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / pcm.len() as f64
}

/// "Record in this browser" in a call, pressed by Bob, a guest with an
/// invite link (no API key). Ann's camera is red and her microphone plays
/// 440 Hz; Bob's camera is blue and his microphone plays 1500 Hz. The
/// upload is filed under the room as the host's, marked as Bob's, and its
/// pictures show both (a grid of the page's tiles) and its sound has both
/// tones (the mix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_in_this_browser_records_everyone_in_the_call() {
    let _one = ONE_BROWSER.lock().await;
    let s = start(|_| {}).await;
    let ann = s.key("ann", false).await;
    let room = support::rooms::new_room(&s, &ann).await;
    let bob = support::rooms::invite(&s, &ann, &room, "Bob").await;
    let dir = tempfile::tempdir().unwrap();
    let y4m = |name, colour: &str| {
        lavfi(
            dir.path(),
            name,
            &format!("color=c={colour}:s=640x360:r=30"),
            &["-t", "1", "-pix_fmt", "yuv420p"],
        )
    };
    let wav = |name, freq: u32| {
        lavfi(
            dir.path(),
            name,
            &format!("sine=f={freq}:r=48000"),
            &["-t", "2", "-ac", "1"],
        )
    };
    let out = page_script(
        "call_record.mjs",
        vec![
            s.base.clone(),
            room.clone(),
            ann.clone(),
            y4m("ann.y4m", "0xD02020"),
            wav("ann.wav", 440),
            bob.clone(),
            y4m("bob.y4m", "0x2040E0"),
            wav("bob.wav", 1500),
            "6".into(),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(out["annErrors"], serde_json::json!([]), "{out}");
    assert_eq!(out["bobErrors"], serde_json::json!([]), "{out}");
    assert_eq!(out["bobIsHost"], false);
    assert_eq!(out["buttonShown"], true);
    assert_eq!(out["upload"], "completed", "{out}");
    // While Bob recorded in his browser, the room showed no REC and Ann's
    // Record button stayed Record (it used to become Pause/Stop acting on
    // Bob's upload); only Bob's page showed his recording.
    let controls = serde_json::json!({"roomRec": false, "record": true, "pause": false, "stop": false, "here": false});
    assert_eq!(out["annControls"], controls, "{out}");
    assert_eq!(
        (
            out["bobControls"]["roomRec"].as_bool(),
            out["bobControls"]["here"].as_bool()
        ),
        (Some(false), Some(true)),
        "{out}"
    );
    // The picture names each person as everyone knows them: this page's
    // "(you)" is not burned into the recording.
    assert_eq!(
        out["composedNames"],
        serde_json::json!(["Bob", "ann"]),
        "{out}"
    );
    // Once stopped, the page no longer shows a blinking REC.
    assert_eq!(out["afterStop"]["dot"], "none", "{out}");
    assert_eq!(out["afterStop"]["recClass"], false, "{out}");
    assert_eq!(out["afterStop"]["label"], "Your browser recording", "{out}");
    let recs = out["roomRecordings"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{out}");
    assert_eq!(
        (
            recs[0]["kind"].as_str(),
            recs[0]["owner"].as_str(),
            recs[0]["guest"].as_str()
        ),
        (Some("upload"), Some("ann"), Some("Bob"))
    );
    let id = recs[0]["id"].as_str().unwrap();
    let done = s.wait_status(&ann, id, "completed").await;
    println!("{done}");
    let media = s.download(&ann, id, "webm").await;
    let p = tapedeck_testkit::ffprobe(&media);
    println!("{p:?}");
    assert_eq!((p.width, p.height), (1280, 720));
    // As long as the page recorded (from its start to its stop, as the page
    // timed them: on a loaded machine a stop takes effect late).
    let recorded = out["recordedS"].as_f64().unwrap();
    assert!(recorded >= 6.0, "{out}");
    assert!(
        (p.duration_s - recorded).abs() < 1.0,
        "{recorded} s recorded, {p:?}"
    );
    decodes_cleanly(&media);

    // Pictures: red and blue, each in a good part of the frame.
    let rgb = frame_rgb(&media, 4.0, 1280, 720);
    let count = |want: (u8, u8, u8)| {
        rgb.chunks(3)
            .filter(|px| (0..3).all(|i| px[i].abs_diff([want.0, want.1, want.2][i]) < 40))
            .count()
    };
    let (red, blue) = (count((0xD0, 0x20, 0x20)), count((0x20, 0x40, 0xE0)));
    println!("red pixels {red}, blue pixels {blue} of {}", 1280 * 720);
    assert!(red > 100_000 && blue > 100_000, "red {red}, blue {blue}");

    // Sound: both tones, well above a frequency nobody played.
    let pcm = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "1", "-i"])
        .arg(&media)
        .args([
            "-t", "4", "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "-",
        ])
        .output()
        .unwrap();
    assert!(pcm.status.success(), "{pcm:?}");
    let samples: Vec<f32> = pcm
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let [ann_tone, bob_tone, none] =
        [440.0, 1500.0, 1000.0].map(|f| tone_power(&samples, 16000.0, f));
    println!("tone power: 440 Hz {ann_tone:.3e}, 1500 Hz {bob_tone:.3e}, 1000 Hz {none:.3e}");
    assert!(
        ann_tone > 100.0 * none && bob_tone > 100.0 * none,
        "{ann_tone} {bob_tone} {none}"
    );
}

/// A new server and the Record tab scenario `scenario` of
/// record_tab.mjs run on it for 6 s; its upload completed without errors
/// on the page.
async fn record_tab(scenario: &str) -> (Server, String, serde_json::Value) {
    let s = start(|_| {}).await;
    let key = s.key("alice", false).await;
    let out = page_script(
        "record_tab.mjs",
        vec![s.base.clone(), key.clone(), scenario.into(), "6".into()],
    )
    .await;
    println!("{out}");
    assert_eq!(out["pageErrors"], serde_json::json!([]), "{out}");
    assert_eq!(out["upload"], "completed", "{out}");
    (s, key, out)
}
